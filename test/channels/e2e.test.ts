import test from 'ava';
import { startGateway, activeMerchant, MerchantClient, webhookReceiver, waitUntil, admin, ADMIN_TOKEN, type TestGateway } from '../helpers/gateway.js';

/** The sandbox config, on an ephemeral port with fast retries: every channel served by its real-protocol simulator. */
const config = `mode: sandbox
server: { host: 127.0.0.1, port: 0, shutdown_grace_ms: 2000 }
admin: { token: ${ADMIN_TOKEN} }
log: { level: ${process.env.E2E_LOG ?? 'debug'} }
webhooks: { retry_schedule_s: [1], poll_interval_ms: 100 }
poller: { interval_ms: 200, backoff_s: [1] }
simulators: { enabled: true }
channels:
  wechat_sandbox: { plugin: wechatpay, sandbox: true, simulator: direct }
  alipay_sandbox: { plugin: alipay, sandbox: true, simulator: true }
  unionpay_sandbox: { plugin: unionpay, sandbox: true, simulator: true }
  bank_sandbox: { plugin: bank, sandbox: true, simulator: true }
`;

let env: TestGateway;
let client: MerchantClient;
let hooks: Awaited<ReturnType<typeof webhookReceiver>>;

test.before(async () => {
  env = await startGateway(config);
  hooks = await webhookReceiver();
  client = await MerchantClient.for(env.gw, await activeMerchant(env.gw, { notify_url: hooks.url }));
});
test.after.always(async () => {
  await hooks?.close();
  await env?.close();
});

test('each channel call a merchant request makes is logged under its request id', async (t) => {
  for (const payMethod of ['wechat.native', 'alipay.qr', 'unionpay.qr', 'bank.qr']) {
    const traced = (requestId: string) => env.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.request_id === requestId && l.msg === 'channel call');
    const createId = `trace-create-${payMethod.replace('.', '-')}`;
    const created = await client.request('POST', '/v1/payments', { out_trade_no: `${createId}-${Date.now()}`, amount: 100, pay_method: payMethod }, { headers: { 'x-request-id': createId } });
    t.is(created.status, 201, created.text);
    t.true(traced(createId).some((l) => l.operation === 'create_payment'), `${payMethod}: create_payment logged under ${createId}`);
    const closeId = `trace-close-${payMethod.replace('.', '-')}`;
    const closed = await client.request('POST', `/v1/payments/${created.json.id}/close`, undefined, { headers: { 'x-request-id': closeId } });
    t.is(closed.status, 200, closed.text);
    t.true(traced(closeId).length > 0, `${payMethod}: the close's channel calls logged under ${closeId}`);
  }
});

const cases: Array<{ payMethod: string; payer?: Record<string, string>; action: string | null }> = [
  { payMethod: 'wechat.native', action: 'qr_code' },
  { payMethod: 'wechat.jsapi', payer: { openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' }, action: 'jsapi' },
  { payMethod: 'alipay.qr', action: 'qr_code' },
  { payMethod: 'alipay.page', action: 'redirect' },
  { payMethod: 'unionpay.qr', action: 'qr_code' },
  { payMethod: 'unionpay.web', action: 'app' },
  { payMethod: 'alipay.wap', action: 'redirect' },
  { payMethod: 'wechat.h5', payer: { client_ip: '203.0.113.9' }, action: 'redirect' },
  { payMethod: 'wechat.app', action: 'app' },
  { payMethod: 'bank.b2c', action: 'redirect' },
  { payMethod: 'bank.qr', action: 'qr_code' },
];

for (const c of cases) {
  test(`${c.payMethod}: create → payer pays → signed notification → webhook → refund → refund webhook`, async (t) => {
    const outTradeNo = `e2e-${c.payMethod.replace('.', '-')}-${Date.now()}`;
    const created = await client.request('POST', '/v1/payments', { out_trade_no: outTradeNo, amount: 1234, pay_method: c.payMethod, subject: 'Corbel e2e', ...(c.payer ? { payer: c.payer } : {}) });
    t.is(created.status, 201, created.text);
    t.is(created.json.status, 'pending');
    t.is(created.json.action?.type ?? null, c.action, created.text);

    const paid = await client.request('POST', `/v1/sandbox/payments/${created.json.id}/pay`);
    t.is(paid.status, 200, paid.text + env.logs.filter((l) => l.includes('"level":50')).join('\n'));
    const succeeded = await waitUntil(async () => {
      const p = await client.request('GET', `/v1/payments/${created.json.id}`);
      return p.json.status === 'succeeded' ? p.json : undefined;
    }, 15_000);
    t.truthy(succeeded.channel_trade_no);
    const [hook] = await hooks.waitFor((w) => w.some((h) => h.json.type === 'payment.succeeded' && h.json.data.object.id === created.json.id), 15_000);
    t.true(client.verify(hook!.headers as never, hook!.body));

    const refund = await client.request('POST', `/v1/payments/${created.json.id}/refunds`, { out_refund_no: `${outTradeNo}-r1`, amount: 234 });
    t.is(refund.status, 201, refund.text);
    await waitUntil(async () => {
      const r = await client.request('GET', `/v1/refunds/${refund.json.id}`);
      return r.json.status === 'succeeded' ? r.json : undefined;
    }, 15_000);
    const refundHooks = await hooks.waitFor((w) => w.some((h) => h.json.type === 'refund.succeeded' && h.json.data.object.id === refund.json.id), 15_000);
    const refundHook = refundHooks.find((h) => h.json.data.object.id === refund.json.id)!;
    t.true(client.verify(refundHook.headers as never, refundHook.body));
    t.is((await client.request('GET', `/v1/payments/${created.json.id}`)).json.amount_refunded, 234);
  });
}

for (const [payMethod, payer] of [['wechat.micropay', { auth_code: '134567890123456789', client_ip: '203.0.113.7' }], ['alipay.barcode', { auth_code: '286012345678901234' }]] as const) {
  test(`${payMethod}: the payer's code pays at once; the webhook follows`, async (t) => {
    const created = await client.request('POST', '/v1/payments', { out_trade_no: `e2e-${payMethod}-${Date.now()}`, amount: 888, pay_method: payMethod, payer });
    t.is(created.status, 201, created.text);
    t.is(created.json.status, 'succeeded', created.text);
    t.is(created.json.action, null);
    await hooks.waitFor((w) => w.some((h) => h.json.type === 'payment.succeeded' && h.json.data.object.id === created.json.id), 15_000);
    const refund = await client.request('POST', `/v1/payments/${created.json.id}/refunds`, { out_refund_no: 'r1', amount: 888 });
    t.is(refund.status, 201, refund.text);
  });
}

test('a pay method missing the payer field it needs is a 400 before anything is created', async (t) => {
  for (const [payMethod, field, payer] of [['wechat.jsapi', 'openid', { openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' }], ['alipay.barcode', 'auth_code', { auth_code: '286012345678901234' }], ['wechat.h5', 'client_ip', { client_ip: '203.0.113.9' }]] as const) {
    const outTradeNo = `needs-${field}-${Date.now()}`;
    const refused = await client.request('POST', '/v1/payments', { out_trade_no: outTradeNo, amount: 100, pay_method: payMethod });
    t.is(refused.status, 400, refused.text);
    t.is(refused.json.error.param, `payer.${field}`);
    const accepted = await client.request('POST', '/v1/payments', { out_trade_no: outTradeNo, amount: 100, pay_method: payMethod, payer });
    t.is(accepted.status, 201, 'the out_trade_no was not used up by the refused request');
  }
});

test.after('ledger verify passes after the channel flows', async (t) => {
  if (!env) return t.pass();
  const report = await admin(env.gw, 'GET', '/admin/ledger/verify');
  t.true(report.json.ok, JSON.stringify(report.json.problems));
});
