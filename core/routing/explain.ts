import { ApiError } from '../errors.js';
import type { ExplainQuery } from '../http/schemas.js';
import type { CompiledRouting, RoutingInput } from './engine.js';

export interface RouteExplanation {
  input: { pay_method: string; amount: number; currency: string; merchant: string; app: string; metadata: Readonly<Record<string, string>>; regions: readonly string[] | null };
  rule: { index: number; name: string; strategy: string } | null;
  /** Accounts in the order a payment would try them. */
  order: string[];
  targets: Array<{ account: string; usable: boolean; reason: string; breaker: string; cost?: number; success_rate?: number | null; weight?: number }>;
  summary: string;
  /** What the explanation could not take into account, e.g. a merchant the store does not know. */
  warnings: string[];
}

export interface ExplainContext {
  /** False when a merchant id was given but the store has no such merchant (or there is no store). */
  merchantFound: boolean;
  /** Accounts that are not serving (failed to load, disabled) by name: why is spelled out for those the payment would ask. */
  unserved?: ReadonlyMap<string, UnservedAccount>;
}

/** An account that is not serving, the pay methods its config asks of it, and why. */
export interface UnservedAccount {
  name: string;
  payMethods: ReadonlySet<string>;
  error: string;
}

/**
 * Refuses what the merchant API would refuse before routing (unknown pay method, a currency not in api.currencies,
 * an amount above api.max_amount): explaining such a payment would describe a route no payment can take.
 */
export function checkExplainRequest(routing: CompiledRouting, api: { currencies: readonly string[]; max_amount: number }, q: ExplainQuery, unserved: Iterable<UnservedAccount> = []): void {
  if (!routing.payMethods.has(q.pay_method)) {
    // Served only by accounts that did not load: say which and why, rather than that nothing is configured for it.
    const would = [...unserved].filter((a) => a.payMethods.has(q.pay_method));
    if (would.length) {
      throw new ApiError('unknown_pay_method', `pay_method: ${q.pay_method} is served only by channel accounts that are not serving: ${would.map((a) => `${a.name} (${a.error})`).join('; ')}`, 'pay_method');
    }
    throw new ApiError('unknown_pay_method', `pay_method: no configured channel serves ${q.pay_method}`, 'pay_method');
  }
  if (!api.currencies.includes(q.currency)) throw new ApiError('invalid_request', `currency: ${q.currency} is not enabled (api.currencies: ${api.currencies.join(', ')})`, 'currency');
  if (q.amount > api.max_amount) throw new ApiError('amount_too_large', `amount: above api.max_amount (${api.max_amount}), the API would refuse it`, 'amount');
}

/** The routing input for an explain request; tags and bindings come from the merchant's store record, when there is one. */
export function explainInput(q: ExplainQuery, merchant: { tags: readonly string[] } | undefined, boundAccounts: Iterable<string>, now = Date.now()): RoutingInput {
  return {
    payMethod: q.pay_method, amount: q.amount, currency: q.currency, merchantId: q.merchant ?? '', appId: q.app ?? '', merchantTags: merchant?.tags ?? [],
    boundAccounts: new Set(boundAccounts), clientIp: q.client_ip, metadata: q.metadata, now,
  };
}

/** The same decision the hot path makes, with the why of every target spelled out (slow path: allocates freely). */
export function explainRoute(routing: CompiledRouting, input: RoutingInput, context: ExplainContext = { merchantFound: true }): RouteExplanation {
  const ruleIndex = routing.matchRule(input);
  const rule = ruleIndex >= 0 ? routing.rules[ruleIndex]! : null;
  const ruleConfig = ruleIndex >= 0 ? routing.config.rules[ruleIndex]! : null;
  const day = routing.day(input.now);
  const targetIndices = rule ? [...rule.targets] : routing.accounts.map((_, i) => i);
  const totals = { ok: 0, failed: 0 };
  const targets = targetIndices.map((index, k) => {
    const account = routing.accounts[index];
    const name = account?.name ?? String(ruleConfig?.targets[k]);
    const skip = index < 0 ? 'unknown account' : routing.skipReason(index, input, day);
    // A failed account serves nothing in the table: when its config asks it to serve this pay method, say why it does not.
    const failed = context.unserved?.get(name);
    const reason = skip === null ? 'usable' : failed?.payMethods.has(input.payMethod) ? `not serving: ${failed.error}` : describe(skip);
    const detail: RouteExplanation['targets'][number] = {
      account: name, usable: skip === null, reason, breaker: account ? account.state.breaker.state : 'n/a',
    };
    if (account && rule?.strategy === 'lowest_cost') {
      const fee = account.fees[input.payMethod] ?? account.fees.default;
      detail.cost = fee ? fee.fixed + (input.amount * fee.rate_bps) / 10_000 : 0;
    }
    if (account && rule?.strategy === 'success_rate') {
      account.state.calls.totals(input.now, totals);
      const n = totals.ok + totals.failed;
      detail.success_rate = n === 0 ? null : totals.ok / n;
    }
    if (rule?.strategy === 'weighted') detail.weight = rule.weights[k];
    return detail;
  });
  const decision = routing.decide(input);
  const order = Array.from(decision.candidates.subarray(0, decision.count), (i) => routing.accounts[i]!.name);
  const why = rule
    ? `rule ${rule.index} "${rule.name}" matched (${rule.strategy}${rule.strategy === 'weighted' ? ': the first place is a weighted draw' : ''})`
    : 'no rule matched: every account serving the pay method, in config order';
  return {
    input: {
      pay_method: input.payMethod, amount: input.amount, currency: input.currency, merchant: input.merchantId, app: input.appId, metadata: { ...input.metadata },
      regions: routing.regionOf(input.clientIp),
    },
    rule: rule && { index: rule.index, name: rule.name, strategy: rule.strategy },
    order,
    targets,
    summary: order.length ? `${why}; try ${order.join(' → ')}` : `${why}; no account can take it`,
    warnings: context.merchantFound ? [] : [`merchant ${input.merchantId} is not in the store: explained with no merchant tags and no service-provider bindings (rules on the merchant id, groups and pins still apply)`],
  };
}

function describe(reason: string): string {
  switch (reason) {
    case 'not_serving': return 'does not serve this pay method';
    case 'unavailable': return 'plugin not loaded or account disabled';
    case 'not_bound': return 'service-provider account: the merchant is not bound to it';
    case 'not_pinned': return 'the merchant is pinned to other accounts';
    case 'daily_amount': return 'daily amount limit reached';
    case 'daily_count': return 'daily count limit reached';
    case 'breaker_open': return 'circuit breaker open';
    default: return reason;
  }
}
