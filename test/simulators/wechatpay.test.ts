// Fidelity tests of the WeChat Pay simulator against the unchanged wechatpay-axios-plugin SDK.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { Aes, Formatter, Rsa, Wechatpay, Hash } from 'wechatpay-axios-plugin';
import { startWechatPaySimulator, type RunningSimulator, type WechatPayMerchantCredentials } from '../../plugins/wechatpay/simulator/index.js';

interface SdkResponse {
  status: number;
  data: unknown;
  headers: Record<string, string>;
}
interface SdkClient {
  request(path: string, method: string, data?: unknown, config?: Record<string, unknown>): Promise<SdkResponse>;
}
interface SdkNode {
  get(config?: Record<string, unknown>): Promise<SdkResponse>;
  post(data: unknown, config?: Record<string, unknown>): Promise<SdkResponse>;
}

/** Walks the SDK's chained API (`wxpay.v3.pay.transactions.native`) and calls the verb, like application code does. */
function chained(root: unknown): SdkClient {
  return {
    request(path, method, data, config = {}) {
      const node = path.split('/').reduce((current, segment) => (current as Record<string, unknown>)[segment], root) as SdkNode;
      return method === 'GET' ? node.get(config) : node.post(data, config);
    },
  };
}
interface SdkError {
  message: string;
  code?: string;
  response?: SdkResponse;
}
type Json = Record<string, unknown>;

let sim: RunningSimulator;
let dataDir: string;

test.before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'corbel-wxsim-'));
  sim = await startWechatPaySimulator({ dataDir, notifyRetryDelaysMs: [100, 100, 100], refundDelayMs: 100 });
});

test.after.always(async () => {
  await sim?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function sdkFor(merchant: WechatPayMerchantCredentials, mode: 'platform_certificate' | 'public_key' = 'platform_certificate'): SdkClient {
  const certs = mode === 'platform_certificate'
    ? { [sim.credentials.platformCertificate.serialNo]: readFileSync(sim.credentials.platformCertificate.path, 'utf8') }
    : { [merchant.wechatpayPublicKeyId]: readFileSync(sim.credentials.wechatpayPublicKey.path, 'utf8') };
  return chained(new Wechatpay({
    mchid: merchant.mchid,
    serial: merchant.merchantCertificateSerial,
    privateKey: readFileSync(merchant.merchantPrivateKeyPath, 'utf8'),
    certs,
    secret: merchant.apiV2Key,
    baseURL: `${sim.url}/`,
  } as never));
}

async function sdkError(promise: Promise<unknown>): Promise<SdkError> {
  try {
    await promise;
  } catch (err) {
    return err as SdkError;
  }
  throw new Error('expected the SDK call to fail');
}

async function control(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const response = await fetch(`${sim.url}${path}`, { method, headers: { 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, json: text ? (JSON.parse(text) as Json) : {} };
}

let orderCounter = 0;
function newOrderNo(prefix = 'T'): string {
  orderCounter += 1;
  return `${prefix}${Date.now()}${orderCounter}`;
}

function nativeOrder(outTradeNo: string, notifyUrl = 'https://merchant.example.com/notify', total = 100): Json {
  return { appid: sim.credentials.direct.appid, mchid: sim.credentials.direct.mchid, description: '测试商品', out_trade_no: outTradeNo, notify_url: notifyUrl, amount: { total, currency: 'CNY' } };
}

/** A local notification receiver recording raw bodies and headers. */
async function receiver(answer: (count: number) => number = () => 204): Promise<{ url: string; received: { headers: IncomingMessage['headers']; body: string }[]; server: Server }> {
  const received: { headers: IncomingMessage['headers']; body: string }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const status = answer(received.length);
      res.writeHead(status, status >= 400 ? { 'Content-Type': 'application/json' } : {});
      res.end(status >= 400 ? JSON.stringify({ code: 'FAIL', message: '失败' }) : undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}/wxpay/notify`, received, server };
}

async function waitFor(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test.serial('SDK: native order, query; response signatures verify with the platform certificate', async (t) => {
  const sdk = sdkFor(sim.credentials.direct);
  const outTradeNo = newOrderNo('N');
  const created = await sdk.request('v3/pay/transactions/native', 'POST', nativeOrder(outTradeNo), {});
  t.is(created.status, 200);
  t.regex((created.data as Json).code_url as string, /^weixin:\/\/wxpay\/bizpayurl\?pr=\w{7}$/);
  t.is(created.headers['wechatpay-serial'], sim.credentials.platformCertificate.serialNo);
  t.truthy(created.headers['request-id']);

  const again = await sdk.request('v3/pay/transactions/native', 'POST', nativeOrder(outTradeNo), {});
  t.is((again.data as Json).code_url, (created.data as Json).code_url, 'same params returns the same prepay');
  const conflict = await sdkError(sdk.request('v3/pay/transactions/native', 'POST', nativeOrder(outTradeNo, undefined, 200), {}));
  t.is(conflict.response?.status, 403);
  t.is((conflict.response?.data as Json).code, 'OUT_TRADE_NO_USED');

  const unpaid = await sdk.request('v3/pay/transactions/out-trade-no/{out_trade_no}', 'GET', undefined, { params: { mchid: sim.credentials.direct.mchid }, out_trade_no: outTradeNo });
  t.is((unpaid.data as Json).trade_state, 'NOTPAY');
  t.is((unpaid.data as Json).transaction_id, undefined);

  const paid = await control('POST', `/__sim/orders/${outTradeNo}/pay`);
  t.is(paid.json.status, 'SUCCESS');
  const query = await sdk.request('v3/pay/transactions/out-trade-no/{out_trade_no}', 'GET', undefined, { params: { mchid: sim.credentials.direct.mchid }, out_trade_no: outTradeNo });
  const data = query.data as Json;
  t.is(data.trade_state, 'SUCCESS');
  t.is(data.trade_type, 'NATIVE');
  t.deepEqual(data.amount, { total: 100, payer_total: 100, currency: 'CNY', payer_currency: 'CNY' });
  t.regex(data.success_time as string, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$/);
  t.regex(data.transaction_id as string, /^4200\d{24}$/);
  const byId = await sdk.request('v3/pay/transactions/id/{transaction_id}', 'GET', undefined, { params: { mchid: sim.credentials.direct.mchid }, transaction_id: data.transaction_id });
  t.is((byId.data as Json).out_trade_no, outTradeNo);

  const missing = await sdkError(sdk.request('v3/pay/transactions/out-trade-no/{out_trade_no}', 'GET', undefined, { params: { mchid: sim.credentials.direct.mchid }, out_trade_no: 'NOPE000000' }));
  t.is(missing.response?.status, 404);
  t.is((missing.response?.data as Json).code, 'ORDERNOTEXIST');

  const closePaid = await sdkError(sdk.request('v3/pay/transactions/out-trade-no/{out_trade_no}/close', 'POST', { mchid: sim.credentials.direct.mchid }, { out_trade_no: outTradeNo }));
  t.is(closePaid.response?.status, 400);
  t.is((closePaid.response?.data as Json).code, 'ORDERPAID');
});

test.serial('SDK rejects responses when the corrupt_signature fault is on', async (t) => {
  const sdk = sdkFor(sim.credentials.direct);
  await control('PUT', '/__sim/faults', { corrupt_signature: true });
  try {
    const error = await sdkError(sdk.request('v3/pay/transactions/native', 'POST', nativeOrder(newOrderNo('C')), {}));
    t.is(error.code, 'EV3_RES_HEADER_SIGNATURE_DIGEST');
  } finally {
    await control('DELETE', '/__sim/faults');
  }
});

test.serial('public-key verification mode works with the SDK (Wechatpay-Serial = PUB_KEY_ID_…)', async (t) => {
  const merchant = sim.credentials.direct;
  const put = await control('PUT', `/__sim/merchants/${merchant.mchid}/verification-mode`, { mode: 'public_key' });
  t.is(put.status, 200);
  try {
    const sdk = sdkFor(merchant, 'public_key');
    const created = await sdk.request('v3/pay/transactions/native', 'POST', nativeOrder(newOrderNo('P')), {});
    t.is(created.headers['wechatpay-serial'], merchant.wechatpayPublicKeyId);
    t.regex(merchant.wechatpayPublicKeyId, /^PUB_KEY_ID_0119\d+$/);
    // A client that only trusts the platform certificate cannot verify public-key signatures.
    const error = await sdkError(sdkFor(merchant).request('v3/pay/transactions/native', 'POST', nativeOrder(newOrderNo('P')), {}));
    t.is(error.code, 'EV3_RES_HEADER_PLATFORM_SERIAL');
  } finally {
    await control('PUT', `/__sim/merchants/${merchant.mchid}/verification-mode`, { mode: 'platform_certificate' });
  }
});

test.serial('GET /v3/certificates decrypts with the SDK AesGcm helper to the platform certificate', async (t) => {
  const merchant = sim.credentials.direct;
  const response = await sdkFor(merchant).request('v3/certificates', 'GET', undefined, {});
  const [entry] = (response.data as { data: Json[] }).data;
  t.is(entry.serial_no, sim.credentials.platformCertificate.serialNo);
  const encrypted = entry.encrypt_certificate as Json;
  t.is(encrypted.associated_data, 'certificate');
  t.is(encrypted.algorithm, 'AEAD_AES_256_GCM');
  const pem = Aes.AesGcm.decrypt(encrypted.ciphertext as string, merchant.apiV3Key, encrypted.nonce as string, 'certificate');
  t.is(pem, sim.credentials.platformCertificate.pem);
});

test.serial('tampered, unknown-serial and stale requests are rejected with 401 SIGN_ERROR', async (t) => {
  const merchant = sim.credentials.direct;
  const key = Rsa.from(readFileSync(merchant.merchantPrivateKeyPath, 'utf8'), Rsa.KEY_TYPE_PRIVATE);
  const path = '/v3/pay/transactions/native';
  const send = async (signedBody: string, sentBody: string, serial: string, timestamp: number) => {
    const nonce = Formatter.nonce();
    const signature = Rsa.sign(Formatter.request('POST', path, String(timestamp), nonce, signedBody), key);
    const response = await fetch(`${sim.url}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', Authorization: Formatter.authorization(merchant.mchid, nonce, signature, String(timestamp), serial) },
      body: sentBody,
    });
    return { status: response.status, json: (await response.json()) as Json };
  };
  const body = JSON.stringify(nativeOrder(newOrderNo('S')));
  const now = Formatter.timestamp();
  const good = await send(body, body, merchant.merchantCertificateSerial, now);
  t.is(good.status, 200);
  const tampered = await send(body, body.replace('"total":100', '"total":1'), merchant.merchantCertificateSerial, now);
  t.is(tampered.status, 401);
  t.is(tampered.json.code, 'SIGN_ERROR');
  const unknownSerial = await send(body, body, '0123456789ABCDEF0123456789ABCDEF01234567', now);
  t.is(unknownSerial.json.code, 'SIGN_ERROR');
  const stale = await send(body, body, merchant.merchantCertificateSerial, now - 600);
  t.is(stale.status, 401);
  t.is(stale.json.code, 'SIGN_ERROR');
});

test.serial('order validation: PARAM_ERROR details, jsapi/h5 requirements, partner orders, close', async (t) => {
  const direct = sdkFor(sim.credentials.direct);
  const noDescription = nativeOrder(newOrderNo('V'));
  delete noDescription.description;
  const missing = await sdkError(direct.request('v3/pay/transactions/native', 'POST', noDescription, {}));
  t.is(missing.response?.status, 400);
  t.is((missing.response?.data as Json).code, 'PARAM_ERROR');
  t.regex((missing.response?.data as Json).message as string, /description/);

  const jsapiNoOpenid = await sdkError(direct.request('v3/pay/transactions/jsapi', 'POST', nativeOrder(newOrderNo('J')), {}));
  t.is((jsapiNoOpenid.response?.data as Json).code, 'PARAM_ERROR');
  const jsapi = await direct.request('v3/pay/transactions/jsapi', 'POST', { ...nativeOrder(newOrderNo('J')), payer: { openid: 'oUser1' } }, {});
  t.regex((jsapi.data as Json).prepay_id as string, /^wx\d{14}[0-9a-f]{20}$/);
  const app = await direct.request('v3/pay/transactions/app', 'POST', nativeOrder(newOrderNo('A')), {});
  t.truthy((app.data as Json).prepay_id);

  const h5NoScene = await sdkError(direct.request('v3/pay/transactions/h5', 'POST', nativeOrder(newOrderNo('H')), {}));
  t.is((h5NoScene.response?.data as Json).code, 'PARAM_ERROR');
  const h5No = newOrderNo('H');
  const h5 = await direct.request('v3/pay/transactions/h5', 'POST', { ...nativeOrder(h5No), scene_info: { payer_client_ip: '127.0.0.1', h5_info: { type: 'Wap' } } }, {});
  const h5Url = (h5.data as Json).h5_url as string;
  const page = await fetch(h5Url);
  t.is(page.status, 200);
  t.regex(await page.text(), new RegExp(`/__sim/orders/${h5No}/pay`));

  const sp = sim.credentials.serviceProvider;
  const partner = sdkFor(sp);
  const partnerNo = newOrderNo('SP');
  const partnerBody = { sp_appid: sp.appid, sp_mchid: sp.mchid, sub_mchid: sp.subMchid, sub_appid: sp.subAppid, description: '服务商订单', out_trade_no: partnerNo, notify_url: 'https://merchant.example.com/notify', amount: { total: 88 }, payer: { sub_openid: 'oSub1' } };
  const partnerCreated = await partner.request('v3/pay/partner/transactions/jsapi', 'POST', partnerBody, {});
  t.truthy((partnerCreated.data as Json).prepay_id);
  const partnerQuery = await partner.request('v3/pay/partner/transactions/out-trade-no/{out_trade_no}', 'GET', undefined, { params: { sp_mchid: sp.mchid, sub_mchid: sp.subMchid }, out_trade_no: partnerNo });
  t.is((partnerQuery.data as Json).sub_mchid, sp.subMchid);
  t.is((partnerQuery.data as Json).trade_state, 'NOTPAY');
  const closed = await partner.request('v3/pay/partner/transactions/out-trade-no/{out_trade_no}/close', 'POST', { sp_mchid: sp.mchid, sub_mchid: sp.subMchid }, { out_trade_no: partnerNo });
  t.is(closed.status, 204);
  const afterClose = await partner.request('v3/pay/partner/transactions/out-trade-no/{out_trade_no}', 'GET', undefined, { params: { sp_mchid: sp.mchid, sub_mchid: sp.subMchid }, out_trade_no: partnerNo });
  t.is((afterClose.data as Json).trade_state, 'CLOSED');
  const reopen = await sdkError(partner.request('v3/pay/partner/transactions/jsapi', 'POST', partnerBody, {}));
  t.is((reopen.response?.data as Json).code, 'ORDER_CLOSED');
});

test.serial('notification: decrypts with SDK AesGcm, signature verifies with SDK Rsa; retried until acknowledged', async (t) => {
  const merchant = sim.credentials.direct;
  const hook = await receiver((count) => (count < 3 ? 500 : 200));
  try {
    const outTradeNo = newOrderNo('NT');
    await sdkFor(merchant).request('v3/pay/transactions/native', 'POST', nativeOrder(outTradeNo, hook.url, 321), {});
    await control('POST', `/__sim/orders/${outTradeNo}/pay`);
    await waitFor(() => hook.received.length >= 3);
    const { headers, body } = hook.received[2];
    const platformKey = Rsa.from(readFileSync(sim.credentials.platformCertificate.path, 'utf8'), Rsa.KEY_TYPE_PUBLIC);
    t.is(headers['wechatpay-serial'], sim.credentials.platformCertificate.serialNo);
    t.true(Rsa.verify(Formatter.response(headers['wechatpay-timestamp'] as string, headers['wechatpay-nonce'] as string, body), headers['wechatpay-signature'] as string, platformKey));
    const notification = JSON.parse(body) as { event_type: string; resource_type: string; resource: Json };
    t.is(notification.event_type, 'TRANSACTION.SUCCESS');
    t.is(notification.resource_type, 'encrypt-resource');
    t.is(notification.resource.associated_data, 'transaction');
    const plain = JSON.parse(Aes.AesGcm.decrypt(notification.resource.ciphertext as string, merchant.apiV3Key, notification.resource.nonce as string, 'transaction')) as Json;
    t.is(plain.out_trade_no, outTradeNo);
    t.is(plain.trade_state, 'SUCCESS');
    t.is((plain.amount as Json).total, 321);
    const view = await control('GET', `/__sim/orders/${outTradeNo}`);
    const [record] = view.json.notifications as { attempts: { status: number }[]; acknowledged: boolean }[];
    t.deepEqual(record.attempts.map((attempt) => attempt.status), [500, 500, 200]);
    t.true(record.acknowledged);
  } finally {
    hook.server.close();
  }
});

test.serial('refunds: PROCESSING then SUCCESS, REFUND.SUCCESS notification, idempotent, over-refund rejected', async (t) => {
  const merchant = sim.credentials.direct;
  const sdk = sdkFor(merchant);
  const hook = await receiver();
  try {
    const outTradeNo = newOrderNo('R');
    await sdk.request('v3/pay/transactions/native', 'POST', nativeOrder(outTradeNo, hook.url, 500), {});
    await control('POST', `/__sim/orders/${outTradeNo}/pay`);
    const refundBody = { out_trade_no: outTradeNo, out_refund_no: `${outTradeNo}R1`, reason: '退货', amount: { refund: 200, total: 500, currency: 'CNY' } };
    const created = await sdk.request('v3/refund/domestic/refunds', 'POST', refundBody, {});
    t.is((created.data as Json).status, 'PROCESSING');
    const repeat = await sdk.request('v3/refund/domestic/refunds', 'POST', refundBody, {});
    t.is((repeat.data as Json).refund_id, (created.data as Json).refund_id);
    const tooMuch = await sdkError(sdk.request('v3/refund/domestic/refunds', 'POST', { ...refundBody, out_refund_no: `${outTradeNo}R2`, amount: { refund: 301, total: 500, currency: 'CNY' } }, {}));
    t.is(tooMuch.response?.status, 400);
    t.is((tooMuch.response?.data as Json).code, 'INVALID_REQUEST');
    await waitFor(() => hook.received.some((item) => item.body.includes('REFUND.SUCCESS')));
    const queried = await sdk.request('v3/refund/domestic/refunds/{out_refund_no}', 'GET', undefined, { out_refund_no: `${outTradeNo}R1` });
    t.is((queried.data as Json).status, 'SUCCESS');
    t.deepEqual(((queried.data as Json).amount as Json).refund, 200);
    const refundNote = JSON.parse(hook.received.find((item) => item.body.includes('REFUND.SUCCESS'))!.body) as { resource: Json };
    t.is(refundNote.resource.associated_data, 'refund');
    const plain = JSON.parse(Aes.AesGcm.decrypt(refundNote.resource.ciphertext as string, merchant.apiV3Key, refundNote.resource.nonce as string, 'refund')) as Json;
    t.is(plain.refund_status, 'SUCCESS');
    t.is(plain.out_refund_no, `${outTradeNo}R1`);
    const order = await sdk.request('v3/pay/transactions/out-trade-no/{out_trade_no}', 'GET', undefined, { params: { mchid: merchant.mchid }, out_trade_no: outTradeNo });
    t.is((order.data as Json).trade_state, 'REFUND');
  } finally {
    hook.server.close();
  }
});

test.serial('trade bill: SHA1 hash, signed download, CSV parsed by the SDK Formatter.castCsvBill', async (t) => {
  const merchant = sim.credentials.direct;
  const sdk = sdkFor(merchant);
  const outTradeNo = newOrderNo('B');
  await sdk.request('v3/pay/transactions/native', 'POST', { ...nativeOrder(outTradeNo, undefined, 1234), attach: 'bill-test' }, {});
  await control('POST', `/__sim/orders/${outTradeNo}/pay`);
  const billDate = new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
  const bill = await sdk.request('v3/bill/tradebill', 'GET', undefined, { params: { bill_date: billDate, bill_type: 'ALL' } });
  const { hash_type, hash_value, download_url } = bill.data as Json;
  t.is(hash_type, 'SHA1');
  const url = new URL(download_url as string);
  t.is(url.pathname, '/v3/billdownload/file');
  const file = await sdk.request('v3/billdownload/file', 'GET', undefined, { params: Object.fromEntries(url.searchParams), responseType: 'arraybuffer' });
  const content = Buffer.from(file.data as ArrayBuffer);
  t.is(createHash('sha1').update(content).digest('hex'), hash_value as string);
  t.false('wechatpay-signature' in file.headers, 'download bodies are not signed');
  const { rows, summary } = Formatter.castCsvBill(content) as { rows: Record<string, string>[]; summary: Record<string, string> };
  const row = rows.find((item) => item['商户订单号'] === outTradeNo);
  t.truthy(row);
  t.is(row!['交易状态'], 'SUCCESS');
  t.is(row!['应结订单金额'], '12.34');
  t.is(row!['商户数据包'], 'bill-test');
  t.is(row!['费率'], '0.60%');
  t.is(summary['总交易单数'], String(rows.length));

  const unsigned = await fetch(download_url as string);
  t.is(unsigned.status, 401, 'the download itself requires a signed request');

  const gz = await sdk.request('v3/bill/tradebill', 'GET', undefined, { params: { bill_date: billDate, bill_type: 'SUCCESS', tar_type: 'GZIP' } });
  const gzUrl = new URL((gz.data as Json).download_url as string);
  const gzFile = await sdk.request('v3/billdownload/file', 'GET', undefined, { params: Object.fromEntries(gzUrl.searchParams), responseType: 'arraybuffer' });
  const unzipped = gunzipSync(Buffer.from(gzFile.data as ArrayBuffer));
  t.is(createHash('sha1').update(unzipped).digest('hex'), (gz.data as Json).hash_value as string);
});

test.serial('micropay (APIv2 XML via the SDK): 134… pays at once, other codes USERPAYING until the payer acts', async (t) => {
  const merchant = sim.credentials.direct;
  const sdk = sdkFor(merchant);
  const immediateNo = newOrderNo('M');
  const micropay = (outTradeNo: string, authCode: string, signType?: string) => sdk.request('v2/pay/micropay', 'POST', {
    appid: merchant.appid, mch_id: merchant.mchid, body: '付款码商品', out_trade_no: outTradeNo, total_fee: '66', spbill_create_ip: '127.0.0.1', auth_code: authCode,
    ...(signType ? { sign_type: signType } : {}),
  }, {});
  const immediate = await micropay(immediateNo, '134567890123456789');
  const data = immediate.data as Record<string, string>;
  t.is(data.return_code, 'SUCCESS');
  t.is(data.result_code, 'SUCCESS');
  t.is(data.trade_type, 'MICROPAY');
  t.is(data.total_fee, '66');

  const pendingNo = newOrderNo('M');
  const pending = await sdkError(micropay(pendingNo, '130000000000000001', Hash.ALGO_HMAC_SHA256));
  t.is(pending.code, 'EV2_RES_STATUS_CODE_NOT_SUCESS');
  t.is((pending.response?.data as Record<string, string>).err_code, 'USERPAYING');
  const v3Query = () => sdk.request('v3/pay/transactions/out-trade-no/{out_trade_no}', 'GET', undefined, { params: { mchid: merchant.mchid }, out_trade_no: pendingNo });
  t.is(((await v3Query()).data as Json).trade_state, 'USERPAYING');
  await control('POST', `/__sim/orders/${pendingNo}/pay`);
  const after = (await v3Query()).data as Json;
  t.is(after.trade_state, 'SUCCESS');
  t.is(after.trade_type, 'MICROPAY');

  const badCode = await sdkError(micropay(newOrderNo('M'), '990000000000000001'));
  t.is((badCode.response?.data as Record<string, string>).err_code, 'AUTH_CODE_INVALID');
});

test.serial('payer page for weixin:// code_url and control fail', async (t) => {
  const sdk = sdkFor(sim.credentials.direct);
  const outTradeNo = newOrderNo('PG');
  const created = await sdk.request('v3/pay/transactions/native', 'POST', nativeOrder(outTradeNo), {});
  const pr = new URL((created.data as Json).code_url as string).searchParams.get('pr');
  const page = await fetch(`${sim.url}/__sim/bizpayurl?pr=${pr}`);
  const html = await page.text();
  t.regex(html, /Pay<\/button>/);
  t.regex(html, /Fail<\/button>/);
  const form = await fetch(`${sim.url}/__sim/orders/${outTradeNo}/fail`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'action=fail' });
  t.regex(await form.text(), /CLOSED/);
  const list = await control('GET', '/__sim/orders');
  t.true((list.json as unknown as Json[]).some((order) => order.out_trade_no === outTradeNo && order.status === 'CLOSED'));
});

test.serial('key material persists across restarts and credentials.json is written', async (t) => {
  const second = await startWechatPaySimulator({ dataDir });
  try {
    t.is(second.credentials.direct.merchantCertificateSerial, sim.credentials.direct.merchantCertificateSerial);
    t.is(second.credentials.platformCertificate.serialNo, sim.credentials.platformCertificate.serialNo);
    t.is(second.credentials.direct.apiV3Key, sim.credentials.direct.apiV3Key);
    t.regex(second.credentials.direct.merchantCertificateSerial, /^[0-9A-F]{40}$/);
    t.is(second.credentials.direct.apiV3Key.length, 32);
    t.is(second.credentials.direct.apiV2Key.length, 32);
    const written = JSON.parse(readFileSync(join(dataDir, 'simulators', 'wechatpay', 'credentials.json'), 'utf8')) as Json;
    t.is(written.baseUrl, second.url);
  } finally {
    await second.close();
  }
});
