import test from 'ava';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { generateKeyPairSync, createSign } from 'node:crypto';
import plugin from '../../plugins/alipay/index.js';
import type { AlipayConfig } from '../../plugins/alipay/config.js';
import { startAlipaySimulator, type RunningSimulator } from '../../plugins/alipay/simulator/index.js';
import { KernelChannelHttp } from '../../core/kernel/channel-http.js';
import { Metrics } from '../../core/ops/metrics.js';
import {
  ChannelError,
  type ChannelAccount, type ChannelAccountContext, type StandardChannelCode, type ChannelNotification, type CreatePaymentRequest, type PaymentReference,
} from '../../core/index.js';

// ---------- fixtures: one simulator, one notify receiver, accounts built through the plugin's sandbox binding ----------

const noopLogger = { debug() {}, info() {}, warn() {}, error() {} };

interface Captured {
  headers: Record<string, string | string[] | undefined>;
  rawBody: Buffer;
  parsed?: ChannelNotification;
  error?: ChannelError;
}

let sim: RunningSimulator;
let dataDir: string;
let receiver: http.Server;
let notifyUrl: string;
let account: ChannelAccount;
let isvAccount: ChannelAccount;
const captured: Captured[] = [];
const https: KernelChannelHttp[] = [];

function ctxFor(name: string, timeoutMs = 3000, sandbox = true): ChannelAccountContext {
  const h = new KernelChannelHttp(name, timeoutMs, noopLogger, new Metrics({ defaultMetrics: false }));
  https.push(h);
  return { accountName: name, sandbox, logger: noopLogger, http: h, dataDir, configDir: dataDir, publicUrl: 'http://127.0.0.1' };
}

async function makeAccount(variant?: string, timeoutMs = 3000, overrides: Partial<AlipayConfig> = {}, sandbox = true) {
  const cfg = plugin.manifest.configSchema.parse({ ...plugin.sandbox!.accountConfig(sim.credentials, variant), ...overrides });
  return plugin.createAccount(cfg, ctxFor(`alipay-${variant ?? 'direct'}`, timeoutMs, sandbox));
}

test.before(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'corbel-alipay-plugin-'));
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const entry: Captured = { headers: req.headers, rawBody: Buffer.concat(chunks) };
      captured.push(entry);
      try {
        entry.parsed = await account.parseNotification({ headers: req.headers, rawBody: entry.rawBody, query: {} });
      } catch (err) {
        entry.error = err as ChannelError;
      }
      const ack = account.acknowledge(entry.parsed !== undefined);
      res.writeHead(ack.status, { 'content-type': ack.contentType ?? 'text/plain' });
      res.end(ack.body ?? '');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  notifyUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/notify/alipay`;
  sim = await startAlipaySimulator({ dataDir, notifyRetryDelaysMs: [200, 200], userPayingSettleMs: 300 });
  account = await makeAccount();
  isvAccount = await makeAccount('isv');
});

test.after.always(async () => {
  for (const h of https) h.dispose();
  await sim?.close();
  await new Promise<void>((r) => receiver?.close(() => r()));
  await rm(dataDir, { recursive: true, force: true });
});

// ---------- helpers ----------

let seq = 0;
const orderNo = (tag: string) => `P${Date.now().toString(36)}${++seq}${tag}`.slice(0, 32);

function request(payMethod: string, amount: number, extra: Partial<CreatePaymentRequest> = {}): CreatePaymentRequest {
  const no = orderNo(payMethod.split('.')[1]!.slice(0, 3));
  return {
    createdAt: new Date(), paymentId: `pay_${no}`, channelOrderNo: no, amount, currency: 'CNY', payMethod, subject: '测试商品 & test',
    expiresAt: new Date(Date.now() + 15 * 60_000), notifyUrl, returnUrl: 'https://shop.example/return', payer: {}, ...extra,
  };
}

const refOf = (req: CreatePaymentRequest, channelTradeNo?: string): PaymentReference => ({
  channelOrderNo: req.channelOrderNo, channelTradeNo, amount: req.amount, currency: req.currency, payMethod: req.payMethod, createdAt: new Date(),
});

function waitFor<T>(probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      const v = probe();
      if (v !== undefined) return resolve(v);
      if (Date.now() - started > timeoutMs) return reject(new Error('timed out waiting'));
      setTimeout(tick, 20);
    };
    tick();
  });
}

const paramsOf = (c: Captured) => Object.fromEntries(new URLSearchParams(c.rawBody.toString('utf8')));
const notesFor = (no: string) => captured.filter((c) => paramsOf(c).out_trade_no === no);

const control = async (method: string, p: string, body?: unknown) => {
  const res = await fetch(`${sim.url}${p}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, any> };
};
const setFaults = (faults: Record<string, unknown>) => control('PUT', '/__sim/faults', faults);

async function payAndGetNotification(req: CreatePaymentRequest) {
  await account.simulatePayer!(refOf(req), 'pay');
  const note = await waitFor(() => notesFor(req.channelOrderNo).find((c) => c.parsed?.kind === 'payment'));
  return note.parsed!;
}

// ---------- pay methods, end to end ----------

test.serial('alipay.qr: precreate → scan → pay → notification → query → refunds (+ notifications, query) → statement', async (t) => {
  const req = request('alipay.qr', 1234);
  const created = await account.createPayment(req);
  t.is(created.status, 'pending');
  t.is(created.action?.type, 'qr_code');
  const qr = (created.action as { qr_code: string }).qr_code;
  t.true(qr.startsWith(sim.url));

  // A precreated trade does not exist until scanned.
  const before = await t.throwsAsync(account.queryPayment(refOf(req)), { instanceOf: ChannelError });
  t.is(before.code, 'order_not_found');
  t.false(before.mayExist);

  t.is((await fetch(qr)).status, 200); // the scan
  t.is((await account.queryPayment(refOf(req))).status, 'pending');

  const note = await payAndGetNotification(req);
  t.like(note, { kind: 'payment', channelOrderNo: req.channelOrderNo, amount: 1234, result: { status: 'succeeded', paidAmount: 1234 } });
  const ack = notesFor(req.channelOrderNo)[0]!;
  t.is(ack.error, undefined);

  const q = await account.queryPayment(refOf(req));
  t.is(q.status, 'succeeded');
  t.is(q.paidAmount, 1234);
  t.truthy(q.channelTradeNo);
  t.true(q.paidAt instanceof Date);
  const ref = refOf(req, q.channelTradeNo);

  // Partial refund: fund_change Y.
  const r1 = await account.refund({ refundId: 'r1', channelRefundNo: `${req.channelOrderNo}R1`.slice(-32), payment: ref, amount: 234, notifyUrl, createdAt: new Date() });
  t.is(r1.status, 'succeeded');
  const r1Note = await waitFor(() => notesFor(req.channelOrderNo).find((c) => c.parsed?.kind === 'refund'));
  t.like(r1Note.parsed, { kind: 'refund', channelRefundNo: `${req.channelOrderNo}R1`.slice(-32), channelOrderNo: req.channelOrderNo, result: { status: 'succeeded' } });
  t.is(paramsOf(r1Note).trade_status, 'TRADE_SUCCESS'); // told apart from the payment's TRADE_SUCCESS by the refund fields
  t.is((await account.queryRefund({ createdAt: new Date(), channelRefundNo: `${req.channelOrderNo}R1`.slice(-32), payment: ref, amount: 234 })).status, 'succeeded');

  // Repeat of the same refund: fund_change N → refund query says REFUND_SUCCESS.
  const again = await account.refund({ refundId: 'r1', channelRefundNo: `${req.channelOrderNo}R1`.slice(-32), payment: ref, amount: 234, notifyUrl, createdAt: new Date() });
  t.is(again.status, 'succeeded');

  // Over the remaining amount: a business refusal, as a value.
  const over = await account.refund({ refundId: 'r2', channelRefundNo: 'OVER1', payment: ref, amount: 1001, notifyUrl, createdAt: new Date() });
  t.is(over.status, 'failed');
  t.is(over.failure?.code, 'refund_exceeds_amount');

  // An unknown refund number.
  const unknown = await t.throwsAsync(account.queryRefund({ channelRefundNo: 'NOPE1', payment: ref, amount: 1, createdAt: new Date() }), { instanceOf: ChannelError });
  t.is(unknown.code, 'order_not_found');

  // The rest: a full refund closes the trade; its TRADE_CLOSED notification is a refund, not a payment close.
  const r3 = await account.refund({ refundId: 'r3', channelRefundNo: 'FULL1', payment: ref, amount: 1000, notifyUrl, createdAt: new Date() });
  t.is(r3.status, 'succeeded');
  const r3Note = await waitFor(() => notesFor(req.channelOrderNo).find((c) => c.parsed?.kind === 'refund' && c.parsed.channelRefundNo === 'FULL1'));
  t.is(paramsOf(r3Note).trade_status, 'TRADE_CLOSED');
  t.is(notesFor(req.channelOrderNo).filter((c) => c.parsed?.kind === 'payment').length, 1);

  // Statement: today's bill (China date) holds the payment and both refunds.
  const today = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
  const lines = (await account.downloadStatement!(today)).filter((l) => l.channelOrderNo === req.channelOrderNo);
  const payLine = lines.find((l) => l.kind === 'payment')!;
  t.like(payLine, { amount: 1234, fee: 0, channelTradeNo: q.channelTradeNo });
  t.true(payLine.occurredAt instanceof Date && !Number.isNaN(payLine.occurredAt.getTime()));
  const refunds = lines.filter((l) => l.kind === 'refund').sort((a, b) => a.amount - b.amount);
  t.deepEqual(refunds.map((l) => [l.channelRefundNo, l.amount]), [[`${req.channelOrderNo}R1`.slice(-32), 234], ['FULL1', 1000]]);

  const future = await t.throwsAsync(account.downloadStatement!('2999-01-01'), { instanceOf: ChannelError });
  t.is(future.channelCode, '40004/isp.bill_not_exist');
});

for (const [payMethod, product] of [['alipay.page', 'FAST_INSTANT_TRADE_PAY'], ['alipay.wap', 'QUICK_WAP_WAY']] as const) {
  test.serial(`${payMethod}: signed gateway.do GET URL → cashier accepts it → pay → notification → query`, async (t) => {
    const req = request(payMethod, 1);
    const created = await account.createPayment(req);
    t.is(created.action?.type, 'redirect');
    const url = new URL((created.action as { url: string }).url);
    t.is(url.origin + url.pathname, `${sim.url}/gateway.do`);
    t.is(url.searchParams.get('method'), payMethod === 'alipay.page' ? 'alipay.trade.page.pay' : 'alipay.trade.wap.pay');
    t.is(url.searchParams.get('return_url'), 'https://shop.example/return');
    t.regex(url.searchParams.get('timestamp')!, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    const biz = JSON.parse(url.searchParams.get('biz_content')!);
    t.like(biz, { out_trade_no: req.channelOrderNo, total_amount: '0.01', product_code: product });
    const page = await fetch(url);
    const html = await page.text();
    t.is(page.status, 200);
    t.notRegex(html, /invalid-signature|isv\./);

    const note = await payAndGetNotification(req);
    t.like(note, { kind: 'payment', amount: 1, result: { status: 'succeeded' } });
    t.is((await account.queryPayment(refOf(req))).status, 'succeeded');
  });
}

test.serial('alipay.app: signed order string accepted by the app entry → pay → notification → query', async (t) => {
  const req = request('alipay.app', 250);
  const created = await account.createPayment(req);
  t.is(created.action?.type, 'app');
  const orderString = (created.action as { params: Record<string, string> }).params.order_string!;
  t.regex(orderString, /(^|&)method=alipay\.trade\.app\.pay(&|$)/);
  t.regex(orderString, /(^|&)sign=/);
  const page = await fetch(`${sim.url}/__sim/app?${orderString}`);
  t.is(page.status, 200);
  t.notRegex(await page.text(), /invalid-signature|isv\./);
  // Tampering with the amount in the order string breaks its signature.
  const bad = await fetch(`${sim.url}/__sim/app?${orderString.replace('2.50', '0.01')}`);
  t.true(bad.status >= 400 || /sign/i.test(await bad.text()));

  const note = await payAndGetNotification(req);
  t.like(note, { kind: 'payment', amount: 250, result: { status: 'succeeded' } });
  t.is((await account.queryPayment(refOf(req))).paidAmount, 250);
});

test.serial('alipay.barcode: 10000 pays at once, 10003 pending then settles, invalid code declines as a value', async (t) => {
  const now = await account.createPayment(request('alipay.barcode', 500, { payer: { auth_code: '281234567890123456' } }));
  t.is(now.status, 'succeeded');
  t.is(now.paidAmount, 500);
  t.truthy(now.channelTradeNo);

  const waitingReq = request('alipay.barcode', 600, { payer: { auth_code: '271234567890123456' } });
  const waiting = await account.createPayment(waitingReq);
  t.is(waiting.status, 'pending');
  let status = 'pending';
  for (let i = 0; i < 40 && status === 'pending'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    status = (await account.queryPayment(refOf(waitingReq))).status;
  }
  t.is(status, 'succeeded');

  const declined = await account.createPayment(request('alipay.barcode', 700, { payer: { auth_code: '251234567890123456' } }));
  t.is(declined.status, 'failed');
  t.is(declined.failure?.channelCode, '40004/ACQ.PAYMENT_AUTH_CODE_INVALID');

  const missing = await t.throwsAsync(account.createPayment(request('alipay.barcode', 700)), { instanceOf: ChannelError });
  t.is(missing.code, 'invalid_request');
  t.false(missing.mayExist);
});

test.serial('close: unknown → order_not_found; open → closed (+ notification); paid → order_paid; closed again → order_closed', async (t) => {
  const never = request('alipay.qr', 100);
  await account.createPayment(never);
  const nf = await t.throwsAsync(account.closePayment(refOf(never)), { instanceOf: ChannelError });
  t.is(nf.code, 'order_not_found');

  const open = request('alipay.qr', 100);
  const created = await account.createPayment(open);
  await fetch((created.action as { qr_code: string }).qr_code);
  await account.closePayment(refOf(open));
  t.is((await account.queryPayment(refOf(open))).status, 'closed');
  const again = await t.throwsAsync(account.closePayment(refOf(open)), { instanceOf: ChannelError });
  t.is(again.code, 'order_closed');

  const paid = request('alipay.qr', 100);
  await account.createPayment(paid);
  await payAndGetNotification(paid);
  const p = await t.throwsAsync(account.closePayment(refOf(paid)), { instanceOf: ChannelError });
  t.is(p.code, 'order_paid');

  // A payer failure closes an existing trade and notifies TRADE_CLOSED (a payment close, no refund fields).
  const failing = request('alipay.qr', 100);
  const c2 = await account.createPayment(failing);
  await fetch((c2.action as { qr_code: string }).qr_code);
  await account.simulatePayer!(refOf(failing), 'fail');
  const note = await waitFor(() => notesFor(failing.channelOrderNo).find((c) => c.parsed));
  t.like(note.parsed, { kind: 'payment', amount: 100, result: { status: 'closed' } });
});

test.serial('ISV variant: app_auth_token makes the trade the authorising seller\'s', async (t) => {
  const req = request('alipay.qr', 300);
  await isvAccount.createPayment(req);
  await isvAccount.simulatePayer!(refOf(req), 'pay');
  const q = await isvAccount.queryPayment(refOf(req));
  t.is(q.status, 'succeeded');
  const order = await control('GET', `/__sim/orders/${req.channelOrderNo}`);
  t.is(order.json.seller_id, (sim.credentials as { appAuthGrants: Array<{ sellerId: string }> }).appAuthGrants[0]!.sellerId);
  // A binding token overrides the account's; an unknown one is a pre-acceptance rejection.
  const bad = await t.throwsAsync(account.createPayment(request('alipay.qr', 300, { binding: { params: { app_auth_token: 'bogus' } } })), { instanceOf: ChannelError });
  t.is(bad.code, 'authentication_failed');
  t.false(bad.mayExist);
});

// ---------- notifications: forged, tampered, probe ----------

test.serial('notifications: forged, tampered and probe bodies are rejected; ack is exactly "success"', async (t) => {
  const req = request('alipay.qr', 888);
  await account.createPayment(req);
  await payAndGetNotification(req);
  const good = notesFor(req.channelOrderNo)[0]!;
  const params = paramsOf(good);
  const parse = (body: string) => account.parseNotification({ headers: { 'content-type': 'application/x-www-form-urlencoded' }, rawBody: Buffer.from(body), query: {} });

  // Tampered: the amount changed after signing.
  const tampered = new URLSearchParams({ ...params, total_amount: '0.01' }).toString();
  const e1 = await t.throwsAsync(parse(tampered), { instanceOf: ChannelError });
  t.is(e1.code, 'signature_invalid');
  t.false(e1.mayExist);

  // Forged: signed correctly, but with a key that is not Alipay's.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const forgedParams: Record<string, string> = { ...params, total_amount: '0.01' };
  delete forgedParams.sign;
  const content = Object.keys(forgedParams).filter((k) => k !== 'sign_type' && forgedParams[k] !== '').sort().map((k) => `${k}=${forgedParams[k]}`).join('&');
  forgedParams.sign = createSign('RSA-SHA256').update(content).sign(privateKey, 'base64');
  const e2 = await t.throwsAsync(parse(new URLSearchParams(forgedParams).toString()), { instanceOf: ChannelError });
  t.is(e2.code, 'signature_invalid');

  // Probe: no signature at all, and an empty body.
  const probe = { ...params };
  delete probe.sign;
  t.is((await t.throwsAsync(parse(new URLSearchParams(probe).toString()), { instanceOf: ChannelError })).code, 'signature_invalid');
  t.is((await t.throwsAsync(parse(''), { instanceOf: ChannelError })).code, 'signature_invalid');

  // The genuine one still parses (re-encoded differently: spaces as %20, keys reordered).
  const reordered = Object.keys(params).reverse().map((k) => `${k}=${encodeURIComponent(params[k]!)}`).join('&');
  t.like(await parse(reordered), { kind: 'payment', amount: 888 });

  t.deepEqual(account.acknowledge(true), { status: 200, body: 'success', contentType: 'text/plain; charset=utf-8' });
  t.is(account.acknowledge(false).body, 'fail');
  t.true(account.acknowledge(false).status >= 400);
});

test.serial('notification amount is reported as the channel claims it (tamper_notify_amount)', async (t) => {
  await setFaults({ tamper_notify_amount: true });
  try {
    const req = request('alipay.qr', 999);
    await account.createPayment(req);
    await control('POST', `/__sim/orders/${req.channelOrderNo}/pay`, { amount: 1 });
    const note = await waitFor(() => notesFor(req.channelOrderNo).find((c) => c.parsed));
    t.like(note.parsed, { kind: 'payment', amount: 1 });
  } finally {
    await control('DELETE', '/__sim/faults');
  }
});

// ---------- faults → ChannelError with the right mayExist ----------

const faultCases: Array<[string, Record<string, unknown>, StandardChannelCode, boolean]> = [
  ['http_5xx (20000 isp.unknow-error)', { http_5xx: 1 }, 'channel_unavailable', true],
  ['connection_reset', { connection_reset: 1 }, 'channel_unavailable', true],
  ['response_lost', { response_lost: 1 }, 'channel_unavailable', true],
  ['corrupt_signature', { corrupt_signature: true }, 'signature_invalid', true],
];

for (const [name, faults, code, mayExist] of faultCases) {
  test.serial(`fault ${name} → ${code}, mayExist=${mayExist}`, async (t) => {
    await setFaults(faults);
    try {
      const err = await t.throwsAsync(account.createPayment(request('alipay.qr', 100)), { instanceOf: ChannelError });
      t.is(err.code, code);
      t.is(err.mayExist, mayExist);
    } finally {
      await control('DELETE', '/__sim/faults');
    }
  });
}

test.serial('fault timeout → timeout, mayExist=true; unreachable gateway → mayExist=false', async (t) => {
  const quick = await makeAccount(undefined, 500);
  await setFaults({ timeout: true });
  try {
    const err = await t.throwsAsync(quick.createPayment(request('alipay.qr', 100)), { instanceOf: ChannelError });
    t.is(err.code, 'timeout');
    t.true(err.mayExist);
  } finally {
    await control('DELETE', '/__sim/faults');
  }
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const down = await makeAccount(undefined, 500, { gateway_url: `http://127.0.0.1:${port}/gateway.do` });
  const err = await t.throwsAsync(down.createPayment(request('alipay.qr', 100)), { instanceOf: ChannelError });
  t.false(err.mayExist);
});

test.serial('wrong app key: isv.invalid-signature is a pre-acceptance rejection (mayExist=false)', async (t) => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const wrong = await makeAccount(undefined, 3000, { private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string });
  const err = await t.throwsAsync(wrong.createPayment(request('alipay.qr', 100)), { instanceOf: ChannelError });
  t.is(err.code, 'signature_invalid');
  t.false(err.mayExist);
  t.is(err.channelCode, '40002/isv.invalid-signature');
});

test.serial('simulatePayer is refused outside the sandbox; health is cheap', async (t) => {
  const live = await makeAccount(undefined, 3000, {}, false);
  const err = await t.throwsAsync(live.simulatePayer!(refOf(request('alipay.qr', 1)), 'pay'), { instanceOf: ChannelError });
  t.is(err.code, 'not_supported');
  t.true((await live.health()).ok);
});

test.serial('every genuine notification the simulator delivered verified and was acknowledged', (t) => {
  t.true(captured.length > 10);
  t.deepEqual(captured.filter((c) => c.error).map((c) => c.error!.message), []);
});
