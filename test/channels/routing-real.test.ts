import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { startGateway, activeMerchant, MerchantClient, admin, waitUntil, ADMIN_TOKEN } from '../helpers/gateway.js';

const exec = promisify(execFile);

/** Two WeChat accounts on the real-protocol simulator: the second must never be tried after an ambiguous failure. */
const config = `mode: sandbox
server: { host: 127.0.0.1, port: 0, shutdown_grace_ms: 2000 }
admin: { token: ${ADMIN_TOKEN} }
log: { level: silent }
poller: { interval_ms: 200, backoff_s: [1] }
simulators: { enabled: true }
channels:
  wechat_a: { plugin: wechatpay, sandbox: true, simulator: direct, timeout_ms: 400 }
  wechat_b: { plugin: wechatpay, sandbox: true, simulator: direct, timeout_ms: 400 }
routing:
  rules:
    - name: wechat
      match: { pay_method: wechat.* }
      targets: [wechat_a, wechat_b]
`;

for (const [name, fault, created] of [['a lost response (the order was created)', { response_lost: 1 }, true], ['a timeout after sending (the channel never processed it)', { timeout: true }, false]] as const) {
test.serial(`${name} leaves at most one order, on that channel only; the gateway then learns its fate`, async (t) => {
  const env = await startGateway(config);
  try {
    const sim = env.gw.simulatorUrls().wechatpay!;
    const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
    await fetch(`${sim}/__sim/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(fault) });
    const res = await client.request('POST', '/v1/payments', { out_trade_no: 'amb-real-1', amount: 4321, pay_method: 'wechat.native' });
    await fetch(`${sim}/__sim/faults`, { method: 'DELETE' });
    const createdJson = res;
    t.is(createdJson.status, 201, createdJson.text);
    t.is(createdJson.json.status, 'pending');
    t.is(createdJson.json.channel_account, 'wechat_a');
    t.deepEqual(createdJson.json.routing.attempts.map((a: any) => [a.channel, a.outcome]), [['wechat_a', 'unknown']]);
    const payment = await env.gw.store.payments.get(env.gw.store.reads, createdJson.json.id);
    const orders = (await (await fetch(`${sim}/__sim/orders`)).json()) as any;
    const list = (Array.isArray(orders) ? orders : orders.orders ?? orders.data ?? []) as any[];
    t.is(list.filter((o) => JSON.stringify(o).includes(payment!.channelOrderNo!)).length, created ? 1 : 0);
    t.false(JSON.stringify(list).includes(`${payment!.channelOrderNo!.slice(0, -1)}2`), 'no second attempt was made, on either account');
    if (created) {
      // The order really exists at the channel: the payer pays it, and the gateway learns it.
      await fetch(`${sim}/__sim/orders/${payment!.channelOrderNo}/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      await waitUntil(async () => ((await client.request('GET', `/v1/payments/${createdJson.json.id}`)).json.status === 'succeeded' ? true : undefined), 10_000);
    } else {
      // The channel never had it: queries say so, and the payment waits for its expiry rather than being retried elsewhere.
      await new Promise((r) => setTimeout(r, 1_500));
      const later = await client.request('GET', `/v1/payments/${createdJson.json.id}`);
      t.is(later.json.status, 'pending');
      t.is(later.json.routing.attempts.length, 1);
    }
    t.pass();
  } finally {
    await env.close();
  }
});
}

test.serial('corbel route explain prints the rule, the order and the reasons', async (t) => {
  const env = await startGateway(config);
  try {
    const { stdout } = await exec(process.execPath, [join(process.cwd(), 'bin/corbel'), '--config', env.configPath, 'route', 'explain', '--pay-method', 'wechat.native', '--amount', '1200', '--merchant', 'm_1'], { env: { ...process.env, CORBEL_DATA_DIR: join(env.dir, 'data') } });
    t.regex(stdout, /rule 0 "wechat" matched \(priority\); try wechat_a → wechat_b/);
    const { stdout: js } = await exec(process.execPath, [join(process.cwd(), 'bin/corbel'), '--config', env.configPath, 'route', 'explain', '--pay-method', 'wechat.jsapi', '--amount', '1200', '--json'], { env: { ...process.env, CORBEL_DATA_DIR: join(env.dir, 'data') } });
    const out = JSON.parse(js);
    t.like(out.rule, { name: 'wechat', strategy: 'priority' });
    t.deepEqual(out.order, ['wechat_a', 'wechat_b']);
    const unknown = await exec(process.execPath, [join(process.cwd(), 'bin/corbel'), '--config', env.configPath, 'route', 'explain', '--pay-method', 'alipay.qr', '--amount', '1200'], { env: { ...process.env, CORBEL_DATA_DIR: join(env.dir, 'data') } }).catch((err: { code: number; stderr: string }) => err);
    t.is((unknown as { code: number }).code, 1);
    t.regex((unknown as { stderr: string }).stderr, /no configured channel serves alipay\.qr/);
    const statement = await admin(env.gw, 'GET', `/admin/channels/wechat_a/statement?date=${new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10)}`);
    t.is(statement.status, 200, JSON.stringify(statement.json));
    t.true(Array.isArray(statement.json.lines));
  } finally {
    await env.close();
  }
});
