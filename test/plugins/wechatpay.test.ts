/** End-to-end: the WeChat Pay plugin (direct merchant, platform certificates) against the real simulator. */
import test from 'ava';
import { createPublicKey, createSign, createVerify, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ChannelError, type ChannelAccount, type CreatePaymentRequest, type PaymentReference } from '../../core/index.js';
import { chinaToday, orderNo, startHarness, type Harness } from './wechatpay.helpers.js';

let h: Harness;
let account: ChannelAccount;

test.before(async () => {
  h = await startHarness();
  account = await h.account();
});
test.after.always(async () => { await h?.close(); });

function request(payMethod: string, no: string, amount: number, path: string, payer: CreatePaymentRequest['payer'] = {}): CreatePaymentRequest {
  return {
    createdAt: new Date(), paymentId: `pay_${no}`, channelOrderNo: no, amount, currency: 'CNY', payMethod, subject: `test ${payMethod}`,
    expiresAt: new Date(Date.now() + 15 * 60_000), notifyUrl: `${h.receiver.url}${path}`, payer,
  };
}

function ref(req: CreatePaymentRequest): PaymentReference {
  return { channelOrderNo: req.channelOrderNo, amount: req.amount, currency: 'CNY', payMethod: req.payMethod, createdAt: new Date() };
}

/** Checks a client pay signature with the merchant certificate's public key. */
function merchantVerifies(message: string, signature: string): boolean {
  const creds = h.sim.credentials as unknown as { direct: { merchantCertificatePath: string } };
  const key = createPublicKey(readFileSync(creds.direct.merchantCertificatePath));
  return createVerify('RSA-SHA256').update(message).verify(key, signature, 'base64');
}

const PAYERS: Record<string, CreatePaymentRequest['payer']> = {
  'wechat.native': {},
  'wechat.jsapi': { openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' },
  'wechat.app': {},
  'wechat.h5': { client_ip: '203.0.113.7' },
};

for (const [method, payer] of Object.entries(PAYERS)) {
  test.serial(`${method}: create → pay → notification → query → refund → refund notification → query`, async (t) => {
    const path = `/notify/${method}`;
    const req = request(method, orderNo('P'), 1234, path, payer);
    const created = await account.createPayment(req);
    t.is(created.status, 'pending');
    const action = created.action!;
    if (method === 'wechat.native') {
      t.is(action.type, 'qr_code');
      t.regex((action as { qr_code: string }).qr_code, /^weixin:\/\/wxpay\/bizpayurl\?pr=/);
    } else if (method === 'wechat.h5') {
      t.is(action.type, 'redirect');
      t.regex((action as { url: string }).url, /\/cgi-bin\/mmpayweb-bin\/checkmweb\?prepay_id=/);
    } else if (method === 'wechat.jsapi') {
      t.is(action.type, 'jsapi');
      const p = (action as { params: Record<string, string> }).params;
      t.is(p.appId, 'wx8888888888888888');
      t.is(p.signType, 'RSA');
      t.regex(p.package!, /^prepay_id=.+/);
      t.true(merchantVerifies(`${p.appId}\n${p.timeStamp}\n${p.nonceStr}\n${p.package}\n`, p.paySign!));
    } else {
      t.is(action.type, 'app');
      const p = (action as { params: Record<string, string> }).params;
      t.is(p.partnerid, '1900000001');
      t.is(p.package, 'Sign=WXPay');
      t.true(merchantVerifies(`${p.appid}\n${p.timestamp}\n${p.noncestr}\n${p.prepayid}\n`, p.sign!));
    }
    t.is((await account.queryPayment(ref(req))).status, 'pending');

    await account.simulatePayer!(ref(req), 'pay');
    const { parsed } = await h.receiver.waitFor(account, path, (n) => n.kind === 'payment' && n.channelOrderNo === req.channelOrderNo);
    t.like(parsed, { kind: 'payment', amount: 1234, result: { status: 'succeeded', paidAmount: 1234 } });
    t.truthy(parsed.kind === 'payment' && parsed.result.channelTradeNo);

    const queried = await account.queryPayment(ref(req));
    t.is(queried.status, 'succeeded');
    t.is(queried.paidAmount, 1234);
    t.true(queried.paidAt instanceof Date);

    const refundNo = orderNo('R');
    const refund = await account.refund({ createdAt: new Date(), refundId: `re_${refundNo}`, channelRefundNo: refundNo, payment: ref(req), amount: 234, notifyUrl: `${h.receiver.url}${path}`, reason: 'test' });
    t.true(refund.status === 'pending' || refund.status === 'succeeded');
    const refundNote = await h.receiver.waitFor(account, path, (n) => n.kind === 'refund' && n.channelRefundNo === refundNo);
    t.like(refundNote.parsed, { kind: 'refund', channelRefundNo: refundNo, channelOrderNo: req.channelOrderNo, amount: 234, result: { status: 'succeeded' } });
    const refundQuery = await account.queryRefund({ createdAt: new Date(), channelRefundNo: refundNo, payment: ref(req), amount: 234 });
    t.is(refundQuery.status, 'succeeded');
    t.true(refundQuery.succeededAt instanceof Date);
    // REFUND state still means "was paid".
    t.is((await account.queryPayment(ref(req))).status, 'succeeded');
  });
}

test.serial('wechat.micropay: 134… succeeds at once; other codes are USERPAYING until paid', async (t) => {
  const now = await account.createPayment(request('wechat.micropay', orderNo('M'), 500, '/notify/mp', { auth_code: '134567890123456789', client_ip: '10.0.0.2' }));
  t.is(now.status, 'succeeded');
  t.is(now.paidAmount, 500);
  t.truthy(now.channelTradeNo);
  t.true(now.paidAt instanceof Date);

  const req = request('wechat.micropay', orderNo('M'), 777, '/notify/mp', { auth_code: '130000000000000001', client_ip: '10.0.0.2' });
  const waiting = await account.createPayment(req);
  t.is(waiting.status, 'pending');
  t.is((await account.queryPayment(ref(req))).status, 'pending');
  await account.simulatePayer!(ref(req), 'pay');
  const paid = await account.queryPayment(ref(req));
  t.is(paid.status, 'succeeded');
  t.is(paid.paidAmount, 777);

  const bad = await account.createPayment(request('wechat.micropay', orderNo('M'), 100, '/notify/mp', { auth_code: '990000000000000000', client_ip: '10.0.0.2' }));
  t.is(bad.status, 'failed');
  t.is(bad.failure?.channelCode, 'AUTH_CODE_INVALID');

  const failing = request('wechat.micropay', orderNo('M'), 300, '/notify/mp', { auth_code: '120000000000000002', client_ip: '10.0.0.2' });
  t.is((await account.createPayment(failing)).status, 'pending');
  await account.simulatePayer!(ref(failing), 'fail');
  t.like(await account.queryPayment(ref(failing)), { status: 'failed', failure: { channelCode: 'PAYERROR' } });
});

test.serial('missing payer data is rejected before anything is sent', async (t) => {
  for (const [method, payer] of [['wechat.jsapi', {}], ['wechat.h5', {}], ['wechat.micropay', { client_ip: '1.2.3.4' }]] as const) {
    const err = await t.throwsAsync(account.createPayment(request(method, orderNo('X'), 100, '/n', payer)), { instanceOf: ChannelError });
    t.like(err, { code: 'invalid_request', mayExist: false });
  }
  const err = await t.throwsAsync(account.createPayment(request('wechat.unknown', orderNo('X'), 100, '/n')), { instanceOf: ChannelError });
  t.like(err, { code: 'not_supported', mayExist: false });
});

test.serial('close: unpaid → 204 then CLOSED; paid → order_paid; unknown → order_not_found', async (t) => {
  const req = request('wechat.native', orderNo('C'), 100, '/notify/close');
  await account.createPayment(req);
  await account.closePayment(ref(req));
  t.is((await account.queryPayment(ref(req))).status, 'closed');
  const reopen = await t.throwsAsync(account.createPayment(req), { instanceOf: ChannelError });
  t.like(reopen, { code: 'order_closed', mayExist: true, channelCode: 'ORDER_CLOSED' });

  const paid = request('wechat.native', orderNo('C'), 100, '/notify/close');
  await account.createPayment(paid);
  await account.simulatePayer!(ref(paid), 'pay');
  t.like(await t.throwsAsync(account.closePayment(ref(paid)), { instanceOf: ChannelError }), { code: 'order_paid', mayExist: true });

  const ghost = { ...ref(paid), channelOrderNo: orderNo('G') };
  t.like(await t.throwsAsync(account.queryPayment(ghost), { instanceOf: ChannelError }), { code: 'order_not_found', mayExist: false, channelCode: 'ORDERNOTEXIST' });
});

test.serial('duplicate order number with a different body → duplicate_order (mayExist true)', async (t) => {
  const req = request('wechat.native', orderNo('D'), 100, '/notify/dup');
  const first = await account.createPayment(req);
  const again = await account.createPayment(req);
  t.deepEqual(again.action, first.action);
  const err = await t.throwsAsync(account.createPayment({ ...req, amount: 200 }), { instanceOf: ChannelError });
  t.like(err, { code: 'duplicate_order', mayExist: true, channelCode: 'OUT_TRADE_NO_USED' });
});

test.serial('refund errors: over-refund → invalid_request (not created); unknown refund → order_not_found', async (t) => {
  const req = request('wechat.native', orderNo('E'), 100, '/notify/re');
  await account.createPayment(req);
  await account.simulatePayer!(ref(req), 'pay');
  const over = await t.throwsAsync(account.refund({ createdAt: new Date(), refundId: 'x', channelRefundNo: orderNo('R'), payment: ref(req), amount: 101, notifyUrl: `${h.receiver.url}/notify/re` }), { instanceOf: ChannelError });
  t.like(over, { code: 'invalid_request', mayExist: false, channelCode: 'INVALID_REQUEST' });
  const missing = await t.throwsAsync(account.queryRefund({ createdAt: new Date(), channelRefundNo: orderNo('R'), payment: ref(req), amount: 1 }), { instanceOf: ChannelError });
  t.like(missing, { code: 'order_not_found', channelCode: 'RESOURCE_NOT_EXISTS' });
});

test.serial('forged, tampered and probe notifications are rejected', async (t) => {
  const path = '/notify/forged';
  const req = request('wechat.native', orderNo('F'), 4321, path);
  await account.createPayment(req);
  await account.simulatePayer!(ref(req), 'pay');
  const { raw } = await h.receiver.waitFor(account, path, (n) => n.kind === 'payment' && n.channelOrderNo === req.channelOrderNo);

  // Tampered body, genuine headers.
  const body = JSON.parse(raw.rawBody.toString('utf8')) as { resource: { ciphertext: string } };
  const tamperedBody = Buffer.from(JSON.stringify({ ...body, summary: 'changed' }));
  t.like(await t.throwsAsync(account.parseNotification({ ...raw, rawBody: tamperedBody }), { instanceOf: ChannelError }), { code: 'signature_invalid', mayExist: false });

  // Forged: signed by a key that is not WeChat's, claiming the platform serial.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ts = String(Math.floor(Date.now() / 1000));
  const nonce = 'FORGEDNONCE';
  const forgedSig = createSign('RSA-SHA256').update(`${ts}\n${nonce}\n${raw.rawBody.toString('utf8')}\n`).sign(privateKey, 'base64');
  const forgedHeaders = { ...raw.headers, 'wechatpay-timestamp': ts, 'wechatpay-nonce': nonce, 'wechatpay-signature': forgedSig };
  t.like(await t.throwsAsync(account.parseNotification({ ...raw, headers: forgedHeaders }), { instanceOf: ChannelError }), { code: 'signature_invalid', mayExist: false });

  // Replayed after more than 5 minutes.
  const stale = { ...raw.headers, 'wechatpay-timestamp': String(Math.floor(Date.now() / 1000) - 301) };
  t.like(await t.throwsAsync(account.parseNotification({ ...raw, headers: stale }), { instanceOf: ChannelError }), { code: 'signature_invalid' });

  // Missing headers.
  t.like(await t.throwsAsync(account.parseNotification({ ...raw, headers: { 'content-type': 'application/json' } }), { instanceOf: ChannelError }), { code: 'signature_invalid' });

  // Genuine envelope signature but a resource encrypted with another key: GCM fails.
  const reEncrypted = { ...body, resource: { ...body.resource, ciphertext: Buffer.from('x'.repeat(40)).toString('base64') } };
  t.like(await t.throwsAsync(account.parseNotification({ ...raw, rawBody: Buffer.from(JSON.stringify(reEncrypted)) }), { instanceOf: ChannelError }), { code: 'signature_invalid' });

  // WeChat's probe (WECHATPAY/SIGNTEST/…).
  const probePath = '/notify/probe';
  const probe = await h.simApi('POST', '/__sim/probe', { url: `${h.receiver.url}${probePath}` });
  t.is(probe.status, 202);
  const captured = await h.receiver.waitForRaw(probePath);
  t.regex(String(captured.headers['wechatpay-signature']), /^WECHATPAY\/SIGNTEST\//);
  t.like(await t.throwsAsync(account.parseNotification(captured), { instanceOf: ChannelError }), { code: 'signature_invalid', mayExist: false });
});

test.serial('acknowledge: 204 empty, or 500 with {"code":"FAIL"}', (t) => {
  t.deepEqual(account.acknowledge(true), { status: 204 });
  const nack = account.acknowledge(false);
  t.is(nack.status, 500);
  t.is((JSON.parse(nack.body!) as { code: string }).code, 'FAIL');
});

test.serial('statement: today\'s trade bill, hash checked, payments and refunds in fen', async (t) => {
  const req = request('wechat.native', orderNo('S'), 10001, '/notify/stmt');
  await account.createPayment(req);
  await account.simulatePayer!(ref(req), 'pay');
  const refundNo = orderNo('R');
  await account.refund({ createdAt: new Date(), refundId: 'r', channelRefundNo: refundNo, payment: ref(req), amount: 2501, notifyUrl: `${h.receiver.url}/notify/stmt` });
  await h.receiver.waitFor(account, '/notify/stmt', (n) => n.kind === 'refund' && n.channelRefundNo === refundNo);
  const lines = await account.downloadStatement!(chinaToday());
  const pay = lines.find((l) => l.kind === 'payment' && l.channelOrderNo === req.channelOrderNo);
  t.truthy(pay);
  t.is(pay!.amount, 10001);
  t.is(pay!.fee, 60); // 0.60 % of 100.01 yuan, rounded to the fen
  t.truthy(pay!.channelTradeNo);
  const ref_ = lines.find((l) => l.kind === 'refund' && l.channelRefundNo === refundNo);
  t.truthy(ref_);
  t.is(ref_!.amount, 2501);
  t.true(ref_!.fee <= 0);
  t.is(ref_!.channelOrderNo, req.channelOrderNo);

  const future = new Date(Date.now() + 3 * 86400_000 + 8 * 3600_000).toISOString().slice(0, 10);
  t.like(await t.throwsAsync(account.downloadStatement!(future), { instanceOf: ChannelError }), { channelCode: 'NO_STATEMENT_EXIST', mayExist: false });
});

test.serial('health reports the loaded platform certificate; simulatePayer refuses outside the sandbox', async (t) => {
  const health = await account.health();
  t.true(health.ok);
  t.regex(health.detail!, /1 platform certificate/);
  const live = await h.account(undefined, { sandbox: false });
  const err = await t.throwsAsync(live.simulatePayer!({ channelOrderNo: 'x', amount: 1, currency: 'CNY', payMethod: 'wechat.native', createdAt: new Date() }, 'pay'), { instanceOf: ChannelError });
  t.like(err, { code: 'not_supported', mayExist: false });
});
