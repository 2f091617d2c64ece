import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Gateway } from '../../core/kernel/gateway.js';
import { ConfigError } from '../../core/config/load.js';
import { startGateway, activeMerchant, MerchantClient, admin, fixtureConfig, waitUntil } from '../helpers/gateway.js';
import { runLoad, signedPaymentRequest } from '../helpers/load.js';
import { fixtureCalls } from '../fixtures/fixture-channel/index.js';

const accounts = (primaryBehaviour: string) => `  primary:
    plugin: fixture
    sandbox: true
    breaker: { error_rate: 0.5, min_requests: 4, open_s: 1, half_open_probes: 2 }
    limits: { daily_count: 1000 }
    config: { secret: primary-secret-1, behaviour: ${primaryBehaviour} }
  backup:
    plugin: fixture
    sandbox: true
    config: { secret: backup-secret-1 }
  capped:
    plugin: fixture
    sandbox: true
    limits: { daily_count: 2, daily_amount: 100000 }
    config: { secret: capped-secret-1 }
routing:
  window_s: 10
  rules:
    - name: capped_first
      match: { pay_method: alipay.qr }
      targets: [capped, backup]
    - name: primary_first
      match: { pay_method: wechat.* }
      targets: [primary, backup]
`;

test.serial('the breaker opens on refused calls, routing skips the account, and half-open probes close it again', async (t) => {
  const env = await startGateway(fixtureConfig(accounts('refuse')));
  try {
    const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
    const pay = (n: string) => client.request('POST', '/v1/payments', { out_trade_no: n, amount: 100, pay_method: 'wechat.native' });
    for (let i = 0; i < 4; i++) {
      const r = await pay(`br-${i}`);
      t.is(r.json.channel_account, 'backup', 'refused by primary (nothing created there), failed over');
      t.deepEqual(r.json.routing.attempts.map((a: any) => a.outcome), ['not_created', 'created']);
    }
    const routing = await admin(env.gw, 'GET', '/admin/routing');
    const primary = routing.json.accounts.find((a: any) => a.account === 'primary');
    t.is(primary.breaker.state, 'open');
    t.regex(primary.breaker.reason, /4 of 4 calls failed/);
    const metrics = await (await fetch(env.gw.url + '/metrics')).text();
    t.regex(metrics, /corbel_breaker_state\{account="primary"\} 2/);
    t.regex(metrics, /corbel_breaker_cause\{account="primary",cause="error_rate"\} 1/);
    const before = fixtureCalls.filter((c) => c.account === 'primary').length;
    const skipped = await pay('br-open');
    t.deepEqual(skipped.json.routing.attempts.map((a: any) => a.channel), ['backup'], 'an open breaker is skipped without a call');
    t.is(fixtureCalls.filter((c) => c.account === 'primary').length, before);

    // The channel recovers (a config reload keeps breaker state), the cool-down passes, probes succeed.
    writeFileSync(env.configPath, readFileSync(env.configPath, 'utf8').replace('behaviour: refuse', 'behaviour: normal'));
    t.is((await admin(env.gw, 'POST', '/admin/config/reload')).status, 200);
    t.is((await admin(env.gw, 'GET', '/admin/routing')).json.accounts.find((a: any) => a.account === 'primary').breaker.state, 'open', 'state survives the reload');
    await new Promise((r) => setTimeout(r, 1_100));
    t.regex(await (await fetch(env.gw.url + '/metrics')).text(), /corbel_breaker_state\{account="primary"\} 1/, 'half-open once the cool-down is over, before any payment comes');
    const probe1 = await pay('br-probe-1');
    t.is(probe1.json.channel_account, 'primary');
    const probe2 = await pay('br-probe-2');
    t.is(probe2.json.channel_account, 'primary');
    t.is((await admin(env.gw, 'GET', '/admin/routing')).json.accounts.find((a: any) => a.account === 'primary').breaker.state, 'closed');
  } finally {
    await env.close();
  }
});

test.serial('calls that time out open the breaker with cause timeout_rate, in /metrics and the admin API', async (t) => {
  const env = await startGateway(fixtureConfig(accounts('ambiguous')));
  try {
    const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
    for (let i = 0; i < 4; i++) {
      const r = await client.request('POST', '/v1/payments', { out_trade_no: `to-${i}`, amount: 100, pay_method: 'wechat.native' });
      t.deepEqual(r.json.routing.attempts.map((a: any) => [a.channel, a.outcome, a.error_code]), [['primary', 'unknown', 'timeout']], 'sent, no answer: it stays on primary');
    }
    const primary = (await admin(env.gw, 'GET', '/admin/routing')).json.accounts.find((a: any) => a.account === 'primary');
    t.like(primary.breaker, { state: 'open', cause: 'timeout_rate' });
    t.regex(primary.breaker.reason, /4 of 4 calls failed in the window, 4 of them timeouts/);
    const metrics = await (await fetch(env.gw.url + '/metrics')).text();
    t.regex(metrics, /corbel_breaker_cause\{account="primary",cause="timeout_rate"\} 1/);
    t.notRegex(metrics, /corbel_breaker_cause\{account="primary",cause="error_rate"\}/);
  } finally {
    await env.close();
  }
});

test.serial('a payment sent before the breaker opened and answered while it is half-open does not close it in place of the probe', async (t) => {
  // primary answers slowly; half_open_probes: 1, so one success taken for the probe would close the breaker.
  const config = fixtureConfig(accounts('normal, delay_ms: 2500').replace('half_open_probes: 2', 'half_open_probes: 1'));
  const env = await startGateway(config);
  try {
    const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
    const pay = (n: string) => client.request('POST', '/v1/payments', { out_trade_no: n, amount: 100, pay_method: 'wechat.native' });
    const breaker = async () => (await admin(env.gw, 'GET', '/admin/routing')).json.accounts.find((a: any) => a.account === 'primary').breaker;
    const early = pay('late-early');
    await new Promise((r) => setTimeout(r, 100));
    // The channel starts refusing (a reload swaps the account; the early call is still in flight on the old one).
    writeFileSync(env.configPath, config.replace('behaviour: normal, delay_ms: 2500', 'behaviour: refuse'));
    t.is((await admin(env.gw, 'POST', '/admin/config/reload')).status, 200);
    for (let i = 0; i < 4; i++) t.is((await pay(`late-refused-${i}`)).json.channel_account, 'backup');
    t.is((await breaker()).state, 'open');
    // It recovers, slowly: the probe will be in flight when the early call's answer comes.
    writeFileSync(env.configPath, config.replace('delay_ms: 2500', 'delay_ms: 1500'));
    t.is((await admin(env.gw, 'POST', '/admin/config/reload')).status, 200);
    await new Promise((r) => setTimeout(r, 1_100));
    const probe = pay('late-probe');
    const earlyResult = await early;
    t.is(earlyResult.json.channel_account, 'primary', 'the early call succeeded on primary');
    t.is((await breaker()).state, 'half_open', 'its late success is not the probe: still half-open');
    t.is((await probe).json.channel_account, 'primary');
    t.like(await breaker(), { state: 'closed', cause: 'none' }, 'the probe closes it');
  } finally {
    await env.close();
  }
});

test.serial('routing.window_s changed by a reload takes effect for the breaker of an existing account', async (t) => {
  const env = await startGateway(fixtureConfig(accounts('refuse')));
  try {
    writeFileSync(env.configPath, readFileSync(env.configPath, 'utf8').replace('window_s: 10', 'window_s: 2'));
    const reload = await admin(env.gw, 'POST', '/admin/config/reload');
    t.is(reload.status, 200);
    t.deepEqual(reload.json.warnings ?? [], [], 'applied live, not left for a restart');
    const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
    const pay = (n: string) => client.request('POST', '/v1/payments', { out_trade_no: n, amount: 100, pay_method: 'wechat.native' });
    for (let i = 0; i < 3; i++) await pay(`win-${i}`);
    await new Promise((r) => setTimeout(r, 2_200));
    await pay('win-3');
    const primary = (await admin(env.gw, 'GET', '/admin/routing')).json.accounts.find((a: any) => a.account === 'primary');
    t.is(primary.breaker.state, 'closed', 'the 3 refusals are older than the new 2 s window: 1 of 1 failed, under min_requests (with 10 s: 4 of 4, open)');
  } finally {
    await env.close();
  }
});

test.serial('daily limits send payments past the cap to the next account, and count across a restart', async (t) => {
  let env = await startGateway(fixtureConfig(accounts('normal')));
  try {
    const creds = await activeMerchant(env.gw);
    let client = await MerchantClient.for(env.gw, creds);
    const pay = (n: string, amount = 100) => client.request('POST', '/v1/payments', { out_trade_no: n, amount, pay_method: 'alipay.qr' });
    t.is((await pay('lim-big', 100_001)).json.channel_account, 'backup', 'over the daily amount on its own');
    t.is((await pay('lim-1')).json.channel_account, 'capped');
    env = await env.restart();
    client = await MerchantClient.for(env.gw, creds);
    t.is((await pay('lim-2')).json.channel_account, 'capped', 'the count restarts from the store: 1 used');
    const third = await pay('lim-3');
    t.is(third.json.channel_account, 'backup', 'the cap of 2 is reached');
    const explained = await admin(env.gw, 'GET', '/admin/routing/explain?pay_method=alipay.qr&amount=100');
    t.like(explained.json.targets[0], { account: 'capped', usable: false, reason: 'daily count limit reached' });
  } finally {
    await env.close();
  }
});

test.serial('daily usage after a restart is what the running gateway held: a payment that failed after its order was created keeps its share, a declined one has none', async (t) => {
  let env = await startGateway(fixtureConfig(accounts('decline')));
  try {
    const creds = await activeMerchant(env.gw);
    let client = await MerchantClient.for(env.gw, creds);
    const pay = (n: string, payMethod = 'alipay.qr') => client.request('POST', '/v1/payments', { out_trade_no: n, amount: 100, pay_method: payMethod });
    const usage = async (account: string) => (await admin(env.gw, 'GET', '/admin/routing')).json.accounts.find((a: any) => a.account === account).usage_today;
    const first = await pay('uf-1');
    t.is(first.json.channel_account, 'capped');
    // The payer fails it: the order existed at the channel, so its share of the limit stays taken.
    t.is((await client.request('POST', `/v1/sandbox/payments/${first.json.id}/fail`)).status, 200);
    await waitUntil(async () => ((await client.request('GET', `/v1/payments/${first.json.id}`)).json.status === 'failed' ? true : undefined));
    const declined = await pay('uf-declined', 'wechat.native');
    t.deepEqual(declined.json.routing.attempts.map((a: any) => [a.channel, a.outcome]), [['primary', 'declined']]);
    t.like(await usage('capped'), { count: 1, amount: 100 });
    t.like(await usage('primary'), { count: 0, amount: 0 });

    env = await env.restart();
    client = await MerchantClient.for(env.gw, creds);
    t.like(await usage('capped'), { count: 1, amount: 100 }, 'counted from the store as it was held');
    t.like(await usage('primary'), { count: 0, amount: 0 }, 'a declined payment created nothing: no share');
    t.is((await pay('uf-2')).json.channel_account, 'capped');
    t.is((await pay('uf-3')).json.channel_account, 'backup', 'the cap of 2 is reached: one failed after creation, one pending');
  } finally {
    await env.close();
  }
});

test.serial('concurrent payments cannot overshoot a daily limit: the share is held when routing picks the account', async (t) => {
  const env = await startGateway(fixtureConfig(accounts('normal').replace('config: { secret: capped-secret-1 }', 'config: { secret: capped-secret-1, delay_ms: 50 }')));
  try {
    const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => client.request('POST', '/v1/payments', { out_trade_no: `cc-${i}`, amount: 100, pay_method: 'alipay.qr' })));
    t.deepEqual(results.map((r) => r.status), Array(10).fill(201));
    t.is(results.filter((r) => r.json.channel_account === 'capped').length, 2, 'exactly the cap of 2 went to the capped account');
    t.is(results.filter((r) => r.json.channel_account === 'backup').length, 8);
    const capped = (await admin(env.gw, 'GET', '/admin/routing')).json.accounts.find((a: any) => a.account === 'capped');
    t.like(capped.usage_today, { count: 2, amount: 200 });

    // A payment refused before any call (a duplicate out_trade_no) gives its share back.
    const duplicate = await client.request('POST', '/v1/payments', { out_trade_no: 'cc-0', amount: 100, pay_method: 'wechat.native' });
    t.is(duplicate.status, 409);
    t.like((await admin(env.gw, 'GET', '/admin/routing')).json.accounts.find((a: any) => a.account === 'primary').usage_today, { count: 0, amount: 0 });
  } finally {
    await env.close();
  }
});

test.serial('a failover target that filled up since the decision is skipped, and the skip is on the payment', async (t) => {
  const env = await startGateway(fixtureConfig(`  refusing:
    plugin: fixture
    sandbox: true
    config: { secret: refusing-secret-1, behaviour: refuse, delay_ms: 100 }
  single:
    plugin: fixture
    sandbox: true
    limits: { daily_count: 1 }
    config: { secret: single-secret-1 }
routing:
  rules:
    - name: refusing_first
      match: { pay_method: alipay.qr }
      targets: [refusing, single]
`));
  try {
    const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
    // Both decide while "single" still has room; the first to fail over takes it.
    const results = await Promise.all(['sk-1', 'sk-2'].map((n) => client.request('POST', '/v1/payments', { out_trade_no: n, amount: 100, pay_method: 'alipay.qr' })));
    const created = results.filter((r) => r.json.status === 'pending');
    const failed = results.filter((r) => r.json.status === 'failed');
    t.is(created.length, 1);
    t.is(failed.length, 1);
    t.deepEqual(created[0]!.json.routing.attempts.map((a: any) => [a.channel, a.outcome]), [['refusing', 'not_created'], ['single', 'created']]);
    t.deepEqual(failed[0]!.json.routing.attempts.map((a: any) => [a.channel, a.outcome, a.error_code]), [['refusing', 'not_created', 'channel_unavailable'], ['single', 'skipped', 'daily_count']]);
    t.like(failed[0]!.json.failure, { code: 'channel_unavailable' });
  } finally {
    await env.close();
  }
});

test.serial('a half-open breaker lets exactly its probe count through, however many payments arrive at once', async (t) => {
  const env = await startGateway(fixtureConfig(accounts('refuse').replace('half_open_probes: 2', 'half_open_probes: 1')));
  try {
    const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
    const pay = (n: string) => client.request('POST', '/v1/payments', { out_trade_no: n, amount: 100, pay_method: 'wechat.native' });
    for (let i = 0; i < 4; i++) await pay(`hp-${i}`);
    t.is((await admin(env.gw, 'GET', '/admin/routing')).json.accounts.find((a: any) => a.account === 'primary').breaker.state, 'open');
    writeFileSync(env.configPath, readFileSync(env.configPath, 'utf8').replace('behaviour: refuse', 'behaviour: normal, delay_ms: 100'));
    t.is((await admin(env.gw, 'POST', '/admin/config/reload')).status, 200);
    await new Promise((r) => setTimeout(r, 1_100));
    const before = fixtureCalls.filter((c) => c.account === 'primary').length;
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => pay(`hp-probe-${i}`)));
    t.deepEqual(results.map((r) => r.status), Array(20).fill(201));
    t.is(fixtureCalls.filter((c) => c.account === 'primary').length - before, 1, 'one probe reached the recovering account');
    t.is(results.filter((r) => r.json.channel_account === 'primary').length, 1);
    const primary = (await admin(env.gw, 'GET', '/admin/routing')).json.accounts.find((a: any) => a.account === 'primary');
    t.is(primary.breaker.state, 'closed', 'the one successful probe closed it');
    t.is(primary.breaker.opened_at ?? null, null, 'a closed breaker reports no opening time');
  } finally {
    await env.close();
  }
});

test.serial('a routing table with errors is rejected on reload, naming rule and field', async (t) => {
  const env = await startGateway(fixtureConfig(accounts('normal')));
  try {
    const original = readFileSync(env.configPath, 'utf8');
    writeFileSync(env.configPath, original.replace('targets: [primary, backup]', 'targets: [primary, nowhere]').replace('match: { pay_method: alipay.qr }', 'match: { pay_method: alipay.qr }\n      strategy: weighted'));
    const res = await admin(env.gw, 'POST', '/admin/config/reload');
    t.is(res.status, 422);
    t.true(res.json.error.details.problems.some((p: string) => p.includes('routing.rules.1 (primary_first).targets.1: no channel account named nowhere')), JSON.stringify(res.json));
  } finally {
    await env.close();
  }
});

test.serial('a rejected reload changes no breaker setting; a valid one applies them as it goes live', async (t) => {
  const env = await startGateway(fixtureConfig(accounts('refuse')));
  try {
    const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
    const pay = (n: string) => client.request('POST', '/v1/payments', { out_trade_no: n, amount: 100, pay_method: 'wechat.native' });
    const primaryBreaker = async () => (await admin(env.gw, 'GET', '/admin/routing')).json.accounts.find((a: any) => a.account === 'primary').breaker.state;
    const eager = readFileSync(env.configPath, 'utf8').replace('min_requests: 4', 'min_requests: 1');
    writeFileSync(env.configPath, eager.replace('targets: [capped, backup]', 'targets: [capped, nowhere]'));
    const rejected = await admin(env.gw, 'POST', '/admin/config/reload');
    t.is(rejected.status, 422);
    t.is(rejected.json.error.code, 'config_invalid');

    t.is((await pay('rej-1')).json.channel_account, 'backup', 'refused by primary, failed over');
    t.is(await primaryBreaker(), 'closed', 'one failed call of one: min_requests is still 4');

    writeFileSync(env.configPath, eager);
    t.is((await admin(env.gw, 'POST', '/admin/config/reload')).status, 200);
    t.is((await pay('rej-2')).json.channel_account, 'backup');
    t.is(await primaryBreaker(), 'open', 'min_requests: 1 is live now: 2 of 2 calls failed');
  } finally {
    await env.close();
  }
});

test.serial('a routing table with errors at start-up is logged as an invalid config, and the start fails', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corbel-test-'));
  const configPath = join(dir, 'corbel.yaml');
  writeFileSync(configPath, fixtureConfig(accounts('normal')).replace('level: silent', 'level: error').replace('targets: [primary, backup]', 'targets: [primary, nowhere]'));
  const logs: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { logs.push(chunk.toString()); cb(); } });
  try {
    await t.throwsAsync(Gateway.start({ configPath, env: { CORBEL_DATA_DIR: join(dir, 'data') }, logDestination: sink as never, watchConfig: false }), { instanceOf: ConfigError });
    const lines = logs.map((l) => JSON.parse(l));
    t.true(lines.some((l) => l.msg === 'config invalid: the routing table has errors' && /no channel account named nowhere/.test(l.reason)), logs.join(''));
    t.false(lines.some((l) => /plugin failed to load/.test(l.msg)), 'no plugin failed; the gateway does not keep serving');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.serial('hot reloads of the routing table under load fail no request: every payment made is created at a channel, none failed', async (t) => {
  const env = await startGateway(fixtureConfig(accounts('normal')));
  try {
    const creds = await activeMerchant(env.gw);
    const original = readFileSync(env.configPath, 'utf8');
    const variants = [original, original.replace('targets: [primary, backup]', 'targets: [backup, primary]\n      strategy: priority'), original.replace('targets: [primary, backup]', 'strategy: weighted\n      targets: [primary, { account: backup, weight: 3 }]')];
    let reloads = 0;
    let stop = false;
    const reloader = (async () => {
      while (!stop) {
        writeFileSync(env.configPath, variants[reloads % variants.length]!);
        const r = await admin(env.gw, 'POST', '/admin/config/reload');
        if (r.status !== 200) throw new Error(`reload failed: ${JSON.stringify(r.json)}`);
        reloads++;
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    // A 201 only says the payment exists: its body says whether a channel created it. Parsed after the run.
    const answers: Array<{ status: number; body: string }> = [];
    const result = await runLoad(env.gw.url, { durationS: 3, connections: 8, setupRequest: signedPaymentRequest(creds, 'wechat.native'), onResponse: (status, body) => answers.push({ status, body }) });
    stop = true;
    await reloader;
    t.true(reloads >= 10, `reloads: ${reloads}`);
    t.true(result.ok > 100, `2xx: ${result.ok}`);
    t.is(result.non2xx, 0);
    t.is(result.errors, 0);
    t.is(result.timeouts, 0);

    /** What went wrong with a payment, or null when it was created at the one account it names, on the first try. */
    const problem = (p: { status: string; channel_account: string | null; failure: unknown; routing: { channel: string | null; attempts: Array<{ channel: string; outcome: string }> } | null }): string | null => {
      if (p.status !== 'pending') return `status ${p.status}, failure ${JSON.stringify(p.failure)}`;
      if (!p.routing?.channel || !['primary', 'backup'].includes(p.routing.channel)) return `routing.channel ${p.routing?.channel}`;
      if (p.channel_account !== p.routing.channel) return `channel_account ${p.channel_account} but routing.channel ${p.routing.channel}`;
      const attempts = p.routing.attempts.map((a) => `${a.channel}:${a.outcome}`).join(',');
      return attempts === `${p.routing.channel}:created` ? null : `attempts ${attempts}`;
    };
    t.is(answers.length, result.ok + result.non2xx, 'every answer was seen');
    const answered = new Map<string, string>();
    const wrongAnswers: string[] = [];
    for (const a of answers) {
      const body = JSON.parse(a.body);
      const wrong = a.status === 201 ? problem(body) : `HTTP ${a.status}`;
      if (wrong) wrongAnswers.push(`${body.id ?? '?'}: ${wrong}`);
      else answered.set(body.id, body.channel_account);
    }
    t.deepEqual(wrongAnswers.slice(0, 5), [], `${wrongAnswers.length} of ${answers.length} answers were not a payment created at a channel`);

    // The store (the sqlite file) agrees: every payment the load made, answered or cut off when the run stopped,
    // is pending at a channel that created it. Creates still running when autocannon stopped are let finish first.
    type Row = { id: string; status: string; channel_account: string | null; failure: string | null; routing: string | null };
    const rowsOf = () => env.gw.store.reads.all<Row>('SELECT id, status, channel_account, failure, routing FROM payments WHERE app_id = ?', [creds.appId]);
    const deadline = Date.now() + 5_000;
    let rows = await rowsOf();
    while (rows.some((r) => r.status === 'pending' && !JSON.parse(r.routing ?? 'null')?.channel) && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 50));
      rows = await rowsOf();
    }
    const stored = rows.map((r) => ({ id: r.id, status: r.status, channel_account: r.channel_account, failure: r.failure, routing: JSON.parse(r.routing ?? 'null') }));
    const wrongRows = stored.flatMap((p) => (problem(p) ? [`${p.id}: ${problem(p)}`] : []));
    t.deepEqual(wrongRows.slice(0, 5), [], `${wrongRows.length} of ${stored.length} stored payments were not created at a channel`);
    // Unanswered ones can only be those in flight when the run stopped: one per connection at most.
    t.true(stored.length >= answered.size && stored.length <= answered.size + 8, `${stored.length} stored, ${answered.size} answered`);
    const byId = new Map(stored.map((p) => [p.id, p.channel_account]));
    t.true([...answered].every(([id, account]) => byId.get(id) === account), 'each answered payment is stored, at the account it was answered with');
    // The reloads were live during the run: the variants put either account first, and both took payments.
    for (const account of ['primary', 'backup']) t.true(stored.some((p) => p.channel_account === account), `${account} took payments`);
  } finally {
    await env.close();
  }
});
