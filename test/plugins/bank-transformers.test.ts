// The bank plugin's pure half: PROTOCOL.md's test vectors through our signer, and every table (statuses, error
// codes, failure codes) plus the amount, request and statement conversions, without any network.
import test from 'ava';
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { ChannelError, type CreatePaymentRequest, type StandardChannelCode } from '../../core/index.js';
import plugin from '../../plugins/bank/index.js';
import { bankConfigSchema } from '../../plugins/bank/config.js';
import { acknowledgement, parseBankNotification, type NotificationVerifier } from '../../plugins/bank/notifications.js';
import { isStatementDate, parseStatement } from '../../plugins/bank/statement.js';
import {
  BANK_ERRORS,
  FAILURE_CODE,
  PAYMENT_STATUS,
  REFUND_STATUS,
  amountFromWire,
  amountToWire,
  bankError,
  createPaymentBody,
  createRefundBody,
  expireSeconds,
  parseWire,
  paymentResult,
  refundResult,
  wireSchemas,
} from '../../plugins/bank/transformers.js';
import { baseString, headerNames, newNonce, notificationProblem, responseProblem, sha256Hex, signBase, signedHeaders, verifyBase } from '../../plugins/bank/transport.js';

// ---- PROTOCOL.md 10: test vectors ---------------------------------------------------------------------------------

const VECTOR_KEY = createPrivateKey(`-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC1Q0OeHedXNgo0
86yh6L1XdlpY6BAQ+9GbUScOEEsl/j21n5+L4Wd0I41ACO+jNKTC88nDbfy5jpwP
mt36y+fSJkg8b0rn1A+PvV9BGbKm0MpFfE/mfZpHOEYzts3PEMX4l3e9BzAHJnRw
hVd+otvMsPHoK4RSCe9CglFku0rwFsJCeiZqdHDE1ESPO+7LJxoVhv02kxBGWL9m
YT9ax6uf4sMLRe9PA3xw7Z+kkQxHjmYKCdhkqPRXE3OnjPhbv2lUpzF8t/+yIBta
2RhT56PaG21kuz5HjZE84GJV6r9lcJhHpLNJTHHW5/wTXBq130j7wS7D3h/0nbVZ
2gDMqtshAgMBAAECggEARepchfwV0/NBq5wDze3GPpqljZ5xOAPRnR2HuWp6efyf
U9NuiFdYfpkJ7hWkTSjMlm/PNqTRcsc5leFP1uFYmRvwB/OLinEm0XQjbipZ2PM2
2edxsD9pRyhDF8Zeiwx2uATAiDZiBZgFGLOuBGgP7Nuha0KBxt0THu3CNF7zsDgI
bm+vIazgVi5Scw7o+F1emiF6K4MvNpuP6tSNMI8k53/sK5wB0HkIokowmqHY9Wx3
EAlVvqz6M8BXR9UZKpSN3eQcXAh7DZFi5u2Pqa2dedXZYCfX+dUqMbyEz42/3/tp
m+BB8gLnsN7Ig86kOaT2Dt0UWMbG79iRvwrAWofRmwKBgQDoRKiK/sKnWrwEsf1Q
7WifW3o9YI/AMOrfRmMg9hMCAZJZqL3cGIVF30IcTuNIN5BhRnm9j9V096Gc9ilC
Rr/T1XPhTR1cQpxcbzLUGqjzSkpqvscIgbGeIcaBkXCoXcLuPGdkiwuigxffu+3O
+ujKBwEqT8Qv6JepJOpJbFdufwKBgQDHyHpMy26Fm3fb3+y2ePMoAgcn9rrzqkaX
hjd9MBD44zImYMhmDGFzbNBaCvstWNPmWM7pJwA9nV3to62zUhAkd8rqJJuIp13d
iCPgyuGO/Zyw8S0rR4LR7NaEPV/m25JTMgCsQop/js8hKUEePb5RgczSMua47GgQ
DIYdvS4mXwKBgBoiT4yEKcbG0Mz+cfA/Jjx4AIMTcFlBp8vDkbfNuEnLf3oTIHm5
UJWSD1A8GBqyFc68LUqE+pGUo1yT3gSVDVR6efVpxdnxrMJByMhQz53ASCtGmAJ/
BUszpbBCexiWpC5GIaQQeRiqA2+rJ5DYboT80Ma//uUdGKNxgeMNC7FlAoGBAIWE
Vy/xmSiTsXPx4EpG5QKs8ElmHKVx/AGSQo1YzU74z/BUKDoDNjGk3E4BHsK8pclB
Ou8ZEJEdFcQW6qR4SK+Gm8cFtiiK6jF+pbO7AynEFq8uT6in/yb66JaySeCIh+8v
8MEvK056i7U20/04+HOSkuc7+3RFEnr/U7aWUzxzAoGAA+2frOG/PeyNG2godFgx
MwOTnasfV3iZ8SF9y2llTeuK1IM3nn8TZSVMKNWvYnKFhxcXocCj7pksBflxkeSs
bjEnF48AGCLcJlYWuBVxsZMZaX4zMCURfZLcb6KsnN5P0iVRFn26QSLu4KaYKyuv
lUWuE1A7omRkQRqS8p1UlB4=
-----END PRIVATE KEY-----`);
const VECTOR_PUBLIC = createPublicKey(VECTOR_KEY);
const VECTOR_BODY = '{"out_trade_no":"ORD20250314001","amount":12345,"currency":"CNY","subject":"Test order","scene":"b2c","notify_url":"https://merchant.example/notify/bank"}';
const VECTOR_SIGNATURE =
  'Lu8AKORYROPL5FANjCb/iLAw/iYJwDhYXFMI+9GgbOrSms3sM3K/zZodkH6V+rYhtq/Xgyl/4nBeROMp3vmek2V8JTfXhg+Hebo5xhirkDVK9uOWyANlFnFOqxL2sQTBbxVzAkBhYSTfM5LFJwtKE3AOxvV725PkDjQSPGbxpYFl4cDot8AV+EfRYwYatQY1NEZ0wZY2LAzOYS0Zj3NwThxoTmo9Ws25C5xNa9/Cl2SLb2YnCzb1zcauk9Mbk8eD0MZb60ixR1RY5VLQhhtKhyjB7wnt0E+G5b57j/cPOVpQlsixTopugYASD8g8yb4s3gQacWZ125dSPPa/WqOyDw==';
const NAMES = headerNames('X-Bank-');

test('vector: body digest, base string and signature of the create request', async (t) => {
  t.is(sha256Hex(VECTOR_BODY), 'a1946eccce1cb3afd7eb275869f15eb465bcbe781133cf9de550fd2c66d343ce');
  const base = baseString({ line1: 'POST', line2: '/api/v1/payments', merchantId: '880000000001', timestamp: '1741915613', nonce: 'n0nce4TestVector01', body: VECTOR_BODY });
  t.is(base, 'POST\n/api/v1/payments\n880000000001\n1741915613\nn0nce4TestVector01\na1946eccce1cb3afd7eb275869f15eb465bcbe781133cf9de550fd2c66d343ce\n');
  t.is(await signBase(base, VECTOR_KEY), VECTOR_SIGNATURE);
  t.true(verifyBase(base, VECTOR_SIGNATURE, VECTOR_PUBLIC));
});

test('vector: signedHeaders produces the four headers with the vector signature', async (t) => {
  const headers = await signedHeaders({
    line1: 'POST', line2: '/api/v1/payments', merchantId: '880000000001', body: Buffer.from(VECTOR_BODY), key: VECTOR_KEY, names: NAMES,
    timestamp: '1741915613', nonce: 'n0nce4TestVector01',
  });
  t.deepEqual(headers, { 'X-Bank-Merchant': '880000000001', 'X-Bank-Timestamp': '1741915613', 'X-Bank-Nonce': 'n0nce4TestVector01', 'X-Bank-Signature': VECTOR_SIGNATURE });
  // The header prefix knob renames all four and changes nothing else.
  const other = await signedHeaders({ line1: 'POST', line2: '/api/v1/payments', merchantId: '880000000001', body: Buffer.from(VECTOR_BODY), key: VECTOR_KEY, names: headerNames('X-Acme-'), timestamp: '1741915613', nonce: 'n0nce4TestVector01' });
  t.is(other['X-Acme-Signature'], VECTOR_SIGNATURE);
});

test('vector: notification base string, and the empty-body digest', (t) => {
  const base = baseString({ line1: 'NOTIFY', line2: '-', merchantId: '880000000001', timestamp: '1741915613', nonce: 'n0nce4TestVector01', body: '{"event_id":"EV1"}' });
  t.is(base, 'NOTIFY\n-\n880000000001\n1741915613\nn0nce4TestVector01\n01b7ac53685e73a9d851de65830b8a2a8e13f044b410fbbf7ec76275ca34d731\n');
  t.is(sha256Hex(Buffer.alloc(0)), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

test('verifyBase rejects a wrong key, a changed base and non-base64 junk', (t) => {
  const base = baseString({ line1: 'POST', line2: '/api/v1/payments', merchantId: '880000000001', timestamp: '1741915613', nonce: 'n0nce4TestVector01', body: VECTOR_BODY });
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
  t.false(verifyBase(base, VECTOR_SIGNATURE, other));
  t.false(verifyBase(base.replace('POST', 'GET'), VECTOR_SIGNATURE, VECTOR_PUBLIC));
  t.false(verifyBase(base, `*${VECTOR_SIGNATURE}`, VECTOR_PUBLIC));
  t.false(verifyBase(base, '', VECTOR_PUBLIC));
  t.regex(newNonce(), /^[A-Za-z0-9]{16,64}$/);
  t.not(newNonce(), newNonce());
});

// ---- Response and notification checks (PROTOCOL.md 3.3), with the vector key playing the bank -------------------

function bankSigned(line1: string, line2: string, body: string, over: { merchant?: string; nonce?: string; timestamp?: string } = {}) {
  const merchant = over.merchant ?? '880000000001';
  const timestamp = over.timestamp ?? String(Math.floor(Date.now() / 1000));
  const nonce = over.nonce ?? 'abcdefabcdef0123456789';
  // Signed here with node:crypto directly: the bank's side, not the plugin's signer.
  const signature = sign('sha256', Buffer.from(baseString({ line1, line2, merchantId: merchant, timestamp, nonce, body })), VECTOR_KEY).toString('base64');
  // Lower-case names, as Node delivers them.
  return { 'x-bank-merchant': merchant, 'x-bank-timestamp': timestamp, 'x-bank-nonce': nonce, 'x-bank-signature': signature };
}

test('responseProblem: trusts only a signed answer to this request-target, merchant and nonce', (t) => {
  const body = Buffer.from('{"code":"ORDER_NOT_FOUND","message":"x"}');
  const sent = { target: '/api/v1/payments/P1', nonce: 'abcdefabcdef0123456789' };
  const check = (status: number, headers: Record<string, string>, b = body) => responseProblem({ status, headers, body: b }, sent, '880000000001', VECTOR_PUBLIC, NAMES);
  t.is(check(404, bankSigned('404', sent.target, body.toString())), null);
  t.regex(check(200, bankSigned('404', sent.target, body.toString()))!, /signature/); // status is signed
  t.regex(check(404, bankSigned('404', '/api/v1/payments/P2', body.toString()))!, /signature/); // so is the target
  t.regex(check(404, bankSigned('404', sent.target, body.toString()), Buffer.from('{"code":"SYSTEM_ERROR"}'))!, /signature/);
  t.regex(check(404, bankSigned('404', sent.target, body.toString(), { nonce: 'ffffffffffffffff0000' }))!, /nonce/);
  t.regex(check(404, bankSigned('404', sent.target, body.toString(), { merchant: '880000000002' }))!, /merchant/);
  t.regex(check(502, {})!, /missing/);
});

test('notificationProblem: signature, merchant and a ±max-skew timestamp window', (t) => {
  const body = '{"event_id":"EV1"}';
  const now = Date.now();
  const check = (headers: Record<string, string>, b = body, at = now) => notificationProblem(headers, Buffer.from(b), '880000000001', VECTOR_PUBLIC, NAMES, 300, at);
  t.is(check(bankSigned('NOTIFY', '-', body)), null);
  t.regex(check(bankSigned('NOTIFY', '-', body), '{"event_id":"EV2"}')!, /signature/);
  // A response signature must not pass as a notification: LINE1/LINE2 differ.
  t.regex(check(bankSigned('200', '-', body))!, /signature/);
  t.regex(check(bankSigned('NOTIFY', '-', body, { merchant: '880000000002' }))!, /merchant/);
  t.is(check(bankSigned('NOTIFY', '-', body), body, now + 299_000), null);
  t.regex(check(bankSigned('NOTIFY', '-', body), body, now + 302_000)!, /timestamp/);
  t.regex(check(bankSigned('NOTIFY', '-', body, { nonce: 'short' }))!, /malformed/);
  t.regex(check({})!, /missing/);
});

// ---- Tables -------------------------------------------------------------------------------------------------------

test('payment and refund status tables cover every spec status', (t) => {
  t.deepEqual(PAYMENT_STATUS, { PROCESSING: 'pending', SUCCESS: 'succeeded', FAILED: 'failed', CLOSED: 'closed' });
  t.deepEqual(REFUND_STATUS, { PROCESSING: 'pending', SUCCESS: 'succeeded', FAILED: 'failed' });
});

// Every code of PROTOCOL.md 4, with the meaning the kernel must act on.
const ERROR_CASES: Array<[number, string, StandardChannelCode, boolean]> = [
  [400, 'INVALID_REQUEST', 'invalid_request', false],
  [401, 'AUTH_HEADER_MISSING', 'authentication_failed', false],
  [401, 'MERCHANT_NOT_FOUND', 'authentication_failed', false],
  [401, 'TIMESTAMP_EXPIRED', 'authentication_failed', false],
  [401, 'SIGNATURE_INVALID', 'authentication_failed', false],
  [401, 'NONCE_REUSED', 'authentication_failed', false],
  [404, 'NOT_FOUND', 'invalid_request', false],
  [404, 'ORDER_NOT_FOUND', 'order_not_found', false],
  [404, 'REFUND_NOT_FOUND', 'order_not_found', false],
  [404, 'STATEMENT_NOT_READY', 'channel_unavailable', false],
  [409, 'DUPLICATE_ORDER', 'duplicate_order', true],
  [409, 'DUPLICATE_REFUND', 'duplicate_order', true],
  [409, 'ORDER_PAID', 'order_paid', true],
  [409, 'ORDER_NOT_PAID', 'invalid_request', false],
  [409, 'REFUND_AMOUNT_EXCEEDED', 'refund_exceeds_amount', false],
  [500, 'SYSTEM_ERROR', 'channel_unavailable', true],
  [500, 'SOMETHING_NEW', 'unknown', true],
  [418, '__proto__', 'unknown', true],
];

for (const [status, code, standard, mayExist] of ERROR_CASES) {
  test(`error ${status} ${code} → ${standard}, mayExist=${mayExist}`, (t) => {
    const err = bankError(status, code, 'human text');
    t.true(err instanceof ChannelError);
    t.is(err.code, standard);
    t.is(err.mayExist, mayExist);
    t.is(err.channelCode, code);
  });
}

test('the error table has exactly the spec codes, retryable where the spec says resend', (t) => {
  t.deepEqual(Object.keys(BANK_ERRORS).sort(), ERROR_CASES.slice(0, 16).map((c) => c[1]).sort());
  const retryable = Object.entries(BANK_ERRORS).filter(([, m]) => m.retryable).map(([c]) => c).sort();
  t.deepEqual(retryable, ['NONCE_REUSED', 'STATEMENT_NOT_READY', 'SYSTEM_ERROR', 'TIMESTAMP_EXPIRED']);
  t.is(bankError(500, undefined, undefined).code, 'unknown');
});

test('failure codes of FAILED payments and refunds', (t) => {
  t.deepEqual(FAILURE_CODE, {
    PAYER_CANCELLED: 'payer_action_required', INSUFFICIENT_FUNDS: 'insufficient_balance', ACCOUNT_FROZEN: 'card_declined',
    RISK_REJECTED: 'card_declined', ACCOUNT_CLOSED: 'card_declined', REFUND_REJECTED: 'card_declined',
  });
});

// ---- Amounts --------------------------------------------------------------------------------------------------------

test('amounts: fen passes through, yuan converts exactly both ways', (t) => {
  t.is(amountToWire(12345, 'fen'), 12345);
  const yuan: Array<[number, string]> = [[1, '0.01'], [10, '0.10'], [100, '1.00'], [12345, '123.45'], [10_000_000_000, '100000000.00']];
  for (const [fen, text] of yuan) {
    t.is(amountToWire(fen, 'yuan'), text);
    t.is(amountFromWire(text, 'yuan'), fen);
  }
  // JSON numbers in yuan mode: the shortest representation is the bank's own digits.
  t.is(amountFromWire(19.99, 'yuan'), 1999);
  t.is(amountFromWire(1.1, 'yuan'), 110);
  t.is(amountFromWire(0, 'fen'), 0);
  t.is(amountFromWire('42', 'fen'), 42);
  for (const bad of [1.5, -1, '1.5', '', null, undefined, '01', Number.MAX_SAFE_INTEGER + 2]) t.throws(() => amountFromWire(bad, 'fen'));
  for (const bad of ['1.234', '-1.00', '1e3', '', null, 1.005]) t.throws(() => amountFromWire(bad, 'yuan'));
});

// ---- Requests -------------------------------------------------------------------------------------------------------

const NOW = new Date('2025-03-14T01:26:53Z');
const request = (over: Partial<CreatePaymentRequest> = {}): CreatePaymentRequest => ({
  createdAt: new Date(), paymentId: 'pay_1', channelOrderNo: 'P0001abc1', amount: 12345, currency: 'CNY', payMethod: 'bank.b2c', subject: 'Test order',
  expiresAt: new Date(NOW.getTime() + 900_000), notifyUrl: 'https://gw.example/notify/bank', payer: {}, ...over,
});

test('createPaymentBody: scene per pay method, optional fields omitted, expiry clamped', (t) => {
  t.deepEqual(createPaymentBody(request(), 'fen', NOW), {
    out_trade_no: 'P0001abc1', amount: 12345, currency: 'CNY', subject: 'Test order', scene: 'b2c', notify_url: 'https://gw.example/notify/bank', expire_seconds: 900,
  });
  const qr = createPaymentBody(request({ payMethod: 'bank.qr', returnUrl: 'https://shop.example/done' }), 'yuan', NOW);
  t.is(qr.scene, 'qr');
  t.is(qr.amount, '123.45');
  t.is(qr.return_url, 'https://shop.example/done');
  t.is(createPaymentBody(request({ subject: '  ' }), 'fen', NOW).subject, 'P0001abc1');
  t.is(Array.from(createPaymentBody(request({ subject: '😀'.repeat(200) }), 'fen', NOW).subject).length, 128);
  t.is(expireSeconds(new Date(NOW.getTime() + 1), NOW), 60);
  t.is(expireSeconds(new Date(NOW.getTime() - 5000), NOW), 60);
  t.is(expireSeconds(new Date(NOW.getTime() + 1800_500), NOW), 1801);
  t.is(expireSeconds(new Date(NOW.getTime() + 10 * 86_400_000), NOW), 86_400);
});

test('createPaymentBody: rejects before sending, with mayExist=false', (t) => {
  const cases: Array<[Partial<CreatePaymentRequest>, StandardChannelCode]> = [
    [{ payMethod: 'wechat.native' }, 'not_supported'],
    [{ currency: 'USD' }, 'not_supported'],
    [{ amount: 0 }, 'invalid_request'],
    [{ amount: 10_000_000_001 }, 'invalid_request'],
    [{ amount: 1.5 }, 'invalid_request'],
    [{ notifyUrl: `https://gw.example/${'x'.repeat(250)}` }, 'invalid_request'],
    [{ returnUrl: 'javascript:alert(1)' }, 'invalid_request'],
  ];
  for (const [over, code] of cases) {
    const err = t.throws(() => createPaymentBody(request(over), 'fen', NOW), { instanceOf: ChannelError }) as ChannelError;
    t.is(err.code, code);
    t.false(err.mayExist);
  }
});

test('createRefundBody carries the payment and refund numbers', (t) => {
  const payment = { channelOrderNo: 'P0001abc1', amount: 12345, currency: 'CNY', payMethod: 'bank.b2c', createdAt: NOW };
  t.deepEqual(createRefundBody({ createdAt: NOW, refundId: 're_1', channelRefundNo: 'R0001', payment, amount: 100, reason: 'damaged', notifyUrl: 'https://gw.example/notify/bank' }, 'fen'), {
    out_trade_no: 'P0001abc1', out_refund_no: 'R0001', amount: 100, reason: 'damaged', notify_url: 'https://gw.example/notify/bank',
  });
  t.throws(() => createRefundBody({ createdAt: NOW, refundId: 're_1', channelRefundNo: 'R0001', payment, amount: 0, notifyUrl: 'https://gw.example/n' }, 'fen'));
});

// ---- Responses --------------------------------------------------------------------------------------------------------

const schemas = wireSchemas('fen');
const wirePayment = {
  merchant_id: '880000000001', out_trade_no: 'P1', bank_trade_no: 'P202503140000000001', scene: 'b2c', amount: 100, currency: 'CNY', subject: 's',
  created_at: '2025-03-14T09:26:53+08:00', expires_at: '2025-03-14T09:56:53+08:00', refunded_amount: 0,
};

test('paymentResult per status, with action, paid amount and failure', (t) => {
  const pending = paymentResult(parseWire(schemas.payment, { ...wirePayment, status: 'PROCESSING', pay_url: 'http://bank/payer/1' }, 'payment'));
  t.deepEqual(pending, { status: 'pending', channelTradeNo: 'P202503140000000001', action: { type: 'redirect', url: 'http://bank/payer/1' } });
  const qr = paymentResult(parseWire(schemas.payment, { ...wirePayment, scene: 'qr', status: 'PROCESSING', qr_code: 'http://bank/payer/1' }, 'payment'));
  t.deepEqual(qr.action, { type: 'qr_code', qr_code: 'http://bank/payer/1' });
  const paid = paymentResult(parseWire(schemas.payment, { ...wirePayment, status: 'SUCCESS', paid_at: '2025-03-14T09:30:00+08:00', fee: 1 }, 'payment'));
  t.is(paid.status, 'succeeded');
  t.is(paid.paidAmount, 100);
  t.is(paid.paidAt?.toISOString(), '2025-03-14T01:30:00.000Z');
  const failed = paymentResult(parseWire(schemas.payment, { ...wirePayment, status: 'FAILED', failure_code: 'INSUFFICIENT_FUNDS', failure_message: 'no money' }, 'payment'));
  t.deepEqual(failed.failure, { code: 'insufficient_balance', message: 'no money', channelCode: 'INSUFFICIENT_FUNDS' });
  t.is(paymentResult(parseWire(schemas.payment, { ...wirePayment, status: 'CLOSED' }, 'payment')).status, 'closed');
});

test('refundResult per status', (t) => {
  const base = { merchant_id: '880000000001', out_trade_no: 'P1', bank_trade_no: 'P2', out_refund_no: 'R1', bank_refund_no: 'R2', amount: 50, currency: 'CNY', created_at: '2025-03-14T09:26:53+08:00' };
  t.deepEqual(refundResult(parseWire(schemas.refund, { ...base, status: 'PROCESSING' }, 'refund')), { status: 'pending', channelRefundNo: 'R2' });
  t.is(refundResult(parseWire(schemas.refund, { ...base, status: 'SUCCESS', succeeded_at: '2025-03-14T09:27:00+08:00' }, 'refund')).succeededAt?.toISOString(), '2025-03-14T01:27:00.000Z');
  t.is(refundResult(parseWire(schemas.refund, { ...base, status: 'FAILED', failure_code: 'ACCOUNT_CLOSED' }, 'refund')).failure?.code, 'card_declined');
});

test('a malformed but signed body leaves the outcome unknown (mayExist=true)', (t) => {
  for (const bad of [{ ...wirePayment, status: 'WEIRD' }, { ...wirePayment, amount: '1.00' }, { ...wirePayment, out_trade_no: undefined }, null]) {
    const err = t.throws(() => parseWire(schemas.payment, bad, 'payment'), { instanceOf: ChannelError }) as ChannelError;
    t.true(err.mayExist);
  }
});

// ---- Notifications (pure, the vector key playing the bank) --------------------------------------------------------------

const verifier: NotificationVerifier = { merchantId: '880000000001', bankPublicKey: VECTOR_PUBLIC, names: NAMES, maxSkewS: 300, schemas };
const notification = (body: object) => {
  const raw = JSON.stringify(body);
  return { headers: bankSigned('NOTIFY', '-', raw), rawBody: Buffer.from(raw), query: {} };
};

test('parseBankNotification: payment, refund and unknown event types', (t) => {
  const paid = parseBankNotification(notification({ event_id: 'EV1', event_type: 'payment.success', created_at: 'x', data: { ...wirePayment, status: 'SUCCESS', paid_at: '2025-03-14T09:30:00+08:00' } }), verifier);
  t.like(paid, { kind: 'payment', channelOrderNo: 'P1', amount: 100, result: { status: 'succeeded', paidAmount: 100 } });
  const refund = parseBankNotification(notification({
    event_id: 'EV2', event_type: 'refund.failed',
    data: { merchant_id: '880000000001', out_trade_no: 'P1', bank_trade_no: 'P2', out_refund_no: 'R1', bank_refund_no: 'R2', amount: 50, currency: 'CNY', status: 'FAILED', failure_code: 'REFUND_REJECTED' },
  }), verifier);
  t.like(refund, { kind: 'refund', channelRefundNo: 'R1', channelOrderNo: 'P1', amount: 50, result: { status: 'failed' } });
  t.is(parseBankNotification(notification({ event_id: 'EV3', event_type: 'payment.disputed', data: {} }), verifier).kind, 'ignored');
  const foreign = t.throws(() => parseBankNotification(notification({ event_id: 'EV4', event_type: 'payment.success', data: { ...wirePayment, merchant_id: '1', status: 'SUCCESS' } }), verifier)) as ChannelError;
  t.is(foreign.code, 'signature_invalid');
  // A genuine notification replayed later than the window is refused.
  const replay = t.throws(() => parseBankNotification(notification({ event_id: 'EV1', event_type: 'payment.success', data: wirePayment }), verifier, Date.now() + 400_000)) as ChannelError;
  t.is(replay.code, 'signature_invalid');
  t.false(replay.mayExist);
});

test('acknowledgement is exactly 200 {"code":"SUCCESS"}', (t) => {
  t.deepEqual(acknowledgement(true), { status: 200, body: '{"code":"SUCCESS"}', contentType: 'application/json; charset=utf-8' });
  t.not(acknowledgement(false).status, 200);
});

// ---- Statement ----------------------------------------------------------------------------------------------------------

const HEADER = 'event_time,type,out_trade_no,bank_trade_no,out_refund_no,bank_refund_no,amount,fee,currency';

test('parseStatement: payments and refunds, amounts in fen, empty day', (t) => {
  const csv = `${HEADER}\n2025-03-14T09:30:00+08:00,PAYMENT,P1,P202503140000000001,,,12345,74,CNY\n2025-03-14T10:00:00+08:00,REFUND,P1,P202503140000000001,R1,R202503140000000001,5000,0,CNY\n`;
  const lines = parseStatement(csv, 'fen');
  t.is(lines.length, 2);
  t.like(lines[0], { kind: 'payment', channelOrderNo: 'P1', channelTradeNo: 'P202503140000000001', amount: 12345, fee: 74 });
  t.is(lines[0]!.channelRefundNo, undefined);
  t.is(lines[0]!.occurredAt.toISOString(), '2025-03-14T01:30:00.000Z');
  t.like(lines[1], { kind: 'refund', channelRefundNo: 'R1', amount: 5000, fee: 0 });
  t.is(lines[1]!.raw.bank_refund_no, 'R202503140000000001');
  t.deepEqual(parseStatement(`${HEADER}\n`, 'fen'), []);
  t.like(parseStatement(`${HEADER}\n2025-03-14T09:30:00+08:00,PAYMENT,P1,B1,,,123.45,0.74,CNY\n`, 'yuan')[0], { amount: 12345, fee: 74 });
});

test('parseStatement refuses what it cannot read instead of skipping it', (t) => {
  for (const csv of [
    'event_time,type\n',
    `${HEADER}\n2025-03-14T09:30:00+08:00,PAYMENT,P1,B1,,,12345,74\n`,
    `${HEADER}\n2025-03-14T09:30:00+08:00,CHARGEBACK,P1,B1,,,12345,74,CNY\n`,
    `${HEADER}\n2025-03-14T09:30:00+08:00,PAYMENT,P1,B1,,,12.5,74,CNY\n`,
    `${HEADER}\nyesterday,PAYMENT,P1,B1,,,12345,74,CNY\n`,
    `${HEADER}\n2025-03-14T09:30:00+08:00,REFUND,P1,B1,,,100,0,CNY\n`,
  ]) t.throws(() => parseStatement(csv, 'fen'), { instanceOf: ChannelError });
  t.true(isStatementDate('2024-02-29'));
  t.false(isStatementDate('2025-02-29'));
  t.false(isStatementDate('2025-3-14'));
});

// ---- Config ---------------------------------------------------------------------------------------------------------------

test('config: defaults are this protocol, base_url loses its trailing slash, unknown fields are refused', (t) => {
  const config = bankConfigSchema.parse({ merchant_id: '880000000001', merchant_private_key: 'keys/m.pem', bank_public_key: 'keys/b.pem', base_url: 'https://bank.example/' });
  t.like(config, { base_url: 'https://bank.example', header_prefix: 'X-Bank-', api_prefix: '/api/v1', amount_unit: 'fen', notify_max_skew_s: 300 });
  t.is(bankConfigSchema.parse({ merchant_id: '1', merchant_private_key: 'a', bank_public_key: 'b' }).base_url, 'https://openapi.bank.example');
  t.false(bankConfigSchema.safeParse({ merchant_id: '1', merchant_private_key: 'a', bank_public_key: 'b', merchant_key: 'x' }).success);
  t.false(bankConfigSchema.safeParse({ merchant_id: '1', merchant_private_key: 'a', bank_public_key: 'b', amount_unit: 'cents' }).success);
  t.deepEqual(plugin.manifest.payMethods, ['bank.b2c', 'bank.qr']);
  t.throws(() => plugin.sandbox!.accountConfig({ baseUrl: 'http://127.0.0.1:1', merchantId: '1', merchantPrivateKeyPath: '/a', bankPublicKeyPath: '/b' }, 'service_provider'));
});
