/** Simulator faults → the plugin's ChannelErrors, with the money-safety bit (mayExist) right. */
import test from 'ava';
import { ChannelError, type ChannelAccount, type CreatePaymentRequest, type PaymentReference } from '../../core/index.js';
import { orderNo, startHarness, type Harness } from './wechatpay.helpers.js';

let h: Harness;
let account: ChannelAccount;

test.before(async () => {
  h = await startHarness();
  account = await h.account(undefined, { timeoutMs: 1000 });
});
test.after.always(async () => { await h?.close(); });
test.afterEach.always(async () => { await h.simApi('DELETE', '/__sim/faults'); });

function request(no: string, payMethod = 'wechat.native', payer: CreatePaymentRequest['payer'] = {}, path = '/notify/faults'): CreatePaymentRequest {
  return {
    createdAt: new Date(), paymentId: `pay_${no}`, channelOrderNo: no, amount: 990, currency: 'CNY', payMethod, subject: 'faults',
    expiresAt: new Date(Date.now() + 600_000), notifyUrl: `${h.receiver.url}${path}`, payer,
  };
}
const ref = (r: CreatePaymentRequest): PaymentReference => ({ channelOrderNo: r.channelOrderNo, amount: r.amount, currency: 'CNY', payMethod: r.payMethod, createdAt: new Date() });

async function faults(set: Record<string, unknown>): Promise<void> {
  const res = await h.simApi('PUT', '/__sim/faults', set);
  if (res.status >= 300) throw new Error(`PUT /__sim/faults → ${res.status}`);
}

test.serial('http_5xx → SYSTEMERROR → channel_unavailable, mayExist true; the next call works', async (t) => {
  await faults({ http_5xx: 1 });
  const req = request(orderNo('A'));
  const err = await t.throwsAsync(account.createPayment(req), { instanceOf: ChannelError });
  t.like(err, { code: 'channel_unavailable', mayExist: true, channelCode: 'SYSTEMERROR', retryable: true });
  t.is((await account.createPayment(req)).status, 'pending');
});

test.serial('timeout → timeout, mayExist true', async (t) => {
  await faults({ timeout: true });
  const err = await t.throwsAsync(account.createPayment(request(orderNo('B'))), { instanceOf: ChannelError });
  t.like(err, { code: 'timeout', mayExist: true });
});

test.serial('connection_reset → mayExist true (the request was sent); the order was not created', async (t) => {
  await faults({ connection_reset: 1 });
  const req = request(orderNo('C'));
  const err = await t.throwsAsync(account.createPayment(req), { instanceOf: ChannelError });
  t.true(err!.mayExist);
  t.like(await t.throwsAsync(account.queryPayment(ref(req)), { instanceOf: ChannelError }), { code: 'order_not_found' });
});

test.serial('response_lost → mayExist true, and the order does exist', async (t) => {
  await faults({ response_lost: 1 });
  const req = request(orderNo('D'));
  const err = await t.throwsAsync(account.createPayment(req), { instanceOf: ChannelError });
  t.true(err!.mayExist);
  t.is((await account.queryPayment(ref(req))).status, 'pending');
});

test.serial('response_lost on a refund → mayExist true; the refund is found by query', async (t) => {
  const req = request(orderNo('E'));
  await account.createPayment(req);
  await account.simulatePayer!(ref(req), 'pay');
  await faults({ response_lost: 1 });
  const refundNo = orderNo('R');
  const err = await t.throwsAsync(account.refund({ createdAt: new Date(), refundId: 'r', channelRefundNo: refundNo, payment: ref(req), amount: 100, notifyUrl: `${h.receiver.url}/notify/faults` }), { instanceOf: ChannelError });
  t.true(err!.mayExist);
  const found = await account.queryRefund({ createdAt: new Date(), channelRefundNo: refundNo, payment: ref(req), amount: 100 });
  t.true(found.status === 'pending' || found.status === 'succeeded');
});

test.serial('corrupt_signature → signature_invalid, mayExist true; corrupt notifications are rejected', async (t) => {
  const path = '/notify/corrupt';
  const req = request(orderNo('F'), 'wechat.native', {}, path);
  await account.createPayment(req);
  await faults({ corrupt_signature: true });
  const err = await t.throwsAsync(account.queryPayment(ref(req)), { instanceOf: ChannelError });
  t.like(err, { code: 'signature_invalid', mayExist: true });
  const created = await t.throwsAsync(account.createPayment(request(orderNo('F'))), { instanceOf: ChannelError });
  t.like(created, { code: 'signature_invalid', mayExist: true });

  await account.simulatePayer!(ref(req), 'pay');
  const raw = await h.receiver.waitForRaw(path);
  t.like(await t.throwsAsync(account.parseNotification(raw), { instanceOf: ChannelError }), { code: 'signature_invalid', mayExist: false });
});

test.serial('micropay under http_5xx / response_lost → mayExist true', async (t) => {
  const payer = { auth_code: '134000000000000001', client_ip: '10.1.1.1' };
  await faults({ http_5xx: 1 });
  const a = await t.throwsAsync(account.createPayment(request(orderNo('G'), 'wechat.micropay', payer)), { instanceOf: ChannelError });
  t.true(a!.mayExist);
  await faults({ response_lost: 1 });
  const req = request(orderNo('G'), 'wechat.micropay', payer);
  const b = await t.throwsAsync(account.createPayment(req), { instanceOf: ChannelError });
  t.true(b!.mayExist);
  t.is((await account.queryPayment(ref(req))).status, 'succeeded');
});

test.serial('latency below the timeout is just slower', async (t) => {
  await faults({ latency_ms: 300 });
  const started = Date.now();
  t.is((await account.createPayment(request(orderNo('H')))).status, 'pending');
  t.true(Date.now() - started >= 250);
});

test.serial('duplicate notifications parse to the same result; tampered amounts are reported as claimed', async (t) => {
  const path = '/notify/dup';
  await faults({ notify: 'duplicate', tamper_notify_amount: true });
  const req = request(orderNo('J'), 'wechat.native', {}, path);
  await account.createPayment(req);
  await h.simApi('POST', `/__sim/orders/${req.channelOrderNo}/pay`, { amount: 1 });
  const first = await h.receiver.waitFor(account, path, (n) => n.kind === 'payment');
  // The signed notification claims 1 fen; the plugin reports it as claimed for the kernel to catch.
  t.like(first.parsed, { kind: 'payment', channelOrderNo: req.channelOrderNo, amount: 1 });
  const deadline = Date.now() + 3000;
  while (h.receiver.received.filter((c) => c.path === path).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  const all = h.receiver.received.filter((c) => c.path === path);
  t.true(all.length >= 2);
  t.deepEqual(await account.parseNotification(all[1]!), first.parsed);
});
