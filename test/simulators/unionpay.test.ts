/**
 * UnionPay ACP 5.1.0 simulator: fidelity against the published signing scheme, certificate chain, endpoints,
 * notifications and the txnType 76 reconciliation file. Real HTTP on 127.0.0.1.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { unzipSync, strFromU8 } from 'fflate';
import type { KeyObject } from 'node:crypto';
import { startUnionPaySimulator, type RunningSimulator } from '../../plugins/unionpay/simulator/index.js';
import {
  acpSign, acpSignString, chinaTxnTime, newOrderId, NotifyReceiver, openPfx, parseAcp, postForm, sha256HexOf,
  verifyUnionPayMessage, type Fields,
} from './unionpay.helpers.js';

let dataDir: string;
let sim: RunningSimulator;
let merchantKey: KeyObject;
let certId: string;
const receiver = new NotifyReceiver();

test.before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'corbel-unionpay-'));
  sim = await startUnionPaySimulator({ dataDir, notifyRetryDelaysMs: [100, 200, 300] });
  ({ key: merchantKey, certId } = openPfx(sim.credentials.signCertPfxPath, sim.credentials.signCertPassword));
  await receiver.start();
});

test.after.always(async () => {
  await sim?.close();
  await receiver.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function signed(fields: Fields): Fields {
  return { ...fields, signature: acpSign(fields, merchantKey) };
}

function baseRequest(overrides: Fields): Fields {
  return {
    version: '5.1.0',
    encoding: 'utf-8',
    signMethod: '01',
    accessType: '0',
    merId: sim.credentials.merId,
    certId,
    txnTime: chinaTxnTime(),
    ...overrides,
  };
}

function qrConsume(orderId: string, txnAmt: string, backPath: string): Fields {
  return baseRequest({
    txnType: '01', txnSubType: '07', bizType: '000000', channelType: '08', orderId, txnAmt, currencyCode: '156',
    backUrl: receiver.url + backPath,
  });
}

async function call(url: string, fields: Fields): Promise<Fields> {
  const { status, text } = await postForm(url, fields);
  if (status !== 200) throw new Error(`HTTP ${status}: ${text}`);
  return parseAcp(text);
}

function assertFromUnionPay(t: import('ava').ExecutionContext, fields: Fields): void {
  const check = verifyUnionPayMessage(fields, sim.credentials.rootCertPem, sim.credentials.middleCertPem);
  t.true(check.ok, check.reason);
}

async function query(orderId: string, txnTime: string): Promise<Fields> {
  return call(sim.credentials.singleQueryUrl, signed(baseRequest({ txnType: '00', txnSubType: '00', bizType: '000000', orderId, txnTime })));
}

async function payQrOrder(t: import('ava').ExecutionContext, orderId: string, amount: string, backPath: string): Promise<Fields> {
  const request = signed(qrConsume(orderId, amount, backPath));
  const response = await call(sim.credentials.backTransUrl, request);
  t.is(response.respCode, '00');
  const paid = await fetch(`${sim.url}/__sim/orders/${orderId}/pay`, { method: 'POST' });
  t.is(paid.status, 200);
  const [notification] = await receiver.waitFor(backPath, 1);
  return { ...notification.fields, txnTime: request.txnTime };
}

// ---- fidelity: published signing scheme ------------------------------------------------------------------

test('test vector: sign string and SHA-256 of a fixed field set follow ACP 5.1.0 signMethod 01', (t) => {
  const fields: Fields = {
    version: '5.1.0', encoding: 'utf-8', signMethod: '01', txnType: '01', txnSubType: '07', bizType: '000000',
    accessType: '0', channelType: '08', merId: '777290058110048', certId: '69629715588', orderId: 'CORBEL20240101001',
    txnTime: '20240101120000', txnAmt: '1000', currencyCode: '156', backUrl: 'http://127.0.0.1:8080/unionpay/notify',
    frontUrl: '', signature: 'ignored',
  };
  const signString = acpSignString(fields);
  t.is(
    signString,
    'accessType=0&backUrl=http://127.0.0.1:8080/unionpay/notify&bizType=000000&certId=69629715588&channelType=08' +
      '&currencyCode=156&encoding=utf-8&merId=777290058110048&orderId=CORBEL20240101001&signMethod=01&txnAmt=1000' +
      '&txnSubType=07&txnTime=20240101120000&txnType=01&version=5.1.0',
  );
  t.is(sha256HexOf(signString), 'c8128a6dddbc6788553d68eb023667c023e9eee34b1f2f0ac7e95c426dc4fbb6');
});

test('simulator accepts a request signed independently (node:crypto) and rejects the same request tampered', async (t) => {
  const orderId = newOrderId('V');
  const request = qrConsume(orderId, '1000', '/vector');
  request.signature = acpSign(request, merchantKey);

  const tampered = { ...request, txnAmt: '1' };
  const rejected = await call(sim.credentials.backTransUrl, tampered);
  t.is(rejected.respCode, '11');
  t.regex(rejected.respMsg, /验证签名失败/);
  assertFromUnionPay(t, rejected);

  const accepted = await call(sim.credentials.backTransUrl, request);
  t.is(accepted.respCode, '00');
  t.is(accepted.orderId, orderId);
  t.regex(accepted.qrCode, /^http:\/\/127\.0\.0\.1:\d+\/__sim\/checkout\/\d{21}$/);
  assertFromUnionPay(t, accepted);
});

test('response signPubKeyCert chains to root+intermediate and names 中国银联股份有限公司; a forged cert fails', async (t) => {
  const response = await call(sim.credentials.backTransUrl, signed(qrConsume(newOrderId('C'), '5', '/chain')));
  t.true(response.signPubKeyCert.startsWith('-----BEGIN CERTIFICATE-----'));
  assertFromUnionPay(t, response);
  // The merchant's own certificate is issued by the same intermediate but does not belong to UnionPay.
  const { readFileSync } = await import('node:fs');
  const merchantCertPem = readFileSync(join(dataDir, 'simulators/unionpay/acp_test_sign.cer'), 'utf8');
  const forged = { ...response, signPubKeyCert: merchantCertPem };
  const check = verifyUnionPayMessage(forged, sim.credentials.rootCertPem, sim.credentials.middleCertPem);
  t.false(check.ok);
  t.regex(check.reason ?? '', /CN owner/);
  // And a changed field breaks the signature.
  t.false(verifyUnionPayMessage({ ...response, respCode: '01' }, sim.credentials.rootCertPem, sim.credentials.middleCertPem).ok);
});

test('request errors: unknown certId 11, missing field 13, bad amount 10, duplicate orderId+txnTime 12, wrong merId 31', async (t) => {
  const unknownCert = await call(sim.credentials.backTransUrl, signed({ ...qrConsume(newOrderId('E'), '100', '/e'), certId: '12345' }));
  t.is(unknownCert.respCode, '11');

  const missing = qrConsume(newOrderId('E'), '100', '/e');
  delete missing.backUrl;
  t.is((await call(sim.credentials.backTransUrl, signed(missing))).respCode, '13');

  const badAmount = await call(sim.credentials.backTransUrl, signed(qrConsume(newOrderId('E'), '12.00', '/e')));
  t.is(badAmount.respCode, '10');
  t.regex(badAmount.respMsg, /txnAmt/);

  const badTime = await call(sim.credentials.backTransUrl, signed({ ...qrConsume(newOrderId('E'), '100', '/e'), txnTime: '20241340120000' }));
  t.is(badTime.respCode, '10');

  const request = signed(qrConsume(newOrderId('D'), '100', '/e'));
  t.is((await call(sim.credentials.backTransUrl, request)).respCode, '00');
  const duplicate = await call(sim.credentials.backTransUrl, request);
  t.is(duplicate.respCode, '12');
  t.is(duplicate.respMsg, '重复交易');
  assertFromUnionPay(t, duplicate);

  const otherMerchant = await call(sim.credentials.backTransUrl, signed({ ...qrConsume(newOrderId('E'), '100', '/e'), merId: '898111111111111' }));
  t.is(otherMerchant.respCode, '31');

  const rawGarbage = await postForm(sim.credentials.backTransUrl, {});
  t.is(rawGarbage.status, 200);
  t.is(parseAcp(rawGarbage.text).respCode, '13');
});

// ---- flows --------------------------------------------------------------------------------------------------

test('front consume: payer page, Pay posts the front notification to frontUrl and the back notification to backUrl', async (t) => {
  const orderId = newOrderId('F');
  const request = signed(
    baseRequest({
      txnType: '01', txnSubType: '01', bizType: '000201', channelType: '07', orderId, txnAmt: '12345', currencyCode: '156',
      backUrl: `${receiver.url}/front-back`, frontUrl: 'http://merchant.example/return', reqReserved: '{a=1&b=2}',
    }),
  );
  const page = await postForm(sim.credentials.frontTransUrl, request);
  t.is(page.status, 200);
  t.regex(page.text, /id="pay"/);
  t.regex(page.text, /123\.45/);
  const action = /action="(\/__sim\/checkout\/\d{21})\/pay"/.exec(page.text)?.[1];
  t.truthy(action);

  // Unpaid browser orders are unknown to the query service.
  t.is((await query(orderId, request.txnTime)).respCode, '34');

  const afterPay = await fetch(`${sim.url}${action}/pay`, { method: 'POST' });
  const html = await afterPay.text();
  t.regex(html, /action="http:\/\/merchant\.example\/return"/);
  const frontFields = Object.fromEntries(
    [...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [m[1], m[2].replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')]),
  ) as Fields;
  t.is(frontFields.orderId, orderId);
  assertFromUnionPay(t, frontFields);

  const [back] = await receiver.waitFor('/front-back', 1);
  assertFromUnionPay(t, back.fields);
  t.like(back.fields, {
    txnType: '01', txnSubType: '01', bizType: '000201', merId: sim.credentials.merId, orderId, txnTime: request.txnTime,
    txnAmt: '12345', settleAmt: '12345', currencyCode: '156', settleCurrencyCode: '156', respCode: '00', reqReserved: '{a=1&b=2}',
  });
  t.regex(back.fields.queryId, /^\d{21}$/);
  t.regex(back.fields.settleDate, /^\d{4}$/);
  t.regex(back.fields.traceNo, /^\d{6}$/);
  t.regex(back.fields.traceTime, /^\d{10}$/);
  t.regex(back.fields.accNo, /^\d{6}\*+\d{4}$/);

  const queried = await query(orderId, request.txnTime);
  assertFromUnionPay(t, queried);
  t.like(queried, { respCode: '00', origRespCode: '00', queryId: back.fields.queryId, txnAmt: '12345', reqReserved: '{a=1&b=2}' });

  const view = (await (await fetch(`${sim.url}/__sim/orders/${orderId}`)).json()) as { status: string; notifications: Array<{ state: string }> };
  t.is(view.status, 'success');
  t.is(view.notifications[0].state, 'acknowledged');
});

test('QR consume: qrCode opens the payer page; unpaid query gives origRespCode 05; failure gives 01 and no notification', async (t) => {
  const orderId = newOrderId('Q');
  const request = signed(qrConsume(orderId, '800', '/qr-fail'));
  const response = await call(sim.credentials.backTransUrl, request);
  const page = await (await fetch(response.qrCode)).text();
  t.regex(page, /id="fail"/);

  const pending = await query(orderId, request.txnTime);
  t.like(pending, { respCode: '00', origRespCode: '05' });

  const failed = await fetch(`${sim.url}/__sim/orders/${orderId}/fail`, { method: 'POST' });
  t.is(((await failed.json()) as { status: string }).status, 'failed');
  t.like(await query(orderId, request.txnTime), { respCode: '00', origRespCode: '01' });
  await new Promise((r) => setTimeout(r, 150));
  t.is(receiver.forPath('/qr-fail').length, 0);

  t.is((await fetch(`${sim.url}/__sim/orders/NOSUCHORDER1/pay`, { method: 'POST' })).status, 404);
  t.is((await query('NOSUCHORDER1', request.txnTime)).respCode, '34');
});

test('refund: partial refunds are accepted asynchronously, notified, queryable, and capped at the original amount', async (t) => {
  const orderId = newOrderId('R');
  const paid = await payQrOrder(t, orderId, '1000', '/refund-consume');

  const refund = (amount: string, refundOrderId: string) =>
    signed(baseRequest({
      txnType: '04', txnSubType: '00', bizType: '000000', channelType: '08', orderId: refundOrderId, txnAmt: amount,
      origQryId: paid.queryId, backUrl: `${receiver.url}/refund`,
    }));

  const first = refund('600', newOrderId('RF'));
  const accepted = await call(sim.credentials.backTransUrl, first);
  assertFromUnionPay(t, accepted);
  t.like(accepted, { respCode: '00', origQryId: paid.queryId, txnAmt: '600' });
  t.like(await query(first.orderId, first.txnTime), { respCode: '00', origRespCode: '05' });

  const [note] = await receiver.waitFor('/refund', 1);
  assertFromUnionPay(t, note.fields);
  t.like(note.fields, { txnType: '04', orderId: first.orderId, origQryId: paid.queryId, txnAmt: '600', respCode: '00' });
  t.like(await query(first.orderId, first.txnTime), { respCode: '00', origRespCode: '00', origQryId: paid.queryId });

  const tooMuch = await call(sim.credentials.backTransUrl, refund('401', newOrderId('RF')));
  t.is(tooMuch.respCode, '33');
  const rest = await call(sim.credentials.backTransUrl, refund('400', newOrderId('RF')));
  t.is(rest.respCode, '00');
  const none = await call(sim.credentials.backTransUrl, refund('1', newOrderId('RF')));
  t.is(none.respCode, '33');

  const unknownOrig = await call(sim.credentials.backTransUrl, signed({ ...refund('1', newOrderId('RF')), origQryId: '999999999999999999999' }));
  t.is(unknownOrig.respCode, '35');

  const view = (await (await fetch(`${sim.url}/__sim/orders/${orderId}`)).json()) as { refundableAmt: number; refunds: unknown[] };
  t.is(view.refundableAmt, 0);
  t.is(view.refunds.length, 2);
});

test('cancel (txnType 31): full amount on the same day only', async (t) => {
  const orderId = newOrderId('X');
  const paid = await payQrOrder(t, orderId, '700', '/cancel-consume');
  const cancel = (amount: string) =>
    signed(baseRequest({
      txnType: '31', txnSubType: '00', bizType: '000000', channelType: '08', orderId: newOrderId('XC'), txnAmt: amount,
      origQryId: paid.queryId, backUrl: `${receiver.url}/cancel`,
    }));
  t.is((await call(sim.credentials.backTransUrl, cancel('699'))).respCode, '36');
  const ok = cancel('700');
  t.is((await call(sim.credentials.backTransUrl, ok)).respCode, '00');
  const [note] = await receiver.waitFor('/cancel', 1);
  t.like(note.fields, { txnType: '31', txnAmt: '700', origQryId: paid.queryId });
  t.is((await call(sim.credentials.backTransUrl, cancel('700'))).respCode, '35');
});

test('notification retries until HTTP 200 is received', async (t) => {
  receiver.statusFor = (path, n) => (path === '/retry' && n < 3 ? 500 : 200);
  const paid = await payQrOrder(t, newOrderId('N'), '300', '/retry');
  t.truthy(paid.queryId);
  const all = await receiver.waitFor('/retry', 3, 3000);
  t.is(all.length, 3);
  t.true(all[1].at - all[0].at >= 90);
  t.true(all[2].at - all[1].at >= 190);
  const view = (await (await fetch(`${sim.url}/__sim/orders/${paid.orderId}`)).json()) as {
    notifications: Array<{ state: string; attempts: Array<{ httpStatus: number }> }>;
  };
  t.is(view.notifications[0].state, 'acknowledged');
  t.deepEqual(view.notifications[0].attempts.map((a) => a.httpStatus), [500, 500, 200]);
});

test('txnType 76: fileContent is base64 of zlib-deflated zip bytes with a fixed-width ZM file', async (t) => {
  const orderId = newOrderId('S');
  const paid = await payQrOrder(t, orderId, '4321', '/stmt');
  const refundOrderId = newOrderId('SR');
  await call(sim.credentials.backTransUrl, signed(baseRequest({
    txnType: '04', txnSubType: '00', bizType: '000000', channelType: '08', orderId: refundOrderId, txnAmt: '21',
    origQryId: paid.queryId, backUrl: `${receiver.url}/stmt-refund`,
  })));
  await receiver.waitFor('/stmt-refund', 1);

  const settleMMDD = paid.settleDate;
  const response = await call(sim.credentials.fileTransUrl, signed(baseRequest({
    txnType: '76', txnSubType: '01', bizType: '000000', fileType: '00', settleDate: settleMMDD,
  })));
  assertFromUnionPay(t, response);
  t.is(response.respCode, '00');
  t.regex(response.fileName, new RegExp(`^${sim.credentials.merId}_\\d{4}${settleMMDD}\\.zip$`));

  const zip = unzipSync(inflateSync(Buffer.from(response.fileContent, 'base64')));
  const zmName = Object.keys(zip).find((name) => /^INN\d{6}88ZM_/.test(name));
  t.truthy(zmName);
  t.truthy(Object.keys(zip).find((name) => /^INN\d{6}88ZME_/.test(name)));
  const lines = strFromU8(zip[zmName!]).split('\r\n').filter(Boolean);

  // Widths from the published ZM layout (acpsdk parseZMFile), one separator character between fields.
  const widths = [3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2, 6, 2, 4, 32, 1, 21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 32, 98];
  const parse = (line: string): string[] => {
    let at = 0;
    return widths.map((w) => {
      const value = line.slice(at, at + w);
      at += w + 1;
      return value;
    });
  };
  const records = lines.map(parse);
  t.true(lines.every((line) => line.length === widths.reduce((a, b) => a + b, 0) + widths.length - 1));
  const consume = records.find((r) => r[11].trim() === orderId)!;
  t.truthy(consume);
  t.is(consume[0], 'S22');
  t.is(consume[3], paid.traceNo);
  t.is(consume[4], paid.traceTime);
  t.is(consume[6], '000000004321');
  t.is(consume[9], paid.queryId);
  t.is(consume[16], 'C000000004321');
  t.is(consume[19], '01');
  t.is(consume[27], sim.credentials.merId);
  const refund = records.find((r) => r[11].trim() === refundOrderId)!;
  t.is(refund[0], 'S30');
  t.is(refund[6], '000000000021');
  t.is(refund[16], 'D000000000021');
  t.is(refund[26], paid.queryId);
  t.is(refund[40].trim(), orderId);

  // A settlement date without transactions has no file.
  const today = Number(settleMMDD);
  const empty = String(today === 1231 ? 1230 : today + 1).padStart(4, '0');
  const missing = await call(sim.credentials.fileTransUrl, signed(baseRequest({
    txnType: '76', txnSubType: '01', bizType: '000000', fileType: '00', settleDate: empty === '0132' ? '0201' : empty,
  })));
  t.is(missing.respCode, '98');
});

test('key material persists: a second start on the same data dir reuses certificates and certId', async (t) => {
  const again = await startUnionPaySimulator({ dataDir });
  try {
    t.is(again.credentials.certId, certId);
    t.is(again.credentials.rootCertPem, sim.credentials.rootCertPem);
    const { readFileSync } = await import('node:fs');
    const stored = JSON.parse(readFileSync(join(dataDir, 'simulators/unionpay/credentials.json'), 'utf8')) as { baseUrl: string };
    t.is(stored.baseUrl, again.url);
  } finally {
    await again.close();
  }
});
