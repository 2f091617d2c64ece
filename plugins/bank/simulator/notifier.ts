// Delivery of signed notifications (PROTOCOL.md section 7) with retries and the notify faults.
import type { KeyObject } from 'node:crypto';
import type { FaultSet } from '../../../core/index.js';
import { NOTIFY_LINE1, NOTIFY_LINE2, corruptSignature, newNonce, signBase64, unixSeconds } from './signing.js';
import { chinaTime } from './model.js';

export type EventType = 'payment.success' | 'payment.failed' | 'refund.success' | 'refund.failed';

export interface DeliveryAttempt {
  at: string;
  /** HTTP status of the merchant's answer; absent on timeout or connection failure. */
  http_status?: number;
  acked: boolean;
  error?: string;
}

/** One event and its delivery history; also what /__sim/orders/:id shows. */
export interface NotificationRecord {
  event_id: string;
  event_type: EventType;
  out_trade_no: string;
  notify_url: string;
  /** pending: being delivered or waiting for a retry; held: kept back by the out_of_order fault. */
  state: 'pending' | 'held' | 'delayed' | 'acked' | 'gave_up' | 'lost';
  /** The exact JSON body sent; identical across attempts. */
  body: string;
  attempts: DeliveryAttempt[];
}

export interface NotifierOptions {
  merchantId: string;
  bankPrivateKey: KeyObject;
  retryDelaysMs: number[];
  faults: () => FaultSet;
  log: (line: Record<string, unknown>) => void;
}

const ATTEMPT_TIMEOUT_MS = 5000;
/** How long the out_of_order fault keeps a notification back when no later one of the same order comes. */
const OUT_OF_ORDER_MAX_HOLD_MS = 3000;

function isAcknowledgement(status: number, text: string): boolean {
  if (status !== 200) return false;
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && (parsed as { code?: unknown }).code === 'SUCCESS';
  } catch {
    return false;
  }
}

export class Notifier {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  private readonly held = new Map<string, { record: NotificationRecord; timer: NodeJS.Timeout }>();
  private readonly shutdown = new AbortController();

  constructor(private readonly opts: NotifierOptions) {}

  /** A new event happened: deliver it according to the current notify fault. */
  emit(record: NotificationRecord): void {
    const faults = this.opts.faults();
    const earlier = this.held.get(record.out_trade_no);
    if (earlier) {
      // out_of_order: the later event goes first, the held earlier one right after it.
      this.held.delete(record.out_trade_no);
      this.clearTimer(earlier.timer);
      void this.startDelivery(record).then(() => this.startDelivery(earlier.record));
      return;
    }
    switch (faults.notify) {
      case 'lost':
        record.state = 'lost';
        this.opts.log({ event: 'notify.lost', event_id: record.event_id });
        return;
      case 'delayed':
        record.state = 'delayed';
        this.schedule(() => void this.startDelivery(record), faults.notify_delay_ms);
        return;
      case 'out_of_order': {
        record.state = 'held';
        const timer = this.schedule(() => {
          this.held.delete(record.out_trade_no);
          void this.startDelivery(record);
        }, Math.max(faults.notify_delay_ms, OUT_OF_ORDER_MAX_HOLD_MS));
        this.held.set(record.out_trade_no, { record, timer });
        return;
      }
      default:
        void this.startDelivery(record);
    }
  }

  /** Control API: deliver again now, restarting the retry schedule. */
  resend(record: NotificationRecord): Promise<void> {
    const held = this.held.get(record.out_trade_no);
    if (held?.record === record) {
      this.held.delete(record.out_trade_no);
      this.clearTimer(held.timer);
    }
    return this.startDelivery(record);
  }

  close(): void {
    this.shutdown.abort();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.retryTimers.clear();
    this.held.clear();
  }

  /** Runs the first attempt (resolving when it is done) and schedules retries until acknowledged. */
  private async startDelivery(record: NotificationRecord): Promise<void> {
    const pendingRetry = this.retryTimers.get(record.event_id);
    if (pendingRetry) this.clearTimer(pendingRetry);
    record.state = 'pending';
    await this.attemptAndReschedule(record, 0);
  }

  private async attemptAndReschedule(record: NotificationRecord, retryIndex: number): Promise<void> {
    if (this.shutdown.signal.aborted) return;
    const copies = this.opts.faults().notify === 'duplicate' ? 2 : 1;
    let acked = false;
    for (let copy = 0; copy < copies; copy += 1) acked = (await this.attempt(record)) || acked;
    if (acked) {
      record.state = 'acked';
      return;
    }
    const delay = this.opts.retryDelaysMs[retryIndex];
    if (delay === undefined) {
      record.state = 'gave_up';
      this.opts.log({ event: 'notify.gave_up', event_id: record.event_id, attempts: record.attempts.length });
      return;
    }
    const timer = this.schedule(() => {
      this.retryTimers.delete(record.event_id);
      void this.attemptAndReschedule(record, retryIndex + 1);
    }, delay);
    this.retryTimers.set(record.event_id, timer);
  }

  private async attempt(record: NotificationRecord): Promise<boolean> {
    const timestamp = unixSeconds();
    const nonce = newNonce();
    let signature = signBase64(
      { line1: NOTIFY_LINE1, line2: NOTIFY_LINE2, merchantId: this.opts.merchantId, timestamp, nonce, body: record.body },
      this.opts.bankPrivateKey,
    );
    if (this.opts.faults().corrupt_signature) signature = corruptSignature(signature);
    const attempt: DeliveryAttempt = { at: chinaTime(Date.now()), acked: false };
    record.attempts.push(attempt);
    try {
      const response = await fetch(record.notify_url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json; charset=utf-8',
          'x-bank-merchant': this.opts.merchantId,
          'x-bank-timestamp': timestamp,
          'x-bank-nonce': nonce,
          'x-bank-signature': signature,
        },
        body: record.body,
        redirect: 'manual',
        signal: AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(ATTEMPT_TIMEOUT_MS)]),
      });
      attempt.http_status = response.status;
      attempt.acked = isAcknowledgement(response.status, await response.text());
    } catch (error) {
      attempt.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    }
    this.opts.log({ event: 'notify.attempt', event_id: record.event_id, event_type: record.event_type, http_status: attempt.http_status, acked: attempt.acked, error: attempt.error });
    return attempt.acked;
  }

  private schedule(fn: () => void, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
    return timer;
  }

  private clearTimer(timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    this.timers.delete(timer);
  }
}
