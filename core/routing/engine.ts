import type { RoutingConfig, RoutingRuleConfig } from '../config/schema.js';
import { AccountReservation, type RoutingState, type AccountRoutingState } from './state.js';

/**
 * The routing table compiled into a decision structure. A decision costs close to a constant
 * whatever the table size: rules are bucketed by (pay method, currency) and merchant, rules that
 * only constrain the amount are folded into a segment table (an index slot, then at most a short
 * binary search) whose entries carry the rule's whole decision record, and only the few rules with
 * other conditions are tested one by one. Deciding allocates nothing: the result is written into a
 * buffer the table owns (read it before the next decision).
 */

export interface RoutableAccount {
  name: string;
  payMethods: ReadonlySet<string>;
  /** False when the account's plugin failed to load or the account is disabled. */
  available: boolean;
  requiresBinding: boolean;
  fees: Record<string, { fixed: number; rate_bps: number }>;
  limits: { daily_amount?: number; daily_count?: number };
  state: AccountRoutingState;
}

export interface RoutingInput {
  payMethod: string;
  currency: string;
  amount: number;
  merchantId: string;
  appId: string;
  merchantTags: readonly string[];
  /** Accounts the merchant is bound to (service-provider mode). */
  boundAccounts: ReadonlySet<string>;
  clientIp?: string;
  metadata: Readonly<Record<string, string>>;
  now: number;
}

export interface DecisionBuffer {
  /** Index of the matched rule, -1 when none matched (then every usable account, in config order). */
  rule: number;
  readonly ruleName: string | null;
  strategy: string;
  /** Account indices in the order to try; `count` of them are valid. */
  candidates: Int32Array;
  count: number;
}

/**
 * A condition tested per decision. The time arrives as small integers (hour of the day, day number, both in the routing
 * time zone) rather than as milliseconds: a double passed to a closure is boxed, an allocation per decision.
 */
type ExtraCondition = (input: RoutingInput, regions: readonly string[] | null, hour: number, day: number) => boolean;

export type SkipReason = 'not_serving' | 'unavailable' | 'not_bound' | 'breaker_open' | 'daily_amount' | 'daily_count' | 'not_pinned';

interface CompiledRule {
  index: number;
  name: string;
  strategy: RoutingRuleConfig['strategy'];
  targets: Int32Array;
  /** As configured, for explain (a Float64Array: a weight need not fit in 32 bits). */
  weights: Float64Array;
  /** Weighted pick: running totals of the weights (the last is the total); a uniform draw in [0, total) finds its target. */
  cumulativeWeights: Float64Array | null;
  exploration: number;
  /** Conditions other than pay method, currency, merchant and amount; null when there are none. */
  extra: ExtraCondition | null;
  amountMin: number;
  amountMax: number;
  matchesAnyMerchant: boolean;
}

/**
 * Amount segments → the first simple rule covering each. `index` maps amount / step to the last
 * segment starting at or below it, so a lookup is one division and a step or two of scanning.
 */
interface SegmentTable {
  starts: Float64Array;
  /** starts[starts.length - 1], kept here so the common check reads no array. */
  lastStart: number;
  rule: Int32Array;
  /** Each segment's rule as a decision record (see RECORD), so a decision reads one record, not several arrays. */
  records: Int32Array;
  /** Int32s per record here: the widest rule of this set, so one wide rule elsewhere does not widen every set. */
  stride: number;
  index: Int32Array;
  step: number;
}

/**
 * A rule as the decision reads it: one run of int32s, so that on a large table a decision touches a cache line or
 * two instead of one per field. Targets follow the header, `count` of them.
 */
const RECORD = { rule: 0, strategy: 1, count: 2, cumulativeWeights: 3, explorationPpm: 4, targets: 5 } as const;
/** Sentinel for "no rule yet": an int32, so comparisons stay on small integers. */
const NO_RULE = 0x7fffffff;

/** The decision buffer; the rule's name is looked up only when someone reads it. */
class Decision implements DecisionBuffer {
  rule = -1;
  strategy: string = 'priority';
  count = 0;

  constructor(readonly candidates: Int32Array, private readonly names: readonly string[]) {}

  get ruleName(): string | null {
    return this.rule < 0 ? null : this.names[this.rule]!;
  }
}

const STRATEGY_CODES = { priority: 0, weighted: 1, lowest_cost: 2, success_rate: 3 } as const;
const STRATEGY_NAMES = ['priority', 'weighted', 'lowest_cost', 'success_rate'] as const;

interface RuleSet {
  /** Every rule in the set, for validation. */
  members: number[];
  segments: SegmentTable | null;
  /** Rules with extra conditions, in table order. */
  complex: CompiledRule[];
}

interface Bucket {
  generic: RuleSet;
  /** Per merchant with rules of its own: those rules and the generic ones together, so one lookup decides. */
  byMerchant: Map<string, RuleSet>;
  /** The same sets by merchant slot (CompiledRouting.merchantSlots): an array read in the hot path, not a Map per bucket. */
  bySlot: Array<RuleSet | undefined>;
}

const DAY_MS = 86_400_000;

/** An int32 (`| 0`): a small integer is never boxed, wherever the decision passes it. */
export function dayNumber(now: number, utcOffsetMinutes: number): number {
  return Math.floor((now + utcOffsetMinutes * 60_000) / DAY_MS) | 0;
}

/** Hours [from, to) that cover every hour of the day: the only such range is 0–24 (from equal to to is refused). */
export function isWholeDay(hours: { from: number; to: number }): boolean {
  return hours.from === 0 && hours.to === 24;
}

/** `wechat.*` matches `wechat.native`; `*` matches anything; otherwise an exact match. Used at compile time only. */
export function patternMatches(patterns: string | string[] | undefined, value: string): boolean {
  if (patterns === undefined) return true;
  for (const p of Array.isArray(patterns) ? patterns : [patterns]) {
    if (p.endsWith('*') ? value.startsWith(p.slice(0, -1)) : p === value) return true;
  }
  return false;
}

const asList = (v: string | string[] | undefined): string[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);

/** A dotted-quad IPv4 address (the characters from `from` to `to`) as a number, or -1. */
export function parseIpv4(ip: string, from = 0, to = ip.length): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = from; i < to; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || part > 255) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      digits++;
    } else return -1;
  }
  if (dots !== 3 || digits === 0 || part > 255) return -1;
  return value * 256 + part;
}

/** parseMappedIpv4's groups, written in place: parsing a client IP allocates nothing (it runs in every decision). */
const ipv6Groups = new Uint16Array(8);

/**
 * The IPv4 address an IPv4-mapped IPv6 address (::ffff:0:0/96) stands for, as parseIpv4 gives it, or -1 when the
 * string is not one. Every spelling of the address counts, not only the dual-stack socket's `::ffff:a.b.c.d`: hex
 * groups (`::ffff:a00:1`), either case, leading zeros, `::` anywhere or nowhere (`0:0:0:0:0:ffff:10.0.0.1`); a zone
 * id (`%eth0`) names no other address and is passed over, as node:net's BlockList does. IPv4-compatible (::a.b.c.d)
 * and translated (::ffff:0:a.b.c.d) addresses are other addresses, not this one.
 */
export function parseMappedIpv4(ip: string): number {
  const zone = ip.indexOf('%');
  if (zone === ip.length - 1) return -1;
  const n = zone < 0 ? ip.length : zone;
  const groups = ipv6Groups;
  let count = 0;
  // Where `::` stands, in groups written before it; -1 when there is none.
  let gap = -1;
  let i = 0;
  if (n >= 2 && ip.charCodeAt(0) === 58 && ip.charCodeAt(1) === 58) {
    gap = 0;
    i = 2;
  }
  while (i < n) {
    const start = i;
    let value = 0;
    for (; i < n; i++) {
      const c = ip.charCodeAt(i);
      const h = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
      if (h < 0) break;
      value = value * 16 + h;
    }
    if (i < n && ip.charCodeAt(i) === 46) {
      // The last 32 bits as a dotted quad, to the end of the address.
      const v4 = parseIpv4(ip, start, n);
      if (v4 < 0 || count > 6) return -1;
      groups[count++] = v4 >>> 16;
      groups[count++] = v4 & 0xffff;
      break;
    }
    const digits = i - start;
    if (digits === 0 || digits > 4 || count === 8) return -1;
    groups[count++] = value;
    if (i === n) break;
    if (ip.charCodeAt(i) !== 58) return -1;
    i++;
    if (i < n && ip.charCodeAt(i) === 58) {
      if (gap >= 0) return -1;
      gap = count;
      i++;
    } else if (i === n) return -1;
  }
  // Without `::` all eight groups are written; `::` stands for one group of zeros or more.
  if (gap < 0 ? count !== 8 : count > 7) return -1;
  if (gap >= 0) {
    // The groups after `::` move to the end, zeros fill the space between: the eight groups in order.
    const zeros = 8 - count;
    for (let k = count - 1; k >= gap; k--) groups[k + zeros] = groups[k]!;
    for (let k = gap; k < gap + zeros; k++) groups[k] = 0;
  }
  for (let k = 0; k < 5; k++) if (groups[k] !== 0) return -1;
  if (groups[5] !== 0xffff) return -1;
  return groups[6]! * 65_536 + groups[7]!;
}

export class CompiledRouting {
  readonly accounts: RoutableAccount[];
  readonly accountIndex: Map<string, number>;
  readonly rules: CompiledRule[];
  readonly payMethods: ReadonlySet<string>;
  /** pay method → currency → bucket: two lookups by the input's own strings, nothing concatenated per decision. */
  private readonly buckets = new Map<string, Map<string, Bucket>>();
  private readonly pins: Map<string, Set<number>>;
  /** Merchants with rules of their own, numbered: one lookup per decision, whatever the bucket. */
  private readonly merchantSlots = new Map<string, number>();
  /** IPv4 space cut into non-overlapping ranges, each with every region containing it (blocks may nest). */
  private readonly regionStarts: Float64Array;
  private readonly regionEnds: Float64Array;
  private readonly regionSets: Array<readonly string[]>;
  private readonly out: Decision;
  private readonly costs: Float64Array;
  private readonly rates: Float64Array;
  private readonly totals = { ok: 0, failed: 0 };
  private readonly fallbackOrder: Int32Array;
  private readonly offsetMinutes: number;
  /** Every rule's decision record (RECORD), `stride` int32s each, in table order. */
  private readonly ruleRecords: Int32Array;
  private readonly stride: number;
  /** Every weighted rule's running weight totals, one run per rule (RECORD.cumulativeWeights is where its run starts). */
  private readonly cumulativeWeights: Float64Array;
  /** Where locate() found the matched rule's record: no allocation per decision. */
  private found: { records: Int32Array; at: number };
  /** xorshift128 state for weighted draws and exploration: Math.random() allocates its result (a heap number) per call. */
  private readonly seed = Uint32Array.from({ length: 4 }, () => (Math.random() * 0x1_0000_0000) >>> 0 || 1);

  constructor(readonly config: RoutingConfig, accounts: RoutableAccount[], currencies: readonly string[]) {
    this.accounts = accounts;
    this.accountIndex = new Map(accounts.map((a, i) => [a.name, i]));
    this.offsetMinutes = config.utc_offset_minutes;
    const payMethods = new Set<string>();
    for (const a of accounts) for (const m of a.payMethods) payMethods.add(m);
    this.payMethods = payMethods;
    this.pins = new Map(Object.entries(config.pins).map(([merchant, names]) => [merchant, new Set(names.map((n) => this.accountIndex.get(n) ?? -1))]));

    const blocks: Array<[number, number, string]> = [];
    for (const [name, cidrs] of Object.entries(config.regions)) {
      for (const cidr of cidrs) {
        const [ip, bits] = cidr.split('/');
        const base = parseIpv4(ip!);
        const size = 2 ** (32 - Number(bits));
        const start = base - (base % size);
        blocks.push([start, start + size - 1, name]);
      }
    }
    const cuts = [...new Set(blocks.flatMap(([start, end]) => [start, end + 1]))].sort((a, b) => a - b);
    const ranges: Array<[number, number, string[]]> = [];
    for (let k = 0; k + 1 < cuts.length; k++) {
      const [start, end] = [cuts[k]!, cuts[k + 1]! - 1];
      const names = [...new Set(blocks.filter(([s0, e0]) => s0 <= start && end <= e0).map(([, , n]) => n))];
      if (names.length) ranges.push([start, end, names]);
    }
    this.regionStarts = Float64Array.from(ranges.map((r) => r[0]));
    this.regionEnds = Float64Array.from(ranges.map((r) => r[1]));
    this.regionSets = ranges.map((r) => r[2]);

    this.rules = config.rules.map((r, i) => this.compileRule(r, i));
    const maxTargets = Math.max(accounts.length, ...this.rules.map((r) => r.targets.length), 1);
    this.stride = RECORD.targets + Math.max(1, ...this.rules.map((r) => r.targets.length));
    this.ruleRecords = new Int32Array(this.rules.length * this.stride);
    const weightsAt = new Int32Array(this.rules.length).fill(-1);
    let weightRuns = 0;
    for (const r of this.rules) {
      if (!r.cumulativeWeights) continue;
      weightsAt[r.index] = weightRuns;
      weightRuns += r.cumulativeWeights.length;
    }
    this.cumulativeWeights = new Float64Array(weightRuns);
    for (const r of this.rules) if (r.cumulativeWeights) this.cumulativeWeights.set(r.cumulativeWeights, weightsAt[r.index]!);
    this.rules.forEach((r, i) => {
      const at = i * this.stride;
      this.ruleRecords[at + RECORD.rule] = i;
      this.ruleRecords[at + RECORD.strategy] = STRATEGY_CODES[r.strategy];
      this.ruleRecords[at + RECORD.count] = r.targets.length;
      this.ruleRecords[at + RECORD.cumulativeWeights] = weightsAt[i]!;
      this.ruleRecords[at + RECORD.explorationPpm] = Math.round(r.exploration * 1e6);
      this.ruleRecords.set(r.targets, at + RECORD.targets);
    });
    this.found = { records: this.ruleRecords, at: 0 };
    this.out = new Decision(new Int32Array(maxTargets), this.rules.map((r) => r.name));
    this.costs = new Float64Array(maxTargets);
    this.rates = new Float64Array(maxTargets);
    this.fallbackOrder = Int32Array.from(accounts.map((_, i) => i));

    const allCurrencies = new Set(currencies);
    for (const r of config.rules) for (const c of asList(r.match.currency) ?? []) allCurrencies.add(c);
    const groups = config.groups;
    for (const method of payMethods) {
      for (const currency of allCurrencies) {
        const generic: CompiledRule[] = [];
        const byMerchant = new Map<string, CompiledRule[]>();
        for (const rule of this.rules) {
          const src = config.rules[rule.index]!.match;
          if (!patternMatches(src.pay_method, method) || !patternMatches(src.currency, currency)) continue;
          const merchants = [...(asList(src.merchant) ?? []), ...(asList(src.merchant_group) ?? []).flatMap((g) => groups[g] ?? [])];
          if (src.merchant === undefined && src.merchant_group === undefined) generic.push(rule);
          else for (const m of new Set(merchants)) (byMerchant.get(m) ?? byMerchant.set(m, []).get(m)!).push(rule);
        }
        if (generic.length === 0 && byMerchant.size === 0) continue;
        if (!this.buckets.has(method)) this.buckets.set(method, new Map());
        const sets = new Map([...byMerchant].map(([m, rules]) => [m, buildRuleSet([...rules, ...generic].sort((a, b) => a.index - b.index), this.ruleRecords, this.stride)]));
        const bySlot: Array<RuleSet | undefined> = [];
        for (const [merchant, set] of sets) {
          if (!this.merchantSlots.has(merchant)) this.merchantSlots.set(merchant, this.merchantSlots.size);
          bySlot[this.merchantSlots.get(merchant)!] = set;
        }
        this.buckets.get(method)!.set(currency, { generic: buildRuleSet(generic, this.ruleRecords, this.stride), byMerchant: sets, bySlot });
      }
    }
  }

  private compileRule(r: RoutingRuleConfig, index: number): CompiledRule {
    const targets = r.targets.map((t) => (typeof t === 'string' ? { account: t, weight: 1 } : t));
    const extras: ExtraCondition[] = [];
    const m = r.match;
    const apps = asList(m.app);
    if (apps) {
      const set = new Set(apps);
      extras.push((i) => set.has(i.appId));
    }
    const tags = asList(m.merchant_tag);
    if (tags) {
      const set = new Set(tags);
      extras.push((i) => i.merchantTags.some((t) => set.has(t)));
    }
    const regions = asList(m.payer_region);
    if (regions) {
      const set = new Set(regions);
      extras.push((_i, payerRegions) => payerRegions !== null && payerRegions.some((r) => set.has(r)));
    }
    // hours 0–24 is the whole day: no condition (the rule stays amount-only and folds into the segment table).
    if (m.hours && !isWholeDay(m.hours)) {
      const { from, to } = m.hours;
      extras.push((_i, _r, hour) => (from < to ? hour >= from && hour < to : hour >= from || hour < to));
    }
    if (m.dates) {
      // Inclusive day numbers: the day of `from` to the day of `to`, in the routing time zone.
      const first = Date.parse(`${m.dates.from}T00:00:00Z`) / DAY_MS;
      const last = Date.parse(`${m.dates.to}T00:00:00Z`) / DAY_MS;
      extras.push((_i, _r, _h, day) => day >= first && day <= last);
    }
    if (m.metadata) {
      const keys = Object.keys(m.metadata);
      const values = Object.values(m.metadata);
      // Own keys only: `toString` or `constructor` must not be found on the prototype of the payment's metadata.
      // A plain loop over two arrays: destructuring [k, v] pairs would allocate an iterator per decision.
      extras.push((i) => {
        for (let k = 0; k < keys.length; k++) {
          if (!Object.hasOwn(i.metadata, keys[k]!)) return false;
          if (values[k] !== '*' && i.metadata[keys[k]!] !== values[k]) return false;
        }
        return true;
      });
    }
    let cumulativeWeights: Float64Array | null = null;
    const totalWeight = targets.reduce((a, t) => a + t.weight, 0);
    if (r.strategy === 'weighted' && totalWeight > 0) {
      // Integer weights summed exactly (a Float64 holds integers up to 2^53): a target's share is weight / total, however small.
      let cumulative = 0;
      cumulativeWeights = Float64Array.from(targets, (t) => (cumulative += t.weight));
    }
    return {
      index, name: r.name, strategy: r.strategy,
      targets: Int32Array.from(targets.map((t) => this.accountIndex.get(t.account) ?? -1)),
      weights: Float64Array.from(targets.map((t) => t.weight)),
      cumulativeWeights, exploration: r.exploration,
      extra: extras.length === 0 ? null : extras.length === 1 ? extras[0]! : (i, region, hour, day) => {
        for (let k = 0; k < extras.length; k++) if (!extras[k]!(i, region, hour, day)) return false;
        return true;
      },
      amountMin: m.amount_min ?? 0, amountMax: m.amount_max ?? Number.MAX_SAFE_INTEGER,
      matchesAnyMerchant: m.merchant === undefined && m.merchant_group === undefined,
    };
  }

  /** Every region whose blocks contain the IP, or null. */
  regionOf(ip: string | undefined): readonly string[] | null {
    if (!ip || this.regionStarts.length === 0) return null;
    let value = parseIpv4(ip);
    // An IPv4 payer seen through a dual-stack socket (::ffff:a.b.c.d), however the address is spelt, is still that IPv4 address.
    if (value < 0) value = parseMappedIpv4(ip);
    if (value < 0) return null;
    let lo = 0;
    let hi = this.regionStarts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.regionStarts[mid]! <= value) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found >= 0 && value <= this.regionEnds[found]! ? this.regionSets[found]! : null;
  }

  /** The first rule that matches, or -1. */
  matchRule(input: RoutingInput): number {
    return this.locate(input);
  }

  /**
   * The first rule that matches, or -1; `found` then points at its record. The amount segment gives the first
   * amount-only rule; a rule with other conditions wins only if it comes earlier in the table and matches.
   */
  private locate(input: RoutingInput): number {
    const bucket = this.buckets.get(input.payMethod)?.get(input.currency);
    if (!bucket) return -1;
    const slot = this.merchantSlots.size ? this.merchantSlots.get(input.merchantId) : undefined;
    const set = (slot === undefined ? undefined : bucket.bySlot[slot]) ?? bucket.generic;
    let best = NO_RULE;
    const segments = set.segments;
    if (segments) {
      const at = segmentOf(segments, input.amount) * segments.stride;
      const rule = segments.records[at + RECORD.rule]!;
      if (rule >= 0) {
        best = rule;
        this.found.records = segments.records;
        this.found.at = at;
      }
    }
    const complex = set.complex;
    if (complex.length > 0 && complex[0]!.index < best) {
      const region = this.regionStarts.length ? this.regionOf(input.clientIp) : null;
      const localMs = input.now + this.offsetMinutes * 60_000;
      // Small integers (`| 0`), so passing them to the conditions boxes nothing.
      const day = Math.floor(localMs / DAY_MS) | 0;
      const hour = Math.floor((localMs - day * DAY_MS) / 3_600_000) | 0;
      for (let k = 0; k < complex.length; k++) {
        const rule = complex[k]!;
        if (rule.index >= best) break;
        if (input.amount >= rule.amountMin && input.amount <= rule.amountMax && rule.extra!(input, region, hour, day)) {
          best = rule.index;
          this.found.records = this.ruleRecords;
          this.found.at = best * this.stride;
          break;
        }
      }
    }
    return best === NO_RULE ? -1 : best;
  }

  /** Why an account cannot take this request now, or null when it can. */
  skipReason(accountIndex: number, input: RoutingInput, day: number): SkipReason | null {
    const a = this.accounts[accountIndex];
    if (!a || !a.payMethods.has(input.payMethod)) return 'not_serving';
    if (!a.available) return 'unavailable';
    if (a.requiresBinding && !input.boundAccounts.has(a.name)) return 'not_bound';
    const pinned = this.pins.size ? this.pins.get(input.merchantId) : undefined;
    if (pinned && !pinned.has(accountIndex)) return 'not_pinned';
    const usage = a.state.usage;
    if (a.limits.daily_count !== undefined || a.limits.daily_amount !== undefined) {
      usage.roll(day);
      if (a.limits.daily_count !== undefined && usage.count >= a.limits.daily_count) return 'daily_count';
      if (a.limits.daily_amount !== undefined && usage.amount + input.amount > a.limits.daily_amount) return 'daily_amount';
    }
    if (!a.state.breaker.allows(input.now)) return 'breaker_open';
    return null;
  }

  /**
   * Takes an account for one channel call: checks it again, then holds its daily-limit share and (half-open) a probe
   * slot. Check and hold happen in one synchronous step, so concurrent payments cannot all pass a limit that only some
   * of them fit under. When the account can no longer take the payment: why not.
   */
  reserve(accountIndex: number, input: RoutingInput): AccountReservation | SkipReason {
    const day = this.day(input.now);
    const skip = this.skipReason(accountIndex, input, day);
    if (skip !== null) return skip;
    const account = this.accounts[accountIndex]!;
    account.state.usage.add(input.amount, day);
    return new AccountReservation(account.name, account.state, input.amount, day, account.state.breaker.onSend());
  }

  /** Decides where to send one payment. The returned buffer is reused by the next call. */
  decide(input: RoutingInput): DecisionBuffer {
    const out = this.out;
    const ruleIndex = this.locate(input);
    const day = dayNumber(input.now, this.offsetMinutes);
    out.count = 0;
    if (ruleIndex < 0) {
      out.rule = -1;
      out.strategy = 'priority';
      for (let k = 0; k < this.fallbackOrder.length; k++) if (this.skipReason(k, input, day) === null) out.candidates[out.count++] = k;
      return out;
    }
    const records = this.found.records;
    const at = this.found.at;
    const strategy = records[at + RECORD.strategy]!;
    out.rule = ruleIndex;
    out.strategy = STRATEGY_NAMES[strategy]!;
    const end = at + RECORD.targets + records[at + RECORD.count]!;
    for (let k = at + RECORD.targets; k < end; k++) {
      const t = records[k]!;
      if (t >= 0 && this.skipReason(t, input, day) === null) out.candidates[out.count++] = t;
    }
    if (out.count > 1 && strategy !== 0) {
      if (strategy === 1) this.orderWeighted(records, at);
      else if (strategy === 2) this.orderByCost(input);
      else this.orderBySuccess(records[at + RECORD.explorationPpm]!, input);
    }
    return out;
  }

  /**
   * A weighted pick goes first; the rest keep their priority order as fallbacks. The pick is exact in expectation:
   * an integer drawn uniformly in [0, total) falls in target k's run [cumulative[k-1], cumulative[k]) with probability
   * weight[k] / total (a weight-0 target has an empty run and is never drawn). Found by binary search, allocating nothing.
   */
  private orderWeighted(records: Int32Array, at: number): void {
    const from = records[at + RECORD.cumulativeWeights]!;
    if (from < 0) return;
    const cumulative = this.cumulativeWeights;
    const last = from + records[at + RECORD.count]! - 1;
    // A uniform [0, 1) of 53 random bits, as Math.random() gives, computed here: a double returned by a call is boxed.
    const high = this.next() >>> 5;
    const low = this.next() >>> 6;
    const draw = Math.floor(((high * 67_108_864 + low) / 9_007_199_254_740_992) * cumulative[last]!);
    // The first k with cumulative[k] > draw.
    let lo = from;
    let hi = last;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! > draw) hi = mid;
      else lo = mid + 1;
    }
    const picked = records[at + RECORD.targets + lo - from]!;
    const c = this.out.candidates;
    let found = -1;
    for (let k = 0; k < this.out.count; k++) if (c[k] === picked) found = k;
    if (found <= 0) return;
    for (let k = found; k > 0; k--) c[k] = c[k - 1]!;
    c[0] = picked;
  }

  private orderByCost(input: RoutingInput): void {
    const c = this.out.candidates;
    for (let k = 0; k < this.out.count; k++) {
      const a = this.accounts[c[k]!]!;
      const fee = a.fees[input.payMethod] ?? a.fees.default;
      this.costs[k] = fee ? fee.fixed + (input.amount * fee.rate_bps) / 10_000 : 0;
    }
    sortBy(c, this.costs, this.out.count, true);
  }

  /** Takes the input, not its `now`: a double passed as an argument is boxed, an allocation per decision. */
  private orderBySuccess(explorationPpm: number, input: RoutingInput): void {
    const c = this.out.candidates;
    for (let k = 0; k < this.out.count; k++) {
      this.accounts[c[k]!]!.state.calls.totals(input.now, this.totals);
      const n = this.totals.ok + this.totals.failed;
      // Unknown accounts start optimistic so they get traffic and a rate.
      this.rates[k] = n === 0 ? 1 : this.totals.ok / n;
    }
    sortBy(c, this.rates, this.out.count, false);
    if (this.out.count > 1 && ((this.next() >>> 0) / 4_294_967_296) * 1e6 < explorationPpm) {
      const k = (1 + ((this.next() >>> 0) / 4_294_967_296) * (this.out.count - 1)) | 0;
      const explored = c[k]!;
      c[k] = c[0]!;
      c[0] = explored;
    }
  }

  day(now: number): number {
    return dayNumber(now, this.offsetMinutes);
  }

  /**
   * The next 32 random bits of xorshift128 (Marsaglia), as an int32: a small integer, never boxed on return (a uint32
   * above 2^31 would be). Math.random() allocates its result, a heap number, on every call.
   */
  private next(): number {
    const s = this.seed;
    let t = s[3]!;
    const x = s[0]!;
    s[3] = s[2]!;
    s[2] = s[1]!;
    s[1] = x;
    t ^= t << 11;
    t ^= t >>> 8;
    const out = t ^ x ^ (x >>> 19);
    s[0] = out;
    return out | 0;
  }

  /**
   * The earlier amount-only rules that, in every bucket the rule belongs to, together own its whole amount range
   * (so it can never match), or null when some part of its range is left to it or to a later rule. Only amounts a
   * payment can have count: 1 to `maxAmount`.
   */
  earlierSegmentOwners(ruleIndex: number, maxAmount = Number.MAX_SAFE_INTEGER): number[] | null {
    const rule = this.rules[ruleIndex]!;
    const from = Math.max(1, rule.amountMin);
    const to = Math.min(maxAmount, rule.amountMax);
    if (from > to) return null;
    const owners = new Set<number>();
    let inAny = false;
    for (const byCurrency of this.buckets.values()) {
      for (const bucket of byCurrency.values()) {
        for (const set of [bucket.generic, ...bucket.byMerchant.values()]) {
          if (!set.members.includes(ruleIndex)) continue;
          inAny = true;
          if (!set.segments || !ownersThroughout(set.segments, from, to, ruleIndex, owners)) return null;
        }
      }
    }
    return inAny ? [...owners].sort((a, b) => a - b) : null;
  }

  /** Which simple rules own at least one amount segment somewhere, and which appear in any bucket. */
  segmentOwnership(): { owning: Set<number>; buckets: Set<number> } {
    const owning = new Set<number>();
    const buckets = new Set<number>();
    for (const bucket of [...this.buckets.values()].flatMap((byCurrency) => [...byCurrency.values()])) {
      collect(bucket.generic, owning, buckets);
      for (const own of bucket.byMerchant.values()) collect(own, owning, buckets);
    }
    return { owning, buckets };
  }
}

/** Marks the rules of a set, and those that own at least one of its segments. */
function collect(set: RuleSet, owning: Set<number>, seen: Set<number>): void {
  for (const m of set.members) seen.add(m);
  if (!set.segments) return;
  for (const r of set.segments.rule) if (r >= 0) owning.add(r);
}

/** True when every segment overlapping [from, to] is owned by a rule before `before`; those owners are added to `owners`. */
function ownersThroughout(s: SegmentTable, from: number, to: number, before: number, owners: Set<number>): boolean {
  for (let k = 0; k < s.starts.length; k++) {
    const start = s.starts[k]!;
    const end = k + 1 < s.starts.length ? s.starts[k + 1]! - 1 : Number.MAX_SAFE_INTEGER;
    if (end < from || start > to) continue;
    if (!(s.rule[k]! >= 0 && s.rule[k]! < before)) return false;
    owners.add(s.rule[k]!);
  }
  return true;
}

/** Stable insertion sort of ids by keys (few targets: no allocation, no comparator closure). */
function sortBy(ids: Int32Array, keys: Float64Array, n: number, ascending: boolean): void {
  for (let i = 1; i < n; i++) {
    const id = ids[i]!;
    const key = keys[i]!;
    let j = i - 1;
    while (j >= 0 && (ascending ? keys[j]! > key : keys[j]! < key)) {
      ids[j + 1] = ids[j]!;
      keys[j + 1] = keys[j]!;
      j--;
    }
    ids[j + 1] = id;
    keys[j + 1] = key;
  }
}

/**
 * The segment holding an amount. Most index slots lie inside one segment, and their entry is that segment: one read.
 * A slot that a segment boundary crosses holds ~k (k: the segment at the slot's start), and a binary search runs
 * between k and the segment at the next slot's start (segments start at 0).
 */
function segmentOf(s: SegmentTable, amount: number): number {
  if (amount >= s.lastStart) return s.starts.length - 1;
  const slot = Math.floor(amount / s.step);
  const entry = s.index[slot]!;
  if (entry >= 0) return entry;
  let lo = ~entry;
  const next = s.index[slot + 1]!;
  let hi = next >= 0 ? next : ~next;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (s.starts[mid]! <= amount) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function buildIndex(starts: Float64Array): { index: Int32Array; step: number } {
  const max = starts[starts.length - 1]!;
  const step = Math.max(1, Math.ceil((max + 1) / starts.length));
  const index = new Int32Array(Math.floor(max / step) + 2);
  let k = 0;
  for (let b = 0; b < index.length; b++) {
    while (k + 1 < starts.length && starts[k + 1]! <= b * step) k++;
    const inside = k + 1 >= starts.length || starts[k + 1]! > (b + 1) * step - 1;
    index[b] = inside ? k : ~k;
  }
  return { index, step };
}

/** Folds amount-only rules into segments; each segment keeps the first rule (in table order) that covers it. */
function buildRuleSet(rules: CompiledRule[], ruleRecords: Int32Array, ruleStride: number): RuleSet {
  const simple = rules.filter((r) => r.extra === null);
  const complex = rules.filter((r) => r.extra !== null);
  const members = rules.map((r) => r.index);
  if (simple.length === 0) return { members, segments: null, complex };
  const bounds = new Set<number>([0]);
  for (const r of simple) {
    bounds.add(r.amountMin);
    if (r.amountMax < Number.MAX_SAFE_INTEGER) bounds.add(r.amountMax + 1);
  }
  const starts = Float64Array.from([...bounds].sort((a, b) => a - b));
  const owner = new Int32Array(starts.length).fill(-1);
  // "next unassigned segment" pointers (path-compressed), so each segment is assigned once: O((S + R) log S).
  const next = Int32Array.from({ length: starts.length + 1 }, (_, i) => i);
  const find = (i: number): number => {
    let root = i;
    while (next[root] !== root) root = next[root]!;
    while (next[i] !== root) {
      const up = next[i]!;
      next[i] = root;
      i = up;
    }
    return root;
  };
  const segmentAt = (amount: number): number => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= amount) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  for (const r of [...simple].sort((a, b) => a.index - b.index)) {
    const first = segmentAt(r.amountMin);
    const last = r.amountMax >= Number.MAX_SAFE_INTEGER ? starts.length - 1 : segmentAt(r.amountMax);
    for (let s = find(first); s <= last; s = find(s)) {
      owner[s] = r.index;
      next[s] = s + 1;
    }
  }
  const stride = RECORD.targets + Math.max(1, ...simple.map((r) => r.targets.length));
  const records = new Int32Array(starts.length * stride).fill(-1);
  owner.forEach((rule, k) => {
    if (rule >= 0) records.set(ruleRecords.subarray(rule * ruleStride, rule * ruleStride + stride), k * stride);
  });
  return { members, segments: { starts, lastStart: starts[starts.length - 1]!, rule: owner, records, stride, ...buildIndex(starts) }, complex };
}

export type { RoutingState };
