// Delivers signed notifications and retries until WeChat's acknowledgement (HTTP 200/204) is received.
import type { NotificationRecord } from './model.js';

export interface NotifierDeps {
  retryDelaysMs: number[];
  /** Signs a notification body for a merchant: the Wechatpay-* headers. */
  signHeaders: (mchid: string, body: string) => Record<string, string>;
  log: (line: Record<string, unknown>) => void;
}

const ACK_STATUSES = new Set([200, 204]);
const ATTEMPT_TIMEOUT_MS = 5000;

export class Notifier {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly abort = new AbortController();
  private closed = false;

  constructor(private readonly deps: NotifierDeps) {}

  /** Runs `fn` after `delayMs`, unless the simulator closes first. */
  schedule(delayMs: number, fn: () => void): void {
    if (this.closed) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.closed) fn();
    }, delayMs);
    this.timers.add(timer);
  }

  /** Starts one delivery chain: first attempt after `initialDelayMs`, then the retry schedule. */
  deliver(mchid: string, record: NotificationRecord, initialDelayMs = 0): void {
    this.schedule(initialDelayMs, () => void this.attempt(mchid, record, 0));
  }

  private async attempt(mchid: string, record: NotificationRecord, retryIndex: number): Promise<void> {
    const at = new Date().toISOString();
    let status: number | null = null;
    let error: string | undefined;
    try {
      const response = await fetch(record.url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'User-Agent': 'Mozilla/4.0', ...this.deps.signHeaders(mchid, record.body) },
        body: record.body,
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(ATTEMPT_TIMEOUT_MS)]),
      });
      status = response.status;
      await response.arrayBuffer().catch(() => undefined);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    if (this.closed) return;
    record.attempts.push(error === undefined ? { at, status } : { at, status, error });
    this.deps.log({ msg: 'wechatpay notification attempt', id: record.id, event_type: record.event_type, url: record.url, status, error });
    if (status !== null && ACK_STATUSES.has(status)) {
      record.acknowledged = true;
      return;
    }
    if (record.acknowledged) return; // a duplicate chain already got the acknowledgement
    const delay = this.deps.retryDelaysMs[retryIndex];
    if (delay !== undefined) this.schedule(delay, () => void this.attempt(mchid, record, retryIndex + 1));
  }

  /** One-off POST (probe notifications): returns the receiver's HTTP status, or null when unreachable. */
  async postOnce(url: string, body: string, headers: Record<string, string>): Promise<number | null> {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'User-Agent': 'Mozilla/4.0', ...headers },
        body,
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(ATTEMPT_TIMEOUT_MS)]),
      });
      await response.arrayBuffer().catch(() => undefined);
      return response.status;
    } catch {
      return null;
    }
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.abort.abort();
  }
}
