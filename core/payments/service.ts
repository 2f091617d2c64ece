import type { Logger } from 'pino';
import { inject, injectable } from 'tsyringe';
import { TOKENS } from '../kernel/tokens.js';
import { ChannelError, type ChannelAccount, type ChannelPaymentResult, type ChannelRefundResult, type InboundNotification, type NotificationAck, type PaymentReference, type MerchantBinding } from '../contract/channel.js';
import { ApiError } from '../errors.js';
import { channelOrderNo, channelRefundNo, newId } from '../crypto/ids.js';
import type { ConfigSnapshot, AccountEntry } from '../kernel/snapshot.js';
import type { AccountReservation, RoutingState } from '../routing/state.js';
import type { RoutingInput } from '../routing/engine.js';
import type { AccountWork } from '../kernel/account-work.js';
import { isUniqueViolation, type Store, type Tx } from '../store/index.js';
import { feeFor, feeReturnedFor, paymentSucceededLines, refundSucceededLines } from '../ledger/postings.js';
import { enqueueEvent, type EventType } from '../webhooks/events.js';
import type { Metrics } from '../ops/metrics.js';
import { paymentToApi, refundToApi } from './present.js';
import type { AppRecord, BindingRecord, MerchantRecord, PaymentRecord, PaymentStatus, RefundRecord, RoutingTrace } from './types.js';
import { nextCheckDelay, paymentTransitionFor } from './state.js';

export interface CreatePaymentInput {
  out_trade_no: string;
  amount: number;
  currency: string;
  pay_method: string;
  subject?: string;
  notify_url?: string;
  return_url?: string;
  expires_in?: number;
  payer?: { openid?: string; auth_code?: string; client_ip?: string };
  metadata?: Record<string, string>;
}

export interface CreateRefundInput {
  out_refund_no: string;
  amount: number;
  reason?: string;
}

export interface Caller {
  merchant: MerchantRecord;
  app: AppRecord;
  /** The merchant's channel-account bindings, when the caller already has them (auth caches them). */
  bindings?: readonly BindingRecord[];
  /** The merchant API request being served, handed to the channel calls it makes (ChannelCallScope). */
  requestId?: string;
}

/** Wakes the webhook dispatcher after a commit that enqueued events. */
export interface OutboxSignal {
  wake(): void;
}

type Source = 'create' | 'notification' | 'query' | 'poller' | 'close' | 'sandbox';

/**
 * The payment and refund state machine against the store and the channels. Every state change
 * goes through one conditional update, with its ledger posting, audit row and outbox event in the
 * same transaction; a channel is only called after the row it concerns is durable.
 */
@injectable()
export class PaymentService {
  constructor(
    @inject(TOKENS.Store) private readonly store: Store,
    @inject(TOKENS.Metrics) private readonly metrics: Metrics,
    @inject(TOKENS.Logger) private readonly logger: Logger,
    @inject(TOKENS.OutboxSignal) private readonly outbox: OutboxSignal,
    @inject(TOKENS.RoutingState) private readonly routingState: RoutingState,
    @inject(TOKENS.AccountWork) private readonly work: AccountWork,
  ) {}

  // ---------------------------------------------------------------- create

  /**
   * `prepareAnswer`, when given, is called with the payment this call will resolve to if its last write commits, while
   * that write is still in flight: the caller may prepare its response (sign it), but acknowledges nothing before
   * this call resolves. It resolves to that very object when the guess held.
   */
  async create(snapshot: ConfigSnapshot, caller: Caller, input: CreatePaymentInput, prepareAnswer?: (payment: PaymentRecord) => void): Promise<PaymentRecord> {
    const api = snapshot.config.api;
    if (!snapshot.routing.payMethods.has(input.pay_method)) {
      throw new ApiError('unknown_pay_method', `pay_method ${input.pay_method} is not served by any configured channel`, 'pay_method');
    }
    if (input.amount > api.max_amount) throw new ApiError('amount_too_large', `amount must be at most ${api.max_amount}`, 'amount');
    if (!api.currencies.includes(input.currency)) throw new ApiError('invalid_request', `currency ${input.currency} is not enabled`, 'currency');

    for (const cap of snapshot.capabilities) {
      if (!cap.instance?.beforeCreatePayment) continue;
      const verdict = await cap.instance.beforeCreatePayment({
        merchantId: caller.merchant.id, appId: caller.app.id, outTradeNo: input.out_trade_no, amount: input.amount, currency: input.currency,
        payMethod: input.pay_method, payer: input.payer ?? {}, metadata: input.metadata ?? {},
      });
      if (!verdict.allow) throw new ApiError('risk_rejected', verdict.message, undefined, { capability: cap.name, code: verdict.code });
    }

    const bindings = caller.bindings ?? (await this.store.merchants.listBindings(this.store.reads, caller.merchant.id));
    const now = Date.now();
    const routingTable = snapshot.routing;
    const routingInput: RoutingInput = {
      payMethod: input.pay_method, amount: input.amount, currency: input.currency, merchantId: caller.merchant.id, appId: caller.app.id,
      merchantTags: caller.merchant.tags, boundAccounts: new Set(bindings.map((b) => b.account)), clientIp: input.payer?.client_ip,
      metadata: input.metadata ?? {}, now,
    };
    const buffer = routingTable.decide(routingInput);
    // The decision buffer is reused by the next decision: copy it before the first await.
    const decision = { rule: buffer.ruleName, strategy: buffer.strategy, candidates: Array.from(buffer.candidates.subarray(0, buffer.count), (i) => routingTable.accounts[i]!.name) };
    if (decision.candidates.length === 0) {
      throw new ApiError('no_channel_available', `no channel account can serve ${input.pay_method} for this merchant now`, 'pay_method', { rule: decision.rule });
    }
    // Held in the same step as the decision, so the next payment's decision already counts this one (daily limits,
    // half-open probes). Released below wherever the payment provably created nothing at that account.
    const held = routingTable.reserve(buffer.candidates[0]!, routingInput);
    let reservation: AccountReservation | null = typeof held === 'string' ? null : held;

    const id = newId('pay');
    const first = snapshot.account(decision.candidates[0]!)!;
    const routing: RoutingTrace = { rule: decision.rule, strategy: decision.strategy, channel: null, attempts: [] };
    let payment: PaymentRecord;
    try {
      for (const field of first.payerFields[input.pay_method] ?? []) {
        if (!input.payer?.[field as keyof NonNullable<CreatePaymentInput['payer']>]) {
          throw new ApiError('invalid_request', `payer.${field}: required for ${input.pay_method}`, `payer.${field}`);
        }
      }
      payment = {
        id, merchantId: caller.merchant.id, appId: caller.app.id, outTradeNo: input.out_trade_no, amount: input.amount, amountRefunded: 0,
        currency: input.currency, payMethod: input.pay_method, channel: first.plugin, channelAccount: first.name, channelOrderNo: channelOrderNo(id, 1),
        channelTradeNo: null, status: 'pending', subject: input.subject ?? null, notifyUrl: input.notify_url ?? null, returnUrl: input.return_url ?? null,
        payer: input.payer ?? {}, metadata: input.metadata ?? {}, action: null, failure: null, routing, fee: 0,
        expiresAt: now + (input.expires_in ?? api.default_expires_in_s) * 1000, createdAt: now, updatedAt: now, paidAt: null, checkCount: 0,
        // Scheduled for a channel query from the start: if this process dies mid-create, the poller still finds out.
        nextCheckAt: now + nextCheckDelay(0, snapshot.config.poller.backoff_s),
        binding: toBinding(bindings.find((b) => b.account === first.name)) ?? null,
      };
      // Durable before any channel is called: the payment names the account and order number it is about to
      // use (its audit row comes with it, written by a trigger in the same statement).
      const written = await this.writePendingOn(first.name, () => this.store.write((w) => this.store.payments.insert(w, payment)));
      if (written === null) throw new ApiError('unavailable', `channel account ${first.name} was taken out by a config reload while this request ran; retry`);
    } catch (err) {
      reservation?.release(false);
      if (isUniqueViolation(err)) throw new ApiError('duplicate_out_trade_no', `out_trade_no ${input.out_trade_no} was already used by this app`, 'out_trade_no');
      throw err;
    }

    let lastFailure: ChannelError | null = null;
    for (let i = 0; i < decision.candidates.length; i++) {
      const entry = snapshot.account(decision.candidates[i]!)!;
      const orderNo = channelOrderNo(id, i + 1);
      const binding = toBinding(bindings.find((b) => b.account === entry.name));
      if (i > 0) {
        // Checked and held again: since the decision, its breaker may have opened or its limit filled up.
        const next = routingTable.reserve(routingTable.accountIndex.get(entry.name)!, { ...routingInput, now: Date.now() });
        if (typeof next === 'string') {
          routing.attempts.push({ channel: entry.name, outcome: 'skipped', latency_ms: 0, error_code: next });
          continue;
        }
        reservation = next;
      }
      if (!reservation) continue;
      if (entry.name !== payment.channelAccount) {
        // Failover: the previous attempt provably created nothing, so this payment moves to the next account,
        // durably and with the attempts so far, before that account is called.
        const hold: AccountReservation = reservation;
        const moved = await this.writePendingOn(entry.name, () =>
          this.store.write((w) => this.store.payments.updateIfPending(w, id, { channel: entry.plugin, channelAccount: entry.name, channelOrderNo: orderNo, binding: binding ?? null, routing }, Date.now())),
        ).catch((err: unknown) => {
          hold.release(false);
          throw err;
        });
        if (moved === null) {
          // A reload took the account out since this request's snapshot was taken: it is not called, as if it had refused.
          hold.release(false);
          routing.attempts.push({ channel: entry.name, outcome: 'not_created', latency_ms: 0, error_code: 'channel_unavailable' });
          lastFailure = new ChannelError('channel_unavailable', `channel account ${entry.name} was taken out by a config reload`, false);
          continue;
        }
        // Closed (or settled) meanwhile: no new order may be opened for it.
        if (!moved) {
          hold.release(false);
          return (await this.store.payments.get(this.store.reads, id))!;
        }
        Object.assign(payment, { channel: entry.plugin, channelAccount: entry.name, channelOrderNo: orderNo, binding: binding ?? null });
      }
      const started = performance.now();
      try {
        const result = await entry.instance!.createPayment({
          paymentId: id, channelOrderNo: payment.channelOrderNo!, amount: payment.amount, currency: payment.currency, payMethod: payment.payMethod,
          subject: payment.subject ?? payment.outTradeNo, expiresAt: new Date(payment.expiresAt), notifyUrl: notifyUrlFor(snapshot, entry.name),
          returnUrl: payment.returnUrl ?? undefined, payer: payment.payer, binding, createdAt: new Date(payment.createdAt), requestId: caller.requestId,
        });
        const latency = Math.round(performance.now() - started);
        this.routingState.recordCall(entry.name, true, Date.now(), false, reservation.probePeriod);
        if (result.status === 'failed') reservation.release(true);
        routing.channel = entry.name;
        routing.attempts.push({ channel: entry.name, outcome: result.status === 'failed' ? 'declined' : 'created', latency_ms: latency });
        return await this.recordCreateOutcome(snapshot, payment, routing, result, prepareAnswer);
      } catch (err) {
        const latency = Math.round(performance.now() - started);
        const channelError = err instanceof ChannelError ? err : new ChannelError('unknown', (err as Error).message, true);
        if (!(err instanceof ChannelError)) this.logger.error({ err, payment_id: id, account: entry.name }, 'channel plugin threw a non-channel error; treated as ambiguous');
        this.routingState.recordCall(entry.name, !INFRASTRUCTURE_FAILURES.has(channelError.code), Date.now(), channelError.code === 'timeout', reservation.probePeriod);
        if (channelError.mayExist) {
          // Ambiguous: the order may exist at this channel (it keeps its hold). Never try another one; find out by querying.
          routing.channel = entry.name;
          routing.attempts.push({ channel: entry.name, outcome: 'unknown', latency_ms: latency, error_code: channelError.code });
          await this.store.write((w) => this.store.payments.update(w, id, { routing, nextCheckAt: Date.now() + 1000 }, Date.now()));
          return (await this.store.payments.get(this.store.reads, id))!;
        }
        reservation.release(true);
        routing.attempts.push({ channel: entry.name, outcome: 'not_created', latency_ms: latency, error_code: channelError.code });
        lastFailure = channelError;
      }
    }
    // Every candidate either provably created nothing or could no longer take the payment: it fails with the last error.
    routing.channel = payment.channelAccount;
    const failure = lastFailure ?? new ChannelError('channel_unavailable', 'no channel account could take the payment any more (breaker open or daily limit reached)', false);
    return this.applyPaymentResult(payment.id, { status: 'failed', failure: { code: failure.code, message: failure.message, channelCode: failure.channelCode } }, 'create', { routing });
  }

  /**
   * Runs a write that leaves a payment or refund pending on `account`, counted as work on it until it has
   * committed, so a reload cannot drop the account in between (see AccountWork). Null, writing nothing,
   * when a reload has already taken the account out (the writes passed here return void or a boolean, never null).
   */
  private async writePendingOn<T>(account: string, write: () => Promise<T>): Promise<T | null> {
    if (!this.work.begin(account)) return null;
    try {
      return await write();
    } finally {
      this.work.end(account);
    }
  }

  private async recordCreateOutcome(snapshot: ConfigSnapshot, payment: PaymentRecord, routing: RoutingTrace, result: ChannelPaymentResult, prepareAnswer?: (payment: PaymentRecord) => void): Promise<PaymentRecord> {
    const now = Date.now();
    const write = this.store.write((w) => this.store.payments.updateIfPending(w, payment.id, {
      routing, action: result.action ?? null, channelTradeNo: result.channelTradeNo ?? undefined, nextCheckAt: now + nextCheckDelay(0, snapshot.config.poller.backoff_s),
    }, now));
    // Exactly what the update writes, if the payment is still pending: no need to read it back.
    const answer: PaymentRecord = { ...payment, routing, action: result.action ?? null, channelTradeNo: result.channelTradeNo ?? payment.channelTradeNo, updatedAt: now };
    if (result.status === 'pending' && prepareAnswer) {
      try {
        prepareAnswer(answer);
      } catch (err) {
        // Only a head start: the write in flight must still be awaited.
        this.logger.warn({ err, payment_id: payment.id }, 'preparing the answer ahead failed');
      }
    }
    const stillPending = await write;
    if (stillPending && result.status === 'pending') return answer;
    if (!stillPending && result.status === 'pending') {
      // The merchant closed the payment while the channel was creating the order: close that order too.
      const current = (await this.store.payments.get(this.store.reads, payment.id))!;
      if (current.status === 'closed') {
        await this.accountFor(snapshot, current)?.instance!.closePayment(this.referenceOf(current)).catch((err: Error) =>
          this.logger.error({ payment_id: payment.id, err: err.message }, 'could not close the order of a payment closed during creation'));
      }
      return current;
    }
    if (result.status === 'pending') return (await this.store.payments.get(this.store.reads, payment.id))!;
    return this.applyPaymentResult(payment.id, result, 'create');
  }

  // ---------------------------------------------------------------- state changes

  /**
   * Applies what a channel says about a payment. Idempotent: a result that changes nothing does
   * nothing else (no second ledger posting, no second event).
   */
  async applyPaymentResult(paymentId: string, result: ChannelPaymentResult, source: Source, extra: { routing?: RoutingTrace } = {}): Promise<PaymentRecord> {
    let event: { status: PaymentStatus; channel: string } | null = null;
    const updated = await this.store.transaction(async (tx) => {
      const current = await this.store.payments.get(tx, paymentId);
      if (!current) throw new ApiError('payment_not_found', `no payment ${paymentId}`);
      const now = Date.now();
      const transition = paymentTransitionFor(current.status, result.status);
      if (transition === 'none') {
        if (result.channelTradeNo && !current.channelTradeNo) await this.store.payments.update(tx, paymentId, { channelTradeNo: result.channelTradeNo }, now);
        return current;
      }
      if (result.status === 'succeeded' && result.paidAmount !== undefined && result.paidAmount !== current.amount) {
        await this.raiseAlert(tx, 'amount_mismatch', paymentId, { expected: current.amount, reported: result.paidAmount, source });
        return current;
      }
      if (transition === 'late_success') {
        // The channel took the money after we had given up on the order: the money is real, so record it, loudly.
        await this.raiseAlert(tx, 'paid_after_' + current.status, paymentId, { source });
      }
      const to = result.status;
      const merchant = await this.store.merchants.get(tx, current.merchantId);
      const fee = to === 'succeeded' ? feeFor(current.amount, merchant?.feeRateBps ?? 0) : 0;
      const changed = await this.store.payments.transition(tx, paymentId, [current.status], to, {
        channelTradeNo: result.channelTradeNo ?? undefined,
        failure: result.failure ? { code: result.failure.code, message: result.failure.message, channel_code: result.failure.channelCode } : undefined,
        paidAt: to === 'succeeded' ? (result.paidAt?.getTime() ?? now) : undefined,
        fee: to === 'succeeded' ? fee : undefined,
        nextCheckAt: null,
        routing: extra.routing,
      }, now, source);
      if (!changed) return current;
      const after = (await this.store.payments.get(tx, paymentId))!;
      if (to === 'succeeded') {
        await this.store.ledger.post(tx, 'payment', paymentId, after.currency, paymentSucceededLines({ amount: after.amount, fee, channelAccount: after.channelAccount!, merchantId: after.merchantId }), now);
      }
      await this.emit(tx, `payment.${to}` as EventType, after, paymentToApi(after));
      event = { status: to, channel: after.channel ?? 'none' };
      return after;
    });
    if (event) this.afterCommit('payment', event);
    return updated;
  }

  async applyRefundResult(refundId: string, result: ChannelRefundResult, source: Source): Promise<RefundRecord> {
    let event: { status: string; channel: string } | null = null;
    const updated = await this.store.transaction(async (tx) => {
      const refund = await this.store.payments.getRefund(tx, refundId);
      if (!refund) throw new ApiError('refund_not_found', `no refund ${refundId}`);
      const lateSuccess = refund.status === 'failed' && result.status === 'succeeded';
      if ((refund.status !== 'pending' && !lateSuccess) || result.status === 'pending') return refund;
      const now = Date.now();
      const payment = (await this.store.payments.get(tx, refund.paymentId))!;
      const to = result.status;
      if (lateSuccess) {
        // The channel refunded after reporting a failure (e.g. WeChat's REFUND.ABNORMAL resolved): the money left, so record it, loudly.
        const room = payment.amount - payment.amountRefunded;
        await this.raiseAlert(tx, room >= refund.amount ? 'refund_succeeded_after_failure' : 'over_refund', refundId, { payment_id: payment.id, amount: refund.amount, room, source });
        if (room < refund.amount) return refund;
      }
      const feeReturned = to === 'succeeded' ? feeReturnedFor(payment.fee, payment.amount, payment.amountRefunded, refund.amount) : 0;
      const changed = await this.store.payments.transitionRefund(tx, refundId, [refund.status], to, {
        channelRefundNo: result.channelRefundNo ?? null,
        failure: result.failure ? { code: result.failure.code, message: result.failure.message, channel_code: result.failure.channelCode } : undefined,
        succeededAt: to === 'succeeded' ? (result.succeededAt?.getTime() ?? now) : undefined,
        feeReturned: to === 'succeeded' ? feeReturned : undefined,
        nextCheckAt: null,
      }, now, source);
      if (!changed) return refund;
      if (to === 'succeeded') {
        const within = await this.store.payments.addRefunded(tx, payment.id, refund.amount, now);
        if (!within) throw new Error(`refund ${refundId} would take payment ${payment.id} past its amount`);
        await this.store.ledger.post(tx, 'refund', refundId, payment.currency, refundSucceededLines({ amount: refund.amount, feeReturned, channelAccount: payment.channelAccount!, merchantId: payment.merchantId }), now);
      }
      const after = (await this.store.payments.getRefund(tx, refundId))!;
      await this.emit(tx, `refund.${to}` as EventType, payment, refundToApi(after));
      event = { status: to, channel: payment.channel ?? 'none' };
      return after;
    });
    if (event) this.afterCommit('refund', event);
    return updated;
  }

  private async emit(tx: Tx, type: EventType, payment: PaymentRecord, object: unknown): Promise<void> {
    const app = await this.store.merchants.getApp(tx, payment.appId);
    await enqueueEvent(this.store, tx, { type, merchantId: payment.merchantId, objectId: (object as { id: string }).id, object, url: payment.notifyUrl ?? app?.notifyUrl ?? null, at: Date.now() });
  }

  private async raiseAlert(tx: Tx, kind: string, objectId: string | null, detail: Record<string, unknown>): Promise<void> {
    await this.store.audit.raiseAlert(tx, kind, objectId, detail, Date.now());
    this.metrics.alerts.inc({ kind });
    this.logger.error({ alert: kind, object_id: objectId, ...detail }, 'alert');
  }

  private afterCommit(kind: 'payment' | 'refund', event: { status: string; channel: string }): void {
    (kind === 'payment' ? this.metrics.payments : this.metrics.refunds).inc({ status: event.status, channel: event.channel });
    this.outbox.wake();
  }

  // ---------------------------------------------------------------- reads, close, refunds

  async get(caller: Caller, id: string): Promise<PaymentRecord> {
    const p = await this.store.payments.get(this.store.reads, id);
    if (!p || p.merchantId !== caller.merchant.id) throw new ApiError('payment_not_found', `no payment ${id}`, 'id');
    return p;
  }

  async getByOutTradeNo(caller: Caller, outTradeNo: string): Promise<PaymentRecord> {
    const p = await this.store.payments.getByOutTradeNo(this.store.reads, caller.app.id, outTradeNo);
    if (!p) throw new ApiError('payment_not_found', `no payment with out_trade_no ${outTradeNo}`, 'out_trade_no');
    return p;
  }

  /** A pending payment not heard of for a while is queried at its channel before it is returned. */
  async refreshIfStale(snapshot: ConfigSnapshot, p: PaymentRecord, requestId?: string): Promise<PaymentRecord> {
    if (p.status !== 'pending' || Date.now() - p.updatedAt < snapshot.config.api.stale_after_s * 1000) return p;
    const account = this.accountFor(snapshot, p);
    if (!account) return p;
    try {
      const result = await account.instance!.queryPayment(this.referenceOf(p, requestId));
      return await this.applyPaymentResult(p.id, result, 'query');
    } catch (err) {
      this.logger.warn({ payment_id: p.id, err: (err as Error).message }, 'stale payment query failed; returning stored state');
      return p;
    }
  }

  async close(snapshot: ConfigSnapshot, caller: Caller, id: string): Promise<PaymentRecord> {
    const p = await this.get(caller, id);
    if (p.status === 'closed' || p.status === 'failed') return p;
    if (p.status === 'succeeded') throw new ApiError('invalid_state', 'a succeeded payment cannot be closed; refund it instead', 'id');
    return this.closeAtChannel(snapshot, p, 'close', caller.requestId);
  }

  /** Closes at the channel first; only a close the channel confirmed (or an order it never had) closes the payment. */
  async closeAtChannel(snapshot: ConfigSnapshot, p: PaymentRecord, source: Source, requestId?: string): Promise<PaymentRecord> {
    const account = this.accountFor(snapshot, p);
    if (!account) throw new ApiError('channel_error', `channel account ${p.channelAccount} is not available`, 'id');
    try {
      await account.instance!.closePayment(this.referenceOf(p, requestId));
    } catch (err) {
      if (!(err instanceof ChannelError)) throw err;
      if (err.code === 'order_paid') {
        const result = await account.instance!.queryPayment(this.referenceOf(p, requestId));
        return this.applyPaymentResult(p.id, result, source);
      }
      if (err.code !== 'order_not_found' && err.code !== 'order_closed') {
        throw new ApiError(err.code === 'timeout' ? 'channel_timeout' : 'channel_error', `closing at the channel failed: ${err.message}`);
      }
    }
    return this.applyPaymentResult(p.id, { status: 'closed' }, source);
  }

  async createRefund(snapshot: ConfigSnapshot, caller: Caller, paymentId: string, input: CreateRefundInput): Promise<RefundRecord> {
    const payment = await this.get(caller, paymentId);
    if (payment.status !== 'succeeded') throw new ApiError('invalid_state', `only a succeeded payment can be refunded; this one is ${payment.status}`, 'id');
    const account = this.accountFor(snapshot, payment);
    if (!account) throw new ApiError('channel_error', `channel account ${payment.channelAccount} is not available`);
    const now = Date.now();
    const id = newId('re');
    const refund: RefundRecord = {
      id, paymentId, merchantId: payment.merchantId, outRefundNo: input.out_refund_no, amount: input.amount, reason: input.reason ?? null,
      // Our refund number at the channel, fixed at creation: notifications and queries are matched by it.
      status: 'pending', channelRefundNo: channelRefundNo(id), failure: null, feeReturned: 0, createdAt: now, updatedAt: now, succeededAt: null,
      // Scheduled for a channel query from the start: if this process dies before the channel answers, the poller finds out.
      nextCheckAt: now + (snapshot.config.channels[account.name]?.timeout_ms ?? 10_000) + 5_000,
    };
    // The check and the insert share one write transaction; writes are serialised, so two concurrent refunds cannot both pass.
    const written = await this.writePendingOn(account.name, () => this.store.transaction(async (tx) => {
      const existing = await this.store.payments.getRefundByOutRefundNo(tx, paymentId, input.out_refund_no);
      if (existing) throw new ApiError('duplicate_out_refund_no', `out_refund_no ${input.out_refund_no} was already used for this payment (${existing.id})`, 'out_refund_no');
      const committed = await this.store.payments.committedRefundTotal(tx, paymentId);
      if (committed + input.amount > payment.amount) {
        throw new ApiError('refund_exceeds_amount', `refunds would total ${committed + input.amount}, more than the payment's ${payment.amount} (${payment.amount - committed} left)`, 'amount');
      }
      await this.store.payments.insertRefund(tx, refund);
    }));
    if (written === null) throw new ApiError('channel_error', `channel account ${account.name} was taken out by a config reload while this request ran`);
    try {
      const result = await account.instance!.refund({
        refundId: id, channelRefundNo: channelRefundNo(id), payment: this.referenceOf(payment), amount: input.amount, reason: input.reason,
        notifyUrl: notifyUrlFor(snapshot, account.name), createdAt: new Date(now), requestId: caller.requestId,
      });
      if (result.status === 'pending') {
        await this.store.write((w) => this.store.payments.transitionRefund(w, id, ['pending'], 'pending', { channelRefundNo: result.channelRefundNo ?? null, nextCheckAt: Date.now() + 2000 }, Date.now(), 'create'));
        return (await this.store.payments.getRefund(this.store.reads, id))!;
      }
      return await this.applyRefundResult(id, result, 'create');
    } catch (err) {
      if (err instanceof ChannelError && !err.mayExist) {
        return this.applyRefundResult(id, { status: 'failed', failure: { code: err.code, message: err.message, channelCode: err.channelCode } }, 'create');
      }
      // Ambiguous: the refund may exist at the channel; keep it pending and let the poller find out.
      await this.store.transaction((tx) => this.store.payments.setRefundNextCheck(tx, id, Date.now() + 1000));
      this.logger.warn({ refund_id: id, err: (err as Error).message }, 'refund outcome unknown; will query the channel');
      return (await this.store.payments.getRefund(this.store.reads, id))!;
    }
  }

  async getRefund(caller: Caller, id: string): Promise<RefundRecord> {
    const r = await this.store.payments.getRefund(this.store.reads, id);
    if (!r || r.merchantId !== caller.merchant.id) throw new ApiError('refund_not_found', `no refund ${id}`, 'id');
    return r;
  }

  // ---------------------------------------------------------------- channel notifications

  async handleNotification(snapshot: ConfigSnapshot, accountName: string, inbound: InboundNotification): Promise<NotificationAck> {
    const entry = snapshot.account(accountName);
    if (!entry?.instance) throw new ApiError('not_found', `no channel account ${accountName}`);
    const channel = entry.instance;
    let parsed;
    try {
      parsed = await channel.parseNotification(inbound);
    } catch (err) {
      this.logger.warn({ account: accountName, err: (err as Error).message }, 'channel notification rejected');
      await this.store.transaction((tx) => this.raiseAlert(tx, 'notification_rejected', null, { account: accountName, reason: (err as Error).message }));
      // Forged or unverifiable input is the sender's fault: always a 4xx, even for channels whose negative
      // acknowledgement is a 5xx (WeChat Pay's "not processed, retry"). Every channel retries on any non-2xx anyway.
      const nack = channel.acknowledge(false);
      return { ...nack, status: nack.status >= 400 && nack.status < 500 ? nack.status : 400 };
    }
    if (parsed.kind === 'ignored') return channel.acknowledge(true);
    if (parsed.kind === 'payment') {
      const payment = await this.store.payments.getByChannelOrderNo(this.store.reads, parsed.channelOrderNo);
      if (!payment || payment.channelAccount !== accountName) {
        await this.store.transaction((tx) => this.raiseAlert(tx, 'notification_unmatched', payment?.id ?? parsed.channelOrderNo, { account: accountName, payment_account: payment?.channelAccount ?? null }));
        return channel.acknowledge(false);
      }
      if (parsed.amount !== payment.amount) {
        await this.store.transaction((tx) => this.raiseAlert(tx, 'amount_mismatch', payment.id, { expected: payment.amount, reported: parsed.amount, source: 'notification' }));
        return channel.acknowledge(false);
      }
      await this.applyPaymentResult(payment.id, { ...parsed.result, paidAmount: parsed.amount }, 'notification');
      return channel.acknowledge(true);
    }
    const refund = await this.store.payments.getRefundByChannelRefundNo(this.store.reads, parsed.channelRefundNo);
    if (!refund) {
      await this.store.transaction((tx) => this.raiseAlert(tx, 'notification_unmatched', parsed.channelRefundNo, { account: accountName, kind: 'refund' }));
      return channel.acknowledge(false);
    }
    const payment = (await this.store.payments.get(this.store.reads, refund.paymentId))!;
    if (payment.channelAccount !== accountName || (parsed.amount !== undefined && parsed.amount !== refund.amount)) {
      await this.store.transaction((tx) => this.raiseAlert(tx, 'refund_notification_mismatch', refund.id, { account: accountName, expected: refund.amount, reported: parsed.amount ?? null }));
      return channel.acknowledge(false);
    }
    await this.applyRefundResult(refund.id, parsed.result, 'notification');
    return channel.acknowledge(true);
  }

  // ---------------------------------------------------------------- start-up

  /**
   * Payments and refunds still pending on an account this config does not serve cannot settle: no query, no
   * close, notifications answered 404, until a config serves it again. The gateway starts anyway, loudly.
   */
  async alertPendingOnUnservedAccounts(snapshot: ConfigSnapshot): Promise<void> {
    for (const [account, pending] of await this.store.payments.pendingByAccount(this.store.reads)) {
      const entry = snapshot.account(account);
      if (entry?.instance) continue;
      const why = entry ? `not serving (${entry.error})` : 'not in the config';
      this.logger.warn({ account, pending_payments: pending.payments, pending_refunds: pending.refunds },
        `channel account ${account} has ${pending.payments} pending payment(s) and ${pending.refunds} pending refund(s) but is ${why}: they cannot settle until it serves again`);
      await this.store.transaction((tx) => this.raiseAlert(tx, 'pending_on_unserved_account', account, { account, pending_payments: pending.payments, pending_refunds: pending.refunds, reason: why }));
    }
  }

  // ---------------------------------------------------------------- sandbox payer and poller

  async simulatePayer(snapshot: ConfigSnapshot, caller: Caller, id: string, outcome: 'pay' | 'fail'): Promise<PaymentRecord> {
    const p = await this.get(caller, id);
    const account = this.accountFor(snapshot, p);
    if (!account?.sandbox || !account.instance?.simulatePayer) throw new ApiError('sandbox_only', 'payer actions are allowed only on sandbox channel accounts', 'id');
    if (p.status !== 'pending') throw new ApiError('invalid_state', `payment is ${p.status}`, 'id');
    await account.instance.simulatePayer(this.referenceOf(p, caller.requestId), outcome, p.action);
    return (await this.store.payments.get(this.store.reads, id))!;
  }

  /** One pass of the pending-payment poller: query due payments, close expired ones at the channel. */
  async pollPending(snapshot: ConfigSnapshot, backoffS: readonly number[], limit = 50): Promise<number> {
    const now = Date.now();
    const due = await this.store.payments.listDueForCheck(this.store.reads, now, limit);
    for (const p of due) {
      const account = this.accountFor(snapshot, p);
      try {
        // An account that is not serving now (disabled, failed on reload) is asked again later; the row is rescheduled below.
        if (!account) throw new ChannelError('channel_unavailable', `account ${p.channelAccount} is not serving`, true);
        const result = await account.instance!.queryPayment(this.referenceOf(p));
        const after = await this.applyPaymentResult(p.id, result, 'poller');
        if (after.status !== 'pending') continue;
        if (Date.now() > p.expiresAt) {
          await this.closeAtChannel(snapshot, after, 'poller').catch((err: Error) => this.logger.warn({ payment_id: p.id, err: err.message }, 'closing an expired payment failed; will retry'));
          const latest = (await this.store.payments.get(this.store.reads, p.id))!;
          if (latest.status !== 'pending') continue;
        }
      } catch (err) {
        if (err instanceof ChannelError && err.code === 'order_not_found' && Date.now() > p.expiresAt) {
          // The channel never saw the order (e.g. a QR code nobody scanned) and it has expired: nothing can be paid any more.
          await this.applyPaymentResult(p.id, { status: 'closed' }, 'poller');
          continue;
        }
        this.logger.debug({ payment_id: p.id, err: (err as Error).message }, 'poll query failed');
      }
      const count = p.checkCount + 1;
      await this.store.transaction((tx) => this.store.payments.update(tx, p.id, { checkCount: count, nextCheckAt: Date.now() + nextCheckDelay(count, backoffS) }, Date.now()));
    }
    const refunds = await this.store.payments.listRefundsDueForCheck(this.store.reads, now, limit);
    for (const r of refunds) {
      const payment = (await this.store.payments.get(this.store.reads, r.paymentId))!;
      const account = this.accountFor(snapshot, payment);
      try {
        if (!account) throw new ChannelError('channel_unavailable', `account ${payment.channelAccount} is not serving`, true);
        let result: ChannelRefundResult;
        try {
          result = await account.instance!.queryRefund({ channelRefundNo: r.channelRefundNo ?? channelRefundNo(r.id), payment: this.referenceOf(payment), amount: r.amount, createdAt: new Date(r.createdAt) });
        } catch (err) {
          if (!(err instanceof ChannelError && err.code === 'order_not_found')) throw err;
          // The channel never received the refund (the request was lost, or we stopped before sending it): send it
          // again under the same refund number, which every channel deduplicates on, so it cannot be paid twice.
          result = await account.instance!.refund({
            refundId: r.id, channelRefundNo: r.channelRefundNo ?? channelRefundNo(r.id), payment: this.referenceOf(payment), amount: r.amount,
            reason: r.reason ?? undefined, notifyUrl: notifyUrlFor(snapshot, account.name), createdAt: new Date(r.createdAt),
          });
        }
        const after = await this.applyRefundResult(r.id, result, 'poller');
        if (after.status !== 'pending') continue;
      } catch (err) {
        if (err instanceof ChannelError && !err.mayExist && err.code !== 'order_not_found' && account) {
          // A definite refusal of the re-sent refund: nothing was refunded, and its amount is free again.
          await this.applyRefundResult(r.id, { status: 'failed', failure: { code: err.code, message: err.message, channelCode: err.channelCode } }, 'poller');
          continue;
        }
        this.logger.debug({ refund_id: r.id, err: (err as Error).message }, 'refund poll failed');
      }
      await this.store.transaction((tx) => this.store.payments.setRefundNextCheck(tx, r.id, Date.now() + nextCheckDelay(1, backoffS)));
    }
    return due.length + refunds.length;
  }

  private accountFor(snapshot: ConfigSnapshot, p: PaymentRecord): AccountEntry | undefined {
    const entry = p.channelAccount ? snapshot.account(p.channelAccount) : undefined;
    return entry?.instance ? entry : undefined;
  }

  referenceOf(p: PaymentRecord, requestId?: string): PaymentReference {
    return {
      channelOrderNo: p.channelOrderNo!, channelTradeNo: p.channelTradeNo ?? undefined, amount: p.amount, currency: p.currency,
      payMethod: p.payMethod, createdAt: new Date(p.createdAt), binding: p.binding ?? undefined, requestId,
    };
  }
}

/** Failures that say the channel is unwell (they count against its breaker), as opposed to a rejected request. */
const INFRASTRUCTURE_FAILURES = new Set(['timeout', 'channel_unavailable', 'unknown', 'signature_invalid', 'rate_limited']);

function toBinding(b: { subMerchantId: string | null; params: Record<string, string> } | undefined): MerchantBinding | undefined {
  return b ? { subMerchantId: b.subMerchantId ?? undefined, params: b.params } : undefined;
}

export function notifyUrlFor(snapshot: ConfigSnapshot, accountName: string): string {
  return `${snapshot.publicUrl}/notify/${encodeURIComponent(accountName)}`;
}

export type { ChannelAccount };
