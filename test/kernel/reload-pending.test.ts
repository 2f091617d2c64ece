import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { startGateway, activeMerchant, MerchantClient, admin, fixtureConfig, waitUntil } from '../helpers/gateway.js';
import { ApiError } from '../../core/errors.js';
import { AccountWork } from '../../core/kernel/account-work.js';
import type { AccountEntry } from '../../core/kernel/snapshot.js';

/** fixture_b answers creates after 400 ms and serves wechat.native; fixture_main serves the rest. */
const withB = fixtureConfig(`  fixture_b:
    plugin: fixture
    sandbox: true
    config: { secret: fixture-secret-b, delay_ms: 400 }
routing:
  rules:
    - name: b_first
      match: { pay_method: wechat.native }
      targets: [fixture_b]
`);
const withoutB = fixtureConfig();
const onB = (n: string) => ({ out_trade_no: n, amount: 500, pay_method: 'wechat.native' });

test.serial('a reload that drops an account with a pending payment or refund is refused until they settle', async (t) => {
  const env = await startGateway(withB);
  try {
    const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
    // The reviewer's case: the reload arrives while the payment is at the channel (its row is already durable).
    const inFlight = client.request('POST', '/v1/payments', onB('strand-1'));
    await new Promise((r) => setTimeout(r, 150));
    writeFileSync(env.configPath, withoutB);
    const refused = await admin(env.gw, 'POST', '/admin/config/reload');
    t.is(refused.status, 422);
    t.is(refused.json.error.code, 'config_invalid');
    const problem: string = refused.json.error.details.problems.find((p: string) => p.startsWith('channels.fixture_b:'));
    t.truthy(problem, JSON.stringify(refused.json));
    t.regex(problem, /1 payment and 0 refunds are still pending \(not final\) on it; they must settle before/);
    t.is((await admin(env.gw, 'GET', '/admin/config')).json.version, 1, 'the old config keeps serving');

    const created = await inFlight;
    t.is(created.status, 201);
    t.is(created.json.channel_account, 'fixture_b');
    t.is((await client.request('GET', `/v1/payments/${created.json.id}`)).status, 200, 'the payment can still be read and resolved');
    const paid = await client.request('POST', `/v1/sandbox/payments/${created.json.id}/pay`);
    t.is(paid.status, 200, paid.text);
    await waitUntil(async () => ((await env.gw.store.payments.get(env.gw.store.reads, created.json.id))?.status === 'succeeded' ? true : undefined));

    // A refund still pending on the account holds it just the same. (The fixture settles refunds at once, so one is put in the store.)
    const payment = (await env.gw.store.payments.get(env.gw.store.reads, created.json.id))!;
    const now = Date.now();
    await env.gw.store.transaction((tx) => env.gw.store.payments.insertRefund(tx, {
      id: 're_pending_b', paymentId: payment.id, merchantId: payment.merchantId, outRefundNo: 'r-1', amount: 100, reason: null, status: 'pending',
      channelRefundNo: 'Rre_pending_b', failure: null, feeReturned: 0, createdAt: now, updatedAt: now, succeededAt: null, nextCheckAt: null,
    }));
    const refusedForRefund = await admin(env.gw, 'POST', '/admin/config/reload');
    t.is(refusedForRefund.status, 422);
    t.true(refusedForRefund.json.error.details.problems.some((p: string) => p.startsWith('channels.fixture_b: 0 payments and 1 refund are still pending')), JSON.stringify(refusedForRefund.json));

    await env.gw.payments.applyRefundResult('re_pending_b', { status: 'failed' }, 'poller');
    const applied = await admin(env.gw, 'POST', '/admin/config/reload');
    t.is(applied.status, 200, JSON.stringify(applied.json));
    t.deepEqual(applied.json.warnings, []);
    t.false(env.gw.runtime.current.accounts.has('fixture_b'));
  } finally {
    await env.close();
  }
});

test.serial('disabling an account with a pending payment is refused the same way', async (t) => {
  const env = await startGateway(withB);
  try {
    const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
    t.is((await client.request('POST', '/v1/payments', onB('disable-1'))).status, 201);
    writeFileSync(env.configPath, readFileSync(env.configPath, 'utf8').replace('delay_ms: 400 }', 'delay_ms: 400 }\n    enabled: false').replace('targets: [fixture_b]', 'targets: [fixture_main]'));
    const refused = await admin(env.gw, 'POST', '/admin/config/reload');
    t.is(refused.status, 422);
    t.true(refused.json.error.details.problems.some((p: string) => p.startsWith('channels.fixture_b: 1 payment and 0 refunds')), JSON.stringify(refused.json));
  } finally {
    await env.close();
  }
});

test.serial('a create still holding the old snapshot writes nothing on an account a reload has dropped', async (t) => {
  const refusing = `  fixture_r:
    plugin: fixture
    sandbox: true
    config: { secret: fixture-secret-r, behaviour: refuse }
`;
  const env = await startGateway(withB.replace('routing:', refusing + 'routing:') + `    - name: r_then_b
      match: { pay_method: alipay.qr }
      targets: [fixture_r, fixture_b]
`);
  const old = env.gw.runtime.current.acquire();
  try {
    const creds = await activeMerchant(env.gw);
    writeFileSync(env.configPath, withoutB + refusing);
    t.is((await admin(env.gw, 'POST', '/admin/config/reload')).status, 200, 'nothing is pending on fixture_b');
    const merchant = (await env.gw.store.merchants.get(env.gw.store.reads, creds.merchantId))!;
    const caller = { merchant, app: (await env.gw.store.merchants.getApp(env.gw.store.reads, creds.appId))! };

    // The old snapshot still routes wechat.native to fixture_b alone: the create is refused before any row is written.
    const err = await t.throwsAsync(env.gw.payments.create(old, caller, { ...onB('late-1'), currency: 'CNY' }), { instanceOf: ApiError });
    t.is(err!.code, 'unavailable');
    t.regex(err!.message, /fixture_b was taken out by a config reload/);
    t.is(await env.gw.store.payments.getByOutTradeNo(env.gw.store.reads, creds.appId, 'late-1'), undefined);

    // Failing over to fixture_b: the payment does not move there; it fails, as if fixture_b had refused too.
    const failed = await env.gw.payments.create(old, caller, { out_trade_no: 'late-2', amount: 500, pay_method: 'alipay.qr', currency: 'CNY' });
    t.is(failed.status, 'failed');
    t.is(failed.channelAccount, 'fixture_r');
    t.deepEqual(failed.routing!.attempts.map((a) => [a.channel, a.outcome, a.error_code]), [['fixture_r', 'not_created', 'channel_unavailable'], ['fixture_b', 'not_created', 'channel_unavailable']]);
    t.is((await env.gw.store.payments.pendingByAccount(env.gw.store.reads)).get('fixture_b'), undefined);
  } finally {
    old.release();
    await env.close();
  }
});

test('AccountWork: a write running at the mark or begun after it is unseen by the count; after the swap none may begin', (t) => {
  const serving = (name: string) => new Map([[name, { name, instance: {} } as AccountEntry]]);
  const work = new AccountWork(serving('b'));
  t.true(work.begin('b'));
  const whileRunning = work.mark('b');
  work.end('b');
  t.true(work.unseenSince('b', whileRunning), 'running at the mark: it may commit after the count');

  const idle = work.mark('b');
  t.false(work.unseenSince('b', idle));
  t.true(work.begin('b'));
  work.end('b');
  t.true(work.unseenSince('b', idle), 'begun and committed after the mark');

  work.serve(serving('main'));
  t.false(work.begin('b'), 'the live config no longer serves b');
  t.true(work.begin('main'));
});

test.serial('at start-up, pending payments on an account the config lacks give a warning and an alert, and the gateway serves', async (t) => {
  let env = await startGateway(withB);
  try {
    const creds = await activeMerchant(env.gw);
    const client = await MerchantClient.for(env.gw, creds);
    const pending = await client.request('POST', '/v1/payments', onB('startup-1'));
    t.is(pending.json.status, 'pending');
    writeFileSync(env.configPath, withoutB.replace('level: silent', 'level: warn'));
    env = await env.restart();

    const warning = env.logs.map((l) => JSON.parse(l)).find((l) => l.level === 40 && l.account === 'fixture_b');
    t.truthy(warning, env.logs.join(''));
    t.regex(warning.msg, /channel account fixture_b has 1 pending payment\(s\) and 0 pending refund\(s\) but is not in the config/);
    const alerts = (await admin(env.gw, 'GET', '/admin/alerts')).json.data;
    const alert = alerts.find((a: any) => a.kind === 'pending_on_unserved_account' && a.object_id === 'fixture_b');
    t.truthy(alert, JSON.stringify(alerts));
    t.like(JSON.parse(alert.detail), { account: 'fixture_b', pending_payments: 1, pending_refunds: 0, reason: 'not in the config' });
    const client2 = await MerchantClient.for(env.gw, creds);
    t.is((await client2.request('POST', '/v1/payments', { out_trade_no: 'startup-2', amount: 500, pay_method: 'fixture.qr' })).status, 201, 'the rest serves');
  } finally {
    await env.close();
  }
});
