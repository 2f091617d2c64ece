import type { RoutingConfig, RoutingRuleConfig } from '../config/schema.js';
import { patternMatches, type CompiledRouting } from './engine.js';
import { reachableFor, ruleShapes, shadowedRules, type MatchShape } from './shadow.js';

/** Account name → the pay methods it serves; null when unknown (plugin failed to load, or disabled). */
type ServedBy = ReadonlyMap<string, ReadonlySet<string> | null>;

/** What the API lets a payment be (config `api`): the bounds every rule is judged within. */
interface PaymentLimits {
  currencies: readonly string[];
  max_amount: number;
}

interface RuleContext {
  rule: RoutingRuleConfig;
  /** `routing.rules.2 (big_wechat)`: every problem starts with it. */
  at: string;
  /** Pay methods some loaded account serves that the rule's match.pay_method covers. */
  methods: string[];
  /** Each target's name and what it serves: undefined for an unknown account, null when unknown. */
  targets: Array<{ name: string; serves: ReadonlySet<string> | null | undefined }>;
}

/**
 * Checks a routing table against the accounts it names. Each problem names the rule and the
 * field: `routing.rules.2 (big_wechat).targets.1: channel account alipay_main does not serve wechat.*`.
 */
export function validateRouting(config: RoutingConfig, routing: CompiledRouting, accountPayMethods: ServedBy, api: PaymentLimits): string[] {
  const problems: string[] = [];
  const { currencies } = api;
  const names = new Set<string>();
  const universe = servedPayMethods(accountPayMethods);
  config.rules.forEach((rule, i) => {
    const at = `routing.rules.${i} (${rule.name})`;
    if (names.has(rule.name)) problems.push(`${at}.name: duplicate rule name`);
    names.add(rule.name);
    const targets = rule.targets.map((t) => {
      const name = typeof t === 'string' ? t : t.account;
      return { name, serves: accountPayMethods.get(name) };
    });
    const ctx: RuleContext = { rule, at, methods: universe.filter((pm) => patternMatches(rule.match.pay_method, pm)), targets };
    problems.push(...targetProblems(ctx), ...coverageProblems(ctx), ...feeProblems(ctx, routing), ...matchProblems(ctx, config, api));
  });
  for (const [merchant, accounts] of Object.entries(config.pins)) {
    accounts.forEach((a, k) => {
      if (!accountPayMethods.has(a)) problems.push(`routing.pins.${merchant}.${k}: no channel account named ${a}`);
    });
  }
  // Shadowing is judged over the payments the API accepts: amounts 1 to api.max_amount, currencies in api.currencies.
  const domain = { currencies, maxAmount: api.max_amount };
  const shapes = ruleShapes(routing, config, domain);
  problems.push(...pinProblems(config, accountPayMethods, shapes));
  for (const { index, by } of shadowedRules(routing, config, domain, shapes)) {
    const rule = config.rules[index]!;
    problems.push(`routing.rules.${index} (${rule.name}).match: can never match, earlier rules shadow it: ${ruleList(config, by)}`);
  }
  return problems;
}

/** `rules.0 (night), rules.1 (day)`, the first five and how many more. */
function ruleList(config: RoutingConfig, indices: readonly number[]): string {
  const named = indices.slice(0, 5).map((i) => `rules.${i} (${config.rules[i]!.name})`);
  return indices.length > 5 ? `${named.join(', ')} and ${indices.length - 5} more` : named.join(', ');
}

/**
 * Pins only filter a rule's targets: a pinned merchant whose payment matches a rule with none of its pinned accounts
 * among the targets (for that pay method) fails there with no_channel_available, every time. Reported for every rule
 * that can match the merchant's payments of a pay method one of its pinned accounts serves (a pay method none of them
 * serves fails whatever the rules say), unless earlier rules provably catch all of those payments first.
 */
function pinProblems(config: RoutingConfig, accountPayMethods: ServedBy, shapes: readonly MatchShape[]): string[] {
  const problems: string[] = [];
  for (const [merchant, pinned] of Object.entries(config.pins)) {
    const served = pinned.map((a) => accountPayMethods.get(a));
    // A pinned account whose plugin failed (or that is disabled) may serve anything once it is back: do not guess.
    if (served.some((s) => s === null)) continue;
    const pinnedMethods = new Set(served.flatMap((s) => [...(s ?? [])]));
    const byMethod = new Map<string, number[]>();
    config.rules.forEach((rule, i) => {
      const shape = shapes[i]!;
      if (shape.merchants !== null && !shape.merchants.has(merchant)) return;
      const targets = rule.targets.map((t) => (typeof t === 'string' ? t : t.account)).filter((name) => pinned.includes(name));
      const targetServes = targets.map((name) => accountPayMethods.get(name));
      if (targetServes.some((s) => s === null)) return;
      for (const pm of shape.methods) {
        if (!pinnedMethods.has(pm) || targetServes.some((s) => s?.has(pm))) continue;
        if (!reachableFor(i, merchant, pm, shapes)) continue;
        (byMethod.get(pm) ?? byMethod.set(pm, []).get(pm)!).push(i);
      }
    });
    // One problem per set of rules, naming every pay method it strands.
    const byRules = new Map<string, { rules: number[]; methods: string[] }>();
    for (const [pm, rules] of byMethod) {
      const key = rules.join(',');
      (byRules.get(key) ?? byRules.set(key, { rules, methods: [] }).get(key)!).methods.push(pm);
    }
    for (const { rules, methods } of byRules.values()) {
      problems.push(`routing.pins.${merchant}: merchant ${merchant} is pinned to ${pinned.join(', ')}, but ${rules.length === 1 ? 'rule' : 'rules'} ${ruleList(config, rules)} can match its ${methods.join(', ')} payments and ${rules.length === 1 ? 'has' : 'have'} no pinned target serving them: those payments would fail with no_channel_available; add a pinned account to ${rules.length === 1 ? 'its' : 'their'} targets or a rule for ${merchant} before ${rules.length === 1 ? 'it' : 'them'}`);
    }
  }
  return problems;
}

/** Every pay method at least one loaded account serves, in config order. */
function servedPayMethods(accountPayMethods: ServedBy): string[] {
  const all = new Set<string>();
  for (const served of accountPayMethods.values()) for (const pm of served ?? []) all.add(pm);
  return [...all];
}

/** Unknown targets, the same account twice, targets serving none of the rule's pay methods, weights summing to 0. */
function targetProblems({ rule, at, targets }: RuleContext): string[] {
  const problems: string[] = [];
  targets.forEach(({ name, serves }, k) => {
    const first = targets.findIndex((t) => t.name === name);
    if (first < k) problems.push(`${at}.targets.${k}: channel account ${name} is already targets.${first}; list each account once`);
    if (serves === undefined) problems.push(`${at}.targets.${k}: no channel account named ${name}`);
    // An account whose plugin failed to load has no known pay methods; that failure is reported on its own.
    else if (serves && ![...serves].some((pm) => patternMatches(rule.match.pay_method, pm))) {
      problems.push(`${at}.targets.${k}: channel account ${name} does not serve ${[rule.match.pay_method ?? '*'].flat().join(', ')}`);
    }
  });
  const weightSum = rule.targets.reduce((sum, t) => sum + (typeof t === 'string' ? 1 : t.weight), 0);
  if (rule.strategy === 'weighted' && weightSum === 0) problems.push(`${at}.targets: weights sum to 0`);
  return problems;
}

/**
 * A matched payment stops at the first matching rule: if none of its targets serves the pay method it fails there
 * (no_channel_available) instead of reaching a later rule or the default order. So every pay method the rule matches
 * (no pay_method, or a wildcard, matches every such method) must be served by one of its targets.
 */
function coverageProblems({ at, methods, targets }: RuleContext): string[] {
  // A target whose plugin failed or that is disabled may serve anything once it is back: do not guess.
  if (targets.some((t) => t.serves === null)) return [];
  const unserved = methods.filter((pm) => !targets.some((t) => t.serves?.has(pm)));
  if (unserved.length === 0) return [];
  return [`${at}.targets: no target serves ${unserved.join(', ')}, which the rule matches: those payments would stop here with no_channel_available and never reach a later rule; narrow match.pay_method or add a target that serves it`];
}

/** lowest_cost orders by fee: a target with no fee for a pay method would count as free and always win. */
function feeProblems({ rule, at, methods, targets }: RuleContext, routing: CompiledRouting): string[] {
  if (rule.strategy !== 'lowest_cost') return [];
  const problems: string[] = [];
  targets.forEach(({ name, serves }, k) => {
    const account = routing.accounts[routing.accountIndex.get(name) ?? -1];
    if (!account || !serves) return;
    for (const pm of methods) {
      if (!serves.has(pm) || Object.hasOwn(account.fees, pm) || Object.hasOwn(account.fees, 'default')) continue;
      problems.push(`${at}.targets.${k}: channel account ${name} has no fee for ${pm} (lowest_cost needs fees.default or fees.${pm})`);
    }
  });
  return problems;
}

/** Match conditions that are empty or can never be met. */
function matchProblems({ rule, at }: RuleContext, config: RoutingConfig, api: PaymentLimits): string[] {
  const problems: string[] = [];
  const { currencies } = api;
  const { amount_min: min, amount_max: max, dates, hours } = rule.match;
  if (min !== undefined && max !== undefined && min > max) problems.push(`${at}.match.amount_min: greater than amount_max, the rule can never match`);
  else if (min !== undefined && min > api.max_amount) problems.push(`${at}.match.amount_min: above api.max_amount (${api.max_amount}), no payment can match it`);
  if (dates) {
    for (const field of ['from', 'to'] as const) {
      const d = new Date(`${dates[field]}T00:00:00Z`);
      if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== dates[field]) problems.push(`${at}.match.dates.${field}: ${dates[field]} is not a calendar date`);
    }
    if (dates.from > dates.to) problems.push(`${at}.match.dates: from is after to, the rule can never match`);
  }
  // [from, to) with from === to is empty as documented, but a wrap-around test would read it as all day: refuse both readings.
  if (hours && hours.from === hours.to) problems.push(`${at}.match.hours: from equals to (${hours.from}), the range [from, to) is empty; leave hours out to match all day`);
  for (const c of [rule.match.currency ?? []].flat()) {
    if (!currencies.some((accepted) => patternMatches(c, accepted))) problems.push(`${at}.match.currency: ${c} is not in api.currencies (${currencies.join(', ')}), no payment can match it`);
  }
  for (const g of [rule.match.merchant_group ?? []].flat()) if (!Object.hasOwn(config.groups, g)) problems.push(`${at}.match.merchant_group: no group named ${g}`);
  for (const r of [rule.match.payer_region ?? []].flat()) if (!Object.hasOwn(config.regions, r)) problems.push(`${at}.match.payer_region: no region named ${r}`);
  return problems;
}

/**
 * Fields that only one strategy reads, set on a rule with another strategy: `weight` on a target of a rule that is
 * not `weighted`, `exploration` on one that is not `success_rate`. They signal a misunderstanding (a priority rule
 * does not split by weight), so they are errors. Checked on the config as written, before defaults are filled in
 * (the schema gives every target a weight and every rule an exploration); call it once the schema has accepted it.
 */
export function strategyFieldProblems(raw: unknown): string[] {
  const rules = (raw as { routing?: { rules?: unknown } } | null)?.routing?.rules;
  if (!Array.isArray(rules)) return [];
  const problems: string[] = [];
  rules.forEach((rule: { name?: unknown; strategy?: unknown; targets?: unknown; exploration?: unknown }, i) => {
    if (typeof rule !== 'object' || rule === null) return;
    const at = `routing.rules.${i} (${String(rule.name)})`;
    const strategy = typeof rule.strategy === 'string' ? rule.strategy : 'priority';
    if (strategy !== 'weighted' && Array.isArray(rule.targets)) {
      rule.targets.forEach((t: unknown, k) => {
        if (typeof t === 'object' && t !== null && Object.hasOwn(t, 'weight')) {
          problems.push(`${at}.targets.${k}.weight: only the weighted strategy uses weights, this rule is ${strategy}; remove it or set strategy: weighted`);
        }
      });
    }
    if (strategy !== 'success_rate' && Object.hasOwn(rule, 'exploration')) {
      problems.push(`${at}.exploration: only the success_rate strategy explores, this rule is ${strategy}; remove it or set strategy: success_rate`);
    }
  });
  return problems;
}
