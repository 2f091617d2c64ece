/**
 * Back notifications (后台通知): a form POST of the signed fields to the transaction's backUrl.
 * UnionPay counts HTTP 200 as the acknowledgement; anything else (or no answer within 10 s) is retried on the
 * notifyRetryDelaysMs schedule (a compressed version of the real back-off).
 */
import type { FaultSet } from '../../../core/index.js';
import type { AcpFields } from './signing.js';

export type NotificationState = 'scheduled' | 'deferred' | 'sending' | 'acknowledged' | 'gave_up' | 'lost';

export interface NotificationAttempt {
  at: string;
  httpStatus: number | null;
  error?: string;
}

export interface NotificationRecord {
  id: number;
  /** Which transaction the notification reports (consume, refund or cancel orderId). */
  orderId: string;
  txnType: string;
  url: string;
  fields: AcpFields;
  state: NotificationState;
  attempts: NotificationAttempt[];
  /** Set on the second copy sent under the `duplicate` fault. */
  duplicateOf?: number;
}

/** Answer timeout for one delivery attempt (the real gateway waits about 10 s). */
const ATTEMPT_TIMEOUT_MS = 10_000;
/** Under `out_of_order`, how long an earlier notification is held if no later one comes along. */
const OUT_OF_ORDER_FALLBACK_MS = 2_000;

export interface NotifierOptions {
  retryDelaysMs: number[];
  faults: () => FaultSet;
  log: (line: Record<string, unknown>) => void;
}

export class Notifier {
  private nextId = 1;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<AbortController>();
  /** Notifications held back under `out_of_order`, per order family (the consume's key). */
  private readonly deferred = new Map<string, NotificationRecord[]>();
  private closed = false;

  constructor(private readonly opts: NotifierOptions) {}

  /**
   * Queues a notification according to the current notify fault mode. `family` groups the notifications of one
   * consume and its refunds (for `out_of_order`). Returns the records created (two under `duplicate`).
   */
  notify(family: string, orderId: string, url: string, fields: AcpFields): NotificationRecord[] {
    const faults = this.opts.faults();
    const record = this.newRecord(orderId, url, fields);
    switch (faults.notify) {
      case 'lost':
        record.state = 'lost';
        this.opts.log({ event: 'notify_lost', orderId, url });
        return [record];
      case 'delayed':
        this.schedule(record, faults.notify_delay_ms, 0);
        return [record];
      case 'duplicate': {
        const copy = this.newRecord(orderId, url, fields);
        copy.duplicateOf = record.id;
        this.schedule(record, 0, 0);
        this.schedule(copy, 0, 0);
        return [record, copy];
      }
      case 'out_of_order': {
        const held = this.deferred.get(family) ?? [];
        if (held.length > 0) {
          // A later notification arrived: it goes out first, the held earlier ones right after it.
          this.deferred.delete(family);
          this.schedule(record, 0, 0);
          held.forEach((earlier, index) => this.schedule(earlier, 50 * (index + 1), 0));
        } else {
          record.state = 'deferred';
          this.deferred.set(family, [record]);
          this.after(faults.notify_delay_ms || OUT_OF_ORDER_FALLBACK_MS, () => {
            const still = this.deferred.get(family);
            if (still?.includes(record)) {
              this.deferred.delete(family);
              still.forEach((earlier) => this.schedule(earlier, 0, 0));
            }
          });
        }
        return [record];
      }
      default:
        this.schedule(record, 0, 0);
        return [record];
    }
  }

  /** Sends a copy of `previous` now, regardless of the notify fault mode (control API `notify`). */
  resend(previous: NotificationRecord): NotificationRecord {
    const record = this.newRecord(previous.orderId, previous.url, previous.fields);
    this.schedule(record, 0, 0);
    return record;
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const controller of this.inFlight) controller.abort();
    this.inFlight.clear();
    this.deferred.clear();
  }

  private newRecord(orderId: string, url: string, fields: AcpFields): NotificationRecord {
    return { id: this.nextId++, orderId, txnType: fields.txnType ?? '', url, fields, state: 'scheduled', attempts: [] };
  }

  private after(delayMs: number, fn: () => void): void {
    if (this.closed) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, delayMs);
    this.timers.add(timer);
  }

  /** `attempt` is the index of the delivery attempt; retries follow retryDelaysMs[attempt - 1]. */
  private schedule(record: NotificationRecord, delayMs: number, attempt: number): void {
    record.state = 'scheduled';
    this.after(delayMs, () => void this.deliver(record, attempt));
  }

  private async deliver(record: NotificationRecord, attempt: number): Promise<void> {
    if (this.closed) return;
    record.state = 'sending';
    const controller = new AbortController();
    this.inFlight.add(controller);
    const timeout = setTimeout(() => controller.abort(), ATTEMPT_TIMEOUT_MS);
    let httpStatus: number | null = null;
    let error: string | undefined;
    try {
      const response = await fetch(record.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' },
        body: new URLSearchParams(record.fields).toString(),
        signal: controller.signal,
      });
      httpStatus = response.status;
      await response.arrayBuffer().catch(() => undefined);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    } finally {
      clearTimeout(timeout);
      this.inFlight.delete(controller);
    }
    if (this.closed) return;
    record.attempts.push({ at: new Date().toISOString(), httpStatus, ...(error ? { error } : {}) });
    this.opts.log({ event: 'notify_attempt', id: record.id, orderId: record.orderId, url: record.url, attempt, httpStatus, error });
    if (httpStatus === 200) {
      record.state = 'acknowledged';
      return;
    }
    const nextDelay = this.opts.retryDelaysMs[attempt];
    if (nextDelay === undefined) {
      record.state = 'gave_up';
      return;
    }
    this.schedule(record, nextDelay, attempt + 1);
  }
}
