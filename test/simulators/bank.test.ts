// The bank simulator over real HTTP, driven by a merchant client written here from PROTOCOL.md with node:crypto only.
import test from 'ava';
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBankSimulator, type BankSandboxCredentials, type RunningSimulator } from '../../plugins/bank/simulator/index.js';
import { PostRecorder, type RecordedPost } from '../helpers/post-recorder.js';

// ---- Merchant side, independent of the simulator's code -------------------------------------------------------------

const sha256Hex = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const base = (line1: string, line2: string, merchant: string, timestamp: string, nonce: string, body: Buffer | string) =>
  `${line1}\n${line2}\n${merchant}\n${timestamp}\n${nonce}\n${sha256Hex(body)}\n`;
const freshNonce = () => randomBytes(16).toString('hex');
const nowSeconds = () => String(Math.floor(Date.now() / 1000));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Merchant {
  baseUrl: string;
  merchantId: string;
  privateKey: KeyObject;
  bankPublicKey: KeyObject;
}

function merchantFrom(credentials: BankSandboxCredentials): Merchant {
  return {
    baseUrl: credentials.baseUrl,
    merchantId: credentials.merchantId,
    // Read from the files, as a gateway configured with paths would.
    privateKey: createPrivateKey(readFileSync(credentials.merchantPrivateKeyPath, 'utf8')),
    bankPublicKey: createPublicKey(readFileSync(credentials.bankPublicKeyPath, 'utf8')),
  };
}

interface CallOptions {
  nonce?: string;
  timestamp?: string;
  merchantId?: string;
  /** Sign this body but send `body`. */
  signedBody?: string;
  /** Sign this path but request `path`. */
  signedPath?: string;
  omitSignature?: boolean;
  signal?: AbortSignal;
}

interface BankAnswer {
  status: number;
  headers: Headers;
  raw: Buffer;
  text: string;
  json: Record<string, unknown>;
  /** Signature verifies with the bank key, the nonce is ours and the merchant is ours (PROTOCOL.md 3.3). */
  trusted: boolean;
  /** Only the signature verifies (the nonce may be fresh, PROTOCOL.md 3.3 exception). */
  signatureOk: boolean;
  nonce: string;
}

async function call(merchant: Merchant, method: 'GET' | 'POST', path: string, body?: unknown, options: CallOptions = {}): Promise<BankAnswer> {
  const bodyText = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const nonce = options.nonce ?? freshNonce();
  const timestamp = options.timestamp ?? nowSeconds();
  const merchantId = options.merchantId ?? merchant.merchantId;
  const signature = sign('sha256', Buffer.from(base(method, options.signedPath ?? path, merchantId, timestamp, nonce, options.signedBody ?? bodyText)), merchant.privateKey).toString('base64');
  const headers: Record<string, string> = { 'x-bank-merchant': merchantId, 'x-bank-timestamp': timestamp, 'x-bank-nonce': nonce };
  if (!options.omitSignature) headers['x-bank-signature'] = signature;
  if (method === 'POST') headers['content-type'] = 'application/json; charset=utf-8';
  const response = await fetch(`${merchant.baseUrl}${path}`, { method, headers, body: method === 'POST' ? bodyText : undefined, signal: options.signal });
  const raw = Buffer.from(await response.arrayBuffer());
  const h = response.headers;
  const signatureOk = verify(
    'sha256',
    Buffer.from(base(String(response.status), path, h.get('x-bank-merchant') ?? '', h.get('x-bank-timestamp') ?? '', h.get('x-bank-nonce') ?? '', raw)),
    merchant.bankPublicKey,
    Buffer.from(h.get('x-bank-signature') ?? '', 'base64'),
  );
  const text = raw.toString('utf8');
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // CSV statements
  }
  return { status: response.status, headers: h, raw, text, json, signatureOk, trusted: signatureOk && h.get('x-bank-nonce') === nonce && h.get('x-bank-merchant') === merchantId, nonce };
}

// ---- Notification receiver -----------------------------------------------------------------------------------------

interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  event: { event_id: string; event_type: string; created_at: string; data: Record<string, unknown> };
  verified: boolean;
  at: number;
}

class Receiver extends PostRecorder {
  /** Answers for the next deliveries; when empty, acknowledge. */
  answers: Array<{ status: number; body: string }> = [];

  /** Checked once, on arrival: the timestamp window is about when it came. */
  private readonly verdicts = new WeakMap<RecordedPost, boolean>();

  constructor(private readonly bankPublicKey: () => KeyObject, private readonly merchantId: () => string) {
    super((post) => {
      const verified = this.verify(post);
      this.verdicts.set(post, verified);
      return this.answers.shift() ?? { status: 200, body: verified ? '{"code":"SUCCESS"}' : '{"code":"FAIL"}', contentType: 'application/json' };
    });
  }

  private verify(post: RecordedPost): boolean {
    const h = post.headers;
    return (
      h['x-bank-merchant'] === this.merchantId() &&
      Math.abs(Number(h['x-bank-timestamp']) - Date.now() / 1000) <= 300 &&
      verify('sha256', Buffer.from(base('NOTIFY', '-', String(h['x-bank-merchant']), String(h['x-bank-timestamp']), String(h['x-bank-nonce']), post.rawBody)), this.bankPublicKey(), Buffer.from(String(h['x-bank-signature']), 'base64'))
    );
  }

  get deliveries(): Delivery[] {
    return this.posts.map((p) => ({ headers: p.headers, body: p.rawBody.toString('utf8'), event: JSON.parse(p.rawBody.toString('utf8')) as Delivery['event'], verified: this.verdicts.get(p) ?? false, at: p.at }));
  }

  of(outTradeNo: string): Delivery[] {
    return this.deliveries.filter((d) => d.event.data.out_trade_no === outTradeNo);
  }

  waitFor(outTradeNo: string, count: number, timeoutMs = 5000): Promise<Delivery[]> {
    return this.waitUntil(() => {
      const got = this.of(outTradeNo);
      return got.length >= count ? got : undefined;
    }, timeoutMs, `${count} deliveries for ${outTradeNo} (got ${this.of(outTradeNo).length})`);
  }
}

// ---- Fixtures ------------------------------------------------------------------------------------------------------

const dataDir = mkdtempSync(join(tmpdir(), 'corbel-bank-sim-'));
let sim: RunningSimulator;
let merchant: Merchant;
const receiver = new Receiver(() => merchant.bankPublicKey, () => merchant.merchantId);
let orderSeq = 0;
const newOrderNo = () => `T${Date.now()}${String(++orderSeq).padStart(4, '0')}`;

test.before(async () => {
  // Manual refund settlement so the tests decide each refund's outcome; automatic settlement is tested separately.
  sim = await startBankSimulator({ dataDir, notifyRetryDelaysMs: [100, 200, 300], refundSettleMs: null });
  merchant = merchantFrom(sim.credentials);
  await receiver.start('/notify/bank');
});

test.after.always(async () => {
  await sim?.close();
  await receiver.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test.afterEach.always(async () => {
  await fetch(`${sim.url}/__sim/faults`, { method: 'DELETE' });
  receiver.answers = [];
});

/** The parts of the /__sim JSON the tests read. */
type ControlJson = Record<string, unknown> & {
  status?: string;
  http_5xx?: number;
  notifications: Array<{ state: string; attempts: Array<{ acked: boolean }> }>;
};

const control = async (method: string, path: string, body?: unknown) => {
  const response = await fetch(`${sim.url}/__sim${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as ControlJson };
};
const setFaults = (faults: Record<string, unknown>) => control('PUT', '/faults', faults);

function paymentRequest(outTradeNo: string, overrides: Record<string, unknown> = {}) {
  return { out_trade_no: outTradeNo, amount: 12345, currency: 'CNY', subject: 'Sandbox order', scene: 'b2c', notify_url: receiver.url, ...overrides };
}

async function createPaid(amount = 10000): Promise<string> {
  const no = newOrderNo();
  const created = await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no, { amount }));
  if (created.status !== 200) throw new Error(created.text);
  await control('POST', `/orders/${no}/pay`);
  await receiver.waitFor(no, 1);
  return no;
}

// ---- Credentials and keys ------------------------------------------------------------------------------------------

test.serial('credentials are written as JSON, with absolute paths, and reused on the next start', async (t) => {
  const file = JSON.parse(readFileSync(join(dataDir, 'simulators', 'bank', 'credentials.json'), 'utf8')) as BankSandboxCredentials;
  t.deepEqual(file, sim.credentials);
  t.is(file.channel, 'bank');
  t.regex(file.merchantId, /^\d{12}$/);
  t.is(file.baseUrl, sim.url);
  for (const path of [file.merchantPrivateKeyPath, file.merchantPublicKeyPath, file.bankPublicKeyPath]) t.true(path.startsWith('/'));
  t.is(file.bankPublicKeyPem, readFileSync(file.bankPublicKeyPath, 'utf8'));
  t.true(file.merchantPrivateKeyPem.includes('BEGIN PRIVATE KEY'));
  t.false(JSON.stringify(file).includes(readFileSync(join(dataDir, 'simulators', 'bank', 'bank_private_key.pem'), 'utf8')), 'the bank private key stays private');

  const second = await startBankSimulator({ dataDir });
  try {
    t.is(second.credentials.merchantId, sim.credentials.merchantId);
    t.is(second.credentials.bankPublicKeyPem, sim.credentials.bankPublicKeyPem);
    t.not(second.url, sim.url);
    // Default settlement: a refund turns SUCCESS by itself shortly after creation.
    const other = merchantFrom(second.credentials);
    const no = newOrderNo();
    t.is((await call(other, 'POST', '/api/v1/payments', paymentRequest(no))).status, 200);
    t.is((await fetch(`${second.url}/__sim/orders/${no}/pay`, { method: 'POST' })).status, 200);
    const refund = await call(other, 'POST', '/api/v1/refunds', { out_trade_no: no, out_refund_no: `R${no}`, amount: 100 });
    t.is(refund.json.status, 'PROCESSING');
    await sleep(400);
    t.is((await call(other, 'GET', `/api/v1/refunds/R${no}`)).json.status, 'SUCCESS');
  } finally {
    await second.close();
  }
});

// ---- Request authentication ----------------------------------------------------------------------------------------

test.serial('a correctly signed request is accepted and the response is signed, echoing our nonce', async (t) => {
  const no = newOrderNo();
  const answer = await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no));
  t.is(answer.status, 200, answer.text);
  t.true(answer.trusted);
  t.is(answer.headers.get('content-type'), 'application/json; charset=utf-8');
  t.like(answer.json, { merchant_id: merchant.merchantId, out_trade_no: no, amount: 12345, currency: 'CNY', status: 'PROCESSING', refunded_amount: 0, scene: 'b2c' });
  t.regex(String(answer.json.bank_trade_no), /^P\d{8}\d{10}$/);
  t.regex(String(answer.json.created_at), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$/);
  t.is(answer.json.pay_url, `${sim.url}/payer/${String(answer.json.bank_trade_no)}`);
  t.false('paid_at' in answer.json, 'absent values are omitted, not null');
  t.false(Object.values(answer.json).includes(null));
});

test.serial('tampered, stale, replayed and unsigned requests are rejected with stable codes and no effect', async (t) => {
  const no = newOrderNo();
  const body = paymentRequest(no);
  const expect = async (answer: Promise<BankAnswer>, status: number, code: string) => {
    const a = await answer;
    t.is(a.status, status, a.text);
    t.is(a.json.code, code);
    t.is(typeof a.json.message, 'string');
    t.true(a.signatureOk, `error ${code} is signed too`);
    return a;
  };
  await expect(call(merchant, 'POST', '/api/v1/payments', body, { signedBody: JSON.stringify({ ...body, amount: 1 }) }), 401, 'SIGNATURE_INVALID');
  await expect(call(merchant, 'GET', `/api/v1/payments/${no}`, undefined, { signedPath: '/api/v1/payments/OTHER123' }), 401, 'SIGNATURE_INVALID');
  await expect(call(merchant, 'POST', '/api/v1/payments', body, { timestamp: String(Number(nowSeconds()) - 301) }), 401, 'TIMESTAMP_EXPIRED');
  await expect(call(merchant, 'POST', '/api/v1/payments', body, { timestamp: String(Number(nowSeconds()) + 301) }), 401, 'TIMESTAMP_EXPIRED');
  await expect(call(merchant, 'POST', '/api/v1/payments', body, { merchantId: '880000000000' }), 401, 'MERCHANT_NOT_FOUND');
  await expect(call(merchant, 'POST', '/api/v1/payments', body, { omitSignature: true }), 401, 'AUTH_HEADER_MISSING');
  const badNonce = await expect(call(merchant, 'POST', '/api/v1/payments', body, { nonce: 'short' }), 401, 'AUTH_HEADER_MISSING');
  t.regex(badNonce.headers.get('x-bank-nonce') ?? '', /^[A-Za-z0-9]{16,64}$/, 'a malformed nonce is not echoed; a fresh one is used');
  t.true((await expect(call(merchant, 'POST', '/api/v1/payments', body, { omitSignature: true }), 401, 'AUTH_HEADER_MISSING')).trusted);
  // A wrong key: signed by a key that is not the merchant's.
  const stranger = { ...merchant, privateKey: createPrivateKey(readFileSync(join(dataDir, 'simulators', 'bank', 'bank_private_key.pem'), 'utf8')) };
  await expect(call(stranger, 'POST', '/api/v1/payments', body), 401, 'SIGNATURE_INVALID');
  t.is((await call(merchant, 'GET', `/api/v1/payments/${no}`)).json.code, 'ORDER_NOT_FOUND', 'no rejected request created the order');

  const nonce = freshNonce();
  t.is((await call(merchant, 'POST', '/api/v1/payments', body, { nonce })).status, 200);
  await expect(call(merchant, 'POST', '/api/v1/payments', body, { nonce }), 401, 'NONCE_REUSED');
});

test.serial('invalid bodies get INVALID_REQUEST naming the field; unknown paths NOT_FOUND', async (t) => {
  const no = newOrderNo();
  const cases: Array<[unknown, string]> = [
    [paymentRequest(no, { amount: '100' }), 'amount'],
    [paymentRequest(no, { amount: 1.5 }), 'amount'],
    [paymentRequest(no, { amount: 0 }), 'amount'],
    [paymentRequest(no, { currency: 'USD' }), 'currency'],
    [paymentRequest(no, { scene: 'app' }), 'scene'],
    [paymentRequest(no, { notify_url: 'ftp://x' }), 'notify_url'],
    [paymentRequest('a,b"c'), 'out_trade_no'],
    [{ ...paymentRequest(no), subject: undefined }, 'subject'],
  ];
  for (const [body, field] of cases) {
    const answer = await call(merchant, 'POST', '/api/v1/payments', body);
    t.is(answer.status, 400, field);
    t.is(answer.json.code, 'INVALID_REQUEST');
    t.true(String(answer.json.message).startsWith(field), String(answer.json.message));
  }
  const notJson = await call(merchant, 'POST', '/api/v1/payments', 'not json');
  t.is(notJson.json.code, 'INVALID_REQUEST');
  const unknown = await call(merchant, 'GET', '/api/v1/nothing');
  t.is(unknown.status, 404);
  t.is(unknown.json.code, 'NOT_FOUND');
  t.true(unknown.trusted);
  t.is((await call(merchant, 'GET', '/api/v1/statements/2025-02-30')).json.code, 'INVALID_REQUEST');
  t.is((await call(merchant, 'GET', '/api/v1/statements/2999-01-01')).json.code, 'STATEMENT_NOT_READY');
});

test.serial('payment creation is idempotent; different parameters give DUPLICATE_ORDER', async (t) => {
  const no = newOrderNo();
  const first = await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no, { attach: 'x' }));
  const again = await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no, { attach: 'x' }));
  t.is(again.status, 200);
  t.is(again.json.bank_trade_no, first.json.bank_trade_no);
  t.is(again.json.attach, 'x');
  const changed = await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no, { attach: 'x', amount: 12346 }));
  t.is(changed.status, 409);
  t.is(changed.json.code, 'DUPLICATE_ORDER');
  const withoutAttach = await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no));
  t.is(withoutAttach.json.code, 'DUPLICATE_ORDER', 'absent is not equal to present');
});

// ---- Full flow -----------------------------------------------------------------------------------------------------

test.serial('pay on the payer page -> notification -> refund -> refund notification -> statement', async (t) => {
  const no = newOrderNo();
  const created = await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no, { return_url: 'http://shop.example/done' }));
  const payUrl = String(created.json.pay_url);
  const pageHtml = await (await fetch(payUrl)).text();
  t.true(pageHtml.includes('Pay') && pageHtml.includes('Fail') && pageHtml.includes('123.45'));
  const form = await fetch(`${payUrl}/pay`, { method: 'POST', redirect: 'manual' });
  t.is(form.status, 303);
  t.is(form.headers.get('location'), 'http://shop.example/done');

  const [paid] = await receiver.waitFor(no, 1);
  t.true(paid.verified);
  t.is(paid.headers['content-type'], 'application/json; charset=utf-8');
  t.is(paid.event.event_type, 'payment.success');
  t.regex(paid.event.event_id, /^EV\d{14}\d{6}$/);
  t.like(paid.event.data, { out_trade_no: no, amount: 12345, status: 'SUCCESS', fee: 74, bank_trade_no: created.json.bank_trade_no });
  t.false('pay_url' in paid.event.data);

  const queried = await call(merchant, 'GET', `/api/v1/payments/${no}`);
  t.true(queried.trusted);
  t.like(queried.json, { status: 'SUCCESS', fee: 74, paid_at: paid.event.data.paid_at });
  t.is((await control('GET', `/orders/${no}`)).json.notifications[0].state, 'acked');

  const refund = await call(merchant, 'POST', '/api/v1/refunds', { out_trade_no: no, out_refund_no: `RF${no}`, amount: 2345, reason: 'returned' });
  t.is(refund.status, 200, refund.text);
  t.like(refund.json, { out_trade_no: no, out_refund_no: `RF${no}`, amount: 2345, currency: 'CNY', status: 'PROCESSING', reason: 'returned' });
  t.regex(String(refund.json.bank_refund_no), /^R\d{18}$/);
  t.is((await call(merchant, 'POST', '/api/v1/refunds', { out_trade_no: no, out_refund_no: `RF${no}`, amount: 2345, reason: 'returned' })).json.bank_refund_no, refund.json.bank_refund_no);
  t.is((await call(merchant, 'POST', '/api/v1/refunds', { out_trade_no: no, out_refund_no: `RF${no}`, amount: 2000 })).json.code, 'DUPLICATE_REFUND');
  t.is((await call(merchant, 'POST', '/api/v1/refunds', { out_trade_no: no, out_refund_no: `RX${no}`, amount: 10001 })).json.code, 'REFUND_AMOUNT_EXCEEDED');

  await control('POST', `/refunds/RF${no}/succeed`);
  const deliveries = await receiver.waitFor(no, 2);
  t.is(deliveries[1].event.event_type, 'refund.success');
  t.true(deliveries[1].verified);
  t.like(deliveries[1].event.data, { out_refund_no: `RF${no}`, amount: 2345, status: 'SUCCESS' });
  t.like((await call(merchant, 'GET', `/api/v1/refunds/RF${no}`)).json, { status: 'SUCCESS', succeeded_at: deliveries[1].event.data.succeeded_at });
  t.is((await call(merchant, 'GET', `/api/v1/payments/${no}`)).json.refunded_amount, 2345);

  // A failed refund frees its amount.
  await call(merchant, 'POST', '/api/v1/refunds', { out_trade_no: no, out_refund_no: `RG${no}`, amount: 10000 });
  await control('POST', `/refunds/RG${no}/fail`, { failure_code: 'ACCOUNT_CLOSED' });
  const failedRefund = (await receiver.waitFor(no, 3))[2];
  t.like(failedRefund.event, { event_type: 'refund.failed', data: { status: 'FAILED', failure_code: 'ACCOUNT_CLOSED' } });
  t.is((await call(merchant, 'POST', '/api/v1/refunds', { out_trade_no: no, out_refund_no: `RH${no}`, amount: 10000 })).status, 200);

  const date = String(paid.event.data.paid_at).slice(0, 10);
  const statement = await call(merchant, 'GET', `/api/v1/statements/${date}`);
  t.is(statement.status, 200);
  t.true(statement.trusted, 'the statement is signed by the bank');
  t.is(statement.headers.get('content-type'), 'text/csv; charset=utf-8');
  const lines = statement.text.split('\n');
  t.is(lines[0], 'event_time,type,out_trade_no,bank_trade_no,out_refund_no,bank_refund_no,amount,fee,currency');
  t.true(statement.text.endsWith('\n'));
  t.true(lines.includes(`${String(paid.event.data.paid_at)},PAYMENT,${no},${String(created.json.bank_trade_no)},,,12345,74,CNY`));
  t.true(lines.includes(`${String(deliveries[1].event.data.succeeded_at)},REFUND,${no},${String(created.json.bank_trade_no)},RF${no},${String(refund.json.bank_refund_no)},2345,0,CNY`));
  t.false(statement.text.includes(`RG${no}`), 'failed refunds are not movements');

  // Altering one byte of the statement breaks the bank's signature.
  const altered = Buffer.from(statement.text.replace(',12345,', ',12346,'));
  const h = statement.headers;
  t.false(verify('sha256', Buffer.from(base('200', `/api/v1/statements/${date}`, merchant.merchantId, h.get('x-bank-timestamp')!, h.get('x-bank-nonce')!, altered)), merchant.bankPublicKey, Buffer.from(h.get('x-bank-signature')!, 'base64')));
});

test.serial('qr scene, close, fail and the refund preconditions', async (t) => {
  const qr = newOrderNo();
  const created = await call(merchant, 'POST', '/api/v1/payments', paymentRequest(qr, { scene: 'qr' }));
  t.is(created.json.qr_code, `${sim.url}/payer/${String(created.json.bank_trade_no)}`);
  t.false('pay_url' in created.json);
  t.is((await call(merchant, 'POST', '/api/v1/refunds', { out_trade_no: qr, out_refund_no: `RF${qr}`, amount: 1 })).json.code, 'ORDER_NOT_PAID');
  const closed = await call(merchant, 'POST', `/api/v1/payments/${qr}/close`, {});
  t.like(closed.json, { status: 'CLOSED' });
  t.false('qr_code' in closed.json);
  t.is((await call(merchant, 'POST', `/api/v1/payments/${qr}/close`, {})).json.status, 'CLOSED', 'close is idempotent');
  t.is((await control('POST', `/orders/${qr}/pay`)).status, 409, 'a closed payment cannot be paid');
  await sleep(50);
  t.is(receiver.of(qr).length, 0, 'closing sends no notification');
  t.is((await call(merchant, 'POST', '/api/v1/payments/NOSUCHORDER/close', {})).json.code, 'ORDER_NOT_FOUND');

  const paid = await createPaid();
  const closePaid = await call(merchant, 'POST', `/api/v1/payments/${paid}/close`, {});
  t.is(closePaid.status, 409);
  t.is(closePaid.json.code, 'ORDER_PAID');

  const failing = newOrderNo();
  await call(merchant, 'POST', '/api/v1/payments', paymentRequest(failing));
  const failed = await control('POST', `/orders/${failing}/fail`, { failure_code: 'INSUFFICIENT_FUNDS' });
  t.is(failed.json.status, 'FAILED');
  const [delivery] = await receiver.waitFor(failing, 1);
  t.like(delivery.event, { event_type: 'payment.failed', data: { status: 'FAILED', failure_code: 'INSUFFICIENT_FUNDS' } });
  t.is((await call(merchant, 'POST', `/api/v1/payments/${failing}/close`, {})).json.status, 'FAILED');
});

// ---- Notifications -------------------------------------------------------------------------------------------------

test.serial('notifications are retried until acknowledged with {"code":"SUCCESS"}, then given up after the schedule', async (t) => {
  receiver.answers = [
    { status: 500, body: '' },
    { status: 200, body: 'OK' },
    { status: 200, body: '{"code":"FAIL"}' },
  ];
  const no = newOrderNo();
  await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no));
  await control('POST', `/orders/${no}/pay`);
  const deliveries = await receiver.waitFor(no, 4);
  t.is(new Set(deliveries.map((d) => d.event.event_id)).size, 1, 'same event');
  t.is(new Set(deliveries.map((d) => d.body)).size, 1, 'same body');
  t.is(new Set(deliveries.map((d) => d.headers['x-bank-nonce'])).size, 4, 'fresh nonce each attempt');
  t.true(deliveries.every((d) => d.verified));
  t.true(deliveries[1].at - deliveries[0].at >= 90, 'first retry after ~100 ms');
  await sleep(50);
  const view = await control('GET', `/orders/${no}`);
  t.is(view.json.notifications[0].state, 'acked');
  t.deepEqual(view.json.notifications[0].attempts.map((a) => a.acked), [false, false, false, true]);

  receiver.answers = Array.from({ length: 4 }, () => ({ status: 503, body: '' }));
  const never = newOrderNo();
  await call(merchant, 'POST', '/api/v1/payments', paymentRequest(never));
  await control('POST', `/orders/${never}/pay`);
  await receiver.waitFor(never, 4);
  await sleep(450);
  t.is(receiver.of(never).length, 4, '1 attempt + 3 retries, then it gives up');
  t.is((await control('GET', `/orders/${never}`)).json.notifications[0].state, 'gave_up');
  // Control API: resend the latest notification now.
  const resent = await control('POST', `/orders/${never}/notify`);
  t.is(resent.json.notifications[0].state, 'acked');
  t.is(receiver.of(never).length, 5);
});

// ---- Faults --------------------------------------------------------------------------------------------------------

test.serial('fault latency_ms delays answers', async (t) => {
  await setFaults({ latency_ms: 300 });
  const started = Date.now();
  const answer = await call(merchant, 'GET', '/api/v1/payments/NOSUCHORDER');
  t.true(Date.now() - started >= 290);
  t.is(answer.json.code, 'ORDER_NOT_FOUND');
});

test.serial('fault timeout holds the request unanswered', async (t) => {
  await setFaults({ timeout: true });
  const no = newOrderNo();
  await t.throwsAsync(call(merchant, 'POST', '/api/v1/payments', paymentRequest(no), { signal: AbortSignal.timeout(300) }), { any: true });
  await control('DELETE', '/faults');
  t.is((await call(merchant, 'GET', `/api/v1/payments/${no}`)).json.code, 'ORDER_NOT_FOUND');
});

test.serial('fault http_5xx answers the next N calls with a signed SYSTEM_ERROR without processing them', async (t) => {
  await setFaults({ http_5xx: 2 });
  const no = newOrderNo();
  for (let i = 0; i < 2; i += 1) {
    const answer = await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no));
    t.is(answer.status, 500);
    t.is(answer.json.code, 'SYSTEM_ERROR');
    t.true(answer.trusted);
  }
  t.is((await control('GET', '/faults')).json.http_5xx, 0);
  t.is((await call(merchant, 'GET', `/api/v1/payments/${no}`)).json.code, 'ORDER_NOT_FOUND');
});

test.serial('fault connection_reset drops the next call before processing', async (t) => {
  await setFaults({ connection_reset: 1 });
  const no = newOrderNo();
  await t.throwsAsync(call(merchant, 'POST', '/api/v1/payments', paymentRequest(no)));
  t.is((await call(merchant, 'GET', `/api/v1/payments/${no}`)).json.code, 'ORDER_NOT_FOUND');
});

test.serial('fault response_lost processes the call but drops the answer; resending finds the order', async (t) => {
  await setFaults({ response_lost: 1 });
  const no = newOrderNo();
  await t.throwsAsync(call(merchant, 'POST', '/api/v1/payments', paymentRequest(no)));
  t.is((await call(merchant, 'GET', `/api/v1/payments/${no}`)).json.status, 'PROCESSING');
  t.is((await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no))).status, 200, 'idempotent resend');
});

test.serial('fault corrupt_signature breaks response and notification signatures', async (t) => {
  await setFaults({ corrupt_signature: true });
  const no = newOrderNo();
  const answer = await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no));
  t.is(answer.status, 200);
  t.false(answer.trusted);
  await control('POST', `/orders/${no}/pay`);
  const [delivery] = await receiver.waitFor(no, 1);
  t.false(delivery.verified);
  await control('DELETE', '/faults');
  await receiver.waitFor(no, 2);
  t.true(receiver.of(no)[1].verified, 'the retry after the fault is cleared verifies');
});

test.serial('fault paths restricts API faults to the given prefixes', async (t) => {
  await setFaults({ http_5xx: 1, paths: ['/api/v1/refunds'] });
  const no = newOrderNo();
  t.is((await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no))).status, 200);
  t.is((await call(merchant, 'GET', '/api/v1/refunds/NOSUCHREFUND')).status, 500);
  t.is((await call(merchant, 'GET', '/api/v1/refunds/NOSUCHREFUND')).status, 404);
});

test.serial('fault notify=lost sends nothing until resent', async (t) => {
  await setFaults({ notify: 'lost' });
  const no = newOrderNo();
  await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no));
  await control('POST', `/orders/${no}/pay`);
  await sleep(300);
  t.is(receiver.of(no).length, 0);
  t.is((await control('GET', `/orders/${no}`)).json.notifications[0].state, 'lost');
  await control('POST', `/orders/${no}/notify`);
  t.is(receiver.of(no).length, 1);
});

test.serial('fault notify=duplicate sends each notification twice', async (t) => {
  await setFaults({ notify: 'duplicate' });
  const no = newOrderNo();
  await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no));
  await control('POST', `/orders/${no}/pay`);
  const deliveries = await receiver.waitFor(no, 2);
  t.is(deliveries[0].event.event_id, deliveries[1].event.event_id);
  await sleep(150);
  t.is(receiver.of(no).length, 2);
});

test.serial('fault notify=delayed sends after notify_delay_ms', async (t) => {
  await setFaults({ notify: 'delayed', notify_delay_ms: 400 });
  const no = newOrderNo();
  await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no));
  const paidAt = Date.now();
  await control('POST', `/orders/${no}/pay`);
  const [delivery] = await receiver.waitFor(no, 1);
  t.true(delivery.at - paidAt >= 390);
});

test.serial('fault notify=out_of_order sends the refund notification before the payment one', async (t) => {
  await setFaults({ notify: 'out_of_order' });
  const no = newOrderNo();
  await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no));
  await control('POST', `/orders/${no}/pay`);
  await sleep(100);
  t.is(receiver.of(no).length, 0, 'held back');
  await call(merchant, 'POST', '/api/v1/refunds', { out_trade_no: no, out_refund_no: `RF${no}`, amount: 100 });
  await control('POST', `/refunds/RF${no}/succeed`);
  const deliveries = await receiver.waitFor(no, 2);
  t.deepEqual(deliveries.map((d) => d.event.event_type), ['refund.success', 'payment.success']);
});

test.serial('fault tamper_notify_amount: a correctly signed notification claims another amount', async (t) => {
  await setFaults({ tamper_notify_amount: true });
  const no = newOrderNo();
  await call(merchant, 'POST', '/api/v1/payments', paymentRequest(no));
  await control('POST', `/orders/${no}/pay`, { amount: 1 });
  const [delivery] = await receiver.waitFor(no, 1);
  t.true(delivery.verified);
  t.is(delivery.event.data.amount, 1);
  t.is((await call(merchant, 'GET', `/api/v1/payments/${no}`)).json.amount, 12345, 'the bank record is unchanged');
});

test.serial('control API: list, unknown order, bad fault set', async (t) => {
  const no = await createPaid();
  const list = await fetch(`${sim.url}/__sim/orders`).then((r) => r.json() as Promise<Array<{ out_trade_no: string }>>);
  t.true(list.some((order) => order.out_trade_no === no));
  t.is((await control('POST', '/orders/NOSUCHORDER/pay')).status, 404);
  t.is((await control('PUT', '/faults', { notify: 'sometimes' })).status, 400);
  t.is((await control('PUT', '/faults', { bogus: 1 })).status, 400);
});
