import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { startGateway, activeMerchant, MerchantClient, admin, waitUntil, ADMIN_TOKEN } from '../helpers/gateway.js';

const exec = promisify(execFile);

/**
 * Two WeChat accounts on the real-protocol simulator: the second must never be tried after an ambiguous failure. A
 * timeout after sending is covered in failover-real.test.ts, where each account has its own path to the simulator: here
 * both share it, so a timeout fault would hit a call to the second account too and hide it.
 */
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

test.serial('a lost response (the order was created) leaves one order, at the first account only; the gateway then learns its fate', async (t) => {
  const env = await startGateway(config);
  try {
    const sim = env.gw.simulatorUrls().wechatpay!;
    const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
    /** The simulator's whole order book (it serves this gateway only), as [order number, account whose notify URL it carries]. */
    const book = async () => ((await (await fetch(`${sim}/__sim/orders`)).json()) as Array<{ out_trade_no: string; notify_url: string }>).map((o) => [o.out_trade_no, o.notify_url.split('/').pop()]);
    // The next channel call is processed and its answer lost; any call after it would be answered, and leave an order.
    await fetch(`${sim}/__sim/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ response_lost: 1 }) });
    const res = await client.request('POST', '/v1/payments', { out_trade_no: 'amb-real-1', amount: 4321, pay_method: 'wechat.native' });
    await fetch(`${sim}/__sim/faults`, { method: 'DELETE' });
    t.is(res.status, 201, res.text);
    t.is(res.json.status, 'pending');
    t.is(res.json.channel_account, 'wechat_a');
    t.deepEqual(res.json.routing.attempts.map((a: any) => [a.channel, a.outcome]), [['wechat_a', 'unknown']]);
    const orderNo = (await env.gw.store.payments.get(env.gw.store.reads, res.json.id))!.channelOrderNo!;
    t.deepEqual(await book(), [[orderNo, 'wechat_a']], 'the one order at the channel is the payment\'s, made by wechat_a: no second create, at either account');

    // The order really exists at the channel: the payer pays it, and the gateway learns it.
    await fetch(`${sim}/__sim/orders/${orderNo}/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    const paid = await waitUntil(async () => {
      const r = await client.request('GET', `/v1/payments/${res.json.id}`);
      return r.json.status === 'succeeded' ? r : undefined;
    }, 10_000);
    t.deepEqual(paid.json.routing.attempts.map((a: any) => [a.channel, a.outcome]), [['wechat_a', 'unknown']], 'learnt by querying wechat_a, not by trying again');
    t.deepEqual(await book(), [[orderNo, 'wechat_a']], 'still the one order');
  } finally {
    await env.close();
  }
});

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
