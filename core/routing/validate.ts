import type { RoutingConfig } from '../config/schema.js';
import { patternMatches, shadowedRules, type CompiledRouting } from './engine.js';

/**
 * Checks a routing table against the accounts it names. Each problem names the rule and the
 * field: `routing.rules.2 (big_wechat).targets.1: channel account alipay_main does not serve wechat.*`.
 */
export function validateRouting(config: RoutingConfig, routing: CompiledRouting, accountPayMethods: ReadonlyMap<string, ReadonlySet<string> | null>): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  config.rules.forEach((rule, i) => {
    const at = `routing.rules.${i} (${rule.name})`;
    if (names.has(rule.name)) problems.push(`${at}.name: duplicate rule name`);
    names.add(rule.name);
    let weightSum = 0;
    rule.targets.forEach((target, k) => {
      const name = typeof target === 'string' ? target : target.account;
      weightSum += typeof target === 'string' ? 1 : target.weight;
      if (!accountPayMethods.has(name)) {
        problems.push(`${at}.targets.${k}: no channel account named ${name}`);
        return;
      }
      const serves = accountPayMethods.get(name);
      // An account whose plugin failed to load has no known pay methods; that failure is reported on its own.
      if (serves && ![...serves].some((pm) => patternMatches(rule.match.pay_method, pm))) {
        problems.push(`${at}.targets.${k}: channel account ${name} does not serve ${[rule.match.pay_method ?? '*'].flat().join(', ')}`);
      }
    });
    if (rule.strategy === 'weighted' && weightSum === 0) problems.push(`${at}.targets: weights sum to 0`);
    const { amount_min: min, amount_max: max } = rule.match;
    if (min !== undefined && max !== undefined && min > max) problems.push(`${at}.match.amount_min: greater than amount_max, the rule can never match`);
    const { dates } = rule.match;
    if (dates) {
      for (const field of ['from', 'to'] as const) {
        const d = new Date(`${dates[field]}T00:00:00Z`);
        if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== dates[field]) problems.push(`${at}.match.dates.${field}: ${dates[field]} is not a calendar date`);
      }
      if (dates.from > dates.to) problems.push(`${at}.match.dates: from is after to, the rule can never match`);
    }
    for (const g of [rule.match.merchant_group ?? []].flat()) if (!config.groups[g]) problems.push(`${at}.match.merchant_group: no group named ${g}`);
    for (const r of [rule.match.payer_region ?? []].flat()) if (!config.regions[r]) problems.push(`${at}.match.payer_region: no region named ${r}`);
  });
  for (const [merchant, accounts] of Object.entries(config.pins)) {
    accounts.forEach((a, k) => {
      if (!accountPayMethods.has(a)) problems.push(`routing.pins.${merchant}.${k}: no channel account named ${a}`);
    });
  }
  for (const index of shadowedRules(routing, config)) {
    const rule = config.rules[index]!;
    if (rule.match.amount_min !== undefined && rule.match.amount_max !== undefined && rule.match.amount_min > rule.match.amount_max) continue;
    problems.push(`routing.rules.${index} (${rule.name}).match: can never match, earlier rules shadow it`);
  }
  return problems;
}
