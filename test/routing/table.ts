import { routingSchema, type RoutingConfig } from '../../core/config/schema.js';
import { CompiledRouting, type RoutableAccount, type RoutingInput } from '../../core/routing/engine.js';
import { RoutingState } from '../../core/routing/state.js';
import { validateRouting } from '../../core/routing/validate.js';

/** Helpers to build routing tables in tests and benchmarks without a gateway. */
export interface AccountSpec {
  name: string;
  payMethods: string[];
  fees?: Record<string, { fixed: number; rate_bps: number }>;
  limits?: { daily_amount?: number; daily_count?: number };
  requiresBinding?: boolean;
  available?: boolean;
}

export function compile(routing: unknown, specs: AccountSpec[], state = new RoutingState(), currencies: readonly string[] = ['CNY'], maxAmount = 100_000_000): { routing: CompiledRouting; state: RoutingState; config: RoutingConfig; problems: string[] } {
  const config = routingSchema.parse(routing);
  const windowMs = config.window_s * 1000;
  const breaker = { errorRate: 0.5, minRequests: 4, openMs: 1000, halfOpenProbes: 2 };
  const settings = new Map(specs.map((s) => [s.name, { state: state.stateFor(s.name, windowMs, breaker), breaker }]));
  state.adopt({ windowMs, accounts: settings });
  const accounts: RoutableAccount[] = specs.map((s) => ({
    name: s.name, payMethods: new Set(s.payMethods), available: s.available ?? true, requiresBinding: s.requiresBinding ?? false,
    fees: s.fees ?? {}, limits: s.limits ?? {}, state: settings.get(s.name)!.state,
  }));
  const compiled = new CompiledRouting(config, accounts, currencies);
  const problems = validateRouting(config, compiled, new Map(specs.map((s) => [s.name, (s.available ?? true) ? new Set(s.payMethods) : null])), { currencies, max_amount: maxAmount });
  return { routing: compiled, state, config, problems };
}

export function input(over: Partial<RoutingInput> = {}): RoutingInput {
  return { payMethod: 'wechat.native', currency: 'CNY', amount: 1000, merchantId: 'mch_1', appId: 'app_1', merchantTags: [], boundAccounts: new Set(), metadata: {}, now: Date.UTC(2026, 10, 28, 4, 0, 0), ...over };
}

export function order(routing: CompiledRouting, i: RoutingInput): string[] {
  const d = routing.decide(i);
  return Array.from(d.candidates.subarray(0, d.count), (k) => routing.accounts[k]!.name);
}

const SYNTHETIC_METHODS = ['wechat.native', 'wechat.jsapi', 'wechat.h5', 'alipay.qr', 'alipay.page', 'unionpay.qr', 'bank.b2c'];
const BAND_WIDTH = 1_000;

/**
 * A synthetic table of n rules: pay methods × amount bands × merchant groups (merchant-specific
 * groups first, a generic group last), strategies in rotation, and a catch-all at the end.
 * `inputs` draws requests uniformly over the space the rules cover, so every table size sees the
 * same mix of strategies and the comparison between sizes is about the table, not the workload.
 */
export function syntheticTable(n: number): { routing: unknown; accounts: AccountSpec[]; inputs(count: number): RoutingInput[] } {
  const methods = SYNTHETIC_METHODS;
  const accounts: AccountSpec[] = [];
  for (let a = 0; a < 12; a++) accounts.push({ name: `acc_${a}`, payMethods: methods, fees: { default: { fixed: a, rate_bps: 30 + a } } });
  const ruleCount = Math.max(1, n - 1);
  const bands = Math.max(1, Math.floor(ruleCount / (methods.length * 4)));
  // The generic group (every method × band) comes last and is complete, so every request matches a
  // real rule; merchant-specific rules come first, or the generic ones would shadow them.
  const groupSize = methods.length * bands;
  const merchantRules = Math.max(0, ruleCount - groupSize);
  const merchantGroups = Math.ceil(merchantRules / groupSize);
  const strategies = ['priority', 'weighted', 'lowest_cost', 'success_rate'] as const;
  const rules: unknown[] = [];
  for (let i = 0; i < ruleCount; i++) {
    const method = methods[i % methods.length]!;
    const band = Math.floor(i / methods.length) % bands;
    const merchant = i < merchantRules ? 1 + Math.floor(i / groupSize) : 0;
    rules.push({
      name: `r${i}`,
      match: { pay_method: method, amount_min: band * BAND_WIDTH, amount_max: band * BAND_WIDTH + BAND_WIDTH - 1, ...(merchant > 0 ? { merchant: `mch_${merchant}` } : {}) },
      strategy: strategies[i % 4],
      targets: [`acc_${i % 12}`, { account: `acc_${(i + 1) % 12}`, weight: 2 }, `acc_${(i + 2) % 12}`],
    });
  }
  rules.push({ name: 'catch_all', match: {}, targets: ['acc_0', 'acc_1'] });
  return {
    routing: { rules },
    accounts,
    inputs: (count) => Array.from({ length: count }, (_, k) => {
      const h = Math.imul(k + 1, 2_654_435_761) >>> 0;
      return input({ payMethod: methods[h % methods.length]!, amount: (h >>> 3) % (bands * BAND_WIDTH), merchantId: `mch_${(h >>> 7) % (merchantGroups + 1)}`, now: Date.now() });
    }),
  };
}
