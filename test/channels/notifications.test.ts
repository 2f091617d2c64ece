/**
 * Channel notifications under the simulators' notify faults, end to end through the real gateway:
 * duplicated, forged (corrupt signature), tampered (wrong amount) and lost notifications, duplicated
 * refund notifications, and WeChat's WECHATPAY/SIGNTEST/ probe. Each simulator is driven through its
 * control API (`/__sim`); the gateway is reached only through its public HTTP API and its store.
 */
import test, { type ExecutionContext } from 'ava';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { startGateway, activeMerchant, MerchantClient, webhookReceiver, waitUntil, admin, ADMIN_TOKEN, type TestGateway } from '../helpers/gateway.js';

// ---------------------------------------------------------------- channels

type Kind = 'payment' | 'refund' | 'other';

/** One notification the simulator produced, and the gateway's HTTP answer to each delivery attempt (null: no answer). */
interface Delivery {
  kind: Kind;
  state: string;
  answers: Array<number | null>;
}

interface Channel {
  plugin: string;
  account: string;
  payMethod: string;
  /** The notifications of an order (and of its refunds) from the simulator's `GET /__sim/orders/:no`. */
  deliveries(view: any): Delivery[];
  /** Whether the channel considers the order paid, and for what amount. */
  paid(view: any): boolean;
  amount(view: any): number;
  /**
   * Whether a retried notification is signed afresh (WeChat Pay, the bank) rather than resent byte for byte (Alipay,
   * UnionPay). If it is, the retry after the fault is cleared may settle the payment before the poller does.
   */
  resignsRetries: boolean;
}

const CHANNELS: Channel[] = [
  {
    plugin: 'wechatpay', account: 'wechat_sandbox', payMethod: 'wechat.native',
    deliveries: (v) => (v.notifications ?? []).map((n: any) => ({
      kind: kindOf(String(n.event_type).startsWith('TRANSACTION.'), String(n.event_type).startsWith('REFUND.')),
      state: n.dropped ? 'lost' : n.acknowledged ? 'acknowledged' : 'pending',
      answers: n.attempts.map((a: any) => a.status ?? null),
    })),
    paid: (v) => v.status === 'SUCCESS' || v.status === 'REFUND',
    amount: (v) => v.amount_fen,
    resignsRetries: true,
  },
  {
    plugin: 'alipay', account: 'alipay_sandbox', payMethod: 'alipay.qr',
    deliveries: (v) => (v.notifications ?? []).map((n: any) => ({
      kind: kindOf(n.kind === 'payment', n.kind === 'refund'), state: n.state, answers: answered(n.attempts, 'httpStatus'),
    })),
    paid: (v) => v.status === 'TRADE_SUCCESS' && v.gmt_payment !== null,
    amount: (v) => v.total_fen,
    resignsRetries: false,
  },
  {
    plugin: 'unionpay', account: 'unionpay_sandbox', payMethod: 'unionpay.qr',
    deliveries: (v) => [
      ...(v.notifications ?? []).map((n: any) => ({ kind: 'payment' as const, state: n.state, answers: n.attempts.map((a: any) => a.httpStatus ?? null) })),
      ...(v.refunds ?? []).flatMap((r: any) => (r.notifications ?? []).map((n: any) => ({ kind: 'refund' as const, state: n.state, answers: n.attempts.map((a: any) => a.httpStatus ?? null) }))),
    ],
    paid: (v) => v.status === 'success',
    amount: (v) => v.txnAmt,
    resignsRetries: false,
  },
  {
    plugin: 'bank', account: 'bank_sandbox', payMethod: 'bank.b2c',
    deliveries: (v) => (v.notifications ?? []).map((n: any) => ({
      kind: kindOf(String(n.event_type).startsWith('payment.'), String(n.event_type).startsWith('refund.')),
      state: n.state, answers: answered(n.attempts, 'http_status'),
    })),
    paid: (v) => v.status === 'SUCCESS',
    amount: (v) => v.amount,
    resignsRetries: true,
  },
];

/** Attempts the gateway has answered (or that failed): Alipay and the bank record an attempt before it completes. */
function answered(attempts: any[], field: string): Array<number | null> {
  return attempts.filter((a) => a[field] !== undefined || a.error !== undefined).map((a) => a[field] ?? null);
}

function kindOf(payment: boolean, refund: boolean): Kind {
  return payment ? 'payment' : refund ? 'refund' : 'other';
}

// ---------------------------------------------------------------- gateways

function config(extra: string): string {
  return `mode: sandbox
server: { host: 127.0.0.1, port: 0, shutdown_grace_ms: 2000 }
admin: { token: ${ADMIN_TOKEN} }
log: { level: ${process.env.E2E_LOG ?? 'silent'} }
webhooks: { retry_schedule_s: [1], poll_interval_ms: 100 }
simulators: { enabled: true }
${extra}
channels:
  wechat_sandbox: { plugin: wechatpay, sandbox: true, simulator: direct }
  alipay_sandbox: { plugin: alipay, sandbox: true, simulator: true }
  unionpay_sandbox: { plugin: unionpay, sandbox: true, simulator: true }
  bank_sandbox: { plugin: bank, sandbox: true, simulator: true }
`;
}

interface Env {
  env: TestGateway;
  client: MerchantClient;
  hooks: Awaited<ReturnType<typeof webhookReceiver>>;
}

async function open(extra: string): Promise<Env> {
  const env = await startGateway(config(extra));
  const hooks = await webhookReceiver();
  const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw, { notify_url: hooks.url }));
  return { env, client, hooks };
}

async function shut(e: Env | undefined): Promise<void> {
  await e?.hooks.close();
  await e?.env.close();
}

/** The main gateway: the poller queries pending payments every second; GET re-queries only after the default 10 s. */
const main = await open('poller: { interval_ms: 200, backoff_s: [1] }');
/** Channels whose simulator runs here (bank only once its plugin exists): the tests are generated for these only. */
const channels = CHANNELS.filter((c) => main.env.gw.simulatorUrls()[c.plugin] !== undefined);
/** For the stale-GET check: no poller, so only `GET /v1/payments/{id}` (stale after 1 s) can find out. */
let stale: Env | undefined;

test.before(async () => {
  stale = await open('poller: { enabled: false }\napi: { stale_after_s: 1 }');
});
test.afterEach.always(async () => {
  for (const c of channels) await clearFaults(main, c);
});
test.after.always(async () => {
  await shut(main);
  await shut(stale);
});

// ---------------------------------------------------------------- helpers

let seq = 0;
const outTradeNo = (c: Channel, what: string) => `ntf-${c.plugin}-${what}-${Date.now()}-${++seq}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LIMIT_MS = 15_000;

async function sim(e: Env, c: Channel, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(e.env.gw.simulatorUrls()[c.plugin]! + path, {
    method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

async function setFaults(e: Env, c: Channel, faults: Record<string, unknown>): Promise<void> {
  const res = await sim(e, c, 'PUT', '/__sim/faults', faults);
  if (res.status !== 200) throw new Error(`${c.plugin}: PUT /__sim/faults answered ${res.status} ${JSON.stringify(res.json)}`);
}

async function clearFaults(e: Env, c: Channel): Promise<void> {
  await sim(e, c, 'DELETE', '/__sim/faults').catch(() => undefined);
}

interface Created { id: string; orderNo: string; amount: number; outTradeNo: string }

async function createPayment(t: ExecutionContext, e: Env, c: Channel, what: string, amount: number): Promise<Created> {
  const no = outTradeNo(c, what);
  const created = await e.client.request('POST', '/v1/payments', { out_trade_no: no, amount, pay_method: c.payMethod, subject: `notify ${what}` });
  if (created.status !== 201) throw new Error(`create ${no}: ${created.status} ${created.text}`);
  t.is(created.json.status, 'pending');
  const stored = await e.env.gw.store.payments.get(e.env.gw.store.reads, created.json.id);
  return { id: created.json.id, orderNo: stored!.channelOrderNo!, amount, outTradeNo: no };
}

async function payAsSandboxPayer(t: ExecutionContext, e: Env, p: Created): Promise<void> {
  const paid = await e.client.request('POST', `/v1/sandbox/payments/${p.id}/pay`);
  t.is(paid.status, 200, `sandbox pay: ${paid.text}`);
}

async function orderView(e: Env, c: Channel, orderNo: string): Promise<any> {
  const res = await sim(e, c, 'GET', `/__sim/orders/${encodeURIComponent(orderNo)}`);
  if (res.status !== 200) throw new Error(`${c.plugin}: GET /__sim/orders/${orderNo} answered ${res.status}`);
  return res.json;
}

async function deliveries(e: Env, c: Channel, orderNo: string, kind: Kind): Promise<Delivery[]> {
  return c.deliveries(await orderView(e, c, orderNo)).filter((d) => d.kind === kind);
}

/** Waits until the gateway has answered at least `n` delivery attempts of this kind; returns every answer so far. */
async function waitForAnswers(e: Env, c: Channel, orderNo: string, kind: Kind, n: number): Promise<Array<number | null>> {
  return waitUntil(async () => {
    const answers = (await deliveries(e, c, orderNo, kind)).flatMap((d) => d.answers);
    return answers.length >= n ? answers : undefined;
  }, LIMIT_MS);
}

const storedPayment = async (e: Env, id: string) => (await e.env.gw.store.payments.get(e.env.gw.store.reads, id))!;

async function waitForPaymentStatus(e: Env, id: string, status: string): Promise<void> {
  // Read the store, not GET /v1/payments: a GET may query the channel itself and hide who settled it.
  await waitUntil(async () => (await storedPayment(e, id)).status === status, LIMIT_MS);
}

async function audit(e: Env, id: string) {
  return e.env.gw.store.audit.list(e.env.gw.store.reads, id);
}

async function journals(e: Env, objectId: string): Promise<number> {
  const row = await e.env.gw.store.reads.get<{ n: number }>('SELECT COUNT(*) AS n FROM ledger_journals WHERE object_id = ?', [objectId]);
  return Number(row?.n ?? 0);
}

async function alertsSince(e: Env, since: number, kind: string): Promise<Array<{ kind: string; object_id: string | null; detail: any; created_at: number }>> {
  const res = await admin(e.env.gw, 'GET', '/admin/alerts');
  return (res.json.data as any[])
    .filter((a) => a.kind === kind && a.created_at >= since)
    .map((a) => ({ ...a, detail: typeof a.detail === 'string' ? JSON.parse(a.detail) : a.detail }));
}

async function ledgerOk(t: ExecutionContext, e: Env): Promise<void> {
  const report = await admin(e.env.gw, 'GET', '/admin/ledger/verify');
  t.is(report.status, 200);
  t.true(report.json.ok, JSON.stringify(report.json.problems));
}

/**
 * Exactly one event of `type` for `objectId`: it reaches the merchant (signed), and after a quiet period
 * neither the merchant nor the outbox holds a second one.
 */
async function exactlyOneWebhook(t: ExecutionContext, e: Env, type: string, objectId: string): Promise<void> {
  const matching = () => e.hooks.received.filter((h) => h.json.type === type && h.json.data.object.id === objectId);
  await e.hooks.waitFor(() => matching().length >= 1, LIMIT_MS);
  await sleep(700);
  const received = matching();
  t.is(received.length, 1, `${type} webhooks received for ${objectId}`);
  t.true(e.client.verify(received[0]!.headers as never, received[0]!.body), 'the webhook carries a valid gateway signature');
  const outbox = (await e.env.gw.store.webhooks.listForObject(e.env.gw.store.reads, objectId)).filter((w) => w.type === type);
  t.is(outbox.length, 1, `${type} events in the outbox for ${objectId}`);
}

const is2xx = (s: number | null) => s !== null && s >= 200 && s < 300;
const is4xx = (s: number | null) => s !== null && s >= 400 && s < 500;

/** Creates a payment and lets it succeed by its normal notification (no faults). */
async function succeededPayment(t: ExecutionContext, e: Env, c: Channel, what: string, amount: number): Promise<Created> {
  const p = await createPayment(t, e, c, what, amount);
  await payAsSandboxPayer(t, e, p);
  await waitForPaymentStatus(e, p.id, 'succeeded');
  return p;
}

// ---------------------------------------------------------------- tests (main gateway; serial: they share each simulator's faults)

for (const c of channels) {
  test.serial(`${c.payMethod}: a duplicated payment notification → one payment.succeeded webhook, one journal, ledger ok`, async (t) => {
    const p = await createPayment(t, main, c, 'dup', 1200);
    await setFaults(main, c, { notify: 'duplicate' });
    try {
      await payAsSandboxPayer(t, main, p);
      const answers = await waitForAnswers(main, c, p.orderNo, 'payment', 2);
      t.true(answers.every(is2xx), `the gateway acknowledges both copies: ${JSON.stringify(answers)}`);
    } finally {
      await clearFaults(main, c);
    }
    await waitForPaymentStatus(main, p.id, 'succeeded');
    await exactlyOneWebhook(t, main, 'payment.succeeded', p.id);
    t.is(await journals(main, p.id), 1, 'one ledger journal for the payment');
    t.is((await audit(main, p.id)).filter((a) => a.to_status === 'succeeded').length, 1, 'one transition to succeeded');
    const api = await main.client.request('GET', `/v1/payments/${p.id}`);
    t.like(api.json, { status: 'succeeded', amount: 1200 });
    t.true(api.signatureValid);
    await ledgerOk(t, main);
  });

  test.serial(`${c.payMethod}: a duplicated refund notification → one refund.succeeded webhook, one journal, ledger ok`, async (t) => {
    const p = await succeededPayment(t, main, c, 'rdup', 1500);
    await setFaults(main, c, { notify: 'duplicate' });
    let refundId: string;
    try {
      const refund = await main.client.request('POST', `/v1/payments/${p.id}/refunds`, { out_refund_no: `${p.outTradeNo}-r1`, amount: 400 });
      t.is(refund.status, 201, refund.text);
      refundId = refund.json.id;
      const answers = await waitForAnswers(main, c, p.orderNo, 'refund', 2);
      t.true(answers.every(is2xx), `the gateway acknowledges both copies: ${JSON.stringify(answers)}`);
    } finally {
      await clearFaults(main, c);
    }
    await waitUntil(async () => (await main.env.gw.store.payments.getRefund(main.env.gw.store.reads, refundId))?.status === 'succeeded', LIMIT_MS);
    await exactlyOneWebhook(t, main, 'refund.succeeded', refundId);
    t.is(await journals(main, refundId), 1, 'one ledger journal for the refund');
    t.is((await main.client.request('GET', `/v1/payments/${p.id}`)).json.amount_refunded, 400);
    await ledgerOk(t, main);
  });

  test.serial(`${c.payMethod}: a notification with a corrupted signature is refused with a 4xx and leaves the payment pending; it settles once the channel signs correctly again`, async (t) => {
    const since = Date.now();
    const p = await createPayment(t, main, c, 'sig', 1300);
    let answers: Array<number | null>;
    await setFaults(main, c, { corrupt_signature: true });
    try {
      await payAsSandboxPayer(t, main, p);
      answers = await waitForAnswers(main, c, p.orderNo, 'payment', 1);
      // Still under the fault: the poller's queries get corrupted answers too, so nothing can have settled it.
      t.is((await storedPayment(main, p.id)).status, 'pending', 'a forged notification changes nothing');
      t.false((await audit(main, p.id)).some((a) => a.to_status === 'succeeded'));
      t.is(await journals(main, p.id), 0);
    } finally {
      await clearFaults(main, c);
    }
    t.true(is4xx(answers[0]!), `the gateway's answer to the forged notification: ${JSON.stringify(answers)} (expected 4xx)`);
    const rejected = await alertsSince(main, since, 'notification_rejected');
    t.true(rejected.some((a) => a.detail.account === c.account), 'a notification_rejected alert names the account');

    await waitForPaymentStatus(main, p.id, 'succeeded');
    const settledBy = (await audit(main, p.id)).filter((a) => a.to_status === 'succeeded').map((a) => a.source);
    t.log(`${c.plugin}: settled by ${settledBy.join(', ')} once the signatures were valid again`);
    // The channel keeps resending the forged bytes unless it re-signs its retries: then only the poller can settle it.
    if (c.resignsRetries) t.true(settledBy.length === 1 && ['poller', 'notification'].includes(settledBy[0]!), settledBy.join());
    else t.deepEqual(settledBy, ['poller']);
    await exactlyOneWebhook(t, main, 'payment.succeeded', p.id);
    t.is(await journals(main, p.id), 1);
    await ledgerOk(t, main);
  });

  test.serial(`${c.payMethod}: a correctly signed notification with a tampered amount never settles the payment; amount_mismatch is raised; the channel query settles it for the real amount`, async (t) => {
    const since = Date.now();
    const p = await createPayment(t, main, c, 'tamper', 1400);
    let answers: Array<number | null>;
    await setFaults(main, c, { tamper_notify_amount: true });
    try {
      await payAsSandboxPayer(t, main, p);
      answers = await waitForAnswers(main, c, p.orderNo, 'payment', 1);
    } finally {
      await clearFaults(main, c);
    }
    t.false(answers.some(is2xx), `the gateway does not acknowledge the tampered notification: ${JSON.stringify(answers)}`);
    const mismatches = (await alertsSince(main, since, 'amount_mismatch')).filter((a) => a.object_id === p.id);
    t.true(mismatches.length >= 1, 'an amount_mismatch alert is raised for the payment');
    t.like(mismatches.at(-1)!.detail, { expected: 1400, source: 'notification' });
    t.not(mismatches.at(-1)!.detail.reported, 1400);

    await waitForPaymentStatus(main, p.id, 'succeeded');
    const transitions = (await audit(main, p.id)).filter((a) => a.to_status === 'succeeded');
    t.is(transitions.length, 1);
    t.not(transitions[0]!.source, 'notification', 'the tampered notification is not what settled the payment');
    const view = await orderView(main, c, p.orderNo);
    t.true(c.paid(view));
    const api = await main.client.request('GET', `/v1/payments/${p.id}`);
    t.like(api.json, { status: 'succeeded', amount: 1400 });
    t.is(c.amount(view), api.json.amount, 'the gateway agrees with the channel on the amount');
    await exactlyOneWebhook(t, main, 'payment.succeeded', p.id);
    t.is(await journals(main, p.id), 1);
    await ledgerOk(t, main);
  });

  test.serial(`${c.payMethod}: a lost notification is recovered by the poller`, async (t) => {
    const p = await createPayment(t, main, c, 'lost', 1600);
    await setFaults(main, c, { notify: 'lost' });
    try {
      await payAsSandboxPayer(t, main, p);
    } finally {
      await clearFaults(main, c);
    }
    const lost = await deliveries(main, c, p.orderNo, 'payment');
    t.true(lost.length >= 1 && lost.every((d) => d.state === 'lost' && d.answers.length === 0), `never delivered: ${JSON.stringify(lost)}`);
    await waitForPaymentStatus(main, p.id, 'succeeded');
    t.deepEqual((await audit(main, p.id)).filter((a) => a.to_status === 'succeeded').map((a) => a.source), ['poller']);
    t.like((await main.client.request('GET', `/v1/payments/${p.id}`)).json, { status: 'succeeded', amount: 1600 });
    await exactlyOneWebhook(t, main, 'payment.succeeded', p.id);
    t.is(await journals(main, p.id), 1);
    await ledgerOk(t, main);
  });

  if (c.plugin === 'wechatpay') {
    test.serial(`${c.payMethod}: a WECHATPAY/SIGNTEST/ probe gets a 4xx and changes nothing`, async (t) => {
      const since = Date.now();
      const pending = await createPayment(t, main, c, 'probe', 1700);
      const before = await counts(main);
      const proxy = await recordingProxy(`${main.env.gw.url}/notify/${c.account}`);
      try {
        const probe = await sim(main, c, 'POST', '/__sim/probe', { url: proxy.url });
        t.is(probe.status, 202);
        const [seen] = await waitUntil(() => (proxy.seen.length >= 1 ? proxy.seen : undefined), LIMIT_MS);
        t.regex(String(seen!.headers['wechatpay-signature']), /^WECHATPAY\/SIGNTEST\//);
        t.true(is4xx(seen!.status), `the gateway's answer to the probe: ${seen!.status} ${seen!.body} (expected 4xx)`);
      } finally {
        await proxy.close();
      }
      const rejected = await alertsSince(main, since, 'notification_rejected');
      t.true(rejected.some((a) => a.detail.account === c.account && /SIGNTEST/.test(a.detail.reason)), JSON.stringify(rejected));
      await sleep(300);
      t.deepEqual(await counts(main), before, 'no payment, refund, audit, ledger or webhook change');
      t.is((await storedPayment(main, pending.id)).status, 'pending');
    });
  }
}

// ---------------------------------------------------------------- GET once stale (own gateway, no poller)

for (const c of channels) {
  test(`${c.payMethod}: a lost notification is recovered by GET /v1/payments/{id} once the payment is stale (poller off)`, async (t) => {
    const e = stale!;
    const p = await createPayment(t, e, c, 'stale', 1800);
    await setFaults(e, c, { notify: 'lost' });
    try {
      await payAsSandboxPayer(t, e, p);
    } finally {
      await clearFaults(e, c);
    }
    t.true((await deliveries(e, c, p.orderNo, 'payment')).every((d) => d.state === 'lost'));
    const fresh = await e.client.request('GET', `/v1/payments/${p.id}`);
    t.is(fresh.json.status, 'pending', 'not stale yet: the stored state is returned');
    const started = Date.now();
    const settled = await waitUntil(async () => {
      const r = await e.client.request('GET', `/v1/payments/${p.id}`);
      return r.json.status === 'succeeded' ? r : undefined;
    }, LIMIT_MS, 200);
    t.true(settled.signatureValid);
    t.like(settled.json, { status: 'succeeded', amount: 1800 });
    t.log(`${c.plugin}: settled by GET ${Date.now() - started} ms after the first GET`);
    t.deepEqual((await audit(e, p.id)).filter((a) => a.to_status === 'succeeded').map((a) => a.source), ['query']);
    await exactlyOneWebhook(t, e, 'payment.succeeded', p.id);
    await ledgerOk(t, e);
  });
}

// ---------------------------------------------------------------- probe plumbing

async function counts(e: Env): Promise<Record<string, number>> {
  const q = async (sql: string) => Number((await e.env.gw.store.reads.get<{ n: number }>(sql))?.n ?? 0);
  return {
    payments_succeeded: await q("SELECT COUNT(*) AS n FROM payments WHERE status = 'succeeded'"),
    payments_pending: await q("SELECT COUNT(*) AS n FROM payments WHERE status = 'pending'"),
    refunds: await q('SELECT COUNT(*) AS n FROM refunds'),
    audit_events: await q('SELECT COUNT(*) AS n FROM audit_events'),
    ledger_journals: await q('SELECT COUNT(*) AS n FROM ledger_journals'),
    webhook_events: await q('SELECT COUNT(*) AS n FROM webhook_events'),
  };
}

/**
 * A pass-through in front of the gateway's notify endpoint: the simulator's probe is fire-and-forget
 * (its outcome is only logged), so this records exactly what the gateway answered it.
 */
async function recordingProxy(target: string): Promise<{ url: string; seen: Array<{ headers: IncomingHttpHeaders; status: number; body: string }>; close(): Promise<void> }> {
  const seen: Array<{ headers: IncomingHttpHeaders; status: number; body: string }> = [];
  const hop = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive']);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([k, v]) => typeof v === 'string' && !hop.has(k))) as Record<string, string>;
      void fetch(target, { method: req.method, headers, body: Buffer.concat(chunks) }).then(async (answer) => {
        const body = await answer.text();
        seen.push({ headers: req.headers, status: answer.status, body });
        res.statusCode = answer.status;
        res.end(body);
      }, (err: Error) => {
        res.statusCode = 599;
        res.end(err.message);
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/probe`, seen,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
