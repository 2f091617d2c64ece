// The bank plugin against the real simulator over HTTP on 127.0.0.1: every flow, notifications through a local
// notify endpoint, and each simulator fault with the mayExist the kernel must see. Serial: faults are global.
import test from 'ava';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ChannelError, type ChannelAccount, type ChannelNotification, type PaymentReference, type PluginLogger } from '../../core/index.js';
import { KernelChannelHttp } from '../../core/kernel/channel-http.js';
import { Metrics } from '../../core/ops/metrics.js';
import plugin from '../../plugins/bank/index.js';
import type { BankConfig } from '../../plugins/bank/config.js';
import { startBankSimulator, type RunningSimulator } from '../../plugins/bank/simulator/index.js';

const silent: PluginLogger = { debug() {}, info() {}, warn() {}, error() {} };
const dataDir = mkdtempSync(join(tmpdir(), 'corbel-bank-plugin-'));
const metrics = new Metrics({ defaultMetrics: false });
const https: KernelChannelHttp[] = [];

let sim: RunningSimulator;
let config: BankConfig;
let account: ChannelAccount;
let receiver: Server;
let notifyUrl: string;

/** What reached the notify endpoint: parsed notifications, rejections, and the raw genuine deliveries. */
const received: ChannelNotification[] = [];
const rejected: ChannelError[] = [];
const rawDeliveries: Array<{ headers: Record<string, string | string[] | undefined>; body: Buffer }> = [];

async function accountWith(over: Partial<BankConfig> = {}, opts: { sandbox?: boolean; timeoutMs?: number; configDir?: string } = {}): Promise<ChannelAccount> {
  const http = new KernelChannelHttp('bank-test', opts.timeoutMs ?? 5_000, silent, metrics);
  https.push(http);
  return plugin.createAccount({ ...config, ...over }, {
    accountName: 'bank-test', sandbox: opts.sandbox ?? true, logger: silent, http, dataDir, configDir: opts.configDir ?? dataDir, publicUrl: 'http://127.0.0.1',
  });
}

test.before(async () => {
  sim = await startBankSimulator({ dataDir, notifyRetryDelaysMs: [300, 600, 1000, 2000] });
  config = plugin.sandbox!.accountConfig(sim.credentials, undefined);
  account = await accountWith();
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks);
      account
        .parseNotification({ headers: req.headers, rawBody, query: {} })
        .then((n) => {
          received.push(n);
          rawDeliveries.push({ headers: req.headers, body: rawBody });
          return account.acknowledge(true);
        })
        .catch((err: ChannelError) => {
          rejected.push(err);
          return account.acknowledge(false);
        })
        .then((ack) => res.writeHead(ack.status, { 'content-type': ack.contentType ?? 'text/plain' }).end(ack.body));
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  notifyUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/notify/bank-test`;
});

test.after.always(async () => {
  await sim?.close();
  receiver?.close();
  for (const http of https) http.dispose();
  rmSync(dataDir, { recursive: true, force: true });
});

// ---- helpers ---------------------------------------------------------------------------------------------------------

let seq = 0;
const orderNo = () => `P${Date.now().toString(36)}${(seq++).toString().padStart(3, '0')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(find: () => T | undefined, what: string, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const paymentNotice = (no: string) => () => received.find((n) => n.kind === 'payment' && n.channelOrderNo === no) as Extract<ChannelNotification, { kind: 'payment' }> | undefined;
const refundNotice = (no: string) => () => received.find((n) => n.kind === 'refund' && n.channelRefundNo === no) as Extract<ChannelNotification, { kind: 'refund' }> | undefined;

async function create(amount: number, payMethod = 'bank.b2c', acc = account) {
  const no = orderNo();
  const result = await acc.createPayment({
    createdAt: new Date(), paymentId: `pay_${no}`, channelOrderNo: no, amount, currency: 'CNY', payMethod, subject: 'Plugin test',
    expiresAt: new Date(Date.now() + 900_000), notifyUrl, payer: {},
  });
  const ref: PaymentReference = { channelOrderNo: no, channelTradeNo: result.channelTradeNo, amount, currency: 'CNY', payMethod, createdAt: new Date() };
  return { no, result, ref };
}

async function faults(set: Record<string, unknown> | null): Promise<void> {
  const res = await fetch(`${sim.url}/__sim/faults`, set
    ? { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(set) }
    : { method: 'DELETE' });
  if (!res.ok) throw new Error(`faults: ${res.status} ${await res.text()}`);
}

async function rejects(promise: Promise<unknown>): Promise<ChannelError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ChannelError) return err;
    throw err;
  }
  throw new Error('expected a ChannelError');
}

const businessDate = () => new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
const sandboxFee = (amount: number) => Math.floor((amount * 6 + 500) / 1000);

// ---- flows ---------------------------------------------------------------------------------------------------------

test.serial('b2c: create → pay → notification → query → refund → refund notification/query → statement', async (t) => {
  const { no, result, ref } = await create(12_345);
  t.is(result.status, 'pending');
  t.regex(result.channelTradeNo!, /^P\d{18}$/);
  t.is(result.action?.type, 'redirect');
  const payUrl = (result.action as { url: string }).url;
  t.true(payUrl.startsWith(`${sim.url}/payer/`));
  t.is((await fetch(payUrl)).status, 200);

  await account.simulatePayer!(ref, 'pay');
  const paid = await waitFor(paymentNotice(no), 'payment.success');
  t.is(paid.amount, 12_345);
  t.is(paid.result.status, 'succeeded');
  t.is(paid.result.channelTradeNo, result.channelTradeNo);

  const queried = await account.queryPayment(ref);
  t.is(queried.status, 'succeeded');
  t.is(queried.paidAmount, 12_345);
  t.true(queried.paidAt instanceof Date);

  const refundNo = `R${no}`;
  const refund = await account.refund({ createdAt: new Date(), refundId: `re_${no}`, channelRefundNo: refundNo, payment: ref, amount: 2_345, reason: 'partial', notifyUrl });
  t.is(refund.status, 'pending');
  t.regex(refund.channelRefundNo!, /^R\d{18}$/);
  const refunded = await waitFor(refundNotice(refundNo), 'refund.success');
  t.is(refunded.amount, 2_345);
  t.is(refunded.channelOrderNo, no);
  t.is(refunded.result.status, 'succeeded');
  const refundQuery = await account.queryRefund({ createdAt: new Date(), channelRefundNo: refundNo, payment: ref, amount: 2_345 });
  t.is(refundQuery.status, 'succeeded');
  t.true(refundQuery.succeededAt instanceof Date);

  const lines = await account.downloadStatement!(businessDate());
  const payLine = lines.find((l) => l.kind === 'payment' && l.channelOrderNo === no);
  t.like(payLine, { amount: 12_345, fee: sandboxFee(12_345), channelTradeNo: result.channelTradeNo });
  t.like(lines.find((l) => l.kind === 'refund' && l.channelRefundNo === refundNo), { amount: 2_345, fee: 0, channelOrderNo: no });

  // A paid order cannot be closed: the kernel turns order_paid into a query.
  const close = await rejects(account.closePayment(ref));
  t.is(close.code, 'order_paid');
  t.true(close.mayExist);
});

test.serial('qr: create gives a QR code; a failed payer gives a failed notification and query', async (t) => {
  const { no, result, ref } = await create(500, 'bank.qr');
  t.deepEqual(result.action, { type: 'qr_code', qr_code: `${sim.url}/payer/${result.channelTradeNo}` });
  await account.simulatePayer!(ref, 'fail');
  const failed = await waitFor(paymentNotice(no), 'payment.failed');
  t.is(failed.result.status, 'failed');
  t.like(failed.result.failure, { code: 'payer_action_required', channelCode: 'PAYER_CANCELLED' });
  t.is((await account.queryPayment(ref)).status, 'failed');
  // Closing a failed order is accepted (it can no longer be paid).
  await t.notThrowsAsync(account.closePayment(ref));
});

test.serial('close: pending → closed, idempotent; unknown orders are order_not_found with mayExist=false', async (t) => {
  const { ref } = await create(100);
  await account.closePayment(ref);
  t.is((await account.queryPayment(ref)).status, 'closed');
  await t.notThrowsAsync(account.closePayment(ref));
  const payAfterClose = await rejects(account.simulatePayer!(ref, 'pay'));
  t.is(payAfterClose.code, 'order_closed');

  const ghost: PaymentReference = { ...ref, channelOrderNo: 'Pnever000000' };
  for (const err of [await rejects(account.queryPayment(ghost)), await rejects(account.closePayment(ghost))]) {
    t.is(err.code, 'order_not_found');
    t.false(err.mayExist);
    t.is(err.channelCode, 'ORDER_NOT_FOUND');
  }
});

test.serial('refund errors: unpaid, too much, unknown refund; duplicate order number', async (t) => {
  const { no, ref } = await create(1_000);
  const unpaid = await rejects(account.refund({ createdAt: new Date(), refundId: 're_x', channelRefundNo: `R${no}`, payment: ref, amount: 100, notifyUrl }));
  t.like(unpaid, { code: 'invalid_request', mayExist: false, channelCode: 'ORDER_NOT_PAID' });

  await account.simulatePayer!(ref, 'pay');
  await waitFor(paymentNotice(no), 'payment.success');
  const tooMuch = await rejects(account.refund({ createdAt: new Date(), refundId: 're_y', channelRefundNo: `R${no}b`, payment: ref, amount: 1_001, notifyUrl }));
  t.like(tooMuch, { code: 'refund_exceeds_amount', mayExist: false, channelCode: 'REFUND_AMOUNT_EXCEEDED' });

  const unknownRefund = await rejects(account.queryRefund({ createdAt: new Date(), channelRefundNo: 'Rnever000000', payment: ref, amount: 1 }));
  t.like(unknownRefund, { code: 'order_not_found', mayExist: false, channelCode: 'REFUND_NOT_FOUND' });

  // Same out_trade_no, other amount: the order with that number exists, so it may exist.
  const duplicate = await rejects(account.createPayment({
    createdAt: new Date(), paymentId: 'pay_dup', channelOrderNo: no, amount: 999, currency: 'CNY', payMethod: 'bank.b2c', subject: 'Plugin test',
    expiresAt: new Date(Date.now() + 900_000), notifyUrl, payer: {},
  }));
  t.like(duplicate, { code: 'duplicate_order', mayExist: true, channelCode: 'DUPLICATE_ORDER' });
});

test.serial('statement: bad and future dates', async (t) => {
  t.like(await rejects(account.downloadStatement!('2025-02-30')), { code: 'invalid_request', mayExist: false });
  const future = new Date(Date.now() + 8 * 3600_000 + 3 * 86_400_000).toISOString().slice(0, 10);
  t.like(await rejects(account.downloadStatement!(future)), { code: 'channel_unavailable', channelCode: 'STATEMENT_NOT_READY', mayExist: false });
});

// ---- notifications --------------------------------------------------------------------------------------------------

test.serial('forged, tampered and probe notifications are rejected', async (t) => {
  const genuine = rawDeliveries.find((d) => JSON.parse(d.body.toString()).event_type === 'payment.success');
  t.truthy(genuine);
  const tampered = Buffer.from(genuine!.body.toString().replace(/"amount":(\d+)/, (_, a: string) => `"amount":${Number(a) + 1}`));
  t.notDeepEqual(tampered, genuine!.body);

  // Signed correctly, but with a key that is not the bank's.
  const forger = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ts = String(Math.floor(Date.now() / 1000));
  const nonce = 'forgedNonce0123456789';
  const base = `NOTIFY\n-\n${config.merchant_id}\n${ts}\n${nonce}\n${createHash('sha256').update(tampered).digest('hex')}\n`;
  const forgedHeaders = { 'x-bank-merchant': config.merchant_id, 'x-bank-timestamp': ts, 'x-bank-nonce': nonce, 'x-bank-signature': sign('sha256', Buffer.from(base), forger).toString('base64') };

  for (const n of [
    { headers: forgedHeaders, rawBody: tampered, query: {} },
    { headers: genuine!.headers, rawBody: tampered, query: {} },
    { headers: {}, rawBody: Buffer.alloc(0), query: {} },
    { headers: { ...genuine!.headers, 'x-bank-signature': undefined }, rawBody: genuine!.body, query: {} },
  ]) {
    const err = await rejects(account.parseNotification(n));
    t.is(err.code, 'signature_invalid');
    t.false(err.mayExist);
  }
  // The genuine one still parses (within its timestamp window).
  t.is((await account.parseNotification({ headers: genuine!.headers, rawBody: genuine!.body, query: {} })).kind, 'payment');
});

test.serial('fault corrupt_signature on notifications: not acknowledged, the retry after the fault is accepted', async (t) => {
  const { no, ref } = await create(700);
  const before = rejected.length;
  await faults({ corrupt_signature: true });
  await account.simulatePayer!(ref, 'pay');
  await waitFor(() => (rejected.length > before ? true : undefined), 'a rejected delivery');
  t.is(paymentNotice(no)(), undefined);
  await faults(null);
  const paid = await waitFor(paymentNotice(no), 'the retried payment.success');
  t.is(paid.amount, 700);
});

test.serial('fault tamper_notify_amount: the plugin reports the amount the bank claims', async (t) => {
  const { no, ref } = await create(800);
  await faults({ tamper_notify_amount: true });
  try {
    await account.simulatePayer!(ref, 'pay');
    const paid = await waitFor(paymentNotice(no), 'payment.success');
    t.is(paid.amount, 801);
  } finally {
    await faults(null);
  }
});

test.serial('fault notify duplicate: both deliveries verify and parse identically', async (t) => {
  const { no, ref } = await create(900);
  await faults({ notify: 'duplicate' });
  try {
    await account.simulatePayer!(ref, 'pay');
    await waitFor(() => (received.filter((n) => n.kind === 'payment' && n.channelOrderNo === no).length >= 2 ? true : undefined), 'two deliveries');
    const both = received.filter((n) => n.kind === 'payment' && n.channelOrderNo === no);
    t.deepEqual(both[0], both[1]);
  } finally {
    await faults(null);
  }
});

test.serial('fault notify out_of_order: a refund.success arriving before its payment.success still parses', async (t) => {
  const { no, ref } = await create(1_200);
  await faults({ notify: 'out_of_order' });
  try {
    await account.simulatePayer!(ref, 'pay');
    // The payment notification is held; the bank already says SUCCESS on query, so the refund is accepted.
    t.is((await account.queryPayment(ref)).status, 'succeeded');
    await account.refund({ createdAt: new Date(), refundId: `re_${no}`, channelRefundNo: `R${no}`, payment: ref, amount: 200, notifyUrl });
    await waitFor(paymentNotice(no), 'payment.success');
    const order = received.findIndex((n) => n.kind === 'payment' && n.channelOrderNo === no);
    const refundAt = received.findIndex((n) => n.kind === 'refund' && n.channelRefundNo === `R${no}`);
    t.true(refundAt >= 0 && refundAt < order, 'refund.success was delivered first');
  } finally {
    await faults(null);
  }
});

// ---- API faults and mayExist ------------------------------------------------------------------------------------------

test.serial('fault http_5xx: SYSTEM_ERROR, mayExist=true (and the simulator did not create it)', async (t) => {
  await faults({ http_5xx: 1 });
  const no = orderNo();
  const err = await rejects(account.createPayment({
    createdAt: new Date(), paymentId: 'pay_5xx', channelOrderNo: no, amount: 100, currency: 'CNY', payMethod: 'bank.b2c', subject: 'x', expiresAt: new Date(Date.now() + 900_000), notifyUrl, payer: {},
  }));
  await faults(null);
  t.like(err, { code: 'channel_unavailable', mayExist: true, channelCode: 'SYSTEM_ERROR', retryable: true });
  t.is((await rejects(account.queryPayment({ channelOrderNo: no, amount: 100, currency: 'CNY', payMethod: 'bank.b2c', createdAt: new Date() }))).code, 'order_not_found');
});

test.serial('fault connection_reset: mayExist=true', async (t) => {
  await faults({ connection_reset: 1 });
  const err = await rejects(create(100));
  await faults(null);
  t.is(err.code, 'channel_unavailable');
  t.true(err.mayExist);
});

test.serial('fault response_lost: mayExist=true, and the order does exist', async (t) => {
  await faults({ response_lost: 1 });
  const no = orderNo();
  const ref: PaymentReference = { channelOrderNo: no, amount: 100, currency: 'CNY', payMethod: 'bank.b2c', createdAt: new Date() };
  const err = await rejects(account.createPayment({
    createdAt: new Date(), paymentId: 'pay_lost', channelOrderNo: no, amount: 100, currency: 'CNY', payMethod: 'bank.b2c', subject: 'x', expiresAt: new Date(Date.now() + 900_000), notifyUrl, payer: {},
  }));
  await faults(null);
  t.true(err.mayExist);
  t.is((await account.queryPayment(ref)).status, 'pending');
});

test.serial('fault timeout: mayExist=true', async (t) => {
  const impatient = await accountWith({}, { timeoutMs: 600 });
  await faults({ timeout: true });
  try {
    const err = await rejects(create(100, 'bank.b2c', impatient));
    t.is(err.code, 'timeout');
    t.true(err.mayExist);
  } finally {
    await faults(null);
  }
});

test.serial('fault corrupt_signature on responses: signature_invalid, mayExist=true, for errors too', async (t) => {
  const { ref } = await create(100);
  await faults({ corrupt_signature: true });
  try {
    t.like(await rejects(create(100)), { code: 'signature_invalid', mayExist: true });
    // An error answer is verified too: an untrusted "not found" must not look like order_not_found.
    t.like(await rejects(account.queryPayment({ ...ref, channelOrderNo: 'Pnever000000' })), { code: 'signature_invalid', mayExist: true });
    t.like(await rejects(account.downloadStatement!(businessDate())), { code: 'signature_invalid' });
  } finally {
    await faults(null);
  }
  t.is((await account.queryPayment(ref)).status, 'pending');
});

test.serial('a request that never left (connection refused) has mayExist=false', async (t) => {
  // Port 1 (tcpmux) is privileged and never served here; a just-closed ephemeral port could be reused by a
  // parallel test between close and connect.
  const nowhere = await accountWith({ base_url: 'http://127.0.0.1:1' });
  const err = await rejects(create(100, 'bank.b2c', nowhere));
  t.is(err.code, 'channel_unavailable');
  t.false(err.mayExist);
});

// ---- config and sandbox ------------------------------------------------------------------------------------------------

test.serial('keys: inline PEM and config-relative paths both work; a missing key names its field', async (t) => {
  const inline = await accountWith({ merchant_private_key: sim.credentials.merchantPrivateKeyPem, bank_public_key: sim.credentials.bankPublicKeyPem });
  t.like(await rejects(inline.queryPayment({ channelOrderNo: 'Pnever000000', amount: 1, currency: 'CNY', payMethod: 'bank.b2c', createdAt: new Date() })), { code: 'order_not_found' });
  const relative = await accountWith(
    { merchant_private_key: basename(sim.credentials.merchantPrivateKeyPath), bank_public_key: basename(sim.credentials.bankPublicKeyPath) },
    { configDir: dirname(sim.credentials.merchantPrivateKeyPath) },
  );
  t.like(await rejects(relative.queryPayment({ channelOrderNo: 'Pnever000000', amount: 1, currency: 'CNY', payMethod: 'bank.b2c', createdAt: new Date() })), { code: 'order_not_found' });
  await t.throwsAsync(accountWith({ bank_public_key: 'no/such/key.pem' }), { message: /bank_public_key: cannot read .*no\/such\/key\.pem/ });
  await t.throwsAsync(accountWith({ merchant_private_key: sim.credentials.bankPublicKeyPem }), { message: /merchant_private_key/ });
  // A wrong merchant key: the bank refuses the signature, a pre-acceptance rejection.
  const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const wrongKey = await accountWith({ merchant_private_key: stranger });
  t.like(await rejects(create(100, 'bank.b2c', wrongKey)), { code: 'authentication_failed', mayExist: false, channelCode: 'SIGNATURE_INVALID' });
});

test.serial('simulatePayer is refused on a live account; health is cheap', async (t) => {
  const live = await accountWith({}, { sandbox: false });
  t.like(await rejects(live.simulatePayer!({ channelOrderNo: 'Pany00000000', amount: 1, currency: 'CNY', payMethod: 'bank.b2c', createdAt: new Date() }, 'pay')), { code: 'not_supported', mayExist: false });
  t.true((await live.health()).ok);
});

test.serial('sandbox binding starts the simulator and maps its credentials', async (t) => {
  const running = await plugin.sandbox!.startSimulator({ dataDir: mkdtempSync(join(dataDir, 'binding-')) });
  try {
    const mapped = plugin.sandbox!.accountConfig(running.credentials, undefined);
    t.is(mapped.base_url, running.url);
    t.is(mapped.header_prefix, 'X-Bank-');
    const acc = await accountWith(mapped);
    const { result } = await create(100, 'bank.b2c', acc);
    t.is(result.status, 'pending');
  } finally {
    await running.close();
  }
});
