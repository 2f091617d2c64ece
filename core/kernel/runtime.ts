import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, loadConfig, type LoadedConfig } from '../config/load.js';
import type { Metrics } from '../ops/metrics.js';
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
 * built completely before the swap, and an invalid one never replaces the running one.
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

  private constructor(
    initial: ConfigSnapshot,
    private readonly configPath: string | null,
    private readonly env: NodeJS.ProcessEnv,
    private readonly deps: BuildDeps,
  ) {
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.snapshot = initial;
    this.version = initial.version;
    deps.routingState.adopt(initial.routingSettings);
  }

  static async start(source: LoadedConfig, env: NodeJS.ProcessEnv, deps: BuildDeps): Promise<ConfigRuntime> {
    const snapshot = await buildSnapshot(1, source, deps);
    return new ConfigRuntime(snapshot, source.path, env, deps);
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
    try {
      const source = loadConfig(this.configPath, this.env);
      const candidate = await buildSnapshot(this.version + 1, source, this.deps);
      const fresh = newProblems(this.snapshot.problems, candidate.problems);
      if (fresh.length > 0) {
        await candidate.dispose();
        result = { ok: false, problems: fresh.map((p) => `${p.name}: ${p.reason}`) };
      } else {
        const warnings = RESTART_ONLY.filter(([, read]) => read(source) !== read(this.snapshot.source)).map(([path]) => `${path} changed: takes effect after a restart`);
        const previous = this.snapshot;
        this.version = candidate.version;
        this.snapshot = candidate;
        // Only now: a rejected candidate must change no live breaker setting.
        this.deps.routingState.adopt(candidate.routingSettings);
        previous.retire();
        result = { ok: true, version: candidate.version, warnings };
      }
    } catch (err) {
      result = { ok: false, problems: err instanceof ConfigError ? err.problems : [(err as Error).message] };
    }
    this.lastReload = { at: new Date(), trigger, result };
    this.metrics.configReloads.inc({ outcome: result.ok ? 'applied' : 'rejected' });
    if (result.ok) this.logger.info({ trigger, version: result.version, warnings: result.warnings }, 'config reloaded');
    else this.logger.error({ trigger, problems: result.problems }, 'config reload rejected; the running config keeps serving');
    return result;
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

function newProblems(before: readonly PluginProblem[], after: readonly PluginProblem[]): PluginProblem[] {
  const known = new Set(before.map((p) => `${p.name}\u0000${p.reason}`));
  return after.filter((p) => !known.has(`${p.name}\u0000${p.reason}`));
}
