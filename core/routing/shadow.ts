import type { RoutingConfig, RoutingRuleConfig } from '../config/schema.js';
import { isWholeDay, patternMatches, type CompiledRouting } from './engine.js';

/**
 * Shadow analysis: which rules can never match because earlier rules match everything they match. Used at load time
 * only (it allocates freely). Conservative throughout: a rule is reported only when it provably can never match.
 */

type Match = RoutingRuleConfig['match'];

/** The interval dimensions in which a rule may be covered by the union of several earlier rules. */
type Dimension = 'hours' | 'amount' | 'dates';
const DIMENSIONS: readonly Dimension[] = ['hours', 'amount', 'dates'];

const ALL_HOURS = 0xffffff;
const DAY_MS = 86_400_000;

/**
 * What a payment can be at all: an amount from 1 to api.max_amount and a currency in api.currencies. A rule is compared
 * with earlier ones inside this domain only, so `amount_min: 1` (or `amount_max: <max_amount>`, or `currency: CNY` when
 * CNY is the only currency) covers as much as no condition does.
 */
export interface PaymentDomain {
  currencies: readonly string[];
  maxAmount: number;
}

/** Conditions the engine tests one by one (beyond pay method, currency, merchant and amount), as bits. */
const EXTRA = { app: 1, tags: 2, regions: 4, hours: 8, dates: 16, metadata: 32 } as const;

/** A rule's match, normalised: what each condition admits. */
export interface MatchShape {
  /** Served pay methods the rule matches (every served one without pay_method). */
  methods: ReadonlySet<string>;
  anyMethod: boolean;
  /** The currencies of the domain the rule matches. */
  currency: string[];
  /** Merchants named directly or through groups; null for any merchant. */
  merchants: ReadonlySet<string> | null;
  app: string[] | undefined;
  tags: string[] | undefined;
  regions: string[] | undefined;
  /** Bit h set: hour h of the day matches (hours 0–24, or none, is every hour). */
  hours: number;
  /** Inclusive amount range, inside the domain's [1, max_amount]. */
  amount: [number, number];
  /** Inclusive day numbers (±Infinity without dates). */
  dates: [number, number];
  metadata: Readonly<Record<string, string>> | undefined;
  /** EXTRA bits of the conditions it has: 0 for a rule the engine folds into its amount segments. */
  extras: number;
  /** Matches nothing by itself (an empty amount or date range, an invalid date, no currency of the domain): reported elsewhere, never "shadowed". */
  empty: boolean;
}

const asList = (v: string | string[] | undefined): string[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);

function hoursMask(h: { from: number; to: number } | undefined): number {
  if (!h || isWholeDay(h)) return ALL_HOURS;
  let mask = 0;
  // As the engine tests it: [from, to), wrapping past midnight when from >= to.
  for (let x = 0; x < 24; x++) if (h.from < h.to ? x >= h.from && x < h.to : x >= h.from || x < h.to) mask |= 1 << x;
  return mask;
}

export function shapeOf(m: Match, config: RoutingConfig, universe: readonly string[], domain: PaymentDomain): MatchShape {
  const merchants = m.merchant === undefined && m.merchant_group === undefined
    ? null
    : new Set([...(asList(m.merchant) ?? []), ...(asList(m.merchant_group) ?? []).flatMap((g) => config.groups[g] ?? [])]);
  const hours = hoursMask(m.hours);
  const amount: [number, number] = [Math.max(1, m.amount_min ?? 1), Math.min(domain.maxAmount, m.amount_max ?? Number.MAX_SAFE_INTEGER)];
  const currency = domain.currencies.filter((c) => patternMatches(m.currency, c));
  let dates: [number, number] = [-Infinity, Infinity];
  let badDates = false;
  if (m.dates) {
    const from = Date.parse(`${m.dates.from}T00:00:00Z`) / DAY_MS;
    const to = Date.parse(`${m.dates.to}T00:00:00Z`) / DAY_MS;
    badDates = Number.isNaN(from) || Number.isNaN(to);
    dates = badDates ? [1, 0] : [from, to];
  }
  const extras = (m.app !== undefined ? EXTRA.app : 0) | (m.merchant_tag !== undefined ? EXTRA.tags : 0) | (m.payer_region !== undefined ? EXTRA.regions : 0)
    | (hours !== ALL_HOURS ? EXTRA.hours : 0) | (m.dates ? EXTRA.dates : 0) | (m.metadata ? EXTRA.metadata : 0);
  return {
    methods: new Set(universe.filter((pm) => patternMatches(m.pay_method, pm))),
    anyMethod: m.pay_method === undefined,
    currency, merchants, app: asList(m.app), tags: asList(m.merchant_tag), regions: asList(m.payer_region),
    hours, amount, dates, metadata: m.metadata, extras,
    empty: amount[0] > amount[1] || dates[0] > dates[1] || badDates || hours === 0 || currency.length === 0,
  };
}

/** x ⊇ y for a condition given as a list (undefined: no condition). */
function listCovers(x: string[] | undefined, y: string[] | undefined): boolean {
  if (x === undefined) return true;
  if (y === undefined) return false;
  return y.every((v) => x.includes(v));
}

/** Does `a` admit everything `b` admits in dimension `d`? */
function dimensionCovers(a: MatchShape, b: MatchShape, d: Dimension): boolean {
  if (d === 'hours') return (a.hours & b.hours) === b.hours;
  const [x, y] = d === 'amount' ? [a.amount, b.amount] : [a.dates, b.dates];
  return x[0] <= y[0] && x[1] >= y[1];
}

/** Does every input matched by `b` also match `a`, leaving dimension `skip` out of the comparison? Conservative. */
export function coversExcept(a: MatchShape, b: MatchShape, skip: Dimension | null): boolean {
  // Pay methods of accounts that failed to load are unknown here: never call such a rule shadowed.
  if (b.methods.size === 0) return false;
  if (!a.anyMethod) for (const pm of b.methods) if (!a.methods.has(pm)) return false;
  for (const d of DIMENSIONS) if (d !== skip && !dimensionCovers(a, b, d)) return false;
  if (!listCovers(a.currency, b.currency) || !listCovers(a.app, b.app) || !listCovers(a.tags, b.tags) || !listCovers(a.regions, b.regions)) return false;
  if (a.merchants !== null) {
    if (b.merchants === null) return false;
    for (const m of b.merchants) if (!a.merchants.has(m)) return false;
  }
  if (a.metadata) {
    for (const [k, v] of Object.entries(a.metadata)) {
      if (!b.metadata || !Object.hasOwn(b.metadata, k)) return false;
      if (v !== '*' && b.metadata[k] !== v) return false;
    }
  }
  return true;
}

function intersects(a: MatchShape, b: MatchShape, d: Dimension): boolean {
  if (d === 'hours') return (a.hours & b.hours) !== 0;
  const [x, y] = d === 'amount' ? [a.amount, b.amount] : [a.dates, b.dates];
  return x[0] <= y[1] && y[0] <= x[1];
}

/** Do the parts together admit all of `b` in dimension `d`? Amounts and days are integers, so [1, 5] and [6, 9] join. */
function unionCovers(parts: readonly MatchShape[], b: MatchShape, d: Dimension): boolean {
  if (d === 'hours') {
    let mask = 0;
    for (const p of parts) mask |= p.hours;
    return (mask & b.hours) === b.hours;
  }
  const ranges = parts.map((p) => (d === 'amount' ? p.amount : p.dates)).sort((x, y) => x[0] - y[0]);
  const [from, to] = d === 'amount' ? b.amount : b.dates;
  let next = from;
  for (const [lo, hi] of ranges) {
    if (lo > next) return false;
    if (hi >= to) return true;
    next = Math.max(next, hi + 1);
  }
  return false;
}

/**
 * The earlier rules that together match everything `b` matches, or null. Either one earlier rule covers it, or earlier
 * rules that each cover it in every condition but one interval dimension (hours, amount, dates) cover it in that
 * dimension together: `hours 0-12` and `hours 12-24` cover a rule without hours.
 */
export function shadowingRules(b: MatchShape, earlier: ReadonlyArray<{ index: number; shape: MatchShape }>): number[] | null {
  if (b.empty || b.methods.size === 0) return null;
  for (const a of earlier) if (coversExcept(a.shape, b, null)) return [a.index];
  for (const d of DIMENSIONS) {
    const parts = earlier.filter((a) => !a.shape.empty && intersects(a.shape, b, d) && coversExcept(a.shape, b, d));
    if (parts.length > 1 && unionCovers(parts.map((p) => p.shape), b, d)) return parts.map((p) => p.index);
  }
  return null;
}

/** Every rule's shape, in table order. */
export function ruleShapes(routing: CompiledRouting, config: RoutingConfig, domain: PaymentDomain): MatchShape[] {
  const universe = [...routing.payMethods];
  return config.rules.map((r) => shapeOf(r.match, config, universe, domain));
}

/**
 * Rules that can never match because earlier rules shadow them, each with the rules that do. An amount-only rule is
 * shadowed when, in every bucket it belongs to, no amount segment is left to it (the union of earlier amount-only
 * rules covers it), or when earlier rules differing only in hours or dates together cover it. A rule with other
 * conditions is shadowed when earlier amount-only rules own its whole range, when one earlier rule matches a superset
 * of what it matches, or when earlier rules do together in one interval dimension (see shadowingRules). Rules that
 * match nothing by themselves (amount_min above amount_max, dates from after to) are reported on their own instead.
 */
export function shadowedRules(routing: CompiledRouting, config: RoutingConfig, domain: PaymentDomain, shapes = ruleShapes(routing, config, domain)): Array<{ index: number; by: number[] }> {
  const owners = routing.segmentOwnership();
  const shadowed: Array<{ index: number; by: number[] }> = [];
  // An amount-only rule can only be covered, beyond the segments, by rules whose one other condition is hours or dates.
  const intervalOnly = shapes.map((shape, index) => ({ index, shape })).filter(({ shape }) => shape.extras === EXTRA.hours || shape.extras === EXTRA.dates);
  const all = shapes.map((shape, index) => ({ index, shape }));
  for (const rule of routing.rules) {
    const shape = shapes[rule.index]!;
    if (shape.empty) continue;
    let by: number[] | null = null;
    if (rule.extra === null) {
      // The segments it owns may all lie outside the domain (amount 0, or above max_amount): then it is shadowed too.
      if (owners.buckets.has(rule.index) && !owners.owning.has(rule.index)) by = routing.earlierSegmentOwners(rule.index, domain.maxAmount) ?? [];
      else by = routing.earlierSegmentOwners(rule.index, domain.maxAmount) ?? shadowingRules(shape, intervalOnly.filter((a) => a.index < rule.index));
    } else {
      by = routing.earlierSegmentOwners(rule.index, domain.maxAmount) ?? shadowingRules(shape, all.slice(0, rule.index));
    }
    if (by) shadowed.push({ index: rule.index, by });
  }
  return shadowed;
}

/**
 * Can rule `index` match a payment of `merchant` with `payMethod`, as far as earlier rules go? False when earlier
 * rules provably catch every such payment first (one of them, or several together in one interval dimension).
 */
export function reachableFor(index: number, merchant: string, payMethod: string, shapes: readonly MatchShape[]): boolean {
  const own = shapes[index]!;
  const narrowed: MatchShape = { ...own, methods: new Set([payMethod]), anyMethod: false, merchants: new Set([merchant]) };
  return shadowingRules(narrowed, shapes.slice(0, index).map((shape, i) => ({ index: i, shape }))) === null;
}
