/**
 * UnionPay simulator fault set (PUT /__sim/faults) and notification delivery modes. Serial: faults are global.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { startUnionPaySimulator, type RunningSimulator } from '../../plugins/unionpay/simulator/index.js';
import {
  acpSign, chinaTxnTime, newOrderId, NotifyReceiver, openPfx, parseAcp, postForm, verifyUnionPayMessage, type Fields,
} from './unionpay.helpers.js';

let dataDir: string;
let sim: RunningSimulator;
let merchantKey: KeyObject;
let certId: string;
const receiver = new NotifyReceiver();

test.before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'corbel-unionpay-faults-'));
  sim = await startUnionPaySimulator({ dataDir, notifyRetryDelaysMs: [100, 100, 100] });
  ({ key: merchantKey, certId } = openPfx(sim.credentials.signCertPfxPath, sim.credentials.signCertPassword));
  await receiver.start();
});

test.after.always(async () => {
  await sim?.close();
  await receiver.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test.afterEach.always(async () => {
  await fetch(`${sim.url}/__sim/faults`, { method: 'DELETE' });
});

async function setFaults(faults: Record<string, unknown>): Promise<void> {
  const response = await fetch(`${sim.url}/__sim/faults`, { method: 'PUT', body: JSON.stringify(faults) });
  if (response.status !== 200) throw new Error(await response.text());
}

function signed(fields: Fields): Fields {
  return { ...fields, signature: acpSign(fields, merchantKey) };
}

function base(overrides: Fields): Fields {
  return {
    version: '5.1.0', encoding: 'utf-8', signMethod: '01', accessType: '0', merId: sim.credentials.merId, certId,
    txnTime: chinaTxnTime(), ...overrides,
  };
}

function qrConsume(orderId: string, amount: string, backPath: string): Fields {
  return signed(base({
    txnType: '01', txnSubType: '07', bizType: '000000', channelType: '08', orderId, txnAmt: amount, currencyCode: '156',
    backUrl: receiver.url + backPath,
  }));
}

function queryOf(request: Fields): Fields {
  return signed(base({ txnType: '00', txnSubType: '00', bizType: '000000', orderId: request.orderId, txnTime: request.txnTime }));
}

async function call(url: string, fields: Fields, timeoutMs?: number): Promise<Fields> {
  return parseAcp((await postForm(url, fields, timeoutMs)).text);
}

const pay = (orderId: string, body?: unknown) =>
  fetch(`${sim.url}/__sim/orders/${orderId}/pay`, { method: 'POST', body: body ? JSON.stringify(body) : undefined });

const verified = (fields: Fields) => verifyUnionPayMessage(fields, sim.credentials.rootCertPem, sim.credentials.middleCertPem).ok;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.serial('fault set: PUT validates and replaces, GET returns it, DELETE clears', async (t) => {
  t.is((await fetch(`${sim.url}/__sim/faults`, { method: 'PUT', body: '{"notify":"sometimes"}' })).status, 400);
  await setFaults({ latency_ms: 5, notify: 'duplicate' });
  const got = (await (await fetch(`${sim.url}/__sim/faults`)).json()) as Record<string, unknown>;
  t.like(got, { latency_ms: 5, notify: 'duplicate', timeout: false, http_5xx: 0, paths: null });
  await fetch(`${sim.url}/__sim/faults`, { method: 'DELETE' });
  t.like((await (await fetch(`${sim.url}/__sim/faults`)).json()) as Record<string, unknown>, { latency_ms: 0, notify: 'normal' });
});

test.serial('latency_ms delays channel responses but not the control API', async (t) => {
  await setFaults({ latency_ms: 300 });
  const started = Date.now();
  const response = await call(sim.credentials.backTransUrl, qrConsume(newOrderId('L'), '100', '/lat'));
  t.is(response.respCode, '00');
  t.true(Date.now() - started >= 290);
  const controlStarted = Date.now();
  await fetch(`${sim.url}/__sim/orders`);
  t.true(Date.now() - controlStarted < 250);
});

test.serial('timeout: the request is held unanswered until the client gives up', async (t) => {
  await setFaults({ timeout: true });
  const request = qrConsume(newOrderId('T'), '100', '/to');
  const started = Date.now();
  const outcome = await postForm(sim.credentials.backTransUrl, request, 300).then(
    () => 'answered',
    (error: { name?: string }) => error.name,
  );
  t.regex(String(outcome), /TimeoutError|AbortError/);
  t.true(Date.now() - started >= 290);
  await setFaults({});
  t.is((await call(sim.credentials.singleQueryUrl, queryOf(request))).respCode, '34');
});

test.serial('http_5xx: the next N calls get respCode 03 without being processed', async (t) => {
  await setFaults({ http_5xx: 1 });
  const request = qrConsume(newOrderId('H'), '100', '/h');
  const first = await call(sim.credentials.backTransUrl, request);
  t.is(first.respCode, '03');
  t.true(verified(first));
  // Not processed: the same request now goes through (not a duplicate).
  t.is((await call(sim.credentials.backTransUrl, request)).respCode, '00');
});

test.serial('connection_reset: the socket is destroyed before processing', async (t) => {
  await setFaults({ connection_reset: 1 });
  const request = qrConsume(newOrderId('CR'), '100', '/cr');
  await t.throwsAsync(postForm(sim.credentials.backTransUrl, request));
  t.is((await call(sim.credentials.singleQueryUrl, queryOf(request))).respCode, '34');
  t.is((await call(sim.credentials.backTransUrl, request)).respCode, '00');
});

test.serial('response_lost: the request is processed but the answer never arrives', async (t) => {
  await setFaults({ response_lost: 1 });
  const request = qrConsume(newOrderId('RL'), '100', '/rl');
  await t.throwsAsync(postForm(sim.credentials.backTransUrl, request));
  const queried = await call(sim.credentials.singleQueryUrl, queryOf(request));
  t.like(queried, { respCode: '00', origRespCode: '05' });
  t.is((await call(sim.credentials.backTransUrl, request)).respCode, '12');
});

test.serial('paths: API faults apply only to the listed path prefixes', async (t) => {
  await setFaults({ http_5xx: 5, paths: ['/gateway/api/queryTrans.do'] });
  const request = qrConsume(newOrderId('P'), '100', '/p');
  t.is((await call(sim.credentials.backTransUrl, request)).respCode, '00');
  t.is((await call(sim.credentials.singleQueryUrl, queryOf(request))).respCode, '03');
});

test.serial('corrupt_signature: responses and notifications fail verification', async (t) => {
  await setFaults({ corrupt_signature: true });
  const orderId = newOrderId('CS');
  const response = await call(sim.credentials.backTransUrl, qrConsume(orderId, '100', '/cs'));
  t.is(response.respCode, '00');
  t.false(verified(response));
  await pay(orderId);
  const [note] = await receiver.waitFor('/cs', 1);
  t.false(verified(note.fields));
});

test.serial('notify lost: the notification is never sent', async (t) => {
  await setFaults({ notify: 'lost' });
  const orderId = newOrderId('NL');
  await call(sim.credentials.backTransUrl, qrConsume(orderId, '100', '/nl'));
  const view = (await (await pay(orderId)).json()) as { status: string; notifications: Array<{ state: string }> };
  t.is(view.status, 'success');
  t.is(view.notifications[0].state, 'lost');
  await sleep(300);
  t.is(receiver.forPath('/nl').length, 0);
  // The control API can still push it out.
  await fetch(`${sim.url}/__sim/orders/${orderId}/notify`, { method: 'POST' });
  const [note] = await receiver.waitFor('/nl', 1);
  t.true(verified(note.fields));
});

test.serial('notify duplicate: each notification arrives twice', async (t) => {
  await setFaults({ notify: 'duplicate' });
  const orderId = newOrderId('ND');
  await call(sim.credentials.backTransUrl, qrConsume(orderId, '100', '/nd'));
  await pay(orderId);
  const notes = await receiver.waitFor('/nd', 2);
  t.is(notes[0].fields.queryId, notes[1].fields.queryId);
  t.true(notes.every((n) => verified(n.fields)));
});

test.serial('notify delayed: the notification waits notify_delay_ms', async (t) => {
  await setFaults({ notify: 'delayed', notify_delay_ms: 400 });
  const orderId = newOrderId('NY');
  await call(sim.credentials.backTransUrl, qrConsume(orderId, '100', '/ny'));
  const paidAt = Date.now();
  await pay(orderId);
  const [note] = await receiver.waitFor('/ny', 1);
  t.true(note.at - paidAt >= 380);
});

test.serial('notify out_of_order: the refund notification arrives before the payment notification', async (t) => {
  await setFaults({ notify: 'out_of_order', notify_delay_ms: 3000 });
  const orderId = newOrderId('NO');
  await call(sim.credentials.backTransUrl, qrConsume(orderId, '500', '/no'));
  const view = (await (await pay(orderId)).json()) as { queryId: string };
  await sleep(100);
  t.is(receiver.forPath('/no').length, 0);
  const refund = signed(base({
    txnType: '04', txnSubType: '00', bizType: '000000', channelType: '08', orderId: newOrderId('NOR'), txnAmt: '200',
    origQryId: view.queryId, backUrl: `${receiver.url}/no`,
  }));
  t.is((await call(sim.credentials.backTransUrl, refund)).respCode, '00');
  const notes = await receiver.waitFor('/no', 2);
  t.deepEqual(notes.map((n) => n.fields.txnType), ['04', '01']);
});

test.serial('tamper_notify_amount: the notification claims another amount but is correctly signed', async (t) => {
  await setFaults({ tamper_notify_amount: true });
  const orderId = newOrderId('TA');
  await call(sim.credentials.backTransUrl, qrConsume(orderId, '1000', '/ta'));
  await pay(orderId, { amount: 1 });
  const [note] = await receiver.waitFor('/ta', 1);
  t.is(note.fields.txnAmt, '1');
  t.is(note.fields.settleAmt, '1');
  t.true(verified(note.fields));
  // Without the fault the body amount is ignored.
  await setFaults({});
  const other = newOrderId('TB');
  await call(sim.credentials.backTransUrl, qrConsume(other, '1000', '/tb'));
  await pay(other, { amount: 1 });
  t.is((await receiver.waitFor('/tb', 1))[0].fields.txnAmt, '1000');
});

test.serial('notification to an unreachable backUrl is retried on the schedule and then given up', async (t) => {
  receiver.statusFor = (path) => (path === '/down' ? 503 : 200);
  const orderId = newOrderId('GU');
  await call(sim.credentials.backTransUrl, qrConsume(orderId, '100', '/down'));
  await pay(orderId);
  await receiver.waitFor('/down', 4, 3000);
  await sleep(150);
  const view = (await (await fetch(`${sim.url}/__sim/orders/${orderId}`)).json()) as {
    notifications: Array<{ state: string; attempts: unknown[] }>;
  };
  t.is(view.notifications[0].state, 'gave_up');
  t.is(view.notifications[0].attempts.length, 4);
  receiver.statusFor = () => 200;
});

test.serial('close() ends held (timeout) sockets and pending notification timers', async (t) => {
  const own = await startUnionPaySimulator({ dataDir, notifyRetryDelaysMs: [60_000] });
  await fetch(`${own.url}/__sim/faults`, { method: 'PUT', body: JSON.stringify({ timeout: true }) });
  const pending = postForm(own.credentials.backTransUrl, qrConsume(newOrderId('CL'), '100', '/cl'), 10_000).catch((e: Error) => e);
  await sleep(100);
  const started = Date.now();
  await own.close();
  const outcome = await pending;
  t.true(outcome instanceof Error);
  t.true(Date.now() - started < 2000);
});
