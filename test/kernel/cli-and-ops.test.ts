import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtureConfig, startGateway, activeMerchant, MerchantClient, waitUntil, admin } from '../helpers/gateway.js';

const exec = promisify(execFile);
const CLI = join(process.cwd(), 'bin/corbel');

async function corbel(dir: string, args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, '--config', join(dir, 'corbel.yaml'), ...args], { env: { ...process.env, CORBEL_DATA_DIR: join(dir, 'data'), ...extraEnv } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('CLI: migrate, merchant create/approve/list, app create, config check, --help', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corbel-cli-'));
  try {
    writeFileSync(join(dir, 'corbel.yaml'), fixtureConfig());
    const migrated = await corbel(dir, ['migrate', '--json']);
    t.is(migrated.code, 0, migrated.stderr);
    t.deepEqual(JSON.parse(migrated.stdout).applied, ['1_initial', '2_payment_channel_binding', '3_audit_by_trigger', '4_lookup_indexes']);
    t.regex((await corbel(dir, ['migrate'])).stdout, /up to date/);

    const created = JSON.parse((await corbel(dir, ['merchant', 'create', '--name', 'Noodle bar', '--tags', 'food,vip', '--json'])).stdout);
    t.is(created.status, 'pending_review');
    t.deepEqual(created.tags, ['food', 'vip']);
    const approved = JSON.parse((await corbel(dir, ['merchant', 'approve', created.id, '--json'])).stdout);
    t.is(approved.status, 'active');
    const list = JSON.parse((await corbel(dir, ['merchant', 'list', '--status', 'active', '--json'])).stdout);
    t.deepEqual(list.map((m: any) => m.id), [created.id]);
    const app = JSON.parse((await corbel(dir, ['app', 'create', '--merchant', created.id, '--auth', 'rsa', '--json'])).stdout);
    t.regex(app.private_key, /BEGIN PRIVATE KEY/);
    const missing = await corbel(dir, ['merchant', 'approve', 'mch_nope']);
    t.is(missing.code, 1);
    t.regex(missing.stderr, /merchant_not_found/);

    const check = await corbel(dir, ['config', 'check', '--json']);
    t.is(check.code, 0, check.stdout + check.stderr);
    t.true(JSON.parse(check.stdout).ok);
    writeFileSync(join(dir, 'bad.yaml'), fixtureConfig().replace('port: 0', 'port: "eighty"').replace('secret: fixture-secret-1', 'secret: 1'));
    const bad = await corbel(dir, ['--config', join(dir, 'bad.yaml'), 'config', 'check']);
    t.is(bad.code, 1);
    t.regex(bad.stdout, /server\.port: Expected number/);

    const help = await corbel(dir, ['merchant', '--help']);
    t.regex(help.stdout, /approve/);
    const ledger = await corbel(dir, ['ledger', 'verify']);
    t.is(ledger.code, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the config file is reloaded when it changes; logs carry request ids and no secrets', async (t) => {
  const env = await startGateway(fixtureConfig().replace('level: silent', 'level: debug'));
  try {
    env.gw.runtime.watch();
    const creds = await activeMerchant(env.gw);
    const client = await MerchantClient.for(env.gw, creds);
    const res = await client.request('POST', '/v1/payments', { out_trade_no: 'logs-1', amount: 100, pay_method: 'fixture.qr' }, { headers: { 'x-request-id': 'req-trace-123' } });
    t.is(res.headers.get('x-request-id'), 'req-trace-123');
    await client.request('POST', `/v1/sandbox/payments/${res.json.id}/pay`, undefined, { headers: { 'x-request-id': 'req-trace-456' } });
    const lines = env.logs.map((l) => JSON.parse(l));
    const traced = lines.filter((l) => l.request_id === 'req-trace-456');
    t.true(traced.some((l) => l.msg === 'channel call'), 'the channel call logs under the request id');
    t.true(traced.some((l) => l.msg === 'request'));
    const all = env.logs.join('\n');
    t.false(all.includes(creds.secret!), 'the app secret never reaches the logs');
    t.false(all.includes('fixture-secret-1'));

    const original = readFileSync(env.configPath, 'utf8');
    writeFileSync(env.configPath, original + 'api:\n  max_amount: 50\n');
    await waitUntil(async () => ((await admin(env.gw, 'GET', '/admin/config')).json.version === 2 ? true : undefined), 5_000);
    const tooBig = await client.request('POST', '/v1/payments', { out_trade_no: 'logs-2', amount: 100, pay_method: 'fixture.qr' });
    t.is(tooBig.json.error.code, 'amount_too_large');
    writeFileSync(env.configPath, 'channels: [1, 2');
    await waitUntil(() => (env.gw.runtime.lastReload?.trigger === 'file change' && !env.gw.runtime.lastReload.result.ok ? true : undefined), 5_000);
    t.is((await admin(env.gw, 'GET', '/admin/config')).json.version, 2, 'a broken file never replaces the running config');
  } finally {
    await env.close();
  }
});

test('graceful shutdown lets an in-flight request finish', async (t) => {
  const env = await startGateway(fixtureConfig().replace('secret: fixture-secret-1', 'secret: fixture-secret-1\n      delay_ms: 300'));
  const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
  const inflight = client.request('POST', '/v1/payments', { out_trade_no: 'drain-1', amount: 100, pay_method: 'fixture.qr' });
  // Stop while the request is at the channel.
  await new Promise((r) => setTimeout(r, 150));
  const stopping = env.gw.stop();
  const res = await inflight;
  await stopping;
  t.is(res.status, 201);
  await t.throwsAsync(fetch(env.gw.url + '/healthz'));
  rmSync(env.dir, { recursive: true, force: true });
});

test('live mode refuses webhook targets on private or loopback addresses', async (t) => {
  const { isPrivateTarget } = await import('../../core/webhooks/dispatcher.js');
  for (const url of ['http://127.0.0.1:8080/h', 'http://localhost/h', 'http://10.1.2.3/h', 'http://172.20.0.1/h', 'http://192.168.1.1/h', 'http://169.254.169.254/latest', 'http://[::1]/h', 'http://0.0.0.0/h']) {
    t.true(isPrivateTarget(url), url);
  }
  for (const url of ['https://shop.example.com/hooks', 'http://203.0.113.7/h', 'http://172.32.0.1/h']) t.false(isPrivateTarget(url), url);
  const env = await startGateway(fixtureConfig().replace('mode: sandbox', 'mode: live'));
  try {
    const hooks = await (await import('../helpers/gateway.js')).webhookReceiver();
    const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw, { notify_url: hooks.url }));
    const created = await client.request('POST', '/v1/payments', { out_trade_no: 'ssrf-1', amount: 100, pay_method: 'fixture.qr' });
    await client.request('POST', `/v1/sandbox/payments/${created.json.id}/pay`);
    const event = await waitUntil(async () => {
      const rows = await env.gw.store.webhooks.listForObject(env.gw.store.reads, created.json.id);
      return rows[0]?.attempts ? rows[0] : undefined;
    });
    t.regex(event.lastError ?? '', /private or loopback/);
    t.is(hooks.received.length, 0);
    await hooks.close();
  } finally {
    await env.close();
  }
});
