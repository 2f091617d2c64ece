/**
 * Live routing state that outlives config reloads: per-account circuit breakers, success-rate
 * windows and daily limit counters. Counting is O(1) and allocation-free on the hot path.
 */

/** Rolling counts over `buckets` slots of `slotMs` each. */
export class RollingWindow {
  private ok: Uint32Array;
  private failed: Uint32Array;
  /** The failures that were timeouts (a subset of `failed`). */
  private timedOut: Uint32Array;
  private slotOf: Float64Array;
  /** The latest time recorded, so a resize never places counts after it. */
  private latest = -Infinity;

  constructor(readonly buckets: number, private slotLength: number) {
    this.ok = new Uint32Array(buckets);
    this.failed = new Uint32Array(buckets);
    this.timedOut = new Uint32Array(buckets);
    this.slotOf = new Float64Array(buckets).fill(-1);
  }

  get slotMs(): number {
    return this.slotLength;
  }

  private slot(now: number): number {
    const slotNo = Math.floor(now / this.slotMs);
    const i = slotNo % this.buckets;
    if (this.slotOf[i] !== slotNo) {
      this.slotOf[i] = slotNo;
      this.ok[i] = 0;
      this.failed[i] = 0;
      this.timedOut[i] = 0;
    }
    return i;
  }

  /** `timeout`: a failure that was a timeout (counted as failed too). */
  record(success: boolean, now: number, timeout = false): void {
    const i = this.slot(now);
    if (now > this.latest) this.latest = now;
    if (success) this.ok[i]!++;
    else {
      this.failed[i]!++;
      if (timeout) this.timedOut[i]!++;
    }
  }

  /** The failures inside the window ending now that were timeouts. */
  timeouts(now: number): number {
    const current = Math.floor(now / this.slotMs);
    let n = 0;
    for (let i = 0; i < this.buckets; i++) if (current - this.slotOf[i]! < this.buckets) n += this.timedOut[i]!;
    return n;
  }

  /**
   * Gives the window slots of `slotMs` (a window of buckets × slotMs), keeping the counts that fall inside it: each
   * old slot's counts move to the new slot holding the old slot's end (or the latest time recorded, if earlier),
   * so a shorter window drops what is now too old and a longer one keeps everything it still spans.
   */
  resize(slotMs: number): void {
    if (slotMs === this.slotLength) return;
    const old = { ok: this.ok, failed: this.failed, timedOut: this.timedOut, slotOf: this.slotOf, slotMs: this.slotLength };
    this.slotLength = slotMs;
    this.ok = new Uint32Array(this.buckets);
    this.failed = new Uint32Array(this.buckets);
    this.timedOut = new Uint32Array(this.buckets);
    this.slotOf = new Float64Array(this.buckets).fill(-1);
    // Oldest first: where two old slots land on one new bucket in different slots, the newer one wins.
    const live = Array.from({ length: this.buckets }, (_, i) => i).filter((i) => old.slotOf[i]! >= 0).sort((a, b) => old.slotOf[a]! - old.slotOf[b]!);
    for (const i of live) {
      const j = this.slot(Math.min((old.slotOf[i]! + 1) * old.slotMs - 1, this.latest));
      this.ok[j]! += old.ok[i]!;
      this.failed[j]! += old.failed[i]!;
      this.timedOut[j]! += old.timedOut[i]!;
    }
  }

  /** [successes, failures] inside the window ending now. */
  totals(now: number, out: { ok: number; failed: number }): void {
    const current = Math.floor(now / this.slotMs);
    let ok = 0;
    let failed = 0;
    for (let i = 0; i < this.buckets; i++) {
      if (current - this.slotOf[i]! < this.buckets) {
        ok += this.ok[i]!;
        failed += this.failed[i]!;
      }
    }
    out.ok = ok;
    out.failed = failed;
  }

  reset(): void {
    this.slotOf.fill(-1);
  }
}

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface BreakerSettings {
  errorRate: number;
  minRequests: number;
  openMs: number;
  halfOpenProbes: number;
}

/**
 * Why a breaker last opened, as a fixed set (a metric label); `reason` says it in words with the counts.
 * `timeout_rate` when timeouts were most of the failures that opened it, `error_rate` otherwise.
 */
export type BreakerCause = 'none' | 'error_rate' | 'timeout_rate' | 'probe_failed';

/** closed → open on a rolling error or timeout rate; open → half_open after openMs; probes close or reopen it. */
export class CircuitBreaker {
  state: BreakerState = 'closed';
  reason = '';
  cause: BreakerCause = 'none';
  openedAt = 0;
  private probesInFlight = 0;
  private probeSuccesses = 0;
  /** Counts the half-open periods, so a probe slot is only ever given back to the period that handed it out. */
  private halfOpenPeriod = 0;
  private readonly totals = { ok: 0, failed: 0 };

  constructor(readonly window: RollingWindow, public settings: BreakerSettings) {}

  /** The state a request arriving now would see, without moving it (for metrics and the admin API). */
  stateAt(now: number): BreakerState {
    return this.state === 'open' && now - this.openedAt >= this.settings.openMs ? 'half_open' : this.state;
  }

  /** May a request go to this account now? Moves open → half_open when the cool-down is over. */
  allows(now: number): boolean {
    if (this.state === 'closed') return true;
    if (this.state === 'open') {
      if (now - this.openedAt < this.settings.openMs) return false;
      this.state = 'half_open';
      this.halfOpenPeriod++;
      this.probesInFlight = 0;
      this.probeSuccesses = 0;
    }
    return this.probesInFlight < this.settings.halfOpenProbes;
  }

  /** Takes a half-open probe slot for a request about to go to the account: the period it was taken in, or -1 for none. */
  onSend(): number {
    if (this.state !== 'half_open') return -1;
    this.probesInFlight++;
    return this.halfOpenPeriod;
  }

  /** Gives back a probe slot taken (in `period`) for a request that was never sent; a slot of a past period is gone already. */
  cancelSend(period: number): void {
    if (period >= 0 && period === this.halfOpenPeriod && this.state === 'half_open' && this.probesInFlight > 0) this.probesInFlight--;
  }

  /**
   * A channel call's outcome. `probePeriod` is what onSend() returned for the call (-1: sent while not half-open):
   * only a probe of the current half-open period settles it, so a late answer to a call sent before the breaker
   * opened, or in an earlier half-open period, is counted in the window but neither closes nor reopens it. Left out,
   * the call is taken for a probe (callers that do not track periods).
   */
  record(success: boolean, now: number, timeout = false, probePeriod?: number): void {
    this.window.record(success, now, timeout);
    if (this.state === 'half_open') {
      if (probePeriod !== undefined && probePeriod !== this.halfOpenPeriod) return;
      if (!success) return this.open(now, 'probe_failed', 'a half-open probe failed');
      this.probeSuccesses++;
      if (this.probeSuccesses >= this.settings.halfOpenProbes) {
        this.state = 'closed';
        this.reason = '';
        this.cause = 'none';
        this.openedAt = 0;
        this.window.reset();
      }
      return;
    }
    if (this.state === 'closed' && !success) {
      this.window.totals(now, this.totals);
      const n = this.totals.ok + this.totals.failed;
      if (n >= this.settings.minRequests && this.totals.failed / n >= this.settings.errorRate) {
        const timeouts = this.window.timeouts(now);
        if (timeouts * 2 > this.totals.failed) this.open(now, 'timeout_rate', `${this.totals.failed} of ${n} calls failed in the window, ${timeouts} of them timeouts`);
        else this.open(now, 'error_rate', `${this.totals.failed} of ${n} calls failed in the window`);
      }
    }
  }

  private open(now: number, cause: BreakerCause, reason: string): void {
    this.state = 'open';
    this.openedAt = now;
    this.cause = cause;
    this.reason = reason;
  }
}

/** Per-account counters for daily limits, keyed by day number in the routing time zone. */
export class DailyUsage {
  day = -1;
  amount = 0;
  count = 0;

  /** Moves to `day` when it is a later one; an earlier day (a request still on a config with another time zone) counts into the current one. */
  roll(day: number): void {
    if (day > this.day) {
      this.day = day;
      this.amount = 0;
      this.count = 0;
    }
  }

  add(amount: number, day: number): void {
    this.roll(day);
    this.amount += amount;
    this.count += 1;
  }

  /** Takes back a payment counted on `day` that created nothing; a day already rolled over keeps its new count. */
  remove(amount: number, day: number): void {
    if (day !== this.day) return;
    this.amount = Math.max(0, this.amount - amount);
    this.count = Math.max(0, this.count - 1);
  }
}

/**
 * A payment's hold on one account: counted against its daily limits and, when its breaker is half-open, holding a
 * probe slot, from the moment routing picks it. Released when the attempt provably created nothing.
 */
export class AccountReservation {
  private released = false;

  constructor(
    readonly account: string,
    private readonly state: AccountRoutingState,
    private readonly amount: number,
    private readonly day: number,
    /** The half-open period whose probe slot this holds, or -1: pass it with the call's outcome (RoutingState.recordCall). */
    readonly probePeriod: number,
  ) {}

  /** `sent`: the channel was called (its outcome then settles the probe through the breaker's record()). */
  release(sent: boolean): void {
    if (this.released) return;
    this.released = true;
    this.state.usage.remove(this.amount, this.day);
    if (!sent) this.state.breaker.cancelSend(this.probePeriod);
  }
}

export interface AccountRoutingState {
  breaker: CircuitBreaker;
  /** Channel-call success over the window, for the success_rate strategy. */
  calls: RollingWindow;
  usage: DailyUsage;
}

const DEFAULT_BREAKER: BreakerSettings = { errorRate: 0.5, minRequests: 20, openMs: 30_000, halfOpenProbes: 3 };

const WINDOW_BUCKETS = 20;

function slotMsFor(windowMs: number): number {
  return Math.max(100, Math.floor(windowMs / WINDOW_BUCKETS));
}

function newAccountState(windowMs: number, breaker: BreakerSettings): AccountRoutingState {
  const slotMs = slotMsFor(windowMs);
  return { breaker: new CircuitBreaker(new RollingWindow(WINDOW_BUCKETS, slotMs), breaker), calls: new RollingWindow(WINDOW_BUCKETS, slotMs), usage: new DailyUsage() };
}

/** A config's routing settings: applied to the shared state when its snapshot goes live, never before. */
export interface RoutingSettings {
  windowMs: number;
  accounts: ReadonlyMap<string, { state: AccountRoutingState; breaker: BreakerSettings }>;
}

export class RoutingState {
  private readonly accounts = new Map<string, AccountRoutingState>();
  private windowMs = 60_000;

  /** The account's state, created on first use (with the live window and default breaker settings). */
  account(name: string): AccountRoutingState {
    let s = this.accounts.get(name);
    if (!s) {
      s = newAccountState(this.windowMs, DEFAULT_BREAKER);
      this.accounts.set(name, s);
    }
    return s;
  }

  /**
   * The state a candidate config routes with, changing nothing live (the candidate may still be rejected):
   * a known account's shared state, settings untouched, or a fresh one that is shared once the candidate goes live.
   */
  stateFor(name: string, windowMs: number, breaker: BreakerSettings): AccountRoutingState {
    return this.accounts.get(name) ?? newAccountState(windowMs, breaker);
  }

  /**
   * A snapshot went live: its window, breaker settings and new accounts take effect. A changed window is applied to
   * every account's success-rate and breaker windows in place (see RollingWindow.resize), keeping the counts it still
   * spans; breaker state is kept as it is.
   */
  adopt(settings: RoutingSettings): void {
    this.windowMs = settings.windowMs;
    for (const [name, { state, breaker }] of settings.accounts) {
      if (!this.accounts.has(name)) this.accounts.set(name, state);
      this.accounts.get(name)!.breaker.settings = breaker;
    }
    const slotMs = slotMsFor(settings.windowMs);
    for (const s of this.accounts.values()) {
      s.calls.resize(slotMs);
      s.breaker.window.resize(slotMs);
    }
  }

  /**
   * Records a channel call's outcome: success means the channel answered and created (or declined) the order.
   * `timeout`: the failure was a timeout. `probePeriod`: the call's reservation's (see CircuitBreaker.record).
   */
  recordCall(name: string, success: boolean, now = Date.now(), timeout = false, probePeriod?: number): void {
    const s = this.accounts.get(name);
    if (!s) return;
    s.breaker.record(success, now, timeout, probePeriod);
    s.calls.record(success, now, timeout);
  }

  entries(): IterableIterator<[string, AccountRoutingState]> {
    return this.accounts.entries();
  }
}
