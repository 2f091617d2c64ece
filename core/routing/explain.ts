import type { CompiledRouting, RoutingInput } from './engine.js';

export interface RouteExplanation {
  input: { pay_method: string; amount: number; currency: string; merchant: string; regions: readonly string[] | null };
  rule: { index: number; name: string; strategy: string } | null;
  /** Accounts in the order a payment would try them. */
  order: string[];
  targets: Array<{ account: string; usable: boolean; reason: string; breaker: string; cost?: number; success_rate?: number | null; weight?: number }>;
  summary: string;
}

/** The same decision the hot path makes, with the why of every target spelled out (slow path: allocates freely). */
export function explainRoute(routing: CompiledRouting, input: RoutingInput): RouteExplanation {
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
    const detail: RouteExplanation['targets'][number] = {
      account: name, usable: skip === null, reason: skip === null ? 'usable' : describe(skip), breaker: account ? account.state.breaker.state : 'n/a',
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
    input: { pay_method: input.payMethod, amount: input.amount, currency: input.currency, merchant: input.merchantId, regions: routing.regionOf(input.clientIp) },
    rule: rule && { index: rule.index, name: rule.name, strategy: rule.strategy },
    order,
    targets,
    summary: order.length ? `${why}; try ${order.join(' → ')}` : `${why}; no account can take it`,
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
