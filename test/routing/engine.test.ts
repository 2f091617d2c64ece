import test from 'ava';
import { compile, input, order, syntheticTable } from './table.js';
import { BlockList, isIP } from 'node:net';
import { parseIpv4, parseMappedIpv4, patternMatches } from '../../core/routing/engine.js';
import { explainRoute } from '../../core/routing/explain.js';

const wechat = ['wechat.native', 'wechat.jsapi'];
const both = [...wechat, 'alipay.qr'];

test('priority: targets in order, unusable ones skipped; no rule → every serving account', (t) => {
  const { routing, problems } = compile({ rules: [{ name: 'w', match: { pay_method: 'wechat.*' }, targets: ['b', 'a'] }] }, [
    { name: 'a', payMethods: wechat }, { name: 'b', payMethods: wechat }, { name: 'c', payMethods: ['alipay.qr'] },
  ]);
  t.deepEqual(problems, []);
  t.deepEqual(order(routing, input()), ['b', 'a']);
  t.is(routing.decide(input()).ruleName, 'w');
  t.deepEqual(order(routing, input({ payMethod: 'alipay.qr' })), ['c']);
  t.is(routing.decide(input({ payMethod: 'alipay.qr' })).ruleName, null);
});

test('matching: wildcards, amount ranges, currency, merchant, app, tags, groups, regions, hours, dates, metadata', (t) => {
  const { routing, problems } = compile({
    groups: { vip: ['mch_vip'] },
    regions: { shanghai: ['101.80.0.0/13'], china: ['101.0.0.0/8'] },
    rules: [
      { name: 'meta', match: { metadata: { campaign: 'double11', vip: '*' } }, targets: ['m'] },
      { name: 'region', match: { payer_region: 'shanghai' }, targets: ['r'] },
      { name: 'china', match: { payer_region: 'china', pay_method: 'alipay.qr' }, targets: ['r'] },
      { name: 'group', match: { merchant_group: 'vip' }, targets: ['g'] },
      { name: 'tag', match: { merchant_tag: ['food'] }, targets: ['t'] },
      { name: 'app', match: { app: 'app_special' }, targets: ['p'] },
      { name: 'night', match: { hours: { from: 22, to: 6 } }, targets: ['n'] },
      { name: 'sale', match: { dates: { from: '2026-11-11', to: '2026-11-11' } }, targets: ['s'] },
      { name: 'big', match: { pay_method: 'wechat.*', amount_min: 100_000 }, targets: ['big'] },
      { name: 'merchant', match: { merchant: 'mch_2', currency: 'CNY' }, targets: ['mer'] },
      { name: 'rest', match: {}, targets: ['rest'] },
    ],
  }, ['m', 'r', 'g', 't', 'p', 'n', 's', 'big', 'mer', 'rest'].map((name) => ({ name, payMethods: both })));
  t.deepEqual(problems, []);
  const rule = (over: Parameters<typeof input>[0]) => routing.decide(input(over)).ruleName;
  t.is(rule({ metadata: { campaign: 'double11', vip: 'yes' } }), 'meta');
  t.is(rule({ metadata: { campaign: 'double11' } }), 'rest');
  t.is(rule({ clientIp: '101.81.2.3' }), 'region');
  t.is(rule({ clientIp: '8.8.8.8' }), 'rest');
  t.is(rule({ clientIp: '::ffff:101.81.2.3' }), 'region', 'an IPv4-mapped IPv6 address is its IPv4 address');
  t.is(rule({ clientIp: '::FFFF:101.81.2.3' }), 'region');
  t.is(rule({ clientIp: '2001:db8::1' }), 'rest', 'other IPv6 addresses are in no region');
  t.is(rule({ clientIp: '101.81.2.3', payMethod: 'alipay.qr' }), 'region', 'nested blocks: in both regions, the first rule wins');
  t.is(rule({ clientIp: '101.200.0.1', payMethod: 'alipay.qr' }), 'china', 'the outer block still matches outside the inner one');
  t.is(rule({ merchantId: 'mch_vip' }), 'group');
  t.is(rule({ merchantTags: ['retail', 'food'] }), 'tag');
  t.is(rule({ appId: 'app_special' }), 'app');
  t.is(rule({ now: Date.UTC(2026, 10, 28, 15, 0) }), 'night', '23:00 in China');
  t.is(rule({ now: Date.UTC(2026, 10, 28, 21, 59) }), 'night', '05:59 in China');
  t.is(rule({ now: Date.UTC(2026, 10, 28, 22, 0) }), 'rest', '06:00 in China');
  t.is(rule({ now: Date.UTC(2026, 10, 11, 4, 0) }), 'sale', 'noon on 11 Nov in China');
  t.is(rule({ amount: 100_000 }), 'big');
  t.is(rule({ amount: 100_000, payMethod: 'alipay.qr' }), 'rest');
  t.is(rule({ merchantId: 'mch_2' }), 'merchant');
  t.true(patternMatches('wechat.*', 'wechat.h5'));
  t.false(patternMatches(['alipay.*', 'bank.b2c'], 'wechat.h5'));
});

test('weighted: volume splits by weight, the others follow as fallbacks', (t) => {
  const { routing } = compile({ rules: [{ name: 'w', match: {}, strategy: 'weighted', targets: [{ account: 'a', weight: 3 }, { account: 'b', weight: 1 }] }] }, [
    { name: 'a', payMethods: wechat }, { name: 'b', payMethods: wechat },
  ]);
  let a = 0;
  const n = 20_000;
  for (let i = 0; i < n; i++) {
    const o = order(routing, input());
    t.is(o.length, 2);
    if (o[0] === 'a') a++;
  }
  t.true(Math.abs(a / n - 0.75) < 0.02, `share of a: ${a / n}`);
});

test('lowest_cost: fixed plus percentage per account and pay method, ordered by cost for this amount', (t) => {
  const { routing } = compile({ rules: [{ name: 'c', match: {}, strategy: 'lowest_cost', targets: ['flat', 'pct'] }] }, [
    { name: 'flat', payMethods: wechat, fees: { default: { fixed: 100, rate_bps: 0 } } },
    { name: 'pct', payMethods: wechat, fees: { default: { fixed: 0, rate_bps: 60 }, 'wechat.jsapi': { fixed: 0, rate_bps: 200 } } },
  ]);
  t.deepEqual(order(routing, input({ amount: 10_000 })), ['pct', 'flat'], '60 < 100');
  t.deepEqual(order(routing, input({ amount: 100_000 })), ['flat', 'pct'], '600 > 100');
  t.deepEqual(order(routing, input({ amount: 1_000, payMethod: 'wechat.jsapi' })), ['pct', 'flat'], '20 < 100');
  t.deepEqual(order(routing, input({ amount: 10_000, payMethod: 'wechat.jsapi' })), ['flat', 'pct'], '200 > 100 on jsapi');
});

test('success_rate: the best recent rate first, with a small exploration share', (t) => {
  const { routing, state } = compile({ window_s: 60, rules: [{ name: 's', match: {}, strategy: 'success_rate', exploration: 0.1, targets: ['a', 'b'] }] }, [
    { name: 'a', payMethods: wechat }, { name: 'b', payMethods: wechat },
  ]);
  const now = input().now;
  for (let i = 0; i < 10; i++) {
    state.recordCall('a', i < 7, now);
    state.recordCall('b', i < 9, now);
  }
  let bFirst = 0;
  for (let i = 0; i < 10_000; i++) if (order(routing, input({ now }))[0] === 'b') bFirst++;
  t.true(bFirst / 10_000 > 0.86 && bFirst / 10_000 < 0.94, `b first ${bFirst / 100}%`);
  // A recovered channel: a's window rolls over and its new calls succeed.
  const later = now + 120_000;
  for (let i = 0; i < 10; i++) {
    state.recordCall('a', true, later);
    state.recordCall('b', i < 5, later);
  }
  t.is(order(routing, input({ now: later }))[0] === 'a' ? 1 : 0, 1, 'a is preferred again once it recovers') ;
});

test('success_rate: exploration is the way back for a recovered account, inside the window, without waiting for its failures to age out', (t) => {
  // A window far longer than the whole run: a's old failures stay in it throughout, so only new successes can lift a.
  const { routing, state } = compile({ window_s: 600, rules: [{ name: 's', match: {}, strategy: 'success_rate', exploration: 0.05, targets: ['a', 'b'] }] }, [
    { name: 'a', payMethods: wechat }, { name: 'b', payMethods: wechat },
  ]);
  const t0 = input().now;
  // a: 300 of 500 (60%), b: 450 of 500 (90%). Successes first, so neither breaker opens (failures stay under half).
  for (let i = 0; i < 500; i++) state.recordCall('a', i < 300, t0);
  for (let i = 0; i < 500; i++) state.recordCall('b', i < 450, t0);
  const totals = { ok: 0, failed: 0 };
  const windowOf = (name: string, now: number) => {
    state.account(name).calls.totals(now, totals);
    return { ...totals, rate: totals.ok / (totals.ok + totals.failed) };
  };
  // One payment per millisecond. a's channel has recovered: every call it gets succeeds. b keeps failing 1 call in 10.
  let now = t0;
  let bCalls = 0;
  const pay = (): string => {
    now += 1;
    const d = routing.decide(input({ now }));
    if (d.count !== 2) throw new Error(`both accounts usable, got ${d.count}`);
    const first = routing.accounts[d.candidates[0]!]!.name;
    state.recordCall(first, first === 'a' || bCalls++ % 10 !== 9, now);
    return first;
  };

  // While a's rate is below b's, a gets exactly the exploration share, 5%: 3%–7% is 9 standard deviations either
  // side (the engine seeds its draws at random, so the bounds are wide rather than the seed fixed).
  const n = 10_000;
  let explored = 0;
  for (let k = 0; k < n; k++) if (pay() === 'a') explored++;
  t.true(explored >= 0.03 * n && explored <= 0.07 * n, `a explored in ${((explored / n) * 100).toFixed(2)}% of ${n} decisions`);
  const afterExploring = windowOf('a', now);
  t.like(afterExploring, { ok: 300 + explored, failed: 200 }, 'a\'s rate climbs by exactly the explored calls, its failures still in the window');
  t.true(afterExploring.rate > 0.6 && afterExploring.rate < windowOf('b', now).rate, `a ${afterExploring.rate.toFixed(3)} has climbed, still under b ${windowOf('b', now).rate.toFixed(3)}`);

  // Exploration goes on until a's rate beats b's: about 1,500 explored successes in all, ~30,000 decisions at 5%.
  let decisions = n;
  while (windowOf('a', now).rate <= windowOf('b', now).rate && decisions < 60_000) {
    if (pay() === 'a') explored++;
    decisions++;
  }
  t.true(windowOf('a', now).rate > windowOf('b', now).rate, `a overtook b after ${decisions} decisions`);
  t.true(decisions > 20_000 && decisions < 45_000, `${decisions} decisions to overtake: ~1,500 successes at a 5% share`);
  t.like(windowOf('a', now), { ok: 300 + explored, failed: 200 }, 'every success that lifted a came through exploration; none of its failures aged out');

  // Now a is first; b gets the exploration share.
  let aFirst = 0;
  for (let k = 0; k < n; k++) if (pay() === 'a') aFirst++;
  t.true(aFirst >= 0.93 * n && aFirst <= 0.97 * n, `a first in ${((aFirst / n) * 100).toFixed(2)}% of decisions`);
  t.true(now - t0 < 600_000 / 2, `all ${(now - t0) / 1000} s of it well inside the 600 s window`);
  t.is(state.account('a').breaker.state, 'closed');
  t.is(state.account('b').breaker.state, 'closed');
});

test('pins, service-provider bindings and daily limits filter the candidates', (t) => {
  const { routing } = compile({ pins: { mch_pinned: ['b'] }, rules: [{ name: 'p', match: {}, targets: ['a', 'b', 'sp'] }] }, [
    { name: 'a', payMethods: wechat, limits: { daily_count: 2, daily_amount: 5_000 } }, { name: 'b', payMethods: wechat }, { name: 'sp', payMethods: wechat, requiresBinding: true },
  ]);
  t.deepEqual(order(routing, input()), ['a', 'b']);
  t.deepEqual(order(routing, input({ boundAccounts: new Set(['sp']) })), ['a', 'b', 'sp']);
  t.deepEqual(order(routing, input({ merchantId: 'mch_pinned' })), ['b']);
  const a = routing.accountIndex.get('a')!;
  t.not(typeof routing.reserve(a, input({ amount: 4_500 })), 'string');
  t.deepEqual(order(routing, input({ amount: 600 })), ['b'], 'over the daily amount');
  t.deepEqual(order(routing, input({ amount: 500 })), ['a', 'b']);
  t.not(typeof routing.reserve(a, input({ amount: 100 })), 'string');
  t.is(routing.reserve(a, input({ amount: 1 })), 'daily_count', 'a hold is refused once the count is reached');
  t.deepEqual(order(routing, input({ amount: 1 })), ['b'], 'daily count reached');
  t.deepEqual(order(routing, input({ amount: 1, now: input().now + 86_400_000 })), ['a', 'b'], 'a new day resets the counters');
});

test('circuit breaker: opens on the error rate, skips the account, half-open probes close it', (t) => {
  const { routing, state } = compile({ rules: [{ name: 'p', match: {}, targets: ['a', 'b'] }] }, [{ name: 'a', payMethods: wechat }, { name: 'b', payMethods: wechat }]);
  const now = input().now;
  for (let i = 0; i < 4; i++) state.recordCall('a', false, now);
  const breaker = state.account('a').breaker;
  t.is(breaker.state, 'open');
  t.regex(breaker.reason, /4 of 4 calls failed/);
  t.deepEqual(order(routing, input({ now })), ['b']);
  t.deepEqual(order(routing, input({ now: now + 1_001 })), ['a', 'b'], 'half-open after open_s lets a probe through');
  t.is(breaker.state, 'half_open');
  breaker.onSend();
  breaker.onSend();
  t.deepEqual(order(routing, input({ now: now + 1_002 })), ['b'], 'no more than half_open_probes at once');
  state.recordCall('a', true, now + 1_003);
  state.recordCall('a', true, now + 1_004);
  t.is(breaker.state, 'closed');
  for (let i = 0; i < 3; i++) state.recordCall('a', false, now + 1_005);
  t.is(breaker.state, 'closed', 'the window was reset when it closed');
  state.recordCall('a', false, now + 1_005);
  t.is(breaker.state, 'open');
  t.deepEqual(order(routing, input({ now: now + 2_100 })), ['a', 'b']);
  state.recordCall('a', false, now + 2_101);
  t.is(breaker.state, 'open', 'a failed probe reopens');
});

test('validation names rule and field: shadowed rules, unknown or non-serving targets, zero weights', (t) => {
  const { problems } = compile({
    rules: [
      { name: 'all_wechat', match: { pay_method: 'wechat.*' }, targets: ['a'] },
      { name: 'shadowed_native', match: { pay_method: 'wechat.native', amount_min: 10 }, targets: ['a'] },
      { name: 'low', match: { pay_method: 'alipay.qr', amount_max: 999 }, targets: ['b'] },
      { name: 'high', match: { pay_method: 'alipay.qr', amount_min: 1000 }, targets: ['b'] },
      { name: 'union_shadowed', match: { pay_method: 'alipay.qr', amount_min: 500, amount_max: 1500 }, targets: ['b'] },
      { name: 'vip_or_gold', match: { pay_method: 'alipay.page', merchant_tag: ['vip', 'gold'], amount_max: 99 }, targets: ['b'] },
      { name: 'vip_small', match: { pay_method: 'alipay.page', merchant_tag: 'vip', amount_max: 50 }, targets: ['b'] },
      { name: 'tagged', match: { pay_method: 'alipay.qr', merchant_tag: 'vip' }, targets: ['b'] },
      { name: 'ghost', match: { pay_method: 'bank.b2c' }, targets: ['nope'] },
      { name: 'wrong', match: { pay_method: 'alipay.*' }, targets: ['a'] },
      { name: 'zero', match: { pay_method: 'wechat.jsapi', merchant: 'm9' }, strategy: 'weighted', targets: [{ account: 'a', weight: 0 }] },
      { name: 'empty', match: { amount_min: 10, amount_max: 5 }, targets: ['a'] },
      { name: 'all_wechat', match: { merchant: 'mx' }, targets: ['a'] },
    ],
  }, [{ name: 'a', payMethods: ['wechat.native', 'wechat.jsapi'] }, { name: 'b', payMethods: ['alipay.qr', 'alipay.page'] }]);
  const has = (s: string) => t.true(problems.some((p) => p.includes(s)), `${s}\n${problems.join('\n')}`);
  has('routing.rules.1 (shadowed_native).match: can never match, earlier rules shadow it');
  has('routing.rules.4 (union_shadowed).match: can never match');
  has('routing.rules.6 (vip_small).match: can never match');
  has('routing.rules.7 (tagged).match: can never match');
  has('routing.rules.8 (ghost).targets.0: no channel account named nope');
  has('routing.rules.9 (wrong).targets.0: channel account a does not serve alipay.*');
  has('routing.rules.10 (zero).targets: weights sum to 0');
  has('routing.rules.10 (zero).match: can never match', );
  has('routing.rules.11 (empty).match.amount_min: greater than amount_max');
  has('routing.rules.12 (all_wechat).name: duplicate rule name');
  t.false(problems.some((p) => /^routing\.rules\.\d+ \((low|high|vip_or_gold)\)/.test(p)), problems.join('\n'));
});

test('explain: the rule, the order and why each target is or is not usable', (t) => {
  const { routing, state, problems } = compile({ rules: [{ name: 'cheap', match: { pay_method: 'wechat.*' }, strategy: 'lowest_cost', targets: ['a', 'b', 'sp'] }] }, [
    { name: 'a', payMethods: wechat, fees: { default: { fixed: 0, rate_bps: 60 } } }, { name: 'b', payMethods: wechat, fees: { default: { fixed: 1, rate_bps: 20 } } },
    { name: 'sp', payMethods: wechat, requiresBinding: true, fees: { default: { fixed: 0, rate_bps: 30 } } },
  ]);
  t.deepEqual(problems, []);
  for (let i = 0; i < 4; i++) state.recordCall('b', false, input().now);
  const e = explainRoute(routing, input({ amount: 1200 }));
  t.deepEqual(e.rule, { index: 0, name: 'cheap', strategy: 'lowest_cost' });
  t.deepEqual(e.order, ['a']);
  t.like(e.targets[0], { account: 'a', usable: true, cost: 7.2 });
  t.like(e.targets[1], { account: 'b', usable: false, reason: 'circuit breaker open' });
  t.like(e.targets[2], { account: 'sp', usable: false, reason: 'service-provider account: the merchant is not bound to it' });
  t.regex(e.summary, /rule 0 "cheap" matched/);
});

test('the compiled decision equals a naive first-match scan on large random tables', (t) => {
  const { routing: table, accounts } = syntheticTable(2_000);
  const { routing, config, problems } = compile(table, accounts);
  t.deepEqual(problems, []);
  const naive = (i: ReturnType<typeof input>) => config.rules.findIndex((r) => {
    const m = r.match;
    const list = (v: string | string[] | undefined) => (v === undefined ? undefined : [v].flat());
    return patternMatches(m.pay_method, i.payMethod) && (m.amount_min ?? 0) <= i.amount && i.amount <= (m.amount_max ?? Infinity)
      && (list(m.merchant)?.includes(i.merchantId) ?? true);
  });
  const methods = ['wechat.native', 'wechat.jsapi', 'wechat.h5', 'alipay.qr', 'alipay.page', 'unionpay.qr', 'bank.b2c'];
  for (let k = 0; k < 5_000; k++) {
    const i = input({ payMethod: methods[k % methods.length]!, amount: (k * 7919) % 90_000, merchantId: `mch_${k % 5}` });
    t.is(routing.matchRule(i), naive(i));
  }
});

test('a probe slot given back goes only to the half-open period that handed it out', (t) => {
  const { routing } = compile({ rules: [] }, [{ name: 'a', payMethods: wechat }]);
  const breaker = routing.accounts[0]!.state.breaker;
  breaker.settings = { ...breaker.settings, halfOpenProbes: 1, openMs: 1000, minRequests: 1, errorRate: 0.5 };
  const t0 = Date.UTC(2026, 10, 28, 4);
  const takenWhileClosed = routing.reserve(0, input({ now: t0 }));
  t.not(typeof takenWhileClosed, 'string');
  breaker.record(false, t0 + 1);
  t.is(breaker.state, 'open');
  const probe = routing.reserve(0, input({ now: t0 + 2000 }));
  t.not(typeof probe, 'string', 'half-open: the one probe slot');
  t.is(routing.reserve(0, input({ now: t0 + 2001 })), 'breaker_open', 'no second probe');
  // A payment held since before the breaker opened stops before its call (e.g. a duplicate out_trade_no).
  (takenWhileClosed as Exclude<typeof takenWhileClosed, string>).release(false);
  t.is(routing.reserve(0, input({ now: t0 + 2002 })), 'breaker_open', 'its release frees no probe slot it never took');
  (probe as Exclude<typeof probe, string>).release(false);
  t.not(typeof routing.reserve(0, input({ now: t0 + 2003 })), 'string', 'the probe itself, never sent, gives its slot back');
});

test('a rule with many targets and a narrow one in another set both decide in full (records sized per set)', (t) => {
  const many = Array.from({ length: 12 }, (_, k) => ({ name: `acc_${k}`, payMethods: both }));
  const { routing, problems } = compile({
    rules: [
      { name: 'wide', match: { pay_method: 'alipay.qr' }, targets: many.map((a) => a.name) },
      { name: 'narrow', match: { pay_method: 'wechat.*' }, targets: ['acc_3', 'acc_1'] },
    ],
  }, many);
  t.deepEqual(problems, []);
  t.deepEqual(order(routing, input({ payMethod: 'wechat.native' })), ['acc_3', 'acc_1']);
  t.deepEqual(order(routing, input({ payMethod: 'alipay.qr' })), many.map((a) => a.name));
});

/** Shares of first place over n decisions, per target, for a weighted rule with these weights. */
function weightedShares(weights: number[], n: number): number[] {
  const names = weights.map((_, k) => `w${k}`);
  const { routing, problems } = compile({ rules: [{ name: 'w', match: {}, strategy: 'weighted', targets: names.map((account, k) => ({ account, weight: weights[k]! })) }] },
    names.map((name) => ({ name, payMethods: wechat })));
  if (problems.length) throw new Error(problems.join('\n'));
  const counts = new Array<number>(weights.length).fill(0);
  const i = input();
  for (let k = 0; k < n; k++) counts[routing.decide(i).candidates[0]!]!++;
  return counts.map((c) => c / n);
}

test('weighted: the split is exact in expectation, however small a share (weight 1 of 200 is drawn ~0.5% of the time)', (t) => {
  // Bounds are about 7 standard deviations wide: a correct split fails them about once in 10^11 runs.
  const [small, large] = weightedShares([1, 199], 400_000);
  t.true(small! > 0.0042 && small! < 0.0058, `weight 1 of 200 drawn ${(small! * 100).toFixed(3)}% (expected 0.5%; 64 slots gave 0%)`);
  t.true(Math.abs(large! - 0.995) < 0.0008, `weight 199 of 200: ${large}`);
  const [ten] = weightedShares([10, 90], 200_000);
  t.true(Math.abs(ten! - 0.1) < 0.0045, `weight 10 of 100 drawn ${(ten! * 100).toFixed(2)}% (expected 10%; 64 slots gave 9.4%)`);
  const [zero, one, three] = weightedShares([0, 1, 3], 100_000);
  t.is(zero, 0, 'weight 0 is never drawn');
  t.true(Math.abs(one! - 0.25) < 0.01 && Math.abs(three! - 0.75) < 0.01, `${one} / ${three}`);
  const [huge, tiny] = weightedShares([2 ** 40, 1], 50_000);
  t.is(huge! + tiny!, 1, 'weights far above 64 or int32 still draw only real targets');
});

test('breaker cause: timeout_rate when timeouts are most of the failures that opened it, error_rate otherwise', (t) => {
  const { state } = compile({ rules: [] }, ['a', 'b', 'c'].map((name) => ({ name, payMethods: wechat })));
  const now = input().now;
  for (let i = 0; i < 4; i++) state.recordCall('a', false, now, i < 3);
  t.like(state.account('a').breaker, { state: 'open', cause: 'timeout_rate' });
  t.regex(state.account('a').breaker.reason, /4 of 4 calls failed in the window, 3 of them timeouts/);
  for (let i = 0; i < 4; i++) state.recordCall('b', false, now, i < 2);
  t.like(state.account('b').breaker, { state: 'open', cause: 'error_rate' }, 'half of the failures timeouts: not most');
  t.regex(state.account('b').breaker.reason, /^4 of 4 calls failed in the window$/);
  // Timeouts that dropped out of the window do not count towards the cause.
  for (let i = 0; i < 3; i++) state.recordCall('c', false, now, true);
  for (let i = 0; i < 4; i++) state.recordCall('c', false, now + 61_000);
  t.like(state.account('c').breaker, { state: 'open', cause: 'error_rate' });
});

test('a late answer to a call sent before the breaker opened is not taken for a half-open probe', (t) => {
  const { routing, state } = compile({ rules: [{ name: 'p', match: {}, targets: ['a', 'b'] }] }, [{ name: 'a', payMethods: wechat }, { name: 'b', payMethods: wechat }]);
  const breaker = state.account('a').breaker;
  breaker.settings = { ...breaker.settings, halfOpenProbes: 1 };
  const a = routing.accountIndex.get('a')!;
  const now = input().now;
  const early = routing.reserve(a, input({ now }));
  if (typeof early === 'string') return t.fail(early);
  t.is(early.probePeriod, -1, 'sent while closed');
  for (let i = 0; i < 4; i++) state.recordCall('a', false, now + 1);
  t.is(breaker.state, 'open');
  const probe = routing.reserve(a, input({ now: now + 1_100 }));
  if (typeof probe === 'string') return t.fail(probe);
  t.is(breaker.state, 'half_open');
  t.true(probe.probePeriod >= 0);
  state.recordCall('a', true, now + 1_200, false, early.probePeriod);
  t.is(breaker.state, 'half_open', 'the early call succeeding says nothing about the account now: still half-open');
  state.recordCall('a', false, now + 1_250, true, early.probePeriod);
  t.is(breaker.state, 'half_open', 'nor does an early call failing reopen it');
  t.is(routing.reserve(a, input({ now: now + 1_300 })), 'breaker_open', 'the one probe slot is still taken by the real probe');
  state.recordCall('a', true, now + 1_400, false, probe.probePeriod);
  t.like(breaker, { state: 'closed', cause: 'none' }, 'the probe itself closes it');
});

test('routing.window_s changed by a reload resizes the success-rate and breaker windows of existing accounts, keeping what they still span', (t) => {
  const specs = [{ name: 'a', payMethods: wechat }, { name: 'b', payMethods: wechat }];
  const { state } = compile({ window_s: 60, rules: [] }, specs);
  const a = state.account('a');
  const now = input().now;
  const totals = { ok: 0, failed: 0 };
  const failedAt = (at: number) => {
    a.calls.totals(at, totals);
    return totals.failed;
  };
  for (let i = 0; i < 3; i++) state.recordCall('a', false, now);
  state.recordCall('a', true, now - 30_000);
  compile({ window_s: 10, rules: [] }, specs, state);
  t.is(state.account('a'), a, 'the same live state, resized in place');
  t.is(a.calls.slotMs, 500);
  t.is(a.breaker.window.slotMs, 500);
  t.is(failedAt(now + 5_000), 3, 'calls inside the new 10 s window are kept');
  a.calls.totals(now, totals);
  t.is(totals.ok, 0, 'the success 30 s ago is outside the new 10 s window');
  t.is(failedAt(now + 15_000), 0, 'and dropped once they are 10 s old, not 60 s');
  state.recordCall('a', false, now + 15_000);
  t.is(a.breaker.state, 'closed', 'the breaker counts over 10 s too: 1 failure, not 4 of 4');

  // Growing the window keeps what the old one held.
  for (let i = 0; i < 2; i++) state.recordCall('b', false, now);
  compile({ window_s: 120, rules: [] }, specs, state);
  state.account('b').calls.totals(now + 90_000, totals);
  t.is(totals.failed, 2, 'still inside the 120 s window');
  for (let i = 0; i < 2; i++) state.recordCall('b', false, now + 90_000);
  t.like(state.account('b').breaker, { state: 'open', cause: 'error_rate' }, '4 of 4 over 120 s');
});

test('explain shows a weight above 2^31 as configured, not wrapped to a negative int32', (t) => {
  const { routing, problems } = compile({ rules: [{ name: 'w', match: {}, strategy: 'weighted', targets: [{ account: 'a', weight: 3_000_000_000 }, { account: 'b', weight: 1 }] }] }, [
    { name: 'a', payMethods: wechat }, { name: 'b', payMethods: wechat },
  ]);
  t.deepEqual(problems, []);
  t.deepEqual(explainRoute(routing, input()).targets.map((x) => [x.account, x.weight]), [['a', 3_000_000_000], ['b', 1]]);
});

/**
 * Spellings of the IPv4-mapped IPv6 address of `v4` (a uint32) that RFC 4291 allows, drawn with `rand`: each group
 * with or without leading zeros, in either case, one run of zero groups compressed to `::` or none, the last 32 bits
 * in hex or as a dotted quad.
 */
function mappedSpelling(v4: number, rand: () => number): string {
  const groups = [0, 0, 0, 0, 0, 0xffff, v4 >>> 16, v4 & 0xffff];
  const dotted = rand() < 0.3;
  const parts = groups.slice(0, dotted ? 6 : 8).map((g) => {
    const hex = g.toString(16).padStart(1 + Math.floor(rand() * 4), '0');
    return rand() < 0.5 ? hex.toUpperCase() : hex;
  });
  if (dotted) parts.push(`${v4 >>> 24}.${(v4 >>> 16) & 255}.${(v4 >>> 8) & 255}.${v4 & 255}`);
  // `::` replaces one run of zero groups (one group or more) inside the first five, or none is compressed.
  if (rand() < 0.8) {
    const from = Math.floor(rand() * 5);
    const to = from + 1 + Math.floor(rand() * (5 - from));
    return `${parts.slice(0, from).join(':')}::${parts.slice(to).join(':')}`;
  }
  return parts.join(':');
}

test('payer_region: every spelling of an IPv4-mapped IPv6 address is in its IPv4 address\'s region, any other address in none', (t) => {
  const { routing, problems } = compile({
    regions: { shanghai: ['101.80.0.0/13'], ten: ['10.0.0.0/8'] },
    rules: [
      { name: 'shanghai', match: { payer_region: 'shanghai' }, targets: ['r'] },
      { name: 'ten', match: { payer_region: 'ten' }, targets: ['r'] },
      { name: 'rest', match: {}, targets: ['rest'] },
    ],
  }, ['r', 'rest'].map((name) => ({ name, payMethods: both })));
  t.deepEqual(problems, []);
  const regions = (clientIp: string) => routing.regionOf(clientIp);
  const rule = (clientIp: string) => routing.decide(input({ clientIp })).ruleName;
  // 10.0.0.1 and 101.81.2.3 (0x6551_0203) as the dual-stack socket writes them and in hex.
  for (const ip of ['10.0.0.1', '::ffff:10.0.0.1', '::ffff:0a00:0001', '::ffff:a00:1', '::FFFF:A00:1', '0:0:0:0:0:ffff:a00:1', '0000:0000:0000:0000:0000:FFFF:0A00:0001', '0::ffff:10.0.0.1', '::0:ffff:a00:1']) {
    t.deepEqual(regions(ip), ['ten'], ip);
    t.is(rule(ip), 'ten', ip);
  }
  for (const ip of ['101.81.2.3', '::ffff:101.81.2.3', '::ffff:6551:203', '::FFFF:6551:0203', '0:0:0:0:0:ffff:101.81.2.3', '0:0::FfFf:6551:203']) {
    t.deepEqual(regions(ip), ['shanghai'], ip);
    t.is(rule(ip), 'shanghai', ip);
  }
  // Other IPv6 addresses, however close to a mapped one, stand for no IPv4 address: in no region.
  const others = ['::ffff:0:a00:1' /* IPv4-translated */, '::a00:1', '::10.0.0.1' /* IPv4-compatible */, '64:ff9b::a00:1' /* NAT64 */, '1::ffff:a00:1', '::1:ffff:a00:1', '::ffff:a00:1:0', '2001:db8::1', '::'];
  for (const ip of others) {
    t.is(isIP(ip), 6, `${ip} is an IPv6 address`);
    t.is(regions(ip), null, ip);
    t.is(rule(ip), 'rest', ip);
  }
  // Not addresses at all: no region, and no part of one is read as an address.
  const malformed = ['::ffff:a00:1:', ':ffff:a00:1', '::ffff::a00:1', '::ffff:0a000:1', '::ffff:10.0.0.1.5', '::ffff:10.0.1', '::ffff:10.0.0.256', '::ffff:10.0.0.1:1', '::ffff:a00:1x', '0:0:0:0:0::ffff:a00:1', '::ffff:a00:1%', '', ':'];
  for (const ip of malformed) t.is(isIP(ip), 0, `${ip} is not an address`);
  for (const ip of malformed) t.is(regions(ip), null, JSON.stringify(ip));

  // Many random spellings of random addresses: the same IPv4 address as node:net's BlockList says it is.
  let x = 0x9e3779b9;
  const rand = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4_294_967_296;
  };
  for (let k = 0; k < 2_000; k++) {
    const v4 = k % 2 === 0 ? parseIpv4('10.0.0.0') + Math.floor(rand() * 2 ** 24) : Math.floor(rand() * 2 ** 32);
    const dotted = `${v4 >>> 24}.${(v4 >>> 16) & 255}.${(v4 >>> 8) & 255}.${v4 & 255}`;
    const spelling = mappedSpelling(v4, rand);
    const same = new BlockList();
    same.addAddress(`::ffff:${dotted}`, 'ipv6');
    t.true(same.check(spelling, 'ipv6'), `${spelling} is ::ffff:${dotted} (the generator's own check)`);
    t.is(parseMappedIpv4(spelling), v4, spelling);
    t.deepEqual(regions(spelling), regions(dotted), `${spelling} and ${dotted}`);
    if (k % 2 === 0) t.deepEqual(regions(spelling), ['ten'], spelling);
  }
});
