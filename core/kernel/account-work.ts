import type { AccountEntry } from './snapshot.js';

/** Work on one account at a moment: running now, and ever started (a counter that only grows). */
export interface WorkMark {
  active: number;
  started: number;
}

/**
 * Writes that make a payment or refund pending on a channel account, counted per account while they
 * run. A reload must not stop serving an account that non-final rows name: rows already committed
 * it counts in the store, and this is how it learns of the ones that might commit after that count.
 *
 * The reload marks the accounts it would drop, counts their rows, checks nothing began since the mark,
 * and swaps, with no await between that check and the swap. A write that began before the mark is
 * either still running (refused) or committed before the count (counted); one that began after the
 * mark is seen by the check (refused); one that begins after the swap is refused here, since the live
 * snapshot no longer serves the account, even when the request still holds the old snapshot.
 */
export class AccountWork {
  private readonly active = new Map<string, number>();
  private readonly started = new Map<string, number>();

  constructor(private serving: ReadonlyMap<string, AccountEntry>) {}

  /** The accounts of the snapshot that went live; set in the same synchronous step as the swap. */
  serve(accounts: ReadonlyMap<string, AccountEntry>): void {
    this.serving = accounts;
  }

  /**
   * Before a write that leaves a row pending on `account`: false when the live config no longer serves
   * it (a reload took it out after the caller's snapshot was taken), and then nothing may be written.
   */
  begin(account: string): boolean {
    if (!this.serving.get(account)?.instance) return false;
    this.active.set(account, (this.active.get(account) ?? 0) + 1);
    this.started.set(account, (this.started.get(account) ?? 0) + 1);
    return true;
  }

  /** After that write has committed (or failed): from now on the store counts the row. */
  end(account: string): void {
    this.active.set(account, (this.active.get(account) ?? 1) - 1);
  }

  mark(account: string): WorkMark {
    return { active: this.active.get(account) ?? 0, started: this.started.get(account) ?? 0 };
  }

  /** Whether a write may have committed on the account without the store count seeing it. */
  unseenSince(account: string, mark: WorkMark): boolean {
    return mark.active > 0 || (this.started.get(account) ?? 0) !== mark.started;
  }
}
