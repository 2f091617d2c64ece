import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { got, type Got } from 'got';
import type { Logger } from 'pino';
import { inject, injectable } from 'tsyringe';
import { TOKENS } from '../kernel/tokens.js';
import type { GatewaySigner } from '../crypto/gateway-keys.js';
import type { Store } from '../store/index.js';
import type { Metrics } from '../ops/metrics.js';
import type { WebhookEventRecord } from '../payments/types.js';

export interface DispatcherSettings {
  timeoutMs: number;
  allowPrivateTargets: boolean;
  retryScheduleS: readonly number[];
  maxAttempts: number;
  pollIntervalMs: number;
  concurrency: number;
}

/** Loopback, private, link-local and unspecified addresses, by literal host (names are not resolved here). */
export function isPrivateTarget(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, '').toLowerCase();
  } catch {
    return true;
  }
  if (host === 'localhost' || host.endsWith('.localhost') || host === '::1' || host === '::' || host.startsWith('fe80:') || host.startsWith('fc') || host.startsWith('fd')) return true;
  const m = /^(\d{1,3})\.(\d{1,3})\.\d{1,3}\.\d{1,3}$/.exec(host);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a === 127 || a === 10 || a === 0 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254) || (a === 100 && b >= 64 && b <= 127);
}

/** Delay after the n-th failed attempt (1-based): the schedule's step, its last one repeating, with ±10% jitter. */
export function retryDelayMs(failedAttempts: number, scheduleS: readonly number[], random: () => number = Math.random): number {
  const step = scheduleS[Math.min(failedAttempts - 1, scheduleS.length - 1)]!;
  return Math.round(step * 1000 * (0.9 + 0.2 * random()));
}

/**
 * Delivers outbox events. The outbox row is the truth: delivery state, attempts and the next
 * attempt time live in the store, so a restart picks up exactly where the last process stopped.
 */
@injectable()
export class WebhookDispatcher {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private stopped = true;
  private woken = false;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly client: Got;
  private readonly agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };

  constructor(
    @inject(TOKENS.Store) private readonly store: Store,
    @inject(TOKENS.Signer) private readonly signer: GatewaySigner,
    @inject(TOKENS.DispatcherSettings) private readonly settings: () => DispatcherSettings,
    @inject(TOKENS.Metrics) private readonly metrics: Metrics,
    @inject(TOKENS.Logger) private readonly logger: Logger,
  ) {
    this.client = got.extend({ agent: this.agents, retry: { limit: 0 }, throwHttpErrors: false, followRedirect: false });
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Something was enqueued: look now rather than at the next tick. */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.woken = true;
      return;
    }
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref?.();
  }

  private async tick(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    const { pollIntervalMs, concurrency } = this.settings();
    try {
      do {
        this.woken = false;
        const due = await this.store.webhooks.due(this.store.reads, Date.now(), concurrency);
        await Promise.all(due.map((e) => this.track(this.deliver(e))));
        if (due.length === concurrency) this.woken = true;
      } while (this.woken && !this.stopped);
      this.metrics.webhookBacklog.set(await this.store.webhooks.backlog(this.store.reads));
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'webhook dispatcher pass failed');
    } finally {
      this.running = false;
      this.schedule(pollIntervalMs);
    }
  }

  private track(p: Promise<void>): Promise<void> {
    this.inFlight.add(p);
    return p.finally(() => this.inFlight.delete(p));
  }

  /** Posts one event, signed, and records the attempt and what happens next in one transaction. */
  async deliver(event: WebhookEventRecord): Promise<void> {
    const settings = this.settings();
    const attempt = event.attempts + 1;
    const started = performance.now();
    let statusCode: number | null = null;
    let error: string | null = null;
    try {
      if (!settings.allowPrivateTargets && isPrivateTarget(event.url!)) throw new Error('notify URL points at a private or loopback address');
      const res = await this.client.post(event.url!, {
        body: event.payload,
        headers: { 'content-type': 'application/json', 'user-agent': 'Corbel-Webhooks/1', 'corbel-event-id': event.id, 'corbel-event-type': event.type, ...(await this.signer.signHeaders(event.payload)) },
        timeout: { request: settings.timeoutMs },
      });
      statusCode = res.statusCode;
      if (statusCode < 200 || statusCode >= 300) error = `HTTP ${statusCode}`;
    } catch (err) {
      error = (err as { code?: string }).code ?? (err as Error).message;
    }
    const delivered = error === null;
    const exhausted = !delivered && attempt >= settings.maxAttempts;
    const now = Date.now();
    await this.store.transaction((tx) => this.store.webhooks.recordAttempt(tx, event.id,
      { number: attempt, statusCode, error, durationMs: Math.round(performance.now() - started), at: now },
      { status: delivered ? 'delivered' : exhausted ? 'failed' : 'pending', nextAttemptAt: delivered || exhausted ? null : now + retryDelayMs(attempt, settings.retryScheduleS) },
    ));
    this.metrics.webhookDeliveries.inc({ outcome: delivered ? 'delivered' : exhausted ? 'exhausted' : 'retry' });
    if (!delivered) this.logger.warn({ event_id: event.id, attempt, error }, exhausted ? 'webhook delivery gave up' : 'webhook delivery failed; will retry');
  }

  async redeliver(eventId: string): Promise<boolean> {
    const ok = await this.store.transaction((tx) => this.store.webhooks.redeliver(tx, eventId, Date.now()));
    if (ok) this.wake();
    return ok;
  }

  /** Stops polling and waits for deliveries under way, so none is cut off mid-record. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    while (this.running || this.inFlight.size > 0) {
      await Promise.allSettled([...this.inFlight]);
      if (this.running) await new Promise((r) => setTimeout(r, 10));
    }
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}
