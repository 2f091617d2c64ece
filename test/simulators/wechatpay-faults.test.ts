// Fault injection and notification delivery behaviour of the WeChat Pay simulator.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aes, Formatter, Rsa } from 'wechatpay-axios-plugin';
import { startWechatPaySimulator, type RunningSimulator } from '../../plugins/wechatpay/simulator/index.js';

type Json = Record<string, unknown>;

let sim: RunningSimulator;
let dataDir: string;

test.before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'corbel-wxsim-faults-'));
  sim = await startWechatPaySimulator({ dataDir, notifyRetryDelaysMs: [100, 100], refundDelayMs: 50 });
});

test.after.always(async () => {
  await sim?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test.afterEach.always(async () => {
  await fetch(`${sim.url}/__sim/faults`, { method: 'DELETE' });
});

/** Signed APIv3 call built with the SDK's own Formatter/Rsa helpers. */
async function signedFetch(method: string, path: string, body?: Json, signal?: AbortSignal): Promise<Response> {
  const merchant = sim.credentials.direct;
  const payload = body === undefined ? '' : JSON.stringify(body);
  const nonce = Formatter.nonce();
  const timestamp = String(Formatter.timestamp());
  const signature = Rsa.sign(Formatter.request(method, path, timestamp, nonce, payload), Rsa.from(readFileSync(merchant.merchantPrivateKeyPath, 'utf8'), Rsa.KEY_TYPE_PRIVATE));
  return fetch(`${sim.url}${path}`, {
    method,
    headers: { Accept: 'application/json', 'Content-Type': 'application/json', Authorization: Formatter.authorization(merchant.mchid, nonce, signature, timestamp, merchant.merchantCertificateSerial) },
    body: body === undefined ? undefined : payload,
    signal,
  });
}

async function putFaults(faults: Json): Promise<void> {
  const response = await fetch(`${sim.url}/__sim/faults`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(faults) });
  if (response.status !== 200) throw new Error(`fault PUT failed: ${await response.text()}`);
}

let counter = 0;
function orderNo(prefix: string): string {
  counter += 1;
  return `${prefix}${Date.now()}${counter}`;
}

function nativeOrder(outTradeNo: string, notifyUrl = 'https://merchant.example.com/notify', total = 100): Json {
  return { appid: sim.credentials.direct.appid, mchid: sim.credentials.direct.mchid, description: '故障测试', out_trade_no: outTradeNo, notify_url: notifyUrl, amount: { total, currency: 'CNY' } };
}

async function createOrder(outTradeNo: string, notifyUrl?: string, total?: number): Promise<void> {
  const response = await signedFetch('POST', '/v3/pay/transactions/native', nativeOrder(outTradeNo, notifyUrl, total));
  if (response.status !== 200) throw new Error(`create failed ${response.status}`);
}

async function orderView(outTradeNo: string): Promise<Json> {
  return (await (await fetch(`${sim.url}/__sim/orders/${outTradeNo}`)).json()) as Json;
}

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
  event: string;
  plain: Json;
}

async function receiver(answer: () => number = () => 200): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const parsed = JSON.parse(body) as { event_type: string; resource: { ciphertext: string; nonce: string; associated_data: string } };
      let plain: Json = {};
      try {
        plain = JSON.parse(Aes.AesGcm.decrypt(parsed.resource.ciphertext, sim.credentials.direct.apiV3Key, parsed.resource.nonce, parsed.resource.associated_data)) as Json;
      } catch {
        // probes carry no decryptable resource
      }
      received.push({ headers: req.headers, body, event: parsed.event_type, plain });
      res.statusCode = answer();
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/notify`, received, server };
}

async function waitFor(check: () => boolean, timeoutMs = 4000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function platformVerifies(item: Received): boolean {
  const key = Rsa.from(readFileSync(sim.credentials.platformCertificate.path, 'utf8'), Rsa.KEY_TYPE_PUBLIC);
  return Rsa.verify(Formatter.response(item.headers['wechatpay-timestamp'] as string, item.headers['wechatpay-nonce'] as string, item.body), item.headers['wechatpay-signature'] as string, key);
}

test.serial('fault set validation and reset', async (t) => {
  const bad = await fetch(`${sim.url}/__sim/faults`, { method: 'PUT', body: JSON.stringify({ notify: 'sometimes' }) });
  t.is(bad.status, 400);
  await putFaults({ http_5xx: 2 });
  t.is(((await (await fetch(`${sim.url}/__sim/faults`)).json()) as Json).http_5xx, 2);
  await fetch(`${sim.url}/__sim/faults`, { method: 'DELETE' });
  t.is(((await (await fetch(`${sim.url}/__sim/faults`)).json()) as Json).http_5xx, 0);
});

test.serial('latency_ms delays answers', async (t) => {
  await putFaults({ latency_ms: 300 });
  const started = Date.now();
  const response = await signedFetch('POST', '/v3/pay/transactions/native', nativeOrder(orderNo('L')));
  t.is(response.status, 200);
  t.true(Date.now() - started >= 290);
});

test.serial('timeout holds the request until the client gives up', async (t) => {
  await putFaults({ timeout: true });
  const started = Date.now();
  // fetch rejects with a DOMException (not an Error subclass), so catch it by hand.
  const outcome = await signedFetch('POST', '/v3/pay/transactions/native', nativeOrder(orderNo('TO')), AbortSignal.timeout(300)).then(
    (response) => `answered ${response.status}`,
    (error: { name?: string }) => String(error.name),
  );
  t.regex(outcome, /TimeoutError|AbortError/);
  t.true(Date.now() - started >= 290);
});

test.serial('http_5xx answers 500 SYSTEMERROR for the next N calls without processing', async (t) => {
  await putFaults({ http_5xx: 1 });
  const no = orderNo('E');
  const failed = await signedFetch('POST', '/v3/pay/transactions/native', nativeOrder(no));
  t.is(failed.status, 500);
  t.is(((await failed.json()) as Json).code, 'SYSTEMERROR');
  t.is((await fetch(`${sim.url}/__sim/orders/${no}`)).status, 404, 'the order was not created');
  const ok = await signedFetch('POST', '/v3/pay/transactions/native', nativeOrder(no));
  t.is(ok.status, 200);
});

test.serial('connection_reset destroys the socket before processing', async (t) => {
  await putFaults({ connection_reset: 1 });
  const no = orderNo('CR');
  await t.throwsAsync(signedFetch('POST', '/v3/pay/transactions/native', nativeOrder(no)));
  t.is((await fetch(`${sim.url}/__sim/orders/${no}`)).status, 404);
});

test.serial('response_lost processes the call but drops the answer', async (t) => {
  await putFaults({ response_lost: 1 });
  const no = orderNo('RL');
  await t.throwsAsync(signedFetch('POST', '/v3/pay/transactions/native', nativeOrder(no)));
  t.is(((await orderView(no)) as Json).status, 'NOTPAY', 'the order exists');
  const query = await signedFetch('GET', `/v3/pay/transactions/out-trade-no/${no}?mchid=${sim.credentials.direct.mchid}`);
  t.is(query.status, 200);
});

test.serial('paths limits API faults to matching prefixes', async (t) => {
  await putFaults({ http_5xx: 5, paths: ['/v3/refund'] });
  const response = await signedFetch('POST', '/v3/pay/transactions/native', nativeOrder(orderNo('PF')));
  t.is(response.status, 200);
  const refund = await signedFetch('GET', '/v3/refund/domestic/refunds/none');
  t.is(refund.status, 500);
});

test.serial('corrupt_signature: notification signature fails verification', async (t) => {
  const hook = await receiver();
  try {
    await putFaults({ corrupt_signature: true });
    const no = orderNo('CS');
    await createOrder(no, hook.url);
    await fetch(`${sim.url}/__sim/orders/${no}/pay`, { method: 'POST' });
    await waitFor(() => hook.received.length >= 1);
    t.false(platformVerifies(hook.received[0]));
  } finally {
    hook.server.close();
  }
});

test.serial('notify lost: nothing sent; resend endpoint delivers it', async (t) => {
  const hook = await receiver();
  try {
    await putFaults({ notify: 'lost' });
    const no = orderNo('NL');
    await createOrder(no, hook.url);
    await fetch(`${sim.url}/__sim/orders/${no}/pay`, { method: 'POST' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    t.is(hook.received.length, 0);
    t.true(((await orderView(no)).notifications as Json[])[0].dropped as boolean);
    await fetch(`${sim.url}/__sim/orders/${no}/notify`, { method: 'POST' });
    await waitFor(() => hook.received.length === 1);
    t.true(platformVerifies(hook.received[0]));
  } finally {
    hook.server.close();
  }
});

test.serial('notify duplicate: the same notification arrives twice', async (t) => {
  const hook = await receiver();
  try {
    await putFaults({ notify: 'duplicate' });
    const no = orderNo('ND');
    await createOrder(no, hook.url);
    await fetch(`${sim.url}/__sim/orders/${no}/pay`, { method: 'POST' });
    await waitFor(() => hook.received.length === 2);
    t.is(JSON.parse(hook.received[0].body).id, JSON.parse(hook.received[1].body).id);
  } finally {
    hook.server.close();
  }
});

test.serial('notify delayed: sent after notify_delay_ms', async (t) => {
  const hook = await receiver();
  try {
    await putFaults({ notify: 'delayed', notify_delay_ms: 400 });
    const no = orderNo('NY');
    await createOrder(no, hook.url);
    const paidAt = Date.now();
    await fetch(`${sim.url}/__sim/orders/${no}/pay`, { method: 'POST' });
    await waitFor(() => hook.received.length === 1);
    t.true(Date.now() - paidAt >= 390);
  } finally {
    hook.server.close();
  }
});

test.serial('notify out_of_order: the refund notification overtakes the payment notification', async (t) => {
  const hook = await receiver();
  try {
    await putFaults({ notify: 'out_of_order' });
    const no = orderNo('NO');
    await createOrder(no, hook.url);
    await fetch(`${sim.url}/__sim/orders/${no}/pay`, { method: 'POST' });
    const refund = await signedFetch('POST', '/v3/refund/domestic/refunds', { out_trade_no: no, out_refund_no: `${no}R`, amount: { refund: 100, total: 100, currency: 'CNY' } });
    t.is(refund.status, 200);
    await waitFor(() => hook.received.length === 2);
    t.deepEqual(hook.received.map((item) => item.event), ['REFUND.SUCCESS', 'TRANSACTION.SUCCESS']);
  } finally {
    hook.server.close();
  }
});

test.serial('tamper_notify_amount: correctly signed notification claims another amount', async (t) => {
  const hook = await receiver();
  try {
    await putFaults({ tamper_notify_amount: true });
    const no = orderNo('TA');
    await createOrder(no, hook.url, 100);
    await fetch(`${sim.url}/__sim/orders/${no}/pay`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ amount: 1 }) });
    await waitFor(() => hook.received.length === 1);
    t.true(platformVerifies(hook.received[0]));
    t.is((hook.received[0].plain.amount as Json).total, 1);
    t.is((await orderView(no)).amount_fen, 100);
  } finally {
    hook.server.close();
  }
});

test.serial('notifications retry on non-2xx and stop after the schedule', async (t) => {
  const hook = await receiver(() => 500);
  try {
    const no = orderNo('RT');
    await createOrder(no, hook.url);
    await fetch(`${sim.url}/__sim/orders/${no}/pay`, { method: 'POST' });
    await waitFor(() => hook.received.length === 3);
    await new Promise((resolve) => setTimeout(resolve, 300));
    t.is(hook.received.length, 3, 'first attempt + two retries');
    const [record] = (await orderView(no)).notifications as { acknowledged: boolean }[];
    t.false(record.acknowledged);
  } finally {
    hook.server.close();
  }
});

test.serial('WECHATPAY/SIGNTEST/ probe fails signature verification', async (t) => {
  const hook = await receiver();
  try {
    const response = await fetch(`${sim.url}/__sim/probe`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ url: hook.url }) });
    t.is(response.status, 202);
    await waitFor(() => hook.received.length === 1);
    t.true((hook.received[0].headers['wechatpay-signature'] as string).startsWith('WECHATPAY/SIGNTEST/'));
    t.false(platformVerifies(hook.received[0]));
  } finally {
    hook.server.close();
  }
});
