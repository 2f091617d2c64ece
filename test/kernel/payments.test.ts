import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { startGateway, activeMerchant, MerchantClient, webhookReceiver, admin, type TestGateway } from '../helpers/gateway.js';

const run = promisify(execFile);
let env: TestGateway;
let client: MerchantClient;
let hooks: Awaited<ReturnType<typeof webhookReceiver>>;

test.before(async () => {
  env = await startGateway();
  hooks = await webhookReceiver();
  client = await MerchantClient.for(env.gw, await activeMerchant(env.gw, { notify_url: hooks.url }));
});
test.after.always(async () => {
  await hooks?.close();
  await env?.close();
});

let seq = 0;
const order = (over: Record<string, unknown> = {}) => ({ out_trade_no: `o-${process.pid}-${++seq}`, amount: 1000, pay_method: 'fixture.qr', subject: 'Tea', ...over });

async function paidPayment(amount = 1000): Promise<any> {
  const created = await client.request('POST', '/v1/payments', order({ amount }));
  const paid = await client.request('POST', `/v1/sandbox/payments/${created.json.id}/pay`);
  if (paid.json.status !== 'succeeded') throw new Error(`not paid: ${paid.text}`);
  return paid.json;
}

test('create → payer pays → signed notification → succeeded, with a verified webhook', async (t) => {
  const created = await client.request('POST', '/v1/payments', order({ metadata: { cart: '42' } }));
  t.is(created.status, 201, created.text);
  t.true(created.signatureValid);
  t.regex(created.headers.get('content-type') ?? '', /^application\/json/, 'the answer signed ahead is sent as JSON');
  t.regex(created.json.id, /^pay_/);
  t.is(created.json.status, 'pending');
  t.is(created.json.amount, 1000);
  t.is(created.json.currency, 'CNY');
  t.is(created.json.channel, 'fixture');
  t.deepEqual(created.json.action.type, 'qr_code');
  t.deepEqual(created.json.metadata, { cart: '42' });

  const paid = await client.request('POST', `/v1/sandbox/payments/${created.json.id}/pay`);
  t.is(paid.json.status, 'succeeded');
  t.truthy(paid.json.paid_at);

  const got = await client.request('GET', `/v1/payments/${created.json.id}`);
  t.is(got.json.status, 'succeeded');
  const byNo = await client.request('GET', `/v1/payments?out_trade_no=${created.json.out_trade_no}`);
  t.is(byNo.json.id, created.json.id);

  const [hook] = (await hooks.waitFor((w) => w.some((h) => h.json.data.object.id === created.json.id))).filter((h) => h.json.data.object.id === created.json.id);
  t.is(hook!.json.type, 'payment.succeeded');
  t.regex(hook!.json.id, /^evt_/);
  t.true(client.verify(hook!.headers as never, hook!.body), 'webhook signature verifies with the gateway key');
});

test('close a pending payment; a closed one stays closed; a succeeded one cannot be closed', async (t) => {
  const created = await client.request('POST', '/v1/payments', order());
  const closed = await client.request('POST', `/v1/payments/${created.json.id}/close`);
  t.is(closed.json.status, 'closed');
  t.is((await client.request('POST', `/v1/payments/${created.json.id}/close`)).json.status, 'closed');
  const paid = await paidPayment();
  const refused = await client.request('POST', `/v1/payments/${paid.id}/close`);
  t.is(refused.status, 409);
  t.is(refused.json.error.code, 'invalid_state');
});

test('refunds: partial, then the rest, never more than the amount', async (t) => {
  const p = await paidPayment(1000);
  const r1 = await client.request('POST', `/v1/payments/${p.id}/refunds`, { out_refund_no: 'r1', amount: 400, reason: 'size' });
  t.is(r1.status, 201, r1.text);
  t.regex(r1.json.id, /^re_/);
  t.is(r1.json.status, 'succeeded');
  const over = await client.request('POST', `/v1/payments/${p.id}/refunds`, { out_refund_no: 'r2', amount: 601 });
  t.is(over.status, 409);
  t.is(over.json.error.code, 'refund_exceeds_amount');
  t.is(over.json.error.param, 'amount');
  const dup = await client.request('POST', `/v1/payments/${p.id}/refunds`, { out_refund_no: 'r1', amount: 1 });
  t.is(dup.json.error.code, 'duplicate_out_refund_no');
  const r2 = await client.request('POST', `/v1/payments/${p.id}/refunds`, { out_refund_no: 'r3', amount: 600 });
  t.is(r2.json.status, 'succeeded');
  const after = await client.request('GET', `/v1/payments/${p.id}`);
  t.is(after.json.amount_refunded, 1000);
  const fetched = await client.request('GET', `/v1/refunds/${r1.json.id}`);
  t.is(fetched.json.amount, 400);
  await hooks.waitFor((w) => w.filter((h) => h.json.type === 'refund.succeeded' && h.json.data.object.payment_id === p.id).length === 2);
  t.pass();
});

test('concurrent refund attempts never add up to more than the payment', async (t) => {
  const p = await paidPayment(1000);
  const attempts = await Promise.all(Array.from({ length: 12 }, (_, i) => client.request('POST', `/v1/payments/${p.id}/refunds`, { out_refund_no: `c${i}`, amount: 300 })));
  const ok = attempts.filter((a) => a.status === 201);
  const refused = attempts.filter((a) => a.status === 409);
  t.is(ok.length, 3);
  t.is(refused.length, 9);
  t.true(refused.every((r) => r.json.error.code === 'refund_exceeds_amount'));
  const after = await client.request('GET', `/v1/payments/${p.id}`);
  t.is(after.json.amount_refunded, 900);
});

test('Idempotency-Key replays the first response; another body with the same key is 409', async (t) => {
  const body = order();
  const headers = { 'Idempotency-Key': `idem-${seq}` };
  const first = await client.request('POST', '/v1/payments', body, { headers });
  const second = await client.request('POST', '/v1/payments', body, { headers });
  t.is(first.status, 201);
  t.is(second.status, 201);
  t.is(second.json.id, first.json.id);
  t.is(second.headers.get('idempotent-replayed'), 'true');
  t.true(second.signatureValid);
  const other = await client.request('POST', '/v1/payments', { ...body, amount: 999 }, { headers });
  t.is(other.status, 409);
  t.is(other.json.error.code, 'idempotency_key_reused');
  // Concurrent duplicates: exactly one payment exists afterwards.
  const key = { 'Idempotency-Key': `idem-conc-${seq}` };
  const b2 = order();
  const results = await Promise.all(Array.from({ length: 5 }, () => client.request('POST', '/v1/payments', b2, { headers: key })));
  const ids = new Set(results.filter((r) => r.status === 201).map((r) => r.json.id));
  t.is(ids.size, 1);
  t.true(results.every((r) => r.status === 201 || r.json.error.code === 'idempotency_in_progress'));
});

test('a duplicate out_trade_no is 409 naming the field', async (t) => {
  const body = order();
  t.is((await client.request('POST', '/v1/payments', body)).status, 201);
  const dup = await client.request('POST', '/v1/payments', body);
  t.is(dup.status, 409);
  t.is(dup.json.error.code, 'duplicate_out_trade_no');
  t.is(dup.json.error.param, 'out_trade_no');
});

for (const [name, raw, code, param] of [
  ['bad JSON', '{"amount": 1,', 'invalid_json', null],
  ['a JSON array', '[1,2]', 'invalid_json', null],
  ['a negative amount', JSON.stringify(order({ amount: -5 })), 'invalid_request', 'amount'],
  ['a fractional amount', JSON.stringify(order({ amount: 10.5 })), 'invalid_request', 'amount'],
  ['a string amount', JSON.stringify(order({ amount: '100' })), 'invalid_request', 'amount'],
  ['a zero amount', JSON.stringify(order({ amount: 0 })), 'invalid_request', 'amount'],
  ['an amount over the maximum', JSON.stringify(order({ amount: 100_000_001 })), 'amount_too_large', 'amount'],
  ['an unknown pay method', JSON.stringify(order({ pay_method: 'bitcoin.lightning' })), 'unknown_pay_method', 'pay_method'],
  ['a missing out_trade_no', JSON.stringify({ amount: 1, pay_method: 'fixture.qr' }), 'invalid_request', 'out_trade_no'],
  ['an unknown field', JSON.stringify(order({ colour: 'red' })), 'invalid_request', 'colour'],
  ['a bad notify_url', JSON.stringify(order({ notify_url: 'ftp://x' })), 'invalid_request', 'notify_url'],
  ['a wrong payer type', JSON.stringify(order({ payer: 'me' })), 'invalid_request', 'payer'],
  ['a client_ip with a zone id', JSON.stringify(order({ payer: { client_ip: '::ffff:10.0.0.1%eth0' } })), 'invalid_request', 'payer.client_ip'],
] as const) {
  test(`${name} is a 4xx JSON error naming the field`, async (t) => {
    const res = await client.request('POST', '/v1/payments', undefined, { raw });
    t.true(res.status >= 400 && res.status < 500, `${res.status} ${res.text}`);
    t.is(res.json.error.code, code);
    t.is(res.json.error.param, param);
    t.true(res.signatureValid);
  });
}

test('an oversized body is 413, not a crash', async (t) => {
  const raw = JSON.stringify(order({ subject: 'x'.repeat(70_000) }));
  const res = await client.request('POST', '/v1/payments', undefined, { raw });
  t.is(res.status, 413);
  t.is(res.json.error.code, 'body_too_large');
  t.is((await fetch(env.gw.url + '/healthz')).status, 200);
});

test('refund input is validated; refunding a pending payment is 409', async (t) => {
  const created = await client.request('POST', '/v1/payments', order());
  const res = await client.request('POST', `/v1/payments/${created.json.id}/refunds`, { out_refund_no: 'x', amount: 1 });
  t.is(res.json.error.code, 'invalid_state');
  const bad = await client.request('POST', `/v1/payments/${created.json.id}/refunds`, { out_refund_no: 'x', amount: 1.5 });
  t.is(bad.json.error.param, 'amount');
  t.is((await client.request('GET', '/v1/refunds/re_nope')).status, 404);
});

test('another merchant cannot see the payment', async (t) => {
  const created = await client.request('POST', '/v1/payments', order());
  const other = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
  const res = await other.request('GET', `/v1/payments/${created.json.id}`);
  t.is(res.status, 404);
});

test('a merchant that is not active cannot transact', async (t) => {
  const pending = await MerchantClient.for(env.gw, await activeMerchant(env.gw, { approve: false }));
  const res = await pending.request('POST', '/v1/payments', order());
  t.is(res.status, 403);
  t.is(res.json.error.code, 'merchant_not_active');

  const creds = await activeMerchant(env.gw);
  const active = await MerchantClient.for(env.gw, creds);
  t.is((await active.request('POST', '/v1/payments', order())).status, 201);
  t.is((await admin(env.gw, 'POST', `/admin/merchants/${creds.merchantId}/suspend`, { reason: 'chargebacks' })).json.status, 'suspended');
  const suspended = await active.request('POST', '/v1/payments', order());
  t.is(suspended.status, 403);
  t.is(suspended.json.error.code, 'merchant_not_active');
  const rejectedAfterApproval = await admin(env.gw, 'POST', `/admin/merchants/${creds.merchantId}/reject`, {});
  t.is(rejectedAfterApproval.status, 409);
});

test('metrics and health endpoints answer', async (t) => {
  await paidPayment();
  const metrics = await (await fetch(env.gw.url + '/metrics')).text();
  t.regex(metrics, /corbel_http_requests_total/);
  t.regex(metrics, /corbel_payments_total\{status="succeeded",channel="fixture"\}/);
  t.regex(metrics, /corbel_webhook_backlog/);
  t.is((await fetch(env.gw.url + '/readyz')).status, 200);
});

test('corbel ledger verify passes after a mix of payments and refunds', async (t) => {
  const p = await paidPayment(777);
  await client.request('POST', `/v1/payments/${p.id}/refunds`, { out_refund_no: 'lv', amount: 333 });
  const report = await admin(env.gw, 'GET', '/admin/ledger/verify');
  t.true(report.json.ok, JSON.stringify(report.json.problems));
  t.true(report.json.journals > 5);
  // The CLI reads the same store file while the gateway runs.
  const cli = join(process.cwd(), 'bin/corbel');
  const { stdout } = await run(process.execPath, [cli, '--config', env.configPath, 'ledger', 'verify', '--json'], { env: { ...process.env, CORBEL_DATA_DIR: join(env.dir, 'data') } });
  const out = JSON.parse(stdout);
  t.true(out.ok, stdout);
  t.is(out.balances.fee_revenue + out.balances['channel_clearing:fixture_main'] + Object.entries(out.balances).filter(([k]) => k.startsWith('merchant_payable')).reduce((a, [, v]) => a + (v as number), 0), 0);
});
