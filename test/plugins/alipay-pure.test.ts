import test from 'ava';
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createSign, generateKeyPairSync } from 'node:crypto';
import { ChannelError, type CreatePaymentRequest, type StandardChannelCode } from '../../core/index.js';
import {
  chinaTime, parseChinaTime, signContent, topLevelMembers, parseGatewayResponse, parseForm, encodeParams, signedParams, rsa2Verify, responseKey,
} from '../../plugins/alipay/transport.js';
import {
  TRADE_STATUS, mapError, toYuan, fromYuan, fromSignedYuan, paymentBizContent, queryResult, barcodePayResult, refundResult, refundQueryResult,
  closeError, PAY_METHOD_NAMES,
} from '../../plugins/alipay/transformers.js';
import { interpretNotification, isRefundNotification, acknowledge, verifyNotification } from '../../plugins/alipay/notifications.js';
import { parseDetailCsv, splitCsvLine } from '../../plugins/alipay/statement.js';
import { loadKeys } from '../../plugins/alipay/keys.js';
import { accountConfig } from '../../plugins/alipay/sandbox.js';
import { alipayConfigSchema, DEFAULT_GATEWAY_URL } from '../../plugins/alipay/config.js';
import plugin from '../../plugins/alipay/index.js';

const alipay = generateKeyPairSync('rsa', { modulusLength: 2048 });
const app = generateKeyPairSync('rsa', { modulusLength: 2048 });

// ---------- amounts ----------

test('yuan ↔ fen edge cases', (t) => {
  const cases: Array<[number, string]> = [[1, '0.01'], [10, '0.10'], [110, '1.10'], [100, '1.00'], [8888, '88.88'], [10_000_000_000, '100000000.00']];
  for (const [fen, yuan] of cases) {
    t.is(toYuan(fen), yuan);
    t.is(fromYuan(yuan, 'x'), fen);
  }
  t.is(fromYuan('1.1', 'x'), 110);
  t.is(fromYuan('1', 'x'), 100);
  t.is(fromYuan(88.8, 'x'), 8880); // a JSON number
  t.is(fromYuan(undefined, 'x'), undefined);
  t.is(fromYuan('', 'x'), undefined);
  for (const bad of ['1.001', '-1.00', '1e3', 'abc', '01.00', ' ', '1,00', '.5']) {
    const e = t.throws(() => fromYuan(bad, 'total_amount'), { instanceOf: ChannelError }, bad);
    t.true(e!.mayExist, bad);
  }
  t.throws(() => toYuan(1.5), { instanceOf: ChannelError });
  t.throws(() => toYuan(-1), { instanceOf: ChannelError });
  t.is(fromSignedYuan('-1.00', 'x'), 100);
  t.is(fromSignedYuan('0.00', 'x'), 0);
  t.is(fromSignedYuan('', 'x'), 0);
});

// ---------- time ----------

test('China time is UTC+8 whatever the host TZ', (t) => {
  const at = new Date('2024-12-31T16:30:05.123Z');
  t.is(chinaTime(at), '2025-01-01 00:30:05');
  t.is(parseChinaTime('2025-01-01 00:30:05')!.toISOString(), '2024-12-31T16:30:05.000Z');
  t.is(parseChinaTime('2025-01-01 00:30:05.120')!.toISOString(), '2024-12-31T16:30:05.120Z');
  t.is(parseChinaTime('2025/01/01'), undefined);
  t.is(parseChinaTime(undefined), undefined);
});

// ---------- signing ----------

test('sign content: sorted, sign dropped, empty values dropped, raw values', (t) => {
  const params = { b: '2', a: 'x y&z=中', sign: 'S', sign_type: 'RSA2', empty: '', c: undefined };
  t.is(signContent(params), 'a=x y&z=中&b=2&sign_type=RSA2');
  t.is(signContent(params, ['sign', 'sign_type']), 'a=x y&z=中&b=2');
});

test('signed request params: common fields, RSA2 over the sign content, verifiable with the app public key', async (t) => {
  const now = new Date('2025-03-01T00:00:00Z');
  const p = await signedParams({ appId: '2021000000000001', method: 'alipay.trade.query', bizContent: { out_trade_no: 'A1' }, now, appAuthToken: 'tok', notifyUrl: 'https://n/x' }, app.privateKey);
  t.like(p, { app_id: '2021000000000001', method: 'alipay.trade.query', format: 'JSON', charset: 'utf-8', sign_type: 'RSA2', version: '1.0', timestamp: '2025-03-01 08:00:00', app_auth_token: 'tok', notify_url: 'https://n/x', biz_content: '{"out_trade_no":"A1"}' });
  t.true(rsa2Verify(signContent(p), p.sign!, app.publicKey));
  t.false(rsa2Verify(signContent({ ...p, biz_content: '{"out_trade_no":"A2"}' }), p.sign!, app.publicKey));
  // The encoded form decodes back to exactly the signed values.
  const round = Object.fromEntries(new URLSearchParams(encodeParams(p)));
  t.deepEqual(round, p);
});

// ---------- responses ----------

test('topLevelMembers cuts exact member source text', (t) => {
  const raw = '{"x_response":{"code":"10000","msg":"a\\"}{,","qr":"https:\\/\\/q","n":[1,{"b":"}"}]},"sign":"abc"}';
  const m = topLevelMembers(raw)!;
  t.is(m.get('x_response'), '{"code":"10000","msg":"a\\"}{,","qr":"https:\\/\\/q","n":[1,{"b":"}"}]}');
  t.is(m.get('sign'), '"abc"');
  t.is(topLevelMembers('  { "a" : 1 , "b" : true }\n')!.get('b'), 'true');
  t.is(topLevelMembers('<html>'), null);
  t.is(topLevelMembers('{"a":'), null);
  t.is(responseKey('alipay.trade.fastpay.refund.query'), 'alipay_trade_fastpay_refund_query_response');
});

function signedResponse(method: string, inner: string, key = alipay.privateKey) {
  const sign = createSign('RSA-SHA256').update(inner).sign(key, 'base64');
  return `{"${responseKey(method)}":${inner},"sign":"${sign}"}`;
}

test('response verification over the exact bytes, escaped slashes and all', (t) => {
  const inner = '{"code":"10000","msg":"Success","out_trade_no":"A1","qr_code":"https:\\/\\/qr.alipay.com\\/x","subject":"中文"}';
  const ok = parseGatewayResponse(signedResponse('alipay.trade.precreate', inner), 'alipay.trade.precreate', alipay.publicKey);
  t.true(ok.signed);
  t.is(ok.code, '10000');
  t.is(ok.body.qr_code, 'https://qr.alipay.com/x');

  // Re-serializing would drop the escaped slashes (and so break the signature); the cut bytes kept them.
  t.not(JSON.stringify(JSON.parse(inner)), inner);

  const forged = signedResponse('alipay.trade.precreate', inner, app.privateKey);
  const e = t.throws(() => parseGatewayResponse(forged, 'alipay.trade.precreate', alipay.publicKey), { instanceOf: ChannelError })!;
  t.is(e.code, 'signature_invalid');
  t.true(e.mayExist);

  const tampered = signedResponse('alipay.trade.precreate', inner).replace('A1', 'A2');
  t.is(t.throws(() => parseGatewayResponse(tampered, 'alipay.trade.precreate', alipay.publicKey), { instanceOf: ChannelError })!.code, 'signature_invalid');

  const err = parseGatewayResponse('{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}}', 'alipay.trade.query', alipay.publicKey);
  t.false(err.signed);
  t.is(err.subCode, 'isv.invalid-app-id');

  for (const junk of ['', 'not json', '{"other_response":{}}', '<html>502</html>']) {
    const j = t.throws(() => parseGatewayResponse(junk, 'alipay.trade.query', alipay.publicKey), { instanceOf: ChannelError })!;
    t.true(j.mayExist, junk);
  }
});

// ---------- status and error tables ----------

test('trade status table', (t) => {
  t.deepEqual({ ...TRADE_STATUS }, { WAIT_BUYER_PAY: 'pending', TRADE_SUCCESS: 'succeeded', TRADE_FINISHED: 'succeeded', TRADE_CLOSED: 'closed' });
  const paid = queryResult({ code: '10000', trade_status: 'TRADE_SUCCESS', trade_no: 'T1', total_amount: '88.88', send_pay_date: '2025-01-01 08:00:00' });
  t.like(paid, { status: 'succeeded', channelTradeNo: 'T1', paidAmount: 8888 });
  t.is(paid.paidAt!.toISOString(), '2025-01-01T00:00:00.000Z');
  t.is(queryResult({ trade_status: 'WAIT_BUYER_PAY', total_amount: '1.00' }).paidAmount, undefined);
  t.is(queryResult({ trade_status: 'TRADE_CLOSED' }).status, 'closed');
  t.is(t.throws(() => queryResult({ trade_status: 'WHAT' }), { instanceOf: ChannelError })!.mayExist, true);
});

test('error table: code/sub_code → standard code and mayExist', (t) => {
  const rows: Array<[string, string | undefined, StandardChannelCode, boolean, boolean]> = [
    // code, sub_code, standard, mayExist, decline
    ['20000', 'isp.unknow-error', 'channel_unavailable', true, false],
    ['20001', 'aop.invalid-app-auth-token', 'authentication_failed', false, false],
    ['40001', 'isv.missing-method', 'invalid_request', false, false],
    ['40002', 'isv.invalid-signature', 'signature_invalid', false, false],
    ['40002', 'isv.invalid-app-id', 'authentication_failed', false, false],
    ['40002', 'isv.invalid-timestamp', 'invalid_request', false, false],
    ['40006', 'isv.insufficient-isv-permissions', 'authentication_failed', false, false],
    ['40004', 'ACQ.SYSTEM_ERROR', 'channel_unavailable', true, false],
    ['40004', 'ACQ.INVALID_PARAMETER', 'invalid_request', false, false],
    ['40004', 'ACQ.TRADE_NOT_EXIST', 'order_not_found', false, false],
    ['40004', 'ACQ.TRADE_HAS_SUCCESS', 'order_paid', true, false],
    ['40004', 'ACQ.TRADE_HAS_CLOSE', 'order_closed', true, false],
    ['40004', 'ACQ.CONTEXT_INCONSISTENT', 'duplicate_order', true, false],
    ['40004', 'ACQ.PAYMENT_AUTH_CODE_INVALID', 'payer_action_required', false, true],
    ['40004', 'ACQ.BUYER_BALANCE_NOT_ENOUGH', 'insufficient_balance', false, true],
    ['40004', 'ACQ.REFUND_AMT_NOT_EQUAL_TOTAL', 'refund_exceeds_amount', false, true],
    ['40004', 'ACQ.DISCORDANT_REPEAT_REQUEST', 'invalid_request', true, false],
    ['40004', 'ACQ.SOMETHING_NEW', 'unknown', true, false],
    ['99999', undefined, 'unknown', true, false],
  ];
  for (const [code, subCode, standard, mayExist, decline] of rows) {
    const m = mapError({ code, msg: 'm', subCode, subMsg: 's' });
    t.is(m.code, standard, `${code} ${subCode}`);
    t.is(m.mayExist, mayExist, `${code} ${subCode}`);
    t.is(m.decline, decline, `${code} ${subCode}`);
    t.is(m.channelCode, subCode ? `${code}/${subCode}` : code);
  }
  const close = (sub: string) => closeError(mapError({ code: '40004', msg: 'Business Failed', subCode: sub })).code;
  t.is(close('ACQ.TRADE_STATUS_ERROR'), 'order_paid');
  t.is(close('ACQ.TRADE_HAS_SUCCESS'), 'order_paid');
  t.is(close('ACQ.TRADE_NOT_EXIST'), 'order_not_found');
  t.is(close('ACQ.TRADE_HAS_CLOSE'), 'order_closed');
});

test('barcode, refund and refund-query result mapping', (t) => {
  const base = { msg: '', signed: true };
  t.like(barcodePayResult({ ...base, code: '10000', body: { trade_no: 'T', total_amount: '5.00', gmt_payment: '2025-01-01 08:00:00' } }), { status: 'succeeded', paidAmount: 500, channelTradeNo: 'T' });
  t.like(barcodePayResult({ ...base, code: '10003', body: { trade_no: 'T' } }), { status: 'pending', channelTradeNo: 'T' });
  t.like(barcodePayResult({ ...base, code: '40004', subCode: 'ACQ.BUYER_BALANCE_NOT_ENOUGH', body: {} }), { status: 'failed', failure: { code: 'insufficient_balance' } });
  const sysErr = t.throws(() => barcodePayResult({ ...base, code: '20000', body: {} }), { instanceOf: ChannelError })!;
  t.true(sysErr.mayExist);
  t.is(t.throws(() => barcodePayResult({ ...base, code: '40004', subCode: 'ACQ.SYSTEM_ERROR', body: {} }), { instanceOf: ChannelError })!.mayExist, true);

  t.like(refundResult({ fund_change: 'Y', gmt_refund_pay: '2025-01-01 08:00:00' }, 'R'), { status: 'succeeded', channelRefundNo: 'R' });
  t.is(refundResult({ fund_change: 'N' }, 'R'), 'query');
  t.is(refundQueryResult({ refund_status: 'REFUND_SUCCESS', refund_amount: '1.00' }, 'R').status, 'succeeded');
  t.is(refundQueryResult({ refund_amount: '1.00' }, 'R').status, 'pending');
});

const createReq = (over: Partial<CreatePaymentRequest> = {}): CreatePaymentRequest => ({
  createdAt: new Date(), paymentId: 'p', channelOrderNo: 'ORD1', amount: 110, currency: 'CNY', payMethod: 'alipay.qr', subject: 's',
  expiresAt: new Date('2025-01-01T00:15:00Z'), notifyUrl: 'n', payer: {}, ...over,
});

test('payment biz_content per pay method, validated before any call', (t) => {
  t.deepEqual(paymentBizContent(createReq()), { out_trade_no: 'ORD1', total_amount: '1.10', subject: 's', product_code: 'FACE_TO_FACE_PAYMENT', time_expire: '2025-01-01 08:15:00' });
  t.like(paymentBizContent(createReq({ payMethod: 'alipay.page' }), { sellerId: '2088000000000001' }), { product_code: 'FAST_INSTANT_TRADE_PAY', seller_id: '2088000000000001' });
  t.like(paymentBizContent(createReq({ payMethod: 'alipay.wap', returnUrl: 'https://r' })), { product_code: 'QUICK_WAP_WAY', quit_url: 'https://r' });
  t.like(paymentBizContent(createReq({ payMethod: 'alipay.barcode', payer: { auth_code: '28123' } })), { scene: 'bar_code', auth_code: '28123' });
  t.like(paymentBizContent(createReq({ amount: 10_000_000_000 })), { total_amount: '100000000.00' });
  for (const bad of [
    createReq({ payMethod: 'alipay.barcode' }), createReq({ currency: 'USD' }), createReq({ amount: 0 }), createReq({ amount: 10_000_000_001 }),
    createReq({ payMethod: 'wechat.native' }), createReq({ amount: 1.5 }),
  ]) {
    const e = t.throws(() => paymentBizContent(bad), { instanceOf: ChannelError })!;
    t.false(e.mayExist);
  }
  t.deepEqual(PAY_METHOD_NAMES, ['alipay.qr', 'alipay.page', 'alipay.wap', 'alipay.app', 'alipay.barcode']);
});

// ---------- notifications ----------

const id = { appId: '2021000000000001', sellerId: '2088000000000001' };
const paid = {
  notify_type: 'trade_status_sync', app_id: id.appId, auth_app_id: id.appId, seller_id: id.sellerId, out_trade_no: 'ORD1', trade_no: 'T1',
  trade_status: 'TRADE_SUCCESS', total_amount: '12.34', gmt_payment: '2025-01-01 08:00:00',
};

test('notification interpretation: payment, partial refund, full refund, close', (t) => {
  t.like(interpretNotification(paid, id), { kind: 'payment', channelOrderNo: 'ORD1', amount: 1234, result: { status: 'succeeded', paidAmount: 1234, channelTradeNo: 'T1' } });
  t.like(interpretNotification({ ...paid, trade_status: 'TRADE_FINISHED' }, id), { kind: 'payment', result: { status: 'succeeded' } });
  t.like(interpretNotification({ ...paid, refund_fee: '0.00' }, id), { kind: 'payment' }); // a zero refund_fee is no refund
  const partial = interpretNotification({ ...paid, refund_fee: '2.00', out_biz_no: 'R1', gmt_refund: '2025-01-01 09:00:00.123' }, id);
  t.like(partial, { kind: 'refund', channelRefundNo: 'R1', channelOrderNo: 'ORD1', result: { status: 'succeeded' } });
  t.is((partial as { amount?: number }).amount, undefined); // refund_fee is cumulative, not this refund's amount
  t.like(interpretNotification({ ...paid, trade_status: 'TRADE_CLOSED', refund_fee: '12.34', out_biz_no: 'R2', gmt_refund: '2025-01-01 09:00:00', gmt_close: '2025-01-01 09:00:00' }, id), { kind: 'refund', channelRefundNo: 'R2' });
  t.like(interpretNotification({ ...paid, trade_status: 'TRADE_CLOSED', gmt_close: '2025-01-01 09:00:00' }, id), { kind: 'payment', amount: 1234, result: { status: 'closed' } });
  t.is(interpretNotification({ ...paid, trade_status: 'WAIT_BUYER_PAY' }, id).kind, 'ignored');
  t.is(interpretNotification({ ...paid, notify_type: 'other' }, id).kind, 'ignored');
  t.is(interpretNotification({ ...paid, refund_fee: '1.00' }, id).kind, 'ignored'); // refund without out_biz_no cannot be matched
  t.true(isRefundNotification({ gmt_refund: 'x' }));
  t.false(isRefundNotification({}));
  // Identity checks.
  t.is(t.throws(() => interpretNotification({ ...paid, app_id: '2021999999999999' }, id), { instanceOf: ChannelError })!.mayExist, false);
  t.throws(() => interpretNotification({ ...paid, seller_id: '2088999999999999' }, id), { instanceOf: ChannelError });
  t.is(interpretNotification({ ...paid, auth_app_id: '2021000000000002', seller_id: '2088000000000002' }, id).kind, 'payment'); // ISV trade
});

function signedForm(params: Record<string, string>, key = alipay.privateKey, charset = 'utf-8'): Buffer {
  const all = { ...params, charset, sign_type: 'RSA2' };
  const sign = createSign('RSA-SHA256').update(signContent(all, ['sign', 'sign_type'])).sign(key, 'base64');
  const enc = (s: string) => {
    if (charset === 'utf-8') return encodeURIComponent(s);
    const bytes = Buffer.from(new TextEncoder().encode(s)); // only ASCII used for gbk below
    return [...bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  };
  return Buffer.from(Object.entries({ ...all, sign }).map(([k, v]) => `${k}=${enc(v)}`).join('&'));
}

test('notification verification: sign and sign_type excluded; tampering and other keys fail', (t) => {
  const key = { ...id, alipayPublicKey: alipay.publicKey };
  const body = signedForm({ ...paid, subject: '中文 & = +' });
  t.is(verifyNotification({ headers: {}, rawBody: body, query: {} }, key).subject, '中文 & = +');
  t.throws(() => verifyNotification({ headers: {}, rawBody: signedForm(paid, app.privateKey), query: {} }, key), { instanceOf: ChannelError });
  const tampered = Buffer.from(body.toString().replace('12.34', '12.35'));
  t.throws(() => verifyNotification({ headers: {}, rawBody: tampered, query: {} }, key), { instanceOf: ChannelError });
  t.throws(() => verifyNotification({ headers: {}, rawBody: Buffer.from('a=b'), query: {} }, key), { instanceOf: ChannelError });
  t.deepEqual(acknowledge(true), { status: 200, body: 'success', contentType: 'text/plain; charset=utf-8' });
  t.deepEqual(acknowledge(false), { status: 400, body: 'fail', contentType: 'text/plain; charset=utf-8' });
});

test('form parsing honours a GBK charset', (t) => {
  const gbkBytes = Buffer.from([0xd6, 0xd0, 0xce, 0xc4]); // 中文 in GBK
  const raw = Buffer.from(`charset=gbk&subject=${[...gbkBytes].map((b) => `%${b.toString(16).toUpperCase()}`).join('')}&x=a+b%2`);
  t.deepEqual(parseForm(raw), { charset: 'gbk', subject: '中文', x: 'a b%2' });
});

// ---------- statement ----------

test('detail CSV parsing: header by name, TAB-suffixed ids, refunds negative, # lines skipped, quoted commas', (t) => {
  const header = '支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注';
  const csv = [
    '#支付宝业务明细查询',
    '#账号：[20880000000000010156]',
    '#-----------------------------------------业务明细列表----------------------------------------',
    header,
    '2025010122001\t,ORD1\t,交易,"a, b",2025-01-01 08:00:00,2025-01-01 08:00:05,,,,,138****,12.34,12.34,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,,0.06,0.00,',
    '2025010122001\t,ORD1\t,退款,"a, b",2025-01-01 08:00:00,2025-01-01 09:00:00,,,,,138****,-1.00,-1.00,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,R1\t,-0.01,0.00,',
    '#-----------------------------------------业务明细列表结束------------------------------------',
    '#交易合计：1笔，商家实收共12.34元',
    '',
  ].join('\r\n');
  const lines = parseDetailCsv(csv);
  t.is(lines.length, 2);
  t.like(lines[0], { kind: 'payment', channelOrderNo: 'ORD1', channelTradeNo: '2025010122001', amount: 1234, fee: 6 });
  t.is(lines[0]!.occurredAt.toISOString(), '2025-01-01T00:00:05.000Z');
  t.is(lines[0]!.raw['商品名称'], 'a, b');
  t.like(lines[1], { kind: 'refund', channelRefundNo: 'R1', amount: 100, fee: 1 });
  t.deepEqual(splitCsvLine('a,"b ""q"", c",'), ['a', 'b "q", c', '']);
  t.throws(() => parseDetailCsv('#nothing'), { instanceOf: ChannelError });
});

// ---------- config, keys, sandbox mapping ----------

test('config schema: defaults and validation', (t) => {
  const cfg = alipayConfigSchema.parse({ app_id: '2021000000000001', private_key: 'k.pem', alipay_public_key: 'p.pem' });
  t.is(cfg.gateway_url, DEFAULT_GATEWAY_URL);
  t.is(cfg.gateway_url, 'https://openapi.alipay.com/gateway.do');
  t.false(alipayConfigSchema.safeParse({ app_id: 'x', private_key: 'k', alipay_public_key: 'p' }).success);
  t.false(alipayConfigSchema.safeParse({ app_id: '2021000000000001', private_key: 'k', alipay_public_key: 'p', typo: 1 }).success);
  t.is(plugin.manifest.name, 'alipay');
  t.deepEqual([...plugin.manifest.payMethods], PAY_METHOD_NAMES);
});

test('keys: PKCS#1 and PKCS#8 PEM, bare base64, file paths relative to configDir', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'corbel-alipay-keys-'));
  try {
    const pkcs1 = app.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
    const pkcs8 = app.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const bare = (app.privateKey.export({ type: 'pkcs8', format: 'der' }) as Buffer).toString('base64');
    const pub = alipay.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const pubBare = (alipay.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
    await writeFile(path.join(dir, 'app.pem'), pkcs1);
    await writeFile(path.join(dir, 'alipay.pub'), pub);
    for (const [priv, pk] of [['app.pem', 'alipay.pub'], [pkcs1, pub], [pkcs8, pubBare], [bare, pub]] as const) {
      const keys = await loadKeys({ private_key: priv, alipay_public_key: pk }, dir);
      const sig = createSign('RSA-SHA256').update('x').sign(keys.appPrivateKey, 'base64');
      t.true(rsa2Verify('x', sig, app.publicKey));
      t.is(keys.alipayPublicKey.asymmetricKeyType, 'rsa');
    }
    await t.throwsAsync(loadKeys({ private_key: 'missing.pem', alipay_public_key: pub }, dir), { message: /cannot read key file/ });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('sandbox accountConfig: direct and isv variants', (t) => {
  const creds = {
    appId: '2021000000000001', sellerId: '2088000000000001', gatewayUrl: 'http://127.0.0.1:1/gateway.do',
    appPrivateKeyPath: '/k', appPrivateKeyPem: 'PEM', alipayPublicKeyPath: '/p', alipayPublicKeyPem: 'PUB',
    appAuthGrants: [{ appAuthToken: 'tok1', sellerId: '2088000000000002', authAppId: '2021000000000002' }],
  };
  t.like(accountConfig(creds, undefined), { app_id: '2021000000000001', private_key: 'PEM', alipay_public_key: 'PUB', gateway_url: creds.gatewayUrl, seller_id: '2088000000000001' });
  const isv = accountConfig(creds, 'isv');
  t.is(isv.app_auth_token, 'tok1');
  t.is(isv.seller_id, undefined);
  t.throws(() => accountConfig(creds, 'nope'));
  t.throws(() => accountConfig({}, undefined));
  t.true(alipayConfigSchema.safeParse(isv).success);
});
