/**
 * UnionPay plugin against the real UnionPay simulator on 127.0.0.1: both pay methods end to end, refunds, close,
 * notifications (genuine, forged, tampered), the statement file and the simulator's faults. Serial: faults are global.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChannelError, type ChannelAccount, type ChannelAccountContext, type CreatePaymentRequest, type InboundNotification, type PaymentAction, type PaymentReference, type PluginLogger } from '../../core/index.js';
import { KernelChannelHttp } from '../../core/kernel/channel-http.js';
import { Metrics } from '../../core/ops/metrics.js';
import plugin from '../../plugins/unionpay/index.js';
import type { UnionPayConfig } from '../../plugins/unionpay/config.js';
import { chinaTime } from '../../plugins/unionpay/transformers.js';
import { parseFormBody } from '../../plugins/unionpay/transport.js';
import { PostRecorder } from '../helpers/post-recorder.js';

const logger: PluginLogger = { debug() {}, info() {}, warn() {}, error() {} };

// ---------------------------------------------------------------- notify receiver

/** The kernel's notify URL: waits for the first ACP form posted to a path that the predicate accepts. */
class Receiver extends PostRecorder {
  waitFor(path: string, predicate: (fields: Record<string, string>) => boolean = () => true, timeoutMs = 5000): Promise<InboundNotification> {
    return this.waitUntil(() => {
      const hit = this.posts.find((c) => c.path === path && predicate(parseFormBody(c.rawBody)));
      return hit && { headers: hit.headers, rawBody: hit.rawBody, query: {} };
    }, timeoutMs, `a notification on ${path}`);
  }
}

// ---------------------------------------------------------------- fixtures

let dataDir: string;
let sim: Awaited<ReturnType<NonNullable<typeof plugin.sandbox>['startSimulator']>>;
let config: UnionPayConfig;
let account: ChannelAccount;
const http = new KernelChannelHttp('unionpay-test', 3000, logger, new Metrics({ defaultMetrics: false }));
const receiver = new Receiver();

function context(sandbox = true): ChannelAccountContext {
  return { logger, http, dataDir, configDir: dataDir, publicUrl: receiver.url, accountName: 'unionpay-test', sandbox };
}

test.before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'corbel-unionpay-plugin-'));
  sim = await plugin.sandbox!.startSimulator({ dataDir });
  config = plugin.sandbox!.accountConfig(sim.credentials, undefined);
  account = await plugin.createAccount(config, context());
  await receiver.start();
});

test.after.always(async () => {
  await account?.dispose();
  await sim?.close();
  await receiver.close();
  http.dispose();
  rmSync(dataDir, { recursive: true, force: true });
});

test.afterEach.always(async () => {
  await fetch(`${sim.url}/__sim/faults`, { method: 'DELETE' });
});

async function setFaults(faults: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${sim.url}/__sim/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(faults) });
  if (res.status !== 200) throw new Error(await res.text());
}

/** Random numbers carrying no time: txnTime must come from createdAt alone. */
const randomNo = (prefix: string) => prefix + Array.from(randomBytes(20), (b) => (b % 36).toString(36)).join('');
const orderNo = () => randomNo('P');
const refundNo = () => randomNo('R');

/** `createdAt` is the payment's one creation instant: pass the same Date to refOf for every later call. */
function paymentRequest(payMethod: string, no: string, amount: number, path: string, createdAt: Date): CreatePaymentRequest {
  return {
    createdAt, paymentId: `pay_${no}`, channelOrderNo: no, amount, currency: 'CNY', payMethod, subject: 'Test order',
    expiresAt: new Date(Date.now() + 15 * 60_000), notifyUrl: `${receiver.url}${path}`, returnUrl: `${receiver.url}/return`, payer: {},
  };
}

/** The form an `app` action carries, split as the payer's browser sees it. */
function formOf(action: PaymentAction | undefined): { form_action: string; form_method: string; fields: Record<string, string> } {
  if (action?.type !== 'app') throw new Error(`expected an app action, got ${action?.type}`);
  const { form_action, form_method, ...fields } = action.params;
  return { form_action: form_action!, form_method: form_method!, fields };
}

function refOf(no: string, amount: number, payMethod: string, createdAt: Date, channelTradeNo?: string): PaymentReference {
  return { channelOrderNo: no, amount, currency: 'CNY', payMethod, createdAt, channelTradeNo };
}

async function expectChannelError(t: { fail(m: string): void; is(a: unknown, b: unknown, m?: string): void }, p: Promise<unknown>, code: string, mayExist: boolean): Promise<ChannelError> {
  try {
    await p;
  } catch (err) {
    if (!(err instanceof ChannelError)) throw err;
    t.is(err.code, code, err.message);
    t.is(err.mayExist, mayExist, `mayExist of ${err.code}: ${err.message}`);
    return err;
  }
  t.fail(`expected ChannelError ${code}`);
  throw new Error('unreachable');
}

/** The clearing date the simulator files today's transactions under (cut at 23:00 Beijing time). */
function clearingDate(): string {
  const s = chinaTime(new Date(Date.now() + 3600_000));
  return `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}`;
}

// ---------------------------------------------------------------- flows

test.serial('manifest and health', async (t) => {
  t.is(plugin.manifest.name, 'unionpay');
  t.deepEqual([...plugin.manifest.payMethods], ['unionpay.web', 'unionpay.qr']);
  t.like(await account.health(), { ok: true });
  t.throws(() => plugin.sandbox!.accountConfig(sim.credentials, 'service_provider'));
});

test.serial('unionpay.qr: create → pay → notification → query → partial refund → refund notification → query → statement', async (t) => {
  const createdAt = new Date();
  const no = orderNo();
  const created = await account.createPayment(paymentRequest('unionpay.qr', no, 1234, '/qr', createdAt));
  t.is(created.status, 'pending');
  t.is(created.action?.type, 'qr_code');
  t.regex((created.action as { qr_code: string }).qr_code, /\/__sim\/checkout\//);

  const ref = refOf(no, 1234, 'unionpay.qr', createdAt);
  t.like(await account.queryPayment(ref), { status: 'pending' });

  await account.simulatePayer!(ref, 'pay', created.action);
  const note = await account.parseNotification(await receiver.waitFor('/qr'));
  t.is(note.kind, 'payment');
  if (note.kind !== 'payment') return;
  t.is(note.channelOrderNo, no);
  t.is(note.amount, 1234);
  t.is(note.result.status, 'succeeded');
  t.truthy(note.result.channelTradeNo);
  t.deepEqual(account.acknowledge(true), { status: 200, body: 'ok', contentType: 'text/plain; charset=utf-8' });

  const queried = await account.queryPayment(ref);
  t.like(queried, { status: 'succeeded', paidAmount: 1234, channelTradeNo: note.result.channelTradeNo });

  const paidRef = { ...ref, channelTradeNo: note.result.channelTradeNo };
  await expectChannelError(t, account.closePayment(paidRef), 'order_paid', true);

  const rno = refundNo();
  const refundedAt = new Date();
  const refund = await account.refund({ createdAt: refundedAt, refundId: `re_${rno}`, channelRefundNo: rno, payment: paidRef, amount: 234, notifyUrl: `${receiver.url}/qr-refund` });
  t.deepEqual(refund, { status: 'pending', channelRefundNo: rno });
  const refundNote = await account.parseNotification(await receiver.waitFor('/qr-refund', (f) => f.txnType === '04'));
  t.like(refundNote, { kind: 'refund', channelRefundNo: rno, amount: 234, result: { status: 'succeeded' } });
  const refundRef = { createdAt: refundedAt, channelRefundNo: rno, payment: paidRef, amount: 234 };
  t.like(await account.queryRefund(refundRef), { status: 'succeeded', channelRefundNo: rno });

  // A second account (a restart: no state) finds both from the references' createdAt alone.
  const fresh = await plugin.createAccount(config, context());
  t.like(await fresh.queryRefund(refundRef), { status: 'succeeded' });
  t.like(await fresh.queryPayment(ref), { status: 'succeeded' });
  // Another creation time is another txnTime: UnionPay does not know that transaction.
  await expectChannelError(t, fresh.queryRefund({ ...refundRef, createdAt: new Date(refundedAt.getTime() - 3600_000) }), 'order_not_found', true);

  // Refund above what is left: a failed refund value, not an exception.
  const over = refundNo();
  const rejected = await account.refund({ createdAt: new Date(), refundId: `re_${over}`, channelRefundNo: over, payment: paidRef, amount: 1001, notifyUrl: `${receiver.url}/qr-refund` });
  t.like(rejected, { status: 'failed', failure: { code: 'refund_exceeds_amount', channelCode: '33' } });

  const lines = await account.downloadStatement!(clearingDate());
  const payLine = lines.find((l) => l.kind === 'payment' && l.channelOrderNo === no);
  t.like(payLine, { amount: 1234, fee: 0, channelTradeNo: note.result.channelTradeNo });
  t.true(Math.abs(payLine!.occurredAt.getTime() - Date.now()) < 120_000);
  t.like(lines.find((l) => l.kind === 'refund' && l.channelRefundNo === rno), { amount: 234, channelOrderNo: no, channelTradeNo: note.result.channelTradeNo });
});

test.serial('unionpay.web: signed form action → simulatePayer posts it, then pays → notification → query → refund without channelTradeNo', async (t) => {
  const createdAt = new Date();
  const no = orderNo();
  const created = await account.createPayment(paymentRequest('unionpay.web', no, 500, '/web', createdAt));
  t.is(created.status, 'pending');
  t.is(created.action?.type, 'app');
  const { form_action, form_method, fields } = formOf(created.action);
  t.is(form_action, config.front_trans_url);
  t.is(form_method, 'POST');
  t.like(fields, { txnType: '01', txnSubType: '01', bizType: '000201', channelType: '07', orderId: no, txnAmt: '500', frontUrl: `${receiver.url}/return`, txnTime: chinaTime(createdAt) });
  t.truthy(fields.signature);

  const ref = refOf(no, 500, 'unionpay.web', createdAt);
  // Before the payer submits the form, UnionPay does not know the order.
  await expectChannelError(t, account.queryPayment(ref), 'order_not_found', true);
  await expectChannelError(t, account.closePayment(ref), 'order_not_found', true);

  // The payer's browser posts the form (simulatePayer does it from the action), then pays.
  await account.simulatePayer!(ref, 'pay', created.action);
  const note = await account.parseNotification(await receiver.waitFor('/web'));
  t.like(note, { kind: 'payment', channelOrderNo: no, amount: 500, result: { status: 'succeeded' } });
  t.like(await account.queryPayment(ref), { status: 'succeeded', paidAmount: 500 });

  // The reference lacks channelTradeNo: the refund finds origQryId by querying.
  const rno = refundNo();
  const refundedAt = new Date();
  t.like(await account.refund({ createdAt: refundedAt, refundId: `re_${rno}`, channelRefundNo: rno, payment: ref, amount: 500, notifyUrl: `${receiver.url}/web-refund` }), { status: 'pending' });
  t.like(await account.parseNotification(await receiver.waitFor('/web-refund')), { kind: 'refund', channelRefundNo: rno, amount: 500 });
  t.like(await account.queryRefund({ createdAt: refundedAt, channelRefundNo: rno, payment: ref, amount: 500 }), { status: 'succeeded', channelRefundNo: rno });
});

test.serial('unionpay.web: a form the browser already posted is accepted (12); the payer fails → query reports failed', async (t) => {
  const createdAt = new Date();
  const no = orderNo();
  const created = await account.createPayment(paymentRequest('unionpay.web', no, 300, '/web-fail', createdAt));
  const { form_action, fields } = formOf(created.action);
  const page = await fetch(form_action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });
  t.is(page.status, 200);
  t.regex(await page.text(), /id="pay"/);
  const ref = refOf(no, 300, 'unionpay.web', createdAt);
  // UnionPay still answers 34 for a front order the payer has not completed.
  await expectChannelError(t, account.queryPayment(ref), 'order_not_found', true);

  await account.simulatePayer!(ref, 'fail', created.action);
  t.like(await account.queryPayment(ref), { status: 'failed', failure: { channelCode: '01' } });
});

test.serial('unionpay.web: simulatePayer needs this account\'s signed form for that order', async (t) => {
  const createdAt = new Date();
  const no = orderNo();
  const created = await account.createPayment(paymentRequest('unionpay.web', no, 300, '/web-bad', createdAt));
  const ref = refOf(no, 300, 'unionpay.web', createdAt);
  const params = (created.action as { params: Record<string, string> }).params;
  await expectChannelError(t, account.simulatePayer!(ref, 'pay'), 'invalid_request', false);
  await expectChannelError(t, account.simulatePayer!(ref, 'pay', { type: 'redirect', url: config.front_trans_url }), 'invalid_request', false);
  await expectChannelError(t, account.simulatePayer!(ref, 'pay', { type: 'app', params: { ...params, form_action: 'http://127.0.0.1:1/elsewhere' } }), 'invalid_request', false);
  await expectChannelError(t, account.simulatePayer!(refOf(orderNo(), 300, 'unionpay.web', createdAt), 'pay', created.action), 'invalid_request', false);
  // A tampered form is refused by the gateway (11, bad signature) and the order is never created.
  await expectChannelError(t, account.simulatePayer!(ref, 'pay', { type: 'app', params: { ...params, txnAmt: '1' } }), 'signature_invalid', false);
  await expectChannelError(t, account.queryPayment(ref), 'order_not_found', true);
});

test.serial('payer fails a QR order: query reports failed; close resolves', async (t) => {
  const createdAt = new Date();
  const no = orderNo();
  await account.createPayment(paymentRequest('unionpay.qr', no, 100, '/fail', createdAt));
  const ref = refOf(no, 100, 'unionpay.qr', createdAt);
  await account.simulatePayer!(ref, 'fail');
  const result = await account.queryPayment(ref);
  t.is(result.status, 'failed');
  t.is(result.failure?.channelCode, '01');
  await account.closePayment(ref);
});

test.serial('txnTime is the payment\'s createdAt, not the clock at create or query', async (t) => {
  const createdAt = new Date(Date.now() - 2 * 3600_000);
  const no = orderNo();
  await account.createPayment(paymentRequest('unionpay.qr', no, 100, '/past', createdAt));
  const view = (await (await fetch(`${sim.url}/__sim/orders/${no}`)).json()) as { txnTime: string };
  t.is(view.txnTime, chinaTime(createdAt));
  t.like(await account.queryPayment(refOf(no, 100, 'unionpay.qr', createdAt)), { status: 'pending' });
  await expectChannelError(t, account.queryPayment(refOf(no, 100, 'unionpay.qr', new Date())), 'order_not_found', true);
});

test.serial('unknown order: query and close → order_not_found; duplicate create → duplicate_order (may exist)', async (t) => {
  const ref = refOf(orderNo(), 100, 'unionpay.qr', new Date());
  await expectChannelError(t, account.queryPayment(ref), 'order_not_found', true);
  await expectChannelError(t, account.closePayment(ref), 'order_not_found', true);
  const no = orderNo();
  const createdAt = new Date();
  await account.createPayment(paymentRequest('unionpay.qr', no, 100, '/dup', createdAt));
  await expectChannelError(t, account.createPayment(paymentRequest('unionpay.qr', no, 100, '/dup', createdAt)), 'duplicate_order', true);
});

test.serial('bad input is refused before any call: currency, pay method', async (t) => {
  await expectChannelError(t, account.createPayment({ ...paymentRequest('unionpay.qr', orderNo(), 100, '/x', new Date()), currency: 'USD' }), 'invalid_request', false);
  await expectChannelError(t, account.createPayment(paymentRequest('unionpay.h5', orderNo(), 100, '/x', new Date())), 'not_supported', false);
});

test.serial('statement for a date without transactions is empty', async (t) => {
  t.deepEqual(await account.downloadStatement!('2001-01-01'), []);
});

// ---------------------------------------------------------------- notifications: forged, tampered

test.serial('forged and tampered notifications are rejected (signature_invalid, mayExist=false)', async (t) => {
  const no = orderNo();
  const createdAt = new Date();
  const created = await account.createPayment(paymentRequest('unionpay.qr', no, 800, '/forge', createdAt));
  await account.simulatePayer!(refOf(no, 800, 'unionpay.qr', createdAt), 'pay', created.action);
  const genuine = await receiver.waitFor('/forge');
  const fields = parseFormBody(genuine.rawBody);
  const tampered = { ...genuine, rawBody: Buffer.from(new URLSearchParams({ ...fields, txnAmt: '1' }).toString()) };
  await expectChannelError(t, account.parseNotification(tampered), 'signature_invalid', false);
  const { signature: _s, ...unsigned } = fields;
  await expectChannelError(t, account.parseNotification({ ...genuine, rawBody: Buffer.from(new URLSearchParams(unsigned).toString()) }), 'signature_invalid', false);
  const { signPubKeyCert: _c, ...noCert } = fields;
  await expectChannelError(t, account.parseNotification({ ...genuine, rawBody: Buffer.from(new URLSearchParams(noCert).toString()) }), 'signature_invalid', false);
  await expectChannelError(t, account.parseNotification({ headers: {}, query: {}, rawBody: Buffer.from('') }), 'signature_invalid', false);
  t.is(account.acknowledge(false).status, 400);
});

test.serial('tamper_notify_amount: a correctly signed notification reports the amount the channel claims', async (t) => {
  await setFaults({ tamper_notify_amount: true });
  const no = orderNo();
  await account.createPayment(paymentRequest('unionpay.qr', no, 1000, '/tamper', new Date()));
  await fetch(`${sim.url}/__sim/orders/${no}/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amount: 1 }) });
  const note = await account.parseNotification(await receiver.waitFor('/tamper'));
  t.like(note, { kind: 'payment', channelOrderNo: no, amount: 1 });
});

// ---------------------------------------------------------------- faults

test.serial('http_5xx (respCode 03): timeout, mayExist=true', async (t) => {
  await setFaults({ http_5xx: 1 });
  await expectChannelError(t, account.createPayment(paymentRequest('unionpay.qr', orderNo(), 100, '/f', new Date())), 'timeout', true);
});

test.serial('timeout: the executor times out after sending, mayExist=true', async (t) => {
  const quickHttp = new KernelChannelHttp('unionpay-quick', 400, logger, new Metrics({ defaultMetrics: false }));
  t.teardown(() => quickHttp.dispose());
  const quick = await plugin.createAccount(config, { ...context(), http: quickHttp });
  await setFaults({ timeout: true });
  await expectChannelError(t, quick.createPayment(paymentRequest('unionpay.qr', orderNo(), 100, '/f', new Date())), 'timeout', true);
});

test.serial('connection_reset: mayExist=true', async (t) => {
  await setFaults({ connection_reset: 1 });
  const err = await expectChannelError(t, account.createPayment(paymentRequest('unionpay.qr', orderNo(), 100, '/f', new Date())), 'channel_unavailable', true);
  t.truthy(err.channelCode);
});

test.serial('response_lost: mayExist=true, and the order is found by query', async (t) => {
  await setFaults({ response_lost: 1 });
  const createdAt = new Date();
  const no = orderNo();
  const err = await t.throwsAsync(account.createPayment(paymentRequest('unionpay.qr', no, 100, '/f', createdAt)), { instanceOf: ChannelError });
  t.true((err as ChannelError).mayExist);
  await setFaults({});
  t.like(await account.queryPayment(refOf(no, 100, 'unionpay.qr', createdAt)), { status: 'pending' });
});

test.serial('corrupt_signature: responses are never trusted (signature_invalid, mayExist=true); notifications rejected', async (t) => {
  await setFaults({ corrupt_signature: true });
  const no = orderNo();
  await expectChannelError(t, account.createPayment(paymentRequest('unionpay.qr', no, 100, '/corrupt', new Date())), 'signature_invalid', true);
  await fetch(`${sim.url}/__sim/orders/${no}/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  await expectChannelError(t, account.parseNotification(await receiver.waitFor('/corrupt')), 'signature_invalid', false);
});

test.serial('a non-sandbox account refuses to simulate the payer; an unreachable gateway is never-sent', async (t) => {
  const live = await plugin.createAccount(config, context(false));
  await expectChannelError(t, live.simulatePayer!(refOf('P1', 1, 'unionpay.qr', new Date()), 'pay'), 'not_supported', false);
  const down = await plugin.createAccount({ ...config, back_trans_url: 'http://127.0.0.1:1/gateway/api/backTransReq.do' }, context());
  await expectChannelError(t, down.createPayment(paymentRequest('unionpay.qr', orderNo(), 100, '/f', new Date())), 'channel_unavailable', false);
});
