import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, parseConfigText } from '../../core/config/load.js';
import type { ChannelPlugin } from '../../core/contract/channel.js';
import { compile, input, order, type AccountSpec } from './table.js';

const wechat = ['wechat.native', 'wechat.jsapi'];
const alipay = ['alipay.qr', 'alipay.page'];

/** The routing section of a config, through the same parser as a config file, or its problems. */
function configProblems(yaml: string): string[] {
  try {
    parseConfigText(yaml, {}, 'test');
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

test('metadata rules match own keys only: toString or constructor in a rule is not found on every payment', (t) => {
  const { routing, problems } = compile({
    rules: [
      { name: 'proto_any', match: { metadata: { toString: '*' } }, targets: ['a'] },
      { name: 'proto_exact', match: { metadata: { constructor: 'x' } }, targets: ['a'] },
      { name: 'campaign', match: { metadata: { campaign: 'double11' } }, targets: ['a'] },
      { name: 'rest', match: {}, targets: ['b'] },
    ],
  }, [{ name: 'a', payMethods: wechat }, { name: 'b', payMethods: wechat }]);
  t.deepEqual(problems, [], 'an earlier toString rule does not shadow the campaign rule either');
  const rule = (metadata: Record<string, string>) => routing.decide(input({ metadata })).ruleName;
  t.is(rule({}), 'rest');
  t.is(rule({ campaign: 'double11' }), 'campaign');
  t.is(rule({ toString: 'anything' }), 'proto_any');
  t.is(rule({ constructor: 'x' }), 'proto_exact');
  t.is(rule({ constructor: 'y' }), 'rest');
  t.is(rule(Object.assign(Object.create(null) as Record<string, string>, { toString: '' })), 'proto_any', 'metadata without a prototype, as explain builds it');
});

test('lowest_cost: a target with no fee for a pay method it would take is an error naming rule, target and pay method', (t) => {
  const accounts: AccountSpec[] = [
    { name: 'wechat_a', payMethods: wechat, fees: { default: { fixed: 0, rate_bps: 60 } } },
    { name: 'wechat_b', payMethods: wechat, fees: { 'wechat.jsapi': { fixed: 0, rate_bps: 20 } } },
    { name: 'alipay_a', payMethods: alipay },
  ];
  const { problems } = compile({
    rules: [
      { name: 'ali', match: { pay_method: 'alipay.*' }, targets: ['alipay_a'] },
      { name: 'small', match: { pay_method: 'wechat.*', amount_max: 99 }, targets: ['wechat_b'] },
      { name: 'jsapi', match: { pay_method: 'wechat.jsapi', amount_max: 500 }, strategy: 'lowest_cost', targets: ['wechat_a', 'wechat_b'] },
      { name: 'cheap', match: { pay_method: 'wechat.*' }, strategy: 'lowest_cost', targets: ['wechat_a', 'wechat_b'] },
    ],
  }, accounts);
  t.deepEqual(problems, ['routing.rules.3 (cheap).targets.1: channel account wechat_b has no fee for wechat.native (lowest_cost needs fees.default or fees.wechat.native)'],
    'priority rules need no fees; jsapi has its own fee on wechat_b');
});

test('a pay method the rule matches but none of its targets serves is an error: the payment would never reach a later rule', (t) => {
  const accounts: AccountSpec[] = [
    { name: 'wechat_a', payMethods: wechat }, { name: 'alipay_a', payMethods: alipay }, { name: 'union_a', payMethods: ['unionpay.qr'] },
  ];
  const mixed = compile({
    rules: [
      { name: 'mixed', match: { pay_method: ['wechat.native', 'alipay.qr'] }, targets: ['alipay_a'] },
      { name: 'wechat', match: { pay_method: 'wechat.*' }, targets: ['wechat_a'] },
    ],
  }, accounts);
  t.deepEqual(mixed.problems, [
    'routing.rules.0 (mixed).targets: no target serves wechat.native, which the rule matches: those payments would stop here with no_channel_available and never reach a later rule; narrow match.pay_method or add a target that serves it',
  ]);
  t.is(mixed.routing.decide(input({ payMethod: 'wechat.native' })).count, 0, 'what the check prevents');

  const catchAll = compile({
    rules: [{ name: 'wechat', match: { pay_method: 'wechat.*' }, targets: ['wechat_a'] }, { name: 'vip', match: { merchant: 'mch_vip' }, targets: ['wechat_a', 'alipay_a'] }],
  }, accounts);
  t.deepEqual(catchAll.problems, [
    'routing.rules.1 (vip).targets: no target serves unionpay.qr, which the rule matches: those payments would stop here with no_channel_available and never reach a later rule; narrow match.pay_method or add a target that serves it',
  ], 'a rule without pay_method matches every served pay method; unionpay.qr would otherwise fall through to the default order');

  const wildcard = compile({ rules: [{ name: 'wide', match: { pay_method: ['wechat.*', 'alipay.qr'] }, targets: ['wechat_a'] }] }, accounts);
  t.deepEqual(wildcard.problems.map((p) => p.split(', which')[0]), ['routing.rules.0 (wide).targets: no target serves alipay.qr']);

  const fine = compile({
    rules: [
      { name: 'both', match: { pay_method: ['wechat.native', 'alipay.qr'] }, targets: ['alipay_a', 'wechat_a'] },
      { name: 'all', match: { amount_min: 100 }, targets: ['wechat_a', 'alipay_a', 'union_a'] },
      { name: 'unknown_method', match: { pay_method: ['wechat.*', 'bank.*'] }, targets: ['wechat_a'] },
    ],
  }, accounts);
  t.deepEqual(fine.problems, [], 'pay methods no account serves are not counted');

  const down = compile({ rules: [{ name: 'any', match: {}, targets: ['wechat_a', 'broken'] }] }, [...accounts, { name: 'broken', payMethods: [], available: false }]);
  t.false(down.problems.some((p) => p.includes('no target serves')), 'a target whose plugin failed may serve them: that failure is reported on its own');
});

test('hours with from equal to to, and a currency outside api.currencies, are errors naming rule and field', (t) => {
  const { problems } = compile({
    rules: [
      { name: 'never', match: { merchant: 'mch_night', hours: { from: 5, to: 5 } }, targets: ['a'] },
      { name: 'day', match: { merchant: 'mch_day', hours: { from: 0, to: 24 } }, targets: ['a'] },
      { name: 'usd', match: { currency: 'USD' }, targets: ['a'] },
      { name: 'cny_or_eur', match: { currency: ['CNY', 'EUR'], amount_min: 5 }, targets: ['a'] },
    ],
  }, [{ name: 'a', payMethods: wechat }]);
  t.deepEqual(problems, [
    'routing.rules.0 (never).match.hours: from equals to (5), the range [from, to) is empty; leave hours out to match all day',
    'routing.rules.2 (usd).match.currency: USD is not in api.currencies (CNY), no payment can match it',
    'routing.rules.3 (cny_or_eur).match.currency: EUR is not in api.currencies (CNY), no payment can match it',
  ]);
  const accepted = compile({ rules: [{ name: 'usd', match: { currency: 'USD' }, targets: ['a'] }] }, [{ name: 'a', payMethods: wechat }], undefined, ['CNY', 'USD']);
  t.deepEqual(accepted.problems, []);
  t.is(accepted.routing.decide(input({ currency: 'USD' })).ruleName, 'usd');
});

test('region blocks must be IPv4 CIDR: octets above 255 and prefixes above /32 are rejected, naming the path', (t) => {
  const regions = (blocks: string[]) => configProblems(`routing:\n  regions:\n    east: [${blocks.join(', ')}]\n`);
  t.deepEqual(regions(['101.80.0.0/13', '0.0.0.0/0', '8.8.8.8/32']), []);
  t.deepEqual(regions(['999.1.1.1/8', '1.2.3.4/40', '1.2.3.4/33', '1.2.3/8', '1.2.3.256/24']), [
    'routing.regions.east.0: 999.1.1.1/8 is not an IPv4 CIDR block (four octets 0-255, a prefix /0 to /32)',
    'routing.regions.east.1: 1.2.3.4/40 is not an IPv4 CIDR block (four octets 0-255, a prefix /0 to /32)',
    'routing.regions.east.2: 1.2.3.4/33 is not an IPv4 CIDR block (four octets 0-255, a prefix /0 to /32)',
    'routing.regions.east.3: 1.2.3/8 is not an IPv4 CIDR block (four octets 0-255, a prefix /0 to /32)',
    'routing.regions.east.4: 1.2.3.256/24 is not an IPv4 CIDR block (four octets 0-255, a prefix /0 to /32)',
  ]);
});

test("the README's routing example is a valid table for the pay methods its plugins serve", async (t) => {
  const readme = readFileSync(join(process.cwd(), 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Routing'));
  const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1]!.replace(/config: \{ … \}/g, 'config: {}');
  const config = parseConfigText(yaml, {}, 'README.md');
  const accounts: AccountSpec[] = [];
  for (const [name, account] of Object.entries(config.channels)) {
    const plugin = (await import(`../../plugins/${account.plugin}/index.js`) as { default: ChannelPlugin }).default;
    accounts.push({ name, payMethods: account.pay_methods ?? [...plugin.manifest.payMethods], fees: account.fees });
  }
  t.true(accounts.length >= 4);
  const { problems } = compile(config.routing, accounts, undefined, config.api.currencies);
  t.deepEqual(problems, []);
});

test('schema errors under routing.rules name the rule as the load-time checks do, and say what each field expects', (t) => {
  t.deepEqual(configProblems(`routing:
  rules:
    - name: p
      match: { pay_method: [] }
      targets: [a]
    - name: q
      match: { pay_method: "we*chat", currency: 5, merchant_group: [""] }
      targets: []
    - match: { pay_method: ["ok.*", "x*y"] }
      strategy: 3
      targets: [5, { account: a, wieght: 2 }]
    - { name: "", targets: [a] }
`), [
    'routing.rules.0 (p).match.pay_method: expected a pay method such as wechat.native or a prefix ending in * such as wechat.*, or a non-empty list of them',
    'routing.rules.1 (q).match.pay_method: a * may only end a pay method pattern (a prefix such as wechat.*)',
    'routing.rules.1 (q).match.currency: expected a currency code such as CNY, or a non-empty list of them',
    'routing.rules.1 (q).match.merchant_group.0: expected a group name from routing.groups, or a non-empty list of them',
    'routing.rules.1 (q).targets: expected at least one target account',
    'routing.rules.2.name: required',
    'routing.rules.2.match.pay_method.1: a * may only end a pay method pattern (a prefix such as wechat.*)',
    'routing.rules.2.strategy: 3 is not a strategy: expected one of priority, weighted, lowest_cost, success_rate',
    'routing.rules.2.targets.0: expected a channel account name, or { account, weight }',
    "routing.rules.2.targets.1: Unrecognized key(s) in object: 'wieght'",
    'routing.rules.3.name: a rule needs a non-empty name',
  ], 'a rule without a usable name is named by its index alone');
  t.deepEqual(configProblems('routing:\n  rules:\n    - { name: all, match: { pay_method: "*" }, targets: [a] }\n'), [], 'a lone * is a prefix too');
});

test('shadowing by several earlier rules together (hours, amount, dates), and hours 0-24 as no condition; the message names the shadowing rules', (t) => {
  const accounts: AccountSpec[] = [{ name: 'a', payMethods: wechat }, { name: 'b', payMethods: wechat }];
  const shadow = (rules: unknown[]) => compile({ rules }, accounts).problems;
  const halves = shadow([
    { name: 'am', match: { hours: { from: 0, to: 12 } }, targets: ['a'] },
    { name: 'pm', match: { hours: { from: 12, to: 24 } }, targets: ['b'] },
    { name: 'rest', match: {}, targets: ['a'] },
  ]);
  t.deepEqual(halves, ['routing.rules.2 (rest).match: can never match, earlier rules shadow it: rules.0 (am), rules.1 (pm)']);

  const wholeDay = compile({ rules: [{ name: 'day', match: { hours: { from: 0, to: 24 } }, targets: ['a'] }, { name: 'rest', match: {}, targets: ['b'] }] }, accounts);
  t.deepEqual(wholeDay.problems, ['routing.rules.1 (rest).match: can never match, earlier rules shadow it: rules.0 (day)']);
  for (const hour of [0, 5, 12, 23]) t.is(wholeDay.routing.decide(input({ now: Date.UTC(2026, 10, 28, hour - 8) })).ruleName, 'day', `hours 0-24 matches at ${hour}:00`);

  t.deepEqual(shadow([
    { name: 'night', match: { app: 'app_x', hours: { from: 22, to: 6 } }, targets: ['a'] },
    { name: 'day', match: { hours: { from: 6, to: 22 } }, targets: ['b'] },
    { name: 'app_x', match: { app: 'app_x', pay_method: 'wechat.native' }, targets: ['a'] },
  ]), ['routing.rules.2 (app_x).match: can never match, earlier rules shadow it: rules.0 (night), rules.1 (day)'], 'a wrap-around range, and a wider earlier rule, join');

  t.deepEqual(shadow([
    { name: 'small', match: { app: 'app_x', amount_max: 999 }, targets: ['a'] },
    { name: 'big', match: { app: ['app_x', 'app_y'], amount_min: 1000 }, targets: ['b'] },
    { name: 'app_x', match: { app: 'app_x' }, targets: ['a'] },
  ]), ['routing.rules.2 (app_x).match: can never match, earlier rules shadow it: rules.0 (small), rules.1 (big)']);

  t.deepEqual(shadow([
    { name: 'early_nov', match: { metadata: { campaign: '*' }, dates: { from: '2026-11-01', to: '2026-11-10' } }, targets: ['a'] },
    { name: 'late_nov', match: { metadata: { campaign: '*' }, dates: { from: '2026-11-11', to: '2026-11-30' } }, targets: ['b'] },
    { name: 'nov_sale', match: { metadata: { campaign: 'sale' }, dates: { from: '2026-11-05', to: '2026-11-20' } }, targets: ['a'] },
  ]), ['routing.rules.2 (nov_sale).match: can never match, earlier rules shadow it: rules.0 (early_nov), rules.1 (late_nov)']);
});

test('no false shadowing: near misses that leave a rule something to match are accepted, and it does match', (t) => {
  const accounts: AccountSpec[] = [{ name: 'a', payMethods: wechat }, { name: 'b', payMethods: wechat }];
  const china = (day: number, hour: number) => Date.UTC(2026, 10, day, hour - 8);
  const cases: Array<[string, unknown[], Parameters<typeof input>[0]]> = [
    ['an hour left (23:00)', [
      { name: 'am', match: { hours: { from: 0, to: 12 } }, targets: ['a'] },
      { name: 'pm', match: { hours: { from: 12, to: 23 } }, targets: ['b'] },
    ], { now: china(28, 23) }],
    ['the halves are for different apps', [
      { name: 'am', match: { app: 'app_x', hours: { from: 0, to: 12 } }, targets: ['a'] },
      { name: 'pm', match: { app: 'app_y', hours: { from: 12, to: 24 } }, targets: ['b'] },
    ], { now: china(28, 3), appId: 'app_y' }],
    ['one half for one pay method only', [
      { name: 'am', match: { pay_method: 'wechat.native', hours: { from: 0, to: 12 } }, targets: ['a'] },
      { name: 'pm', match: { hours: { from: 12, to: 24 } }, targets: ['b'] },
    ], { now: china(28, 3), payMethod: 'wechat.jsapi' }],
    ['one half needs metadata', [
      { name: 'am', match: { hours: { from: 0, to: 12 }, metadata: { campaign: '*' } }, targets: ['a'] },
      { name: 'pm', match: { hours: { from: 12, to: 24 } }, targets: ['b'] },
    ], { now: china(28, 3) }],
    ['differ in two dimensions at once', [
      { name: 'am_small', match: { hours: { from: 0, to: 12 }, amount_max: 999 }, targets: ['a'] },
      { name: 'pm_big', match: { hours: { from: 12, to: 24 }, amount_min: 1000 }, targets: ['b'] },
    ], { now: china(28, 3), amount: 5000 }],
  ];
  for (const [why, earlier, reaching] of cases) {
    const { routing, problems } = compile({ rules: [...earlier, { name: 'rest', match: {}, targets: ['a'] }] }, accounts);
    t.deepEqual(problems, [], why);
    t.is(routing.decide(input(reaching)).ruleName, 'rest', `${why}: and it matches`);
  }
  const amountGap = compile({ rules: [
    { name: 'small', match: { app: 'app_x', amount_max: 998 }, targets: ['a'] },
    { name: 'big', match: { app: 'app_x', amount_min: 1000 }, targets: ['b'] },
    { name: 'app_x', match: { app: 'app_x' }, targets: ['a'] },
  ] }, accounts);
  t.deepEqual(amountGap.problems, []);
  t.is(amountGap.routing.decide(input({ appId: 'app_x', amount: 999 })).ruleName, 'app_x');
  const dateGap = compile({ rules: [
    { name: 'early', match: { dates: { from: '2026-11-01', to: '2026-11-10' } }, targets: ['a'] },
    { name: 'late', match: { dates: { from: '2026-11-12', to: '2026-11-30' } }, targets: ['b'] },
    { name: 'nov', match: { dates: { from: '2026-11-01', to: '2026-11-30' }, app: 'app_1' }, targets: ['a'] },
  ] }, accounts);
  t.deepEqual(dateGap.problems, []);
  t.is(dateGap.routing.decide(input({ now: china(11, 12) })).ruleName, 'nov');
});

test('a pinned merchant with no pinned target in a rule that can match its payments is an error naming pin, merchant and rules', (t) => {
  const accounts: AccountSpec[] = [{ name: 'wechat_a', payMethods: wechat }, { name: 'wechat_b', payMethods: wechat }, { name: 'alipay_a', payMethods: alipay }];
  const { routing, problems } = compile({
    pins: { mch_3: ['wechat_b'] },
    rules: [
      { name: 'big_wechat', match: { pay_method: 'wechat.*', amount_min: 500_000 }, targets: ['wechat_a'] },
      { name: 'native', match: { pay_method: 'wechat.native' }, targets: ['wechat_a', 'wechat_b'] },
      { name: 'ali', match: { pay_method: 'alipay.*' }, targets: ['alipay_a'] },
      { name: 'rest', match: {}, targets: ['wechat_a', 'alipay_a'] },
    ],
  }, accounts);
  t.deepEqual(problems, [
    'routing.pins.mch_3: merchant mch_3 is pinned to wechat_b, but rule rules.0 (big_wechat) can match its wechat.native payments and has no pinned target serving them: those payments would fail with no_channel_available; add a pinned account to its targets or a rule for mch_3 before it',
    'routing.pins.mch_3: merchant mch_3 is pinned to wechat_b, but rules rules.0 (big_wechat), rules.3 (rest) can match its wechat.jsapi payments and have no pinned target serving them: those payments would fail with no_channel_available; add a pinned account to their targets or a rule for mch_3 before them',
  ], 'alipay payments of mch_3 fail whatever the rules say (its pinned account serves none): not the rules\' doing');
  t.is(routing.decide(input({ merchantId: 'mch_3', amount: 600_000 })).count, 0, 'what the check prevents');

  const fine = (rules: unknown[], why: string) => {
    const r = compile({ pins: { mch_3: ['wechat_b'] }, groups: { vip: ['mch_3'] }, rules }, accounts);
    t.deepEqual(r.problems, [], why);
    return r.routing;
  };
  const own = fine([
    { name: 'mch_3', match: { merchant: 'mch_3', pay_method: 'wechat.*' }, targets: ['wechat_b'] },
    { name: 'wechat', match: { pay_method: 'wechat.*' }, targets: ['wechat_a'] },
  ], 'a rule of its own before the others catches all of its payments');
  t.deepEqual(order(own, input({ merchantId: 'mch_3' })), ['wechat_b']);
  fine([
    { name: 'vip_small', match: { merchant_group: 'vip', pay_method: 'wechat.*', amount_max: 999 }, targets: ['wechat_b'] },
    { name: 'vip_big', match: { merchant: ['mch_3', 'mch_4'], pay_method: 'wechat.*', amount_min: 1000 }, targets: ['wechat_b', 'wechat_a'] },
    { name: 'wechat', match: { pay_method: 'wechat.*' }, targets: ['wechat_a'] },
  ], 'earlier rules for it together cover every amount');
  fine([
    { name: 'other', match: { merchant: 'mch_9', pay_method: 'wechat.*' }, targets: ['wechat_a'] },
    { name: 'wechat', match: { pay_method: 'wechat.*' }, targets: ['wechat_a', 'wechat_b'] },
  ], 'a rule for another merchant, and one with the pinned account among others');
  const down = compile({ pins: { mch_3: ['broken'] }, rules: [{ name: 'wechat', match: { pay_method: 'wechat.*' }, targets: ['wechat_a'] }] },
    [...accounts, { name: 'broken', payMethods: [], available: false }]);
  t.deepEqual(down.problems, [], 'a pinned account whose plugin failed may serve anything: that failure is reported on its own');
});

test('the same account twice in a rule, weight on a rule that is not weighted, exploration on one that is not success_rate: errors naming rule and field', (t) => {
  const { problems } = compile({ rules: [{ name: 'dup', match: {}, targets: ['a', 'b', 'a'] }] }, [{ name: 'a', payMethods: wechat }, { name: 'b', payMethods: wechat }]);
  t.deepEqual(problems, ['routing.rules.0 (dup).targets.2: channel account a is already targets.0; list each account once']);

  const table = (rules: string) => configProblems(`channels:\n  a: { plugin: fixture }\n  b: { plugin: fixture }\nrouting:\n  rules:\n${rules}`);
  t.deepEqual(table(`    - name: prio
      targets: [a, { account: b, weight: 1 }]
    - name: cheap
      strategy: lowest_cost
      exploration: 0.05
      targets: [{ account: a, weight: 3 }, b]
    - name: split
      strategy: weighted
      exploration: 0.1
      targets: [{ account: a, weight: 3 }, b]
`), [
    'routing.rules.0 (prio).targets.1.weight: only the weighted strategy uses weights, this rule is priority; remove it or set strategy: weighted',
    'routing.rules.1 (cheap).targets.0.weight: only the weighted strategy uses weights, this rule is lowest_cost; remove it or set strategy: weighted',
    'routing.rules.1 (cheap).exploration: only the success_rate strategy explores, this rule is lowest_cost; remove it or set strategy: success_rate',
    'routing.rules.2 (split).exploration: only the success_rate strategy explores, this rule is weighted; remove it or set strategy: success_rate',
  ]);
  t.deepEqual(table(`    - name: split
      strategy: weighted
      targets: [{ account: a, weight: 3 }, { account: b }]
    - name: best
      strategy: success_rate
      exploration: 0.1
      targets: [a, { account: b }]
    - name: prio
      targets: [a, b]
`), [], 'each field on the strategy that reads it; an object target without weight is fine anywhere');
});

test('shadowing is judged over the payments the API accepts: amounts 1 to api.max_amount, currencies in api.currencies', (t) => {
  const accounts: AccountSpec[] = [{ name: 'a', payMethods: wechat }, { name: 'b', payMethods: wechat }];
  const problems = (rules: unknown[], currencies = ['CNY'], maxAmount = 100_000_000) => compile({ rules: [...rules, { name: 'rest', match: {}, targets: ['b'] }] }, accounts, undefined, currencies, maxAmount).problems;
  t.deepEqual(problems([{ name: 'from_1', match: { amount_min: 1 }, targets: ['a'] }]), ['routing.rules.1 (rest).match: can never match, earlier rules shadow it: rules.0 (from_1)'], 'amount 0 is no payment');
  t.deepEqual(problems([{ name: 'up_to_max', match: { amount_max: 100_000_000 }, targets: ['a'] }]), ['routing.rules.1 (rest).match: can never match, earlier rules shadow it: rules.0 (up_to_max)'], 'nothing above api.max_amount is a payment');
  t.deepEqual(problems([
    { name: 'small', match: { amount_max: 50_000 }, targets: ['a'] },
    { name: 'large', match: { amount_min: 50_001, amount_max: 100_000_000 }, targets: ['b'] },
  ]), ['routing.rules.2 (rest).match: can never match, earlier rules shadow it: rules.0 (small), rules.1 (large)']);
  t.deepEqual(problems([{ name: 'cny_vip', match: { currency: 'CNY', merchant_tag: 'vip' }, targets: ['a'] }, { name: 'vip', match: { merchant_tag: 'vip' }, targets: ['b'] }]),
    ['routing.rules.1 (vip).match: can never match, earlier rules shadow it: rules.0 (cny_vip)'], 'CNY is every currency there is');
  t.deepEqual(problems([{ name: 'from_1', match: { amount_min: 1 }, targets: ['a'] }], ['CNY'], 500), ['routing.rules.1 (rest).match: can never match, earlier rules shadow it: rules.0 (from_1)']);
  t.deepEqual(problems([{ name: 'beyond', match: { amount_min: 600 }, targets: ['a'] }], ['CNY'], 500), ['routing.rules.0 (beyond).match.amount_min: above api.max_amount (500), no payment can match it']);
  // Near misses: each leaves the last rule payments to match, and it does match them.
  const accepted: Array<[string, unknown, string[], number, Parameters<typeof input>[0]]> = [
    ['amount 1 left', { amount_min: 2 }, ['CNY'], 100_000_000, { amount: 1 }],
    ['max_amount left', { amount_max: 99_999_999 }, ['CNY'], 100_000_000, { amount: 100_000_000 }],
    ['another currency left', { currency: 'CNY', merchant_tag: 'vip' }, ['CNY', 'USD'], 100_000_000, { currency: 'USD', merchantTags: ['vip'] }],
  ];
  for (const [why, match, currencies, maxAmount, reaching] of accepted) {
    const { routing, problems: found } = compile({ rules: [{ name: 'first', match, targets: ['a'] }, { name: 'rest', match: { merchant_tag: 'vip' }, targets: ['b'] }] }, accounts, undefined, currencies, maxAmount);
    t.deepEqual(found, [], why);
    t.is(routing.decide(input({ merchantTags: ['vip'], ...reaching })).ruleName, 'rest', `${why}: and it matches`);
  }
});
