import test from 'ava';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createSign, generateKeyPairSync } from 'node:crypto';
import { AlipaySdk } from 'alipay-sdk';
import { unzipSync } from 'fflate';
import {
  startAlipaySimulator, buildSignContent, NOTIFY_SIGN_EXCLUDED, type RunningSimulator,
} from '../../plugins/alipay/simulator/index.js';

// ---------- shared fixtures: one simulator and one notification receiver for the whole file ----------

interface Received {
  path: string;
  params: Record<string, string>;
}

let sim: RunningSimulator;
let dataDir: string;
let sdk: AlipaySdk;
let receiverUrl: string;
let receiver: http.Server;
const received: Received[] = [];
/** Reply the receiver gives per out_trade_no (default "success"); a list is consumed one reply per delivery. */
const replies = new Map<string, string[]>();

function waitFor<T>(probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      const value = probe();
      if (value !== undefined) return resolve(value);
      if (Date.now() - started > timeoutMs) return reject(new Error('timed out waiting'));
      setTimeout(tick, 20);
    };
    tick();
  });
}

function notificationsFor(outTradeNo: string): Received[] {
  return received.filter((r) => r.params.out_trade_no === outTradeNo);
}

test.before(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'corbel-alipay-sim-'));
  receiver = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const params = Object.fromEntries(new URLSearchParams(body));
      received.push({ path: req.url ?? '', params });
      const queue = replies.get(params.out_trade_no ?? '');
      const reply = queue && queue.length > 1 ? queue.shift()! : (queue?.[0] ?? 'success');
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(reply);
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/alipay/notify`;
  sim = await startAlipaySimulator({ dataDir, notifyRetryDelaysMs: [100, 100, 100], userPayingSettleMs: 60_000 });
  const c = sim.credentials;
  sdk = new AlipaySdk({
    appId: c.appId,
    privateKey: await readFile(c.appPrivateKeyPath, 'utf8'),
    alipayPublicKey: await readFile(c.alipayPublicKeyPath, 'utf8'),
    gateway: c.gatewayUrl,
    timeout: 3000,
  });
});

test.after.always(async () => {
  await sim?.close();
  await new Promise<void>((r) => receiver?.close(() => r()));
  await rm(dataDir, { recursive: true, force: true });
});

const control = async (method: string, p: string, body?: unknown) => {
  const res = await fetch(`${sim.url}${p}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
};

const setFaults = (faults: Record<string, unknown>) => control('PUT', '/__sim/faults', faults);

let seq = 0;
const orderNo = (tag: string) => `T${Date.now()}${++seq}${tag}`;

async function precreate(outTradeNo: string, amount = '88.88', extra: Record<string, unknown> = {}) {
  return sdk.exec('alipay.trade.precreate', {
    notifyUrl: receiverUrl,
    bizContent: { outTradeNo, totalAmount: amount, subject: '测试商品 / test', ...extra },
  }, { validateSign: true });
}

/** Signs an arbitrary parameter set with the merchant key, like an SDK would. */
async function signedParams(params: Record<string, string>): Promise<Record<string, string>> {
  const key = await readFile(sim.credentials.appPrivateKeyPath, 'utf8');
  const sign = createSign('RSA-SHA256').update(buildSignContent(params), 'utf8').sign(key, 'base64');
  return { ...params, sign };
}

function baseParams(method: string, biz: Record<string, unknown>): Record<string, string> {
  return {
    app_id: sim.credentials.appId, method, format: 'JSON', charset: 'utf-8', sign_type: 'RSA2',
    timestamp: '2025-01-01 12:00:00', version: '1.0', biz_content: JSON.stringify(biz),
  };
}

/** One-shot POST on a fresh connection (no keep-alive, no client retries), for socket-level faults. */
function rawPost(params: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${sim.url}/gateway.do`, {
      method: 'POST', agent: false, headers: { 'content-type': 'application/x-www-form-urlencoded' },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve(text));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(new URLSearchParams(params).toString());
  });
}

async function postGateway(params: Record<string, string>): Promise<string> {
  const res = await fetch(`${sim.url}/gateway.do`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
  });
  return res.text();
}

// ---------- test vectors ----------

test('sign content: sorted, sign dropped, empty values dropped, raw values', (t) => {
  const params = {
    sign: 'xxx', timestamp: '2014-07-24 03:07:50', app_id: '2014072300007148', method: 'alipay.trade.query',
    charset: 'utf-8', sign_type: 'RSA2', version: '1.0', notify_url: '', biz_content: '{"out_trade_no":"a&b=c"}',
  };
  t.is(buildSignContent(params),
    'app_id=2014072300007148&biz_content={"out_trade_no":"a&b=c"}&charset=utf-8&method=alipay.trade.query'
    + '&sign_type=RSA2&timestamp=2014-07-24 03:07:50&version=1.0');
  // Notifications additionally drop sign_type.
  t.is(buildSignContent({ b: '2', a: '1', sign_type: 'RSA2', sign: 's' }, NOTIFY_SIGN_EXCLUDED), 'a=1&b=2');
});

test('keys are generated once and reused on restart; credentials.json is written', async (t) => {
  const again = await startAlipaySimulator({ dataDir });
  try {
    t.is(again.credentials.alipayPublicKeyPem, sim.credentials.alipayPublicKeyPem);
    t.is(again.credentials.appAuthGrants[0]!.appAuthToken, sim.credentials.appAuthGrants[0]!.appAuthToken);
    const written = JSON.parse(await readFile(path.join(dataDir, 'simulators/alipay/credentials.json'), 'utf8'));
    t.is(written.appId, '2021000000000001');
    t.false(JSON.stringify(written).includes('alipay_private_key'));
  } finally {
    await again.close();
  }
});

// ---------- SDK fidelity ----------

test.serial('precreate -> scan -> pay -> notification verified by the SDK -> query', async (t) => {
  const no = orderNo('qr');
  const created = await precreate(no);
  t.is(created.code, '10000');
  t.regex(created.qrCode, /\/__sim\/qr\//);

  const before = await sdk.exec('alipay.trade.query', { bizContent: { outTradeNo: no } }, { validateSign: true });
  t.is(before.code, '40004');
  t.is(before.subCode, 'ACQ.TRADE_NOT_EXIST');

  const page = await (await fetch(created.qrCode)).text();
  t.true(page.includes(no));
  const scanned = await sdk.exec('alipay.trade.query', { bizContent: { outTradeNo: no } }, { validateSign: true });
  t.is(scanned.tradeStatus, 'WAIT_BUYER_PAY');

  const paid = await control('POST', `/__sim/orders/${no}/pay`);
  t.is(paid.json.status, 'TRADE_SUCCESS');
  const note = await waitFor(() => notificationsFor(no)[0]);
  t.is(note.params.trade_status, 'TRADE_SUCCESS');
  t.is(note.params.total_amount, '88.88');
  t.is(note.params.notify_type, 'trade_status_sync');
  t.true(sdk.checkNotifySign(note.params));
  t.true(sdk.checkNotifySignV2(note.params));
  t.false(sdk.checkNotifySign({ ...note.params, total_amount: '1.00' }));

  const after = await sdk.exec('alipay.trade.query', { bizContent: { outTradeNo: no } }, { validateSign: true });
  t.is(after.tradeStatus, 'TRADE_SUCCESS');
  t.is(after.totalAmount, '88.88');
  t.is(after.buyerPayAmount, '88.88');
  t.regex(after.sendPayDate, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
  const view = await control('GET', `/__sim/orders/${no}`);
  t.is(view.json.total_fen, 8888);
  await waitFor(() => (view.json.notifications as any[]).length ? true : undefined);
});

test.serial('refunds: partial, idempotent repeat, query, notifications, full refund closes', async (t) => {
  const no = orderNo('rf');
  await precreate(no, '10.00');
  await control('POST', `/__sim/orders/${no}/pay`);
  await waitFor(() => notificationsFor(no)[0]);

  const r1 = await sdk.exec('alipay.trade.refund', { bizContent: { outTradeNo: no, refundAmount: '3.50', outRequestNo: 'R1' } }, { validateSign: true });
  t.is(r1.code, '10000');
  t.is(r1.fundChange, 'Y');
  t.is(r1.refundFee, '3.50');
  const again = await sdk.exec('alipay.trade.refund', { bizContent: { outTradeNo: no, refundAmount: '3.50', outRequestNo: 'R1' } }, { validateSign: true });
  t.is(again.fundChange, 'N');
  t.is(again.refundFee, '3.50');
  const discordant = await sdk.exec('alipay.trade.refund', { bizContent: { outTradeNo: no, refundAmount: '3.51', outRequestNo: 'R1' } });
  t.is(discordant.subCode, 'ACQ.DISCORDANT_REPEAT_REQUEST');
  const tooMuch = await sdk.exec('alipay.trade.refund', { bizContent: { outTradeNo: no, refundAmount: '7.00', outRequestNo: 'R2' } });
  t.is(tooMuch.subCode, 'ACQ.REFUND_AMT_NOT_EQUAL_TOTAL');

  const q = await sdk.exec('alipay.trade.fastpay.refund.query', { bizContent: { outTradeNo: no, outRequestNo: 'R1' } }, { validateSign: true });
  t.is(q.refundStatus, 'REFUND_SUCCESS');
  t.is(q.refundAmount, '3.50');
  const unknown = await sdk.exec('alipay.trade.fastpay.refund.query', { bizContent: { outTradeNo: no, outRequestNo: 'nope' } });
  t.is(unknown.code, '10000');
  t.is(unknown.refundStatus, undefined);

  const partialNote = await waitFor(() => notificationsFor(no).find((n) => n.params.out_biz_no === 'R1'));
  t.is(partialNote.params.trade_status, 'TRADE_SUCCESS');
  t.is(partialNote.params.refund_fee, '3.50');
  t.regex(partialNote.params.gmt_refund!, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$/);
  t.true(sdk.checkNotifySign(partialNote.params));

  const r2 = await sdk.exec('alipay.trade.refund', { bizContent: { outTradeNo: no, refundAmount: '6.50', outRequestNo: 'R2' } }, { validateSign: true });
  t.is(r2.refundFee, '10.00');
  const closedNote = await waitFor(() => notificationsFor(no).find((n) => n.params.out_biz_no === 'R2'));
  t.is(closedNote.params.trade_status, 'TRADE_CLOSED');
  t.is(closedNote.params.refund_fee, '10.00');
  const query = await sdk.exec('alipay.trade.query', { bizContent: { outTradeNo: no } });
  t.is(query.tradeStatus, 'TRADE_CLOSED');
  const closedRefund = await sdk.exec('alipay.trade.refund', { bizContent: { outTradeNo: no, refundAmount: '1.00', outRequestNo: 'R3' } });
  t.is(closedRefund.subCode, 'ACQ.TRADE_HAS_CLOSE');
});

test.serial('pageExecute GET url opens the cashier; paying redirects to a signed return_url', async (t) => {
  const no = orderNo('pg');
  const url = sdk.pageExecute('alipay.trade.page.pay', 'GET', {
    notifyUrl: receiverUrl,
    returnUrl: 'http://merchant.example/return',
    bizContent: { outTradeNo: no, totalAmount: '0.01', subject: 'page pay', productCode: 'FAST_INSTANT_TRADE_PAY' },
  });
  const html = await (await fetch(url)).text();
  t.true(html.includes(no));
  const action = /action="([^"]+\/pay)"/.exec(html)![1]!;
  const res = await fetch(`${sim.url}${action}`, { method: 'POST', redirect: 'manual' });
  t.is(res.status, 302);
  const location = new URL(res.headers.get('location')!);
  t.is(location.host, 'merchant.example');
  const returned = Object.fromEntries(location.searchParams);
  t.is(returned.method, 'alipay.trade.page.pay.return');
  t.is(returned.out_trade_no, no);
  t.true(sdk.checkNotifySign(returned));
  const note = await waitFor(() => notificationsFor(no)[0]);
  t.true(sdk.checkNotifySign(note.params));

  // The POST form variant is accepted too.
  const form = sdk.pageExecute('alipay.trade.wap.pay', 'POST', {
    bizContent: { outTradeNo: orderNo('wap'), totalAmount: '1.00', subject: 'wap', productCode: 'QUICK_WAP_WAY' },
  });
  const fields = Object.fromEntries([...form.matchAll(/name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!.replace(/&quot;/g, '"')]));
  const formAction = /action="([^"]+)"/.exec(form)![1]!;
  const wapHtml = await (await fetch(formAction, { method: 'POST', body: new URLSearchParams(fields) })).text();
  t.true(wapHtml.includes('Pay'));
});

test.serial('app pay order string from sdkExecute opens the payer page', async (t) => {
  const no = orderNo('app');
  const orderString = sdk.sdkExecute('alipay.trade.app.pay', {
    notifyUrl: receiverUrl,
    bizContent: { outTradeNo: no, totalAmount: '2.00', subject: 'app' },
  });
  const html = await (await fetch(`${sim.url}/__sim/app?${orderString}`)).text();
  t.true(html.includes(no));
  const tampered = await (await fetch(`${sim.url}/__sim/app?${orderString.replace('2.00', '0.01')}`)).text();
  t.true(tampered.includes('isv.invalid-signature'));
});

test.serial('bar code pay: 28 succeeds, 27 waits, 25 is rejected', async (t) => {
  const ok = await sdk.exec('alipay.trade.pay', { bizContent: { outTradeNo: orderNo('bc'), scene: 'bar_code', authCode: '281234567890123456', totalAmount: '5.00', subject: 'pos' } }, { validateSign: true });
  t.is(ok.code, '10000');
  t.is(ok.totalAmount, '5.00');
  const waitingNo = orderNo('bw');
  const waiting = await sdk.exec('alipay.trade.pay', { bizContent: { outTradeNo: waitingNo, scene: 'bar_code', authCode: '271234567890123456', totalAmount: '5.00', subject: 'pos' } }, { validateSign: true });
  t.is(waiting.code, '10003');
  t.is((await sdk.exec('alipay.trade.query', { bizContent: { outTradeNo: waitingNo } })).tradeStatus, 'WAIT_BUYER_PAY');
  await control('POST', `/__sim/orders/${waitingNo}/pay`);
  t.is((await sdk.exec('alipay.trade.query', { bizContent: { outTradeNo: waitingNo } })).tradeStatus, 'TRADE_SUCCESS');
  const bad = await sdk.exec('alipay.trade.pay', { bizContent: { outTradeNo: orderNo('bb'), scene: 'bar_code', authCode: '251234567890123456', totalAmount: '5.00', subject: 'pos' } });
  t.is(bad.code, '40004');
  t.is(bad.subCode, 'ACQ.PAYMENT_AUTH_CODE_INVALID');
});

test.serial('business rules: context inconsistent, amount format, close, fail control', async (t) => {
  const no = orderNo('ctx');
  await precreate(no, '1.00');
  t.is((await precreate(no, '1.00')).code, '10000');
  t.is((await precreate(no, '2.00')).subCode, 'ACQ.CONTEXT_INCONSISTENT');
  const threeDecimals = await precreate(orderNo('amt'), '1.001');
  t.is(threeDecimals.subCode, 'ACQ.INVALID_PARAMETER');
  t.is((await precreate(orderNo('amt'), 'abc')).subCode, 'ACQ.INVALID_PARAMETER');

  const closeNo = orderNo('cl');
  await sdk.exec('alipay.trade.create', { notifyUrl: receiverUrl, bizContent: { outTradeNo: closeNo, totalAmount: '1.00', subject: 'c' } });
  const closed = await sdk.exec('alipay.trade.close', { bizContent: { outTradeNo: closeNo } }, { validateSign: true });
  t.is(closed.code, '10000');
  t.is((await sdk.exec('alipay.trade.query', { bizContent: { outTradeNo: closeNo } })).tradeStatus, 'TRADE_CLOSED');
  const closeNote = await waitFor(() => notificationsFor(closeNo)[0]);
  t.is(closeNote.params.trade_status, 'TRADE_CLOSED');
  t.is((await precreate(closeNo, '1.00')).subCode, 'ACQ.TRADE_HAS_CLOSE');

  const failNo = orderNo('fl');
  await precreate(failNo, '1.00');
  t.is((await control('POST', `/__sim/orders/${failNo}/fail`)).json.status, 'TRADE_CLOSED');
  t.is((await control('POST', '/__sim/orders/nope/pay')).status, 404);
});

test.serial('ISV mode: app_auth_token maps to the sub-merchant; a bad token is 20001', async (t) => {
  const grant = sim.credentials.appAuthGrants[0]!;
  const no = orderNo('isv');
  const res = await sdk.exec('alipay.trade.precreate', { appAuthToken: grant.appAuthToken, bizContent: { outTradeNo: no, totalAmount: '1.00', subject: 'isv' } }, { validateSign: true });
  t.is(res.code, '10000');
  t.is((await control('GET', `/__sim/orders/${no}`)).json.seller_id, grant.sellerId);
  const bad = await sdk.exec('alipay.trade.query', { appAuthToken: 'nope', bizContent: { outTradeNo: no } }, { validateSign: true });
  t.is(bad.code, '20001');
  t.is(bad.subCode, 'aop.invalid-app-auth-token');
});

// ---------- gateway-level rejections ----------

test.serial('tampered request, wrong key, missing parameters and unknown method are rejected', async (t) => {
  const params = await signedParams(baseParams('alipay.trade.query', { out_trade_no: 'x' }));
  const tampered = JSON.parse(await postGateway({ ...params, biz_content: '{"out_trade_no":"y"}' }));
  t.is(tampered.alipay_trade_query_response.code, '40002');
  t.is(tampered.alipay_trade_query_response.sub_code, 'isv.invalid-signature');
  t.truthy(tampered.sign);

  const wrongKey = new AlipaySdk({
    appId: sim.credentials.appId,
    privateKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    alipayPublicKey: sim.credentials.alipayPublicKeyPem,
    gateway: sim.credentials.gatewayUrl,
  });
  const rejected = await wrongKey.exec('alipay.trade.query', { bizContent: { outTradeNo: 'x' } }, { validateSign: true });
  t.is(rejected.subCode, 'isv.invalid-signature');

  const { sign: _sign, ...unsigned } = params;
  const missing = JSON.parse(await postGateway(unsigned));
  t.is(missing.alipay_trade_query_response.code, '40001');
  t.is(missing.alipay_trade_query_response.sub_code, 'isv.missing-signature');

  const unknown = JSON.parse(await postGateway(await signedParams(baseParams('alipay.trade.nothing', {}))));
  t.is(unknown.error_response.sub_code, 'isv.invalid-method');

  const badTime = JSON.parse(await postGateway(await signedParams({ ...baseParams('alipay.trade.query', {}), timestamp: '2025/01/01' })));
  t.is(badTime.alipay_trade_query_response.sub_code, 'isv.invalid-timestamp');

  const badApp = JSON.parse(await postGateway({ ...params, app_id: '2021999' }));
  t.is(badApp.alipay_trade_query_response.sub_code, 'isv.invalid-app-id');
});

test.serial('responses escape slashes and the signature covers the raw bytes', async (t) => {
  const raw = await postGateway(await signedParams({ ...baseParams('alipay.trade.precreate', { out_trade_no: orderNo('raw'), total_amount: '1.00', subject: 's' }) }));
  t.true(raw.includes('http:\\/\\/'));
  t.regex(raw, /^\{"alipay_trade_precreate_response":\{.*\},"sign":"[A-Za-z0-9+/=]+"\}$/);
});

// ---------- faults ----------

test.serial('fault corrupt_signature: SDK response verification and notification verification fail', async (t) => {
  await setFaults({ corrupt_signature: true });
  try {
    const no = orderNo('cs');
    await t.throwsAsync(precreate(no), { message: /验签失败/ });
    await control('POST', `/__sim/orders/${no}/pay`);
    const note = await waitFor(() => notificationsFor(no)[0]);
    t.false(sdk.checkNotifySign(note.params));
  } finally {
    await control('DELETE', '/__sim/faults');
  }
});

test.serial('fault http_5xx answers 20000 without processing, then recovers', async (t) => {
  await setFaults({ http_5xx: 1 });
  const no = orderNo('5xx');
  const res = await sdk.exec('alipay.trade.create', { bizContent: { outTradeNo: no, totalAmount: '1.00', subject: 's' } }, { validateSign: true });
  t.is(res.code, '20000');
  t.is((await control('GET', `/__sim/orders/${no}`)).status, 404);
  t.is((await sdk.exec('alipay.trade.create', { bizContent: { outTradeNo: no, totalAmount: '1.00', subject: 's' } })).code, '10000');
});

test.serial('faults connection_reset and response_lost; response_lost still creates the order', async (t) => {
  try {
    await setFaults({ connection_reset: 1 });
    const resetNo = orderNo('rst');
    await t.throwsAsync(rawPost(await signedParams(baseParams('alipay.trade.create', { out_trade_no: resetNo, total_amount: '1.00', subject: 's' }))));
    t.is((await control('GET', `/__sim/orders/${resetNo}`)).status, 404);

    await setFaults({ response_lost: 1 });
    const lostNo = orderNo('lost');
    await t.throwsAsync(rawPost(await signedParams(baseParams('alipay.trade.create', { out_trade_no: lostNo, total_amount: '1.00', subject: 's' }))));
    t.is((await control('GET', `/__sim/orders/${lostNo}`)).status, 200);
    t.is((await sdk.exec('alipay.trade.query', { bizContent: { outTradeNo: lostNo } })).tradeStatus, 'WAIT_BUYER_PAY');
  } finally {
    await control('DELETE', '/__sim/faults');
  }
});

test.serial('faults latency_ms and timeout (paths filter respected)', async (t) => {
  try {
    await setFaults({ latency_ms: 300 });
    const started = Date.now();
    await sdk.exec('alipay.trade.query', { bizContent: { outTradeNo: 'x' } });
    t.true(Date.now() - started >= 290);

    await setFaults({ timeout: true });
    await t.throwsAsync(fetch(`${sim.url}/gateway.do`, { method: 'POST', signal: AbortSignal.timeout(300) }), { any: true });
    t.is((await control('GET', '/__sim/faults')).json.timeout, true);

    await setFaults({ timeout: true, paths: ['/downloadBillFile.resource'] });
    t.is((await sdk.exec('alipay.trade.query', { bizContent: { outTradeNo: 'x' } })).subCode, 'ACQ.TRADE_NOT_EXIST');
  } finally {
    await control('DELETE', '/__sim/faults');
  }
  t.is((await setFaults({ notify: 'bogus' })).status, 400);
});

test.serial('notifications are retried until acknowledged with exactly "success"', async (t) => {
  const no = orderNo('retry');
  replies.set(no, ['fail', 'success ', 'success']);
  await precreate(no, '1.00');
  await control('POST', `/__sim/orders/${no}/pay`);
  await waitFor(() => (notificationsFor(no).length >= 3 ? true : undefined));
  await new Promise((r) => setTimeout(r, 50));
  const order = await control('GET', `/__sim/orders/${no}`);
  const n = (order.json.notifications as any[])[0];
  t.is(n.attempts.length, 3);
  t.is(n.state, 'acknowledged');
  // All deliveries carry the same notify_id.
  t.is(new Set(notificationsFor(no).map((r) => r.params.notify_id)).size, 1);

  // Exhaustion: a receiver that never acknowledges gets 1 + 3 retries.
  const never = orderNo('never');
  replies.set(never, ['nope']);
  await precreate(never, '1.00');
  await control('POST', `/__sim/orders/${never}/pay`);
  await waitFor(() => (notificationsFor(never).length >= 4 ? true : undefined));
  await new Promise((r) => setTimeout(r, 150));
  const exhausted = await control('GET', `/__sim/orders/${never}`);
  t.is(exhausted.json.notifications[0].state, 'exhausted');
  t.is(notificationsFor(never).length, 4);

  // Manual resend.
  replies.set(never, ['success']);
  await control('POST', `/__sim/orders/${never}/notify`);
  t.is((await control('GET', `/__sim/orders/${never}`)).json.notifications[0].state, 'acknowledged');
});

test.serial('notify faults: lost, duplicate, delayed, out_of_order, tamper_notify_amount', async (t) => {
  try {
    await setFaults({ notify: 'lost' });
    const lost = orderNo('nl');
    await precreate(lost, '1.00');
    await control('POST', `/__sim/orders/${lost}/pay`);
    await new Promise((r) => setTimeout(r, 200));
    t.is(notificationsFor(lost).length, 0);
    t.is((await control('GET', `/__sim/orders/${lost}`)).json.notifications[0].state, 'lost');

    await setFaults({ notify: 'duplicate' });
    const dup = orderNo('nd');
    await precreate(dup, '1.00');
    await control('POST', `/__sim/orders/${dup}/pay`);
    await waitFor(() => (notificationsFor(dup).length >= 2 ? true : undefined));
    t.is(notificationsFor(dup)[0]!.params.notify_id, notificationsFor(dup)[1]!.params.notify_id);

    await setFaults({ notify: 'delayed', notify_delay_ms: 400 });
    const delayed = orderNo('ny');
    await precreate(delayed, '1.00');
    const paidAt = Date.now();
    await control('POST', `/__sim/orders/${delayed}/pay`);
    await waitFor(() => notificationsFor(delayed)[0]);
    t.true(Date.now() - paidAt >= 390);

    await setFaults({ notify: 'out_of_order', notify_delay_ms: 2000 });
    const ooo = orderNo('no');
    await precreate(ooo, '2.00');
    await control('POST', `/__sim/orders/${ooo}/pay`);
    await sdk.exec('alipay.trade.refund', { bizContent: { outTradeNo: ooo, refundAmount: '1.00', outRequestNo: 'X1' } });
    await waitFor(() => (notificationsFor(ooo).length >= 2 ? true : undefined));
    t.is(notificationsFor(ooo)[0]!.params.out_biz_no, 'X1');
    t.falsy(notificationsFor(ooo)[1]!.params.out_biz_no);

    await setFaults({ tamper_notify_amount: true });
    const tampered = orderNo('nt');
    await precreate(tampered, '1.00');
    await control('POST', `/__sim/orders/${tampered}/pay`, { amount: 1 });
    const note = await waitFor(() => notificationsFor(tampered)[0]);
    t.is(note.params.total_amount, '0.01');
    t.true(sdk.checkNotifySign(note.params));
  } finally {
    await control('DELETE', '/__sim/faults');
  }
});

// ---------- statement ----------

test.serial('bill download: zip with GBK detail and summary files built from trades and refunds', async (t) => {
  const no = orderNo('bill');
  await precreate(no, '12.34');
  await control('POST', `/__sim/orders/${no}/pay`);
  await sdk.exec('alipay.trade.refund', { bizContent: { outTradeNo: no, refundAmount: '1.00', outRequestNo: 'B1' } });
  const today = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
  const res = await sdk.exec('alipay.data.dataservice.bill.downloadurl.query', { bizContent: { billType: 'trade', billDate: today } }, { validateSign: true });
  t.is(res.code, '10000');
  const zip = new Uint8Array(await (await fetch(res.billDownloadUrl)).arrayBuffer());
  const files = unzipSync(zip);
  const names = Object.keys(files);
  const detailName = names.find((n) => n.endsWith('_业务明细.csv'))!;
  const summaryName = names.find((n) => n.endsWith('_业务明细(汇总).csv'))!;
  t.truthy(detailName);
  t.truthy(summaryName);
  const detail = new TextDecoder('gbk').decode(files[detailName]);
  t.true(detail.startsWith('#支付宝业务明细查询'));
  t.true(detail.includes('支付宝交易号,商户订单号,业务类型,商品名称'));
  const rows = detail.split('\r\n').filter((l) => l.includes(no));
  t.is(rows.length, 2);
  const trade = rows.find((r) => r.includes('交易\t'))!.split(',');
  t.is(trade.length, 25);
  t.is(trade[11], '12.34');
  const refund = rows.find((r) => r.includes('退款\t'))!.split(',');
  t.is(refund[12], '-1.00');
  t.is(refund[21], 'B1\t');
  const summary = new TextDecoder('gbk').decode(files[summaryName]);
  t.true(summary.includes('门店编号,门店名称,交易订单总笔数'));
  t.regex(summary, /\r\n合计,,\d+,\d+,/);

  const future = await sdk.exec('alipay.data.dataservice.bill.downloadurl.query', { bizContent: { billType: 'trade', billDate: '2999-01-01' } });
  t.is(future.subCode, 'isp.bill_not_exist');
});
