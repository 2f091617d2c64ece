import type { RoutingRuleConfig } from '../config/schema.js';

export interface RoutableAccount {
  name: string;
  payMethods: ReadonlySet<string>;
  /** False when the account's plugin failed to load or the account is disabled. */
  available: boolean;
  requiresBinding: boolean;
}

export interface RoutingInput {
  payMethod: string;
  amount: number;
  currency: string;
  merchantId: string;
  merchantTags: readonly string[];
  /** Accounts the merchant is bound to (service-provider mode). */
  boundAccounts: ReadonlySet<string>;
}

export interface RouteDecision {
  rule: string | null;
  strategy: string;
  candidates: string[];
}

type Predicate = (input: RoutingInput) => boolean;

interface CompiledRule {
  name: string;
  strategy: string;
  targets: string[];
  matches: Predicate;
}

export interface CompiledRoutes {
  rules: CompiledRule[];
  accounts: ReadonlyMap<string, RoutableAccount>;
  /** Every pay method some configured account serves. */
  payMethods: ReadonlySet<string>;
}

/** `wechat.*` matches `wechat.native`; `*` matches anything; otherwise an exact match. */
export function patternMatcher(patterns: string | string[] | undefined): ((value: string) => boolean) | null {
  if (patterns === undefined) return null;
  const list = Array.isArray(patterns) ? patterns : [patterns];
  const exact = new Set(list.filter((p) => !p.endsWith('*')));
  const prefixes = list.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  return (value) => exact.has(value) || prefixes.some((prefix) => value.startsWith(prefix));
}

function compileRule(rule: RoutingRuleConfig): CompiledRule {
  const checks: Predicate[] = [];
  const payMethod = patternMatcher(rule.match.pay_method);
  if (payMethod) checks.push((i) => payMethod(i.payMethod));
  const currency = patternMatcher(rule.match.currency);
  if (currency) checks.push((i) => currency(i.currency));
  const merchant = patternMatcher(rule.match.merchant);
  if (merchant) checks.push((i) => merchant(i.merchantId));
  const tag = patternMatcher(rule.match.merchant_tag);
  if (tag) checks.push((i) => i.merchantTags.some(tag));
  const { amount_min: min, amount_max: max } = rule.match;
  if (min !== undefined) checks.push((i) => i.amount >= min);
  if (max !== undefined) checks.push((i) => i.amount <= max);
  return { name: rule.name, strategy: rule.strategy, targets: rule.targets, matches: (i) => checks.every((c) => c(i)) };
}

export function compileRoutes(rules: readonly RoutingRuleConfig[], accounts: readonly RoutableAccount[]): CompiledRoutes {
  const payMethods = new Set<string>();
  for (const a of accounts) for (const m of a.payMethods) payMethods.add(m);
  return { rules: rules.map(compileRule), accounts: new Map(accounts.map((a) => [a.name, a])), payMethods };
}

function usable(account: RoutableAccount | undefined, input: RoutingInput): account is RoutableAccount {
  return !!account && account.available && account.payMethods.has(input.payMethod) && (!account.requiresBinding || input.boundAccounts.has(account.name));
}

/** First matching rule's targets that can serve the request; with no rules, every account that can, in config order. */
export function decideRoute(routes: CompiledRoutes, input: RoutingInput): RouteDecision {
  for (const rule of routes.rules) {
    if (!rule.matches(input)) continue;
    const candidates = rule.targets.filter((t) => usable(routes.accounts.get(t), input));
    return { rule: rule.name, strategy: rule.strategy, candidates };
  }
  const candidates: string[] = [];
  for (const a of routes.accounts.values()) if (usable(a, input)) candidates.push(a.name);
  return { rule: null, strategy: 'priority', candidates };
}
