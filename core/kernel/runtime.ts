import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, loadConfig, type LoadedConfig } from '../config/load.js';
import type { Metrics } from '../ops/metrics.js';
import type { PendingOnAccount, Store } from '../store/index.js';
import { AccountWork, type WorkMark } from './account-work.js';
import { buildSnapshot, type BuildDeps, type ConfigSnapshot, type PluginProblem } from './snapshot.js';

export type ReloadResult = { ok: true; version: number; warnings: string[] } | { ok: false; problems: string[] };

/** Settings bound at start-up: a reload that changes them is applied only after a restart. */
const RESTART_ONLY: Array<[string, (c: LoadedConfig) => unknown]> = [
  ['server.host', (c) => c.config.server.host],
  ['server.port', (c) => c.config.server.port],
  ['data_dir', (c) => c.dataDir],
  ['store.path', (c) => c.config.store.path],
];

/**
 * Holds the current snapshot and replaces it atomically. Reloads are serialised; a candidate is
 * built completely before the swap, and an invalid one never replaces the running one, nor one
 * that would stop serving an account that payments or refunds are still pending on.
 */
export class ConfigRuntime {
  private snapshot: ConfigSnapshot;
  private version: number;
  private queue: Promise<unknown> = Promise.resolve();
  private watcher: FSWatcher | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private readonly onSighup = () => void this.reload('SIGHUP');
  lastReload: { at: Date; trigger: string; result: ReloadResult } | null = null;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  /** Payments and refunds being written on each account: what a reload's store count may not see yet. */
  readonly work: AccountWork;

  private constructor(
    initial: ConfigSnapshot,
    private readonly configPath: string | null,
    private readonly env: NodeJS.ProcessEnv,
    private readonly deps: BuildDeps,
    private readonly store: Store,
  ) {
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.snapshot = initial;
    this.version = initial.version;
    this.work = new AccountWork(initial.accounts);
    deps.routingState.adopt(initial.routingSettings);
  }

  static async start(source: LoadedConfig, env: NodeJS.ProcessEnv, deps: BuildDeps, store: Store): Promise<ConfigRuntime> {
    const snapshot = await buildSnapshot(1, source, deps);
    return new ConfigRuntime(snapshot, source.path, env, deps, store);
  }

  get current(): ConfigSnapshot {
    return this.snapshot;
  }

  reload(trigger: string): Promise<ReloadResult> {
    const run = this.queue.then(() => this.reloadNow(trigger));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(trigger: string): Promise<ReloadResult> {
    let result: ReloadResult;
    let candidate: ConfigSnapshot | null = null;
    try {
      const source = loadConfig(this.configPath, this.env);
      candidate = await buildSnapshot(this.version + 1, source, this.deps);
      const problems = newProblems(this.snapshot.problems, candidate.problems).map((p) => `${p.name}: ${p.reason}`);
      if (problems.length === 0) {
        const marks = new Map(accountsLeaving(this.snapshot, candidate).map((name) => [name, this.work.mark(name)] as const));
        const pending = marks.size > 0 ? await this.store.payments.pendingByAccount(this.store.reads, [...marks.keys()]) : new Map<string, PendingOnAccount>();
        // No await from this check to the swap: a write that begins later is refused on these accounts (see AccountWork).
        problems.push(...this.strandedWork(marks, pending));
      }
      if (problems.length > 0) {
        await candidate.dispose();
        result = { ok: false, problems };
      } else {
        const warnings = RESTART_ONLY.filter(([, read]) => read(source) !== read(this.snapshot.source)).map(([path]) => `${path} changed: takes effect after a restart`);
        this.swap(candidate);
        result = { ok: true, version: candidate.version, warnings };
      }
    } catch (err) {
      if (candidate && candidate !== this.snapshot) await candidate.dispose();
      result = { ok: false, problems: err instanceof ConfigError ? err.problems : [(err as Error).message] };
    }
    this.lastReload = { at: new Date(), trigger, result };
    this.metrics.configReloads.inc({ outcome: result.ok ? 'applied' : 'rejected' });
    if (result.ok) this.logger.info({ trigger, version: result.version, warnings: result.warnings }, 'config reloaded');
    else this.logger.error({ trigger, problems: result.problems }, 'config reload rejected; the running config keeps serving');
    return result;
  }

  /** Puts the candidate live: snapshot, the accounts work may begin on, and its routing settings change together. */
  private swap(candidate: ConfigSnapshot): void {
    const previous = this.snapshot;
    this.version = candidate.version;
    this.snapshot = candidate;
    this.work.serve(candidate.accounts);
    // Only now: a rejected candidate must change no live breaker setting.
    this.deps.routingState.adopt(candidate.routingSettings);
    previous.retire();
  }

  /** Why dropping each marked account would strand payments or refunds: none counted in the store, none being written. */
  private strandedWork(marks: ReadonlyMap<string, WorkMark>, pending: ReadonlyMap<string, PendingOnAccount>): string[] {
    const problems: string[] = [];
    for (const [name, mark] of marks) {
      const { payments, refunds } = pending.get(name) ?? { payments: 0, refunds: 0 };
      const writing = this.work.unseenSince(name, mark);
      if (payments + refunds === 0 && !writing) continue;
      const counted = `${plural(payments, 'payment')} and ${plural(refunds, 'refund')} are still pending (not final) on it`;
      const what = payments + refunds === 0 ? 'a payment or refund is being created on it right now' : writing ? `${counted}, and more are being created` : counted;
      problems.push(`channels.${name}: ${what}; they must settle before the account can be removed or disabled`);
    }
    return problems;
  }

  /** Reloads on file change (watching the directory, since editors replace files) and on SIGHUP. */
  watch(): void {
    process.on('SIGHUP', this.onSighup);
    if (!this.configPath) return;
    const file = basename(this.configPath);
    this.watcher = watch(dirname(this.configPath), (_event, name) => {
      if (name !== file) return;
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = setTimeout(() => void this.reload('file change'), 150);
    });
    this.watcher.on('error', (err) => this.logger.warn({ err: err.message }, 'config watch failed'));
  }

  async stop(): Promise<void> {
    process.off('SIGHUP', this.onSighup);
    this.watcher?.close();
    if (this.debounce) clearTimeout(this.debounce);
    await this.queue;
    await this.snapshot.dispose();
  }
}

/** Accounts serving now that the candidate would not serve (removed, disabled, or failing to load). */
function accountsLeaving(current: ConfigSnapshot, candidate: ConfigSnapshot): string[] {
  return [...current.accounts.values()].filter((a) => a.instance && !candidate.account(a.name)?.instance).map((a) => a.name);
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function newProblems(before: readonly PluginProblem[], after: readonly PluginProblem[]): PluginProblem[] {
  const known = new Set(before.map((p) => `${p.name}\u0000${p.reason}`));
  return after.filter((p) => !known.has(`${p.name}\u0000${p.reason}`));
}
