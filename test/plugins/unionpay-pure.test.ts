/** UnionPay plugin: pure functions (signing vectors, response parser, tables, chain verification, ZM records). */
import test from 'ava';
import { createPrivateKey, generateKeyPairSync, sign as rsaSign, verify as rsaVerify, type KeyObject } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import forge from 'node-forge';
import { zipSync } from 'fflate';
import { ChannelError } from '../../core/index.js';
import { AcpVerifier, encodeForm, loadSigningMaterial, parseAcpResponse, parseCertificate, parseFormBody, serialToDecimal, signDigestHex, signRequest, signString, UNIONPAY_CN_ORG } from '../../plugins/unionpay/transport.js';
import {
  chinaTime, declineCode, frontPageRespCode, mapRespCode, origOutcome, parseChinaTime, parseFen, payerFormOf, paymentFromQuery, payTimeout,
  qrConsumeFields, refundFields, refundFromQuery, settleDateOf, webConsumeFields,
} from '../../plugins/unionpay/transformers.js';
import { acknowledge, notificationFromFields, parseNotification } from '../../plugins/unionpay/notifications.js';
import { parseSignedFen, parseStatementFile, parseZmLine, traceTimeToDate, ZM_FIELDS } from '../../plugins/unionpay/statement.js';
import { unionPayConfigSchema, PRODUCTION_URLS } from '../../plugins/unionpay/config.js';

// ---------------------------------------------------------------- signing vector

const VECTOR_FIELDS = {
  version: '5.1.0', encoding: 'utf-8', signMethod: '01', accessType: '0', merId: '777290058110048', certId: '69629715588',
  txnType: '01', txnSubType: '01', bizType: '000201', channelType: '07', currencyCode: '156', orderId: 'P0001',
  txnTime: '20240101120000', txnAmt: '1000', backUrl: 'http://127.0.0.1:8080/notify/up', reqReserved: '{a=1&b=[2&3]}',
  frontUrl: '', signature: 'ignored',
};
// Worked by hand from the spec: keys in ASCII order, blank frontUrl and signature left out, raw values.
const VECTOR_STRING =
  'accessType=0&backUrl=http://127.0.0.1:8080/notify/up&bizType=000201&certId=69629715588&channelType=07&currencyCode=156' +
  '&encoding=utf-8&merId=777290058110048&orderId=P0001&reqReserved={a=1&b=[2&3]}&signMethod=01&txnAmt=1000&txnSubType=01' +
  '&txnTime=20240101120000&txnType=01&version=5.1.0';
// `printf '%s' "$VECTOR_STRING" | sha256sum`
const VECTOR_DIGEST = '568c117a3b9755f61d3f9cf8798ab8e0074c8aa97d867811b070c911fddf8dc1';

test('sign string and first digest match the hand-worked vector', (t) => {
  t.is(signString(VECTOR_FIELDS, true), VECTOR_STRING);
  t.is(signDigestHex(VECTOR_FIELDS, true), VECTOR_DIGEST);
  // A verifier signs over what it received, blanks included.
  t.true(signString(VECTOR_FIELDS, false).includes('&frontUrl=&'));
});

test('signRequest drops blanks and signs the hex digest with SHA256withRSA', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signed = await signRequest(VECTOR_FIELDS, privateKey);
  t.false('frontUrl' in signed);
  t.true(rsaVerify('sha256', Buffer.from(VECTOR_DIGEST, 'utf8'), publicKey, Buffer.from(signed.signature!, 'base64')));
  // Round trip through the form encoding the gateway receives.
  t.deepEqual(parseFormBody(encodeForm(signed)), signed);
});

test('certificate serial hex → decimal certId', (t) => {
  t.is(serialToDecimal('0E0B382904'), '60317772036'); // 14·2^32 + 0x0B382904
  t.is(serialToDecimal('00:ff'), '255');
  t.is(serialToDecimal('1234567890abcdef1234567890abcdef'), '24197857200151252728969465429440056815');
  t.throws(() => serialToDecimal(''));
});

// ---------------------------------------------------------------- response parser

const PARSE_TABLE: Array<[string, string, Record<string, string>]> = [
  ['empty', '', {}],
  ['simple', 'a=1&b=2', { a: '1', b: '2' }],
  ['empty value', 'a=&b=2', { a: '', b: '2' }],
  ['= inside value', 'sig=ab==&c=1', { sig: 'ab==', c: '1' }],
  ['braces with &', 'reqReserved={x=1&y=2}&z=3', { reqReserved: '{x=1&y=2}', z: '3' }],
  ['brackets with &', 'list=[a&b]&z=3', { list: '[a&b]', z: '3' }],
  ['nested', 'r={a=[1&2]&b={c=3&d=4}}&z=9', { r: '{a=[1&2]&b={c=3&d=4}}', z: '9' }],
  ['brace mid-value', 'r=pre{a&b}post&z=1', { r: 'pre{a&b}post', z: '1' }],
  ['unclosed brace swallows the rest', 'r={a&b=2', { r: '{a&b=2' }],
  ['stray closer is plain text', 'r=a}b&z=1', { r: 'a}b', z: '1' }],
  ['trailing &', 'a=1&', { a: '1' }],
  ['trailing newline', 'a=1&b=2\r\n', { a: '1', b: '2' }],
  ['PEM value with newlines, + and /', 'signPubKeyCert=-----BEGIN CERTIFICATE-----\r\nMII+/A==\r\n-----END CERTIFICATE-----&x=1', { signPubKeyCert: '-----BEGIN CERTIFICATE-----\r\nMII+/A==\r\n-----END CERTIFICATE-----', x: '1' }],
  ['raw percent is not decoded', 'a=%41+b', { a: '%41+b' }],
  ['key without =', 'flag&a=1', { flag: '', a: '1' }],
  ['UTF-8 text', 'respMsg=成功[0000000]&respCode=00', { respMsg: '成功[0000000]', respCode: '00' }],
];

for (const [name, input, expected] of PARSE_TABLE) {
  test(`parseAcpResponse: ${name}`, (t) => {
    t.deepEqual(parseAcpResponse(input), expected);
  });
}

// ---------------------------------------------------------------- time

test('chinaTime is UTC+8 and round-trips', (t) => {
  const d = new Date('2024-12-31T16:30:05.999Z');
  t.is(chinaTime(d), '20250101003005');
  t.is(parseChinaTime('20250101003005')!.toISOString(), '2024-12-31T16:30:05.000Z');
  t.is(parseChinaTime('2025010100300'), undefined);
  t.is(parseChinaTime(undefined), undefined);
});

test('txnTime is chinaTime of createdAt: the same Date gives the same txnTime at create and query', (t) => {
  const createdAt = new Date('2024-05-01T02:03:04.999Z');
  t.is(chinaTime(createdAt), '20240501100304');
  t.is(chinaTime(new Date(createdAt.getTime())), chinaTime(createdAt));
  // Milliseconds are dropped, so only the instant's second matters.
  t.is(chinaTime(new Date('2024-05-01T02:03:04.000Z')), '20240501100304');
});

test('payTimeout is expiresAt, capped by pay_timeout_s', (t) => {
  const expires = new Date('2024-05-01T03:00:00Z');
  t.is(payTimeout(expires, '20240501100000', undefined), '20240501110000');
  t.is(payTimeout(expires, '20240501100000', 600), '20240501101000');
});

test('settleDateOf', (t) => {
  t.like(settleDateOf('2024-03-07'), { year: 2024, month: 3, day: 7, mmdd: '0307' });
  t.like(settleDateOf('20241231'), { mmdd: '1231' });
  t.throws(() => settleDateOf('2024-3-7'));
});

// ---------------------------------------------------------------- amounts and requests

test('fen parsing is strict', (t) => {
  t.is(parseFen('1'), 1);
  t.is(parseFen('000100'), 100);
  t.is(parseFen('999999999999999'), 999999999999999);
  for (const bad of [undefined, '', '1.00', '-1', '1e3', ' 1', '1234567890123456']) t.is(parseFen(bad), undefined, String(bad));
});

test('request field sets', (t) => {
  const id = { merId: '777290058110048', certId: '1' };
  const o = { channelOrderNo: 'P1', txnTime: '20240101000000', amount: 1, backUrl: 'http://b', frontUrl: 'http://f', payTimeout: '20240101001500' };
  t.like(webConsumeFields(id, o), { version: '5.1.0', encoding: 'utf-8', signMethod: '01', accessType: '0', txnType: '01', txnSubType: '01', bizType: '000201', channelType: '07', currencyCode: '156', txnAmt: '1', frontUrl: 'http://f', backUrl: 'http://b', orderId: 'P1' });
  t.like(qrConsumeFields(id, o), { txnType: '01', txnSubType: '07', backUrl: 'http://b' });
  t.false('frontUrl' in qrConsumeFields(id, o));
  t.throws(() => webConsumeFields(id, { ...o, amount: 0 }));
  t.throws(() => webConsumeFields(id, { ...o, amount: 1.5 }));
  t.like(refundFields(id, { channelRefundNo: 'R1', payMethod: 'unionpay.web', txnTime: 'x', origQryId: 'Q', amount: 5, backUrl: 'b' }), { txnType: '04', txnSubType: '00', bizType: '000201', origQryId: 'Q', orderId: 'R1', txnAmt: '5' });
});

// ---------------------------------------------------------------- sandbox payer

test('payerFormOf: the signed form of a unionpay.web action, without form_action/form_method', (t) => {
  const params = { form_action: 'http://sim/gateway/api/frontTransReq.do', form_method: 'POST', orderId: 'P1', txnAmt: '1', signature: 'c2ln' };
  t.deepEqual(payerFormOf({ type: 'app', params }), { url: params.form_action, fields: { orderId: 'P1', txnAmt: '1', signature: 'c2ln' } });
  t.is(payerFormOf(undefined), undefined);
  t.is(payerFormOf(null), undefined);
  t.is(payerFormOf({ type: 'qr_code', qr_code: 'x' }), undefined);
  t.is(payerFormOf({ type: 'app', params: { ...params, form_action: '' } }), undefined);
  t.is(payerFormOf({ type: 'app', params: { ...params, form_method: 'GET' } }), undefined);
  const { signature: _s, ...unsigned } = params;
  t.is(payerFormOf({ type: 'app', params: unsigned }), undefined);
});

test('frontPageRespCode: the error page of the front gateway, not the payer page', (t) => {
  t.is(frontPageRespCode('<h1>交易失败</h1><p>respCode=<span id="respCode">12</span></p><p>respMsg=<span id="respMsg">重复交易</span></p>'), '12');
  t.is(frontPageRespCode('<!doctype html><html><body><p>respCode=03</p></body></html>'), '03');
  t.is(frontPageRespCode('<form method="post" action="/__sim/checkout/1/pay"><button type="submit" id="pay">Pay</button></form>'), undefined);
});

// ---------------------------------------------------------------- code tables

const CODE_TABLE: Array<[string | undefined, string, boolean]> = [
  ['01', 'unknown', true], ['03', 'timeout', true], ['04', 'unknown', true], ['05', 'unknown', true], ['06', 'channel_unavailable', false],
  ['10', 'invalid_request', false], ['11', 'signature_invalid', false], ['12', 'duplicate_order', true], ['13', 'invalid_request', false],
  ['31', 'authentication_failed', false], ['32', 'not_supported', false], ['33', 'refund_exceeds_amount', false],
  ['34', 'order_not_found', true], ['35', 'order_not_found', false], ['51', 'insufficient_balance', false],
  ['77', 'unknown', false], ['09', 'unknown', true], [undefined, 'unknown', true],
];
for (const [respCode, code, mayExist] of CODE_TABLE) {
  test(`respCode ${respCode} → ${code} mayExist=${mayExist}`, (t) => {
    t.deepEqual(mapRespCode(respCode), { code, mayExist });
  });
}

test('origRespCode outcomes and query mapping', (t) => {
  t.is(origOutcome('00'), 'succeeded');
  for (const c of ['03', '04', '05']) t.is(origOutcome(c), 'pending');
  for (const c of ['01', '30', '51']) t.is(origOutcome(c), 'failed');
  t.deepEqual(paymentFromQuery({ respCode: '00', origRespCode: '00', queryId: 'Q1', txnAmt: '1234', txnTime: '20240101000000' }), {
    status: 'succeeded', channelTradeNo: 'Q1', paidAmount: 1234, paidAt: new Date('2023-12-31T16:00:00Z'),
  });
  t.deepEqual(paymentFromQuery({ respCode: '00', origRespCode: '05' }), { status: 'pending', channelTradeNo: undefined });
  t.like(paymentFromQuery({ respCode: '00', origRespCode: '01', origRespMsg: 'failed' }), { status: 'failed', failure: { code: 'card_declined', channelCode: '01' } });
  t.like(paymentFromQuery({ respCode: '00', origRespCode: '51' }), { status: 'failed', failure: { code: 'insufficient_balance' } });
  t.deepEqual(refundFromQuery({ origRespCode: '00' }, 'R1'), { status: 'succeeded', channelRefundNo: 'R1' });
  t.deepEqual(refundFromQuery({ origRespCode: '05' }, 'R1'), { status: 'pending', channelRefundNo: 'R1' });
  t.is(declineCode('03'), 'card_declined');
});

// ---------------------------------------------------------------- notifications (pure part)

test('notification mapping', (t) => {
  const base = { merId: 'M', orderId: 'P1', txnAmt: '500', queryId: 'Q9', respCode: '00' };
  t.deepEqual(notificationFromFields({ ...base, txnType: '01' }, 'M'), {
    kind: 'payment', channelOrderNo: 'P1', amount: 500, result: { status: 'succeeded', channelTradeNo: 'Q9', paidAmount: 500 },
  });
  t.like(notificationFromFields({ ...base, txnType: '01', respCode: '30' }, 'M'), { kind: 'payment', result: { status: 'failed' } });
  t.like(notificationFromFields({ ...base, txnType: '04', orderId: 'R1' }, 'M'), { kind: 'refund', channelRefundNo: 'R1', amount: 500, result: { status: 'succeeded' } });
  t.is(notificationFromFields({ ...base, txnType: '31' }, 'M').kind, 'ignored');
  t.is(notificationFromFields({ ...base, txnType: '01' }, 'OTHER').kind, 'ignored');
  t.is(notificationFromFields({ ...base, txnType: '01', txnAmt: 'x' }, 'M').kind, 'ignored');
  t.deepEqual(acknowledge(true), { status: 200, body: 'ok', contentType: 'text/plain; charset=utf-8' });
  t.is(acknowledge(false).status, 400);
});

// ---------------------------------------------------------------- chain verification

interface Issued { cert: forge.pki.Certificate; pem: string; key: KeyObject; forgeKey: forge.pki.rsa.PrivateKey }

const keyPool = Array.from({ length: 4 }, () => generateKeyPairSync('rsa', { modulusLength: 2048 }));
let serial = 1;

function issue(subjectCn: string, keyIndex: number, issuer: Issued | undefined, opts: { ca?: boolean; notAfter?: Date } = {}): Issued {
  const pair = keyPool[keyIndex]!;
  const forgeKey = forge.pki.privateKeyFromPem(pair.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(pair.publicKey.export({ type: 'spki', format: 'pem' }) as string);
  cert.serialNumber = (serial++).toString(16).padStart(4, '0');
  cert.validity.notBefore = new Date(Date.now() - 86400_000);
  cert.validity.notAfter = opts.notAfter ?? new Date(Date.now() + 365 * 86400_000);
  const subject = [{ shortName: 'C', value: 'CN' }, { shortName: 'O', value: 'Test' }, { shortName: 'CN', value: subjectCn, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class }];
  cert.setSubject(subject);
  cert.setIssuer(issuer ? issuer.cert.subject.attributes : subject);
  if (opts.ca) cert.setExtensions([{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }]);
  cert.sign(issuer ? issuer.forgeKey : forgeKey, forge.md.sha256.create());
  return { cert, pem: forge.pki.certificateToPem(cert), key: pair.privateKey, forgeKey };
}

const root = issue('Test Root', 0, undefined, { ca: true });
const middle = issue('Test Middle', 1, root, { ca: true });
const upCn = `041@Z12400000000000000@${UNIONPAY_CN_ORG}@00000001`;
const upSigner = issue(upCn, 2, middle);

function signedBy(signer: Issued, fields: Record<string, string>): Record<string, string> {
  const withCert = { ...fields, signPubKeyCert: signer.pem };
  return { ...withCert, signature: rsaSign('sha256', Buffer.from(signDigestHex(withCert, false), 'utf8'), signer.key).toString('base64') };
}

test('verifier: accepts a message signed by a chained UnionPay cert, including blank fields', (t) => {
  const v = new AcpVerifier(parseCertificate(root.pem), parseCertificate(middle.pem));
  const msg = signedBy(upSigner, { respCode: '00', reqReserved: '{a&b}', empty: '' });
  t.notThrows(() => v.verify(msg));
  t.notThrows(() => v.verify(msg)); // cached
  t.throws(() => v.verify({ ...msg, respCode: '01' }), { message: /signature/ });
  t.throws(() => v.verify({ ...msg, signature: '' }), { message: /no signature/ });
  t.throws(() => v.verify({ respCode: '00', signature: 'x' }), { message: /signPubKeyCert/ });
});

test('verifier: rejects a self-signed cert with the right CN', (t) => {
  const v = new AcpVerifier(parseCertificate(root.pem), parseCertificate(middle.pem));
  const selfSigned = issue(upCn, 3, undefined);
  t.throws(() => v.verify(signedBy(selfSigned, { respCode: '00' })), { message: /not issued by the configured middle/ });
});

test('verifier: rejects a cert issued by the middle CA with the wrong CN, and an expired one', (t) => {
  const v = new AcpVerifier(parseCertificate(root.pem), parseCertificate(middle.pem));
  const wrongCn = issue('041@Z12400000000000000@Someone Else@00000001', 3, middle);
  t.throws(() => v.verify(signedBy(wrongCn, { respCode: '00' })), { message: /CN/ });
  const expired = issue(upCn, 3, middle, { notAfter: new Date(Date.now() - 3600_000) });
  t.throws(() => v.verify(signedBy(expired, { respCode: '00' })), { message: /validity/ });
});

test('verifier: a middle cert not issued by the root is refused at construction', (t) => {
  const otherRoot = issue('Other Root', 3, undefined, { ca: true });
  t.throws(() => new AcpVerifier(parseCertificate(otherRoot.pem), parseCertificate(middle.pem)));
});

test('parseNotification: forged signature → signature_invalid mayExist=false', (t) => {
  const v = new AcpVerifier(parseCertificate(root.pem), parseCertificate(middle.pem));
  const good = signedBy(upSigner, { merId: 'M', txnType: '01', orderId: 'P1', txnAmt: '100', respCode: '00', queryId: 'Q' });
  const n = (fields: Record<string, string>) => ({ headers: {}, query: {}, rawBody: Buffer.from(encodeForm(fields)) });
  t.like(parseNotification(n(good), v, 'M'), { kind: 'payment', amount: 100 });
  const err = t.throws(() => parseNotification(n({ ...good, txnAmt: '1' }), v, 'M'), { instanceOf: ChannelError }) as ChannelError;
  t.is(err.code, 'signature_invalid');
  t.false(err.mayExist);
});

test('loadSigningMaterial: key + decimal certId from a .pfx; wrong password refused', (t) => {
  const merchant = issue('merchant', 3, middle);
  const p12 = forge.pkcs12.toPkcs12Asn1(merchant.forgeKey, [merchant.cert, middle.cert], 'secret', { algorithm: '3des' });
  const der = Buffer.from(forge.asn1.toDer(p12).getBytes(), 'binary');
  const m = loadSigningMaterial(der, 'secret');
  t.is(m.certId, BigInt(`0x${merchant.cert.serialNumber}`).toString(10));
  t.is(m.privateKey.asymmetricKeyType, 'rsa');
  t.is(createPrivateKey(m.privateKey.export({ type: 'pkcs8', format: 'pem' })).asymmetricKeyDetails?.modulusLength, 2048);
  t.throws(() => loadSigningMaterial(der, 'wrong'), { message: /pfx/ });
});

// ---------------------------------------------------------------- statement

function zmLine(values: Record<string, string>): string {
  return ZM_FIELDS.map(([name, width]) => (values[name] ?? '').padEnd(width, ' ')).join(' ') + ' ';
}

test('ZM record widths add up to the acpsdk layout', (t) => {
  t.is(ZM_FIELDS.length, 42);
  t.deepEqual(ZM_FIELDS.map(([, w]) => w), [3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2, 6, 2, 4, 32, 1, 21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 32, 98]);
  const parsed = parseZmLine(zmLine({ txnCode: 'S22', orderId: 'P123', txnAmt: '000000001234', origOrderId: 'X' }));
  t.like(parsed, { txnCode: 'S22', orderId: 'P123', txnAmt: '000000001234', origOrderId: 'X', reserved: '' });
});

test('signed amounts and trace times', (t) => {
  t.is(parseSignedFen('D000000000012'), 12);
  t.is(parseSignedFen('C000000000012'), -12);
  t.is(parseSignedFen('X1'), undefined);
  t.is(traceTimeToDate('0102030405', 2024, 1)!.toISOString(), '2024-01-01T19:04:05.000Z');
  t.is(traceTimeToDate('1231230000', 2025, 1)!.toISOString(), '2024-12-31T15:00:00.000Z');
});

test('statement file: base64(zlib(zip)) → payment and refund lines', (t) => {
  const zm = [
    zmLine({ txnCode: 'S22', traceNo: '000001', traceTime: '0307101112', txnAmt: '000000001000', queryId: 'Q1', orderId: 'P1', merFee: 'D000000000006', settleAmt: 'C000000001000' }),
    zmLine({ txnCode: 'S30', traceNo: '000002', traceTime: '0307111213', txnAmt: '000000000300', queryId: 'Q2', orderId: 'R1', merFee: 'C000000000002', origQryId: 'Q1', origOrderId: 'P1' }),
    zmLine({ txnCode: 'S99', txnAmt: '000000000001', orderId: 'Z' }),
  ].join('\r\n') + '\r\n';
  const zip = zipSync({ 'INN24030788ZM_777290058110048': Buffer.from(zm), 'INN24030788ZME_777290058110048': new Uint8Array(0) });
  const lines = parseStatementFile(deflateSync(zip).toString('base64'), 2024, 3);
  t.is(lines.length, 2);
  t.like(lines[0], { kind: 'payment', channelOrderNo: 'P1', channelTradeNo: 'Q1', amount: 1000, fee: 6 });
  t.is(lines[0]!.occurredAt.toISOString(), '2024-03-07T02:11:12.000Z');
  t.like(lines[1], { kind: 'refund', channelOrderNo: 'P1', channelRefundNo: 'R1', channelTradeNo: 'Q1', amount: 300, fee: -2 });
});

// ---------------------------------------------------------------- config

test('config defaults to the production gateway and rejects unknown keys', (t) => {
  const c = unionPayConfigSchema.parse({ mer_id: '777290058110048', sign_cert_pfx: 'a.pfx', sign_cert_password: '000000', root_cert: 'root.cer', middle_cert: 'middle.cer' });
  t.is(c.back_trans_url, PRODUCTION_URLS.back_trans_url);
  t.is(c.file_trans_url, 'https://filedownload.95516.com/');
  t.false(unionPayConfigSchema.safeParse({ ...c, extra: 1 }).success);
  t.false(unionPayConfigSchema.safeParse({ ...c, mer_id: '123' }).success);
});
