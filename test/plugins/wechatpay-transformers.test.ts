/** Table tests of the pure parts: status and error tables, signing strings, envelopes, bill parsing, config. */
import test from 'ava';
import { createCipheriv, createSecretKey, generateKeyPairSync, createSign, createVerify } from 'node:crypto';
import { ChannelError, MoneyFormatError, type CreatePaymentRequest } from '../../core/index.js';
import { wechatPayConfigSchema } from '../../plugins/wechatpay/config.js';
import { parseXml, toXml, v2Sign, v2SigningString, v2Verify } from '../../plugins/wechatpay/micropay.js';
import { acknowledge } from '../../plugins/wechatpay/notifications.js';
import { parseTradeBill, signedYuanToFen, verifyBillHash } from '../../plugins/wechatpay/statement.js';
import {
  actionFor, ERROR_TABLE, fromChinaCompact, mapErrorCode, micropayToResult, prepayBody, refundToResult, toChinaCompact, toChinaRfc3339,
  TRADE_STATE_STATUS, transactionToResult,
} from '../../plugins/wechatpay/transformers.js';
import {
  authorizationHeader, decryptResource, queryPath, requestSigningString, signedUrlPart, verifySignature,
} from '../../plugins/wechatpay/transport.js';
import { createHash } from 'node:crypto';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

test('trade_state → status', (t) => {
  const expected = { SUCCESS: 'succeeded', REFUND: 'succeeded', NOTPAY: 'pending', USERPAYING: 'pending', CLOSED: 'closed', REVOKED: 'closed', PAYERROR: 'failed' };
  t.deepEqual(TRADE_STATE_STATUS, expected);
  for (const [state, status] of Object.entries(expected)) t.is(String(transactionToResult({ trade_state: state }).status), status);
  const paid = transactionToResult({ trade_state: 'SUCCESS', transaction_id: '4200001', success_time: '2024-05-20T13:29:35+08:00', amount: { total: 88, payer_total: 80 } });
  t.deepEqual(paid, { status: 'succeeded', channelTradeNo: '4200001', paidAmount: 88, paidAt: new Date('2024-05-20T05:29:35Z') });
  t.like(transactionToResult({ trade_state: 'PAYERROR', trade_state_desc: '支付失败' }), { failure: { channelCode: 'PAYERROR', message: '支付失败' } });
  t.like(t.throws(() => transactionToResult({ trade_state: 'WEIRD' })), { code: 'unknown', mayExist: true });
});

test('refund status → result', (t) => {
  t.like(refundToResult({ status: 'SUCCESS', refund_id: '5030', success_time: '2024-05-20T13:29:35+08:00' }), { status: 'succeeded', channelRefundNo: '5030' });
  t.is(refundToResult({ status: 'PROCESSING' }).status, 'pending');
  t.like(refundToResult({ refund_status: 'ABNORMAL' }), { status: 'failed', failure: { code: 'card_declined', channelCode: 'ABNORMAL' } });
  t.like(refundToResult({ status: 'CLOSED' }), { status: 'failed', failure: { channelCode: 'CLOSED' } });
});

test('error codes → standard code + mayExist', (t) => {
  const rows: Array<[string, string, boolean]> = [
    ['PARAM_ERROR', 'invalid_request', false], ['INVALID_REQUEST', 'invalid_request', false], ['SIGN_ERROR', 'authentication_failed', false],
    ['NOAUTH', 'authentication_failed', false], ['NO_AUTH', 'authentication_failed', false], ['APPID_MCHID_NOT_MATCH', 'invalid_request', false],
    ['OUT_TRADE_NO_USED', 'duplicate_order', true], ['ORDERNOTEXIST', 'order_not_found', false], ['RESOURCE_NOT_EXISTS', 'order_not_found', false],
    ['ORDER_CLOSED', 'order_closed', true], ['ORDERPAID', 'order_paid', true], ['FREQUENCY_LIMITED', 'rate_limited', false],
    ['SYSTEMERROR', 'channel_unavailable', true], ['BANKERROR', 'channel_unavailable', true], ['NOTENOUGH', 'insufficient_balance', false],
  ];
  for (const [code, standard, mayExist] of rows) t.like(mapErrorCode(code, 400), { code: standard, mayExist }, code);
  t.true(ERROR_TABLE.FREQUENCY_LIMITED!.retryable);
  t.like(mapErrorCode('SOMETHING_NEW', 503), { code: 'channel_unavailable', mayExist: true });
  t.like(mapErrorCode('SOMETHING_NEW', 400), { code: 'unknown', mayExist: true });
});

test('micropay answers', (t) => {
  t.like(micropayToResult({ return_code: 'SUCCESS', result_code: 'SUCCESS', transaction_id: '42', total_fee: '101', time_end: '20240520132935' }),
    { status: 'succeeded', channelTradeNo: '42', paidAmount: 101, paidAt: new Date('2024-05-20T05:29:35Z') });
  t.is(micropayToResult({ return_code: 'SUCCESS', result_code: 'FAIL', err_code: 'USERPAYING' }).status, 'pending');
  t.like(micropayToResult({ return_code: 'SUCCESS', result_code: 'FAIL', err_code: 'NOTENOUGH', err_code_des: '余额不足' }), { status: 'failed', failure: { code: 'insufficient_balance', channelCode: 'NOTENOUGH' } });
  t.like(t.throws(() => micropayToResult({ result_code: 'FAIL', err_code: 'SYSTEMERROR' })), { code: 'channel_unavailable', mayExist: true });
  t.like(t.throws(() => micropayToResult({ result_code: 'FAIL', err_code: 'ORDERPAID' })), { code: 'order_paid', mayExist: true });
  t.like(t.throws(() => micropayToResult({ result_code: 'FAIL' })), { mayExist: true });
});

test('China time formats', (t) => {
  const d = new Date('2024-12-31T16:30:05.123Z');
  t.is(toChinaRfc3339(d), '2025-01-01T00:30:05+08:00');
  t.is(toChinaCompact(d), '20250101003005');
  t.deepEqual(fromChinaCompact('20250101003005'), new Date('2024-12-31T16:30:05Z'));
  t.is(fromChinaCompact('2025'), undefined);
});

test('APIv2 signature: the official example vector', (t) => {
  const fields = { appid: 'wxd930ea5d5a258f4f', mch_id: '10000100', device_info: '1000', body: 'test', nonce_str: 'ibuaiVcKdpRxkhJA', empty: '' };
  const key = '192006250b4c09247ec02edce69f6a2d';
  t.is(v2SigningString(fields, key), 'appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA&key=192006250b4c09247ec02edce69f6a2d');
  t.is(v2Sign(fields, key, 'MD5'), '9A0A8659F005D6984697E2CA0A9CF3B7');
  const hmac = v2Sign(fields, key, 'HMAC-SHA256');
  t.regex(hmac, /^[0-9A-F]{64}$/);
  t.true(v2Verify({ ...fields, sign: hmac }, key, 'HMAC-SHA256'));
  t.false(v2Verify({ ...fields, body: 'tampered', sign: hmac }, key, 'HMAC-SHA256'));
});

test('APIv2 XML round trip', (t) => {
  const xml = toXml({ a: 'x<y&z', b: 'has ]]> inside', skip: undefined });
  t.deepEqual(parseXml(xml), { a: 'x<y&z', b: 'has ]]> inside' });
  t.deepEqual(parseXml('<?xml version="1.0"?>\n<xml><return_code>SUCCESS</return_code><n>a&amp;b</n></xml>'), { return_code: 'SUCCESS', n: 'a&b' });
  t.is(parseXml('<html>502</html>'), null);
});

test('v3 request signing string and Authorization header', async (t) => {
  t.is(requestSigningString('GET', '/v3/certificates', '1624523846', 'A1B2C3D4E5F6G7', ''), 'GET\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\n\n');
  t.is(signedUrlPart('https://api.mch.weixin.qq.com/v3/pay/transactions/out-trade-no/A1?mchid=1900000001'), '/v3/pay/transactions/out-trade-no/A1?mchid=1900000001');
  t.is(queryPath(true, 'A1', '100', '109'), '/v3/pay/partner/transactions/out-trade-no/A1?sp_mchid=100&sub_mchid=109');
  const auth = await authorizationHeader({ mchid: '1900000001', serialNo: 'ABC', privateKey }, 'POST', '/v3/x', '{"a":1}', '1700000000', 'NONCE');
  const m = /^WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="NONCE",timestamp="1700000000",serial_no="ABC",signature="([^"]+)"$/.exec(auth);
  t.truthy(m);
  t.true(createVerify('RSA-SHA256').update(requestSigningString('POST', '/v3/x', '1700000000', 'NONCE', '{"a":1}')).verify(publicKey, m![1]!, 'base64'));
  const headers = { 'wechatpay-timestamp': '1700000000', 'wechatpay-nonce': 'NONCE', 'wechatpay-serial': 'S1', 'wechatpay-signature': createSign('RSA-SHA256').update('1700000000\nNONCE\nbody\n').sign(privateKey, 'base64') };
  const at = new Date(1_700_000_000_000);
  t.like(verifySignature(headers, 'body', (s) => (s === 'S1' ? publicKey : undefined), 300, at), { ok: true });
  t.like(verifySignature(headers, 'bodyX', () => publicKey, 300, at), { ok: false });
  t.like(verifySignature(headers, 'body', () => undefined, 300, at), { ok: false, unknownSerial: 'S1' });
  t.like(verifySignature(headers, 'body', () => publicKey, 300, new Date(at.getTime() + 301_000)), { ok: false });
  t.like(verifySignature({ ...headers, 'wechatpay-signature': 'WECHATPAY/SIGNTEST/abc' }, 'body', () => publicKey, 300, at), { ok: false, reason: 'WECHATPAY/SIGNTEST probe signature' });
  t.like(verifySignature({ ...headers, 'wechatpay-nonce': '' }, 'body', () => publicKey, 300, at), { ok: false });
});

test('AEAD_AES_256_GCM resource', (t) => {
  const keyText = '0123456789abcdef0123456789abcdef';
  const nonce = 'abcdef123456';
  const cipher = createCipheriv('aes-256-gcm', Buffer.from(keyText), Buffer.from(nonce));
  cipher.setAAD(Buffer.from('transaction'));
  const ct = Buffer.concat([cipher.update('{"ok":true}'), cipher.final(), cipher.getAuthTag()]).toString('base64');
  const key = createSecretKey(Buffer.from(keyText));
  t.is(decryptResource(key, { algorithm: 'AEAD_AES_256_GCM', ciphertext: ct, nonce, associated_data: 'transaction' }).toString(), '{"ok":true}');
  t.throws(() => decryptResource(key, { ciphertext: ct, nonce, associated_data: 'refund' }));
  t.throws(() => decryptResource(createSecretKey(Buffer.from('x'.repeat(32))), { ciphertext: ct, nonce, associated_data: 'transaction' }));
});

test('prepay bodies and client parameters', async (t) => {
  const req: CreatePaymentRequest = {
    createdAt: new Date(), paymentId: 'p', channelOrderNo: 'O1', amount: 1, currency: 'CNY', payMethod: 'wechat.jsapi', subject: '商'.repeat(200),
    expiresAt: new Date('2024-05-20T05:29:35Z'), notifyUrl: 'https://gw/notify/wx', payer: { openid: 'o1', client_ip: '1.2.3.4' },
  };
  const direct = prepayBody(req, 'jsapi', { partner: false, mchid: 'M', appid: 'A' });
  t.like(direct, { appid: 'A', mchid: 'M', out_trade_no: 'O1', time_expire: '2024-05-20T13:29:35+08:00', amount: { total: 1, currency: 'CNY' }, payer: { openid: 'o1' } });
  t.is([...(direct.description as string)].length, 127);
  const sp = prepayBody(req, 'jsapi', { partner: true, mchid: 'SP', appid: 'SA', subMchid: 'SUB' });
  t.like(sp, { sp_mchid: 'SP', sp_appid: 'SA', sub_mchid: 'SUB', payer: { sp_openid: 'o1' } });
  t.is(sp.mchid, undefined);
  t.like(prepayBody({ ...req, payMethod: 'wechat.h5' }, 'h5', { partner: false, mchid: 'M', appid: 'A' }), { scene_info: { payer_client_ip: '1.2.3.4', h5_info: { type: 'Wap' } } });
  t.like(t.throws(() => prepayBody(req, 'native', { partner: true, mchid: 'SP', appid: 'SA' })), { code: 'invalid_request', mayExist: false });
  t.like(t.throws(() => prepayBody({ ...req, currency: 'USD' }, 'native', { partner: false, mchid: 'M', appid: 'A' })), { code: 'not_supported', mayExist: false });

  const signer = { sign: async (m: string) => `SIG(${m})`, nonce: () => 'N', timestamp: () => '1700000000' };
  t.deepEqual(await actionFor('jsapi', { prepay_id: 'wx1' }, 'A', 'M', signer), {
    type: 'jsapi', params: { appId: 'A', timeStamp: '1700000000', nonceStr: 'N', package: 'prepay_id=wx1', signType: 'RSA', paySign: 'SIG(A\n1700000000\nN\nprepay_id=wx1\n)' },
  });
  t.deepEqual(await actionFor('app', { prepay_id: 'wx1' }, 'A', 'M', signer), {
    type: 'app', params: { appid: 'A', partnerid: 'M', prepayid: 'wx1', package: 'Sign=WXPay', noncestr: 'N', timestamp: '1700000000', sign: 'SIG(A\n1700000000\nN\nwx1\n)' },
  });
  t.deepEqual(await actionFor('native', { code_url: 'weixin://x' }, 'A', 'M', signer), { type: 'qr_code', qr_code: 'weixin://x' });
  t.deepEqual(await actionFor('h5', { h5_url: 'https://h5' }, 'A', 'M', signer), { type: 'redirect', url: 'https://h5' });
  t.like(await t.throwsAsync(actionFor('native', {}, 'A', 'M', signer)), { mayExist: true });
});

test('yuan edge cases in the bill', (t) => {
  t.is(signedYuanToFen('0.01'), 1);
  t.is(signedYuanToFen('100'), 10000);
  t.is(signedYuanToFen('1.5'), 150);
  t.is(signedYuanToFen('-0.06'), -6);
  t.is(signedYuanToFen(''), 0);
  t.is(signedYuanToFen('99999999.99'), 9999999999);
  t.throws(() => signedYuanToFen('1.234'), { instanceOf: MoneyFormatError });
  t.throws(() => signedYuanToFen('1e3'), { instanceOf: MoneyFormatError });
});

const BILL = '\uFEFF交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r\n'
  + '`2024-05-20 13:29:35,`wx1,`1900000001,`0,`,`4200001,`O1,`oX,`NATIVE,`SUCCESS,`OTHERS,`CNY,`100.01,`0.00,`0,`0,`0.00,`0.00,`,`,`t,`,`0.60,`0.60%,`100.01,`0.00,`\r\n'
  + '`2024-05-20 14:00:00,`wx1,`1900000001,`0,`,`4200001,`O1,`oX,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`5030001,`R1,`25.01,`0.00,`ORIGINAL,`SUCCESS,`t,`,`-0.15,`0.60%,`0.00,`25.01,`\r\n'
  + '总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n'
  + '`2,`100.01,`25.01,`0.00,`0.45,`100.01,`25.01\r\n';

test('trade bill parsing and hash check', (t) => {
  const lines = parseTradeBill(BILL);
  t.is(lines.length, 2);
  t.like(lines[0], { kind: 'payment', channelOrderNo: 'O1', channelTradeNo: '4200001', amount: 10001, fee: 60, occurredAt: new Date('2024-05-20T05:29:35Z') });
  t.like(lines[1], { kind: 'refund', channelOrderNo: 'O1', channelRefundNo: 'R1', amount: 2501, fee: -15 });
  t.is(lines[0]!.raw['交易状态'], 'SUCCESS');
  const file = Buffer.from(BILL);
  t.notThrows(() => verifyBillHash(file, { hash_type: 'SHA1', hash_value: createHash('sha1').update(file).digest('hex') }));
  t.like(t.throws(() => verifyBillHash(file, { hash_type: 'SHA1', hash_value: createHash('sha1').update('x').digest('hex') })), { code: 'signature_invalid' });
  t.like(t.throws(() => parseTradeBill('a,b,c\n1,2,3')), { code: 'unknown' });
});

test('acknowledge', (t) => {
  t.deepEqual(acknowledge(true), { status: 204 });
  const nack = acknowledge(false);
  t.is(nack.status, 500);
  t.is(nack.contentType, 'application/json');
  t.like(JSON.parse(nack.body!), { code: 'FAIL' });
});

test('config schema', (t) => {
  const base = { mchid: '1900000001', appid: 'wx1', private_key_path: 'k.pem', certificate_serial: 'ABCDEF', api_v3_key: 'k'.repeat(32) };
  const parsed = wechatPayConfigSchema.parse(base);
  t.like(parsed, { mode: 'direct', base_url: 'https://api.mch.weixin.qq.com', platform_certificates: 'fetch', max_clock_skew_seconds: 300, micropay_sign_type: 'HMAC-SHA256' });
  t.false(wechatPayConfigSchema.safeParse({ ...base, private_key_path: undefined }).success);
  t.false(wechatPayConfigSchema.safeParse({ ...base, api_v3_key: 'short' }).success);
  t.false(wechatPayConfigSchema.safeParse({ ...base, public_key_id: 'PUB_KEY_ID_1' }).success);
  t.false(wechatPayConfigSchema.safeParse({ ...base, platform_certificates: 'off' }).success);
  t.false(wechatPayConfigSchema.safeParse({ ...base, sub_mchid: '1900000109' }).success);
  t.true(wechatPayConfigSchema.safeParse({ ...base, platform_certificates: 'off', public_key_id: 'PUB_KEY_ID_1', public_key_path: 'pub.pem' }).success);
  t.true(wechatPayConfigSchema.safeParse({ ...base, mode: 'service_provider', sub_mchid: '1900000109' }).success);
});

test('ChannelError is what the tables produce', (t) => {
  t.true(t.throws(() => micropayToResult({ err_code: 'SYSTEMERROR' })) instanceof ChannelError);
});
