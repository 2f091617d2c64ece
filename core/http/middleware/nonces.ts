import type { Logger } from 'pino';
import type { Store, Tx } from '../../store/index.js';
import { NonceRepository } from '../../store/repositories.js';

/**
 * Request nonces used inside the timestamp window. The check is in memory; the record is written
 * behind, in batches, and reloaded at start, so a replay is refused across a restart too. Only a
 * crash can lose the last batch (at most flushMs of nonces); a replayed request then still meets
 * the natural keys (out_trade_no, out_refund_no) and the idempotency keys, so it cannot move money twice.
 */
export class NonceGuard {
  private readonly live = new Map<string, number>();
  private pending: Array<[string, string, number]> = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly store: Store, private readonly logger: Logger, private readonly flushMs = 50) {}

  async load(now = Date.now()): Promise<void> {
    for (const n of await this.store.nonces.live(this.store.reads, now)) this.live.set(`${n.app_id}\u0000${n.nonce}`, n.expires_at);
  }

  /** Records the nonce; false when it is still live (a replay). */
  use(appId: string, nonce: string, expiresAt: number, now: number): boolean {
    const key = `${appId}\u0000${nonce}`;
    const existing = this.live.get(key);
    if (existing !== undefined && existing > now) return false;
    this.live.set(key, expiresAt);
    this.pending.push([appId, nonce, expiresAt]);
    if (this.pending.length >= 256) void this.flush();
    else this.schedule(this.flushMs);
    return true;
  }

  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return this.flushing;
    this.flushing = this.flushing
      .then(() => {
        const insert = (db: Tx) => this.store.nonces.insertMany(db, batch);
        // One statement needs no transaction of its own: it commits alone, or shares the group it lands in.
        return batch.length <= NonceRepository.ROWS_PER_STATEMENT ? this.store.write(insert) : this.store.transaction(insert);
      })
      .catch((err: Error) => {
        // Kept for the next flush, so a passing failure does not make these nonces replayable after a restart.
        this.logger.error({ err: err.message }, 'recording request nonces failed; will retry');
        this.pending.unshift(...batch);
        this.schedule(1_000);
      });
    return this.flushing;
  }

  private schedule(ms: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => void this.flush(), ms);
    this.timer.unref();
  }

  /** Drops expired nonces from memory and the store. */
  async purge(now = Date.now()): Promise<void> {
    for (const [key, expiresAt] of this.live) if (expiresAt <= now) this.live.delete(key);
    await this.store.write((w) => this.store.nonces.purge(w, now));
  }
}
