import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import type { ChannelAccount, ChannelPlugin } from '../contract/channel.js';
import type { CapabilityInstance, CapabilityPlugin } from '../contract/capability.js';
import type { LoadedConfig } from '../config/load.js';
import { ZodError } from 'zod';
import { formatZodError } from '../config/load.js';
import type { CorbelConfig } from '../config/schema.js';
import type { Metrics } from '../ops/metrics.js';
import { CompiledRouting, type RoutableAccount } from '../routing/engine.js';
import { validateRouting } from '../routing/validate.js';
import type { BreakerSettings, RoutingSettings, RoutingState, AccountRoutingState } from '../routing/state.js';
import { KernelChannelHttp } from './channel-http.js';
import { loadPlugin, type AnyPlugin } from './plugin-loader.js';

export interface AccountEntry {
  name: string;
  plugin: string;
  sandbox: boolean;
  requiresBinding: boolean;
  payMethods: ReadonlySet<string>;
  /** Payer fields each pay method requires, from the plugin's manifest. */
  payerFields: Readonly<Record<string, ReadonlyArray<string>>>;
  instance: ChannelAccount | null;
  /** Why the account is not serving, when it is not. */
  error: string | null;
  /**
   * Inspection snapshots only (BuildDeps.describeWithoutSimulator): why this sandbox account was described from its
   * plugin's manifest instead of instantiated (its simulator has issued no credentials yet). Routing then treats it as
   * available with the pay methods it would serve. Always null in a snapshot the gateway serves.
   */
  describedOnly: string | null;
  /** The pay methods the config asks of the account (pay_methods, or its plugin's), known even when it failed to load. */
  configuredPayMethods: ReadonlySet<string>;
  http: KernelChannelHttp | null;
}

/** Accounts that are not serving (failed to load, disabled), the pay methods their config asks of them, and why. */
export function unservedAccounts(accounts: ReadonlyMap<string, AccountEntry>): Array<{ name: string; payMethods: ReadonlySet<string>; error: string }> {
  return [...accounts.values()].filter((a) => a.error !== null).map((a) => ({ name: a.name, payMethods: a.configuredPayMethods, error: a.error! }));
}

export interface CapabilityEntry {
  name: string;
  plugin: string;
  instance: CapabilityInstance | null;
  error: string | null;
  http: KernelChannelHttp | null;
}

export interface PluginProblem {
  name: string;
  kind: 'channel' | 'capability' | 'routing';
  reason: string;
}

/**
 * One immutable view of the configuration with its plugin instances, compiled routes and parsed
 * keys. A request captures one on entry; a reload builds a new one and swaps the reference.
 */
export class ConfigSnapshot {
  private refs = 0;
  private retired = false;
  private disposed = false;

  constructor(
    readonly version: number,
    readonly loadedAt: Date,
    readonly source: LoadedConfig,
    readonly accounts: ReadonlyMap<string, AccountEntry>,
    readonly capabilities: readonly CapabilityEntry[],
    readonly routing: CompiledRouting,
    readonly problems: readonly PluginProblem[],
    /** The gateway's public base URL, resolved. */
    readonly publicUrl: string,
    /** Window and breaker settings: the runtime applies them to the shared routing state when this snapshot goes live. */
    readonly routingSettings: RoutingSettings,
  ) {}

  get config(): CorbelConfig {
    return this.source.config;
  }

  account(name: string): AccountEntry | undefined {
    return this.accounts.get(name);
  }

  acquire(): this {
    this.refs++;
    return this;
  }

  release(): void {
    this.refs--;
    if (this.retired && this.refs === 0) void this.dispose();
  }

  /** Called when a newer snapshot has taken over: disposes once the last in-flight request releases it. */
  retire(): void {
    this.retired = true;
    if (this.refs === 0) void this.dispose();
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    // A plugin's dispose may throw or return anything: it must never take the gateway down.
    const disposeQuietly = (instance: { dispose(): Promise<void> } | null) => Promise.resolve().then(() => instance?.dispose()).catch(() => undefined);
    for (const a of this.accounts.values()) {
      await disposeQuietly(a.instance);
      a.http?.dispose();
    }
    for (const c of this.capabilities) {
      await disposeQuietly(c.instance);
      c.http?.dispose();
    }
  }
}

export interface BuildDeps {
  logger: Logger;
  metrics: Metrics;
  /** Resolved public URL (the listening address when none is configured). */
  publicUrl: string;
  /** Credentials issued by the running sandbox simulators, by plugin name. */
  simulators?: ReadonlyMap<string, unknown>;
  /** Breakers, success windows and daily usage: shared by every snapshot, so they survive reloads. */
  routingState: RoutingState;
  /**
   * For inspecting a config without serving it (`corbel config check`, `corbel route explain`): a sandbox account
   * whose simulator has issued no credentials yet is described from its plugin's manifest (pay methods, payer
   * fields) instead of being an error, since `corbel serve` starts the simulator and takes them from it. Never set
   * by the gateway: such an account cannot serve.
   */
  describeWithoutSimulator?: boolean;
}

/** Builds a snapshot. Plugin failures are collected per plugin, never thrown, so the rest can serve. */
export async function buildSnapshot(version: number, source: LoadedConfig, deps: BuildDeps): Promise<ConfigSnapshot> {
  const { config } = source;
  const problems: PluginProblem[] = [];
  const modules = new Map<string, AnyPlugin | Error>();
  const moduleFor = async (name: string): Promise<AnyPlugin> => {
    if (!modules.has(name)) modules.set(name, await loadPlugin(name, config.plugins, source.dir).catch((e: Error) => e));
    const m = modules.get(name)!;
    if (m instanceof Error) throw m;
    return m;
  };

  const accounts = new Map<string, AccountEntry>();
  for (const [name, account] of Object.entries(config.channels)) {
    const entry: AccountEntry = {
      name, plugin: account.plugin, sandbox: account.sandbox, requiresBinding: account.requires_binding, payMethods: new Set(), payerFields: {}, instance: null, error: null,
      describedOnly: null, configuredPayMethods: new Set(account.pay_methods ?? []), http: null,
    };
    accounts.set(name, entry);
    if (!account.enabled) {
      entry.error = 'disabled in config';
      continue;
    }
    try {
      const plugin = await moduleFor(account.plugin);
      if (plugin.manifest.kind !== 'channel') throw new Error(`${account.plugin} is a ${plugin.manifest.kind} plugin, not a channel`);
      const channel = plugin as ChannelPlugin;
      const served = account.pay_methods ?? channel.manifest.payMethods;
      const unknown = served.filter((m) => !channel.manifest.payMethods.includes(m));
      if (unknown.length) throw new Error(`pay_methods: ${unknown.join(', ')} not served by plugin ${account.plugin}`);
      entry.configuredPayMethods = new Set(served);
      let rawConfig: unknown = account.config;
      if (account.simulator !== undefined && account.simulator !== false) {
        const credentials = deps.simulators?.get(account.plugin);
        if (!account.sandbox) throw new Error('simulator: only sandbox accounts may use a simulator');
        if (!channel.sandbox) throw new Error(`simulator: plugin ${account.plugin} ships no simulator`);
        if (credentials === undefined && deps.describeWithoutSimulator) {
          describeFromManifest(entry, channel, account.config, `channels.${name}.config`);
          const manifest = `pay methods from the ${account.plugin} plugin's manifest; not instantiated`;
          entry.describedOnly = config.simulators.enabled
            ? `${manifest}: its credentials come from the ${account.plugin} simulator, which \`corbel serve\` starts (simulators.enabled: true)`
            : `${manifest}: no credentials from the ${account.plugin} simulator yet (${join(source.dataDir, 'simulators', account.plugin, 'credentials.json')}); run \`corbel simulate ${account.plugin}\` before \`corbel serve\`, or set simulators.enabled: true`;
          continue;
        }
        if (credentials === undefined) throw new Error('simulator: the simulator is not running (set simulators.enabled: true)');
        const variant = typeof account.simulator === 'string' ? account.simulator : undefined;
        rawConfig = { ...(channel.sandbox.accountConfig(credentials, variant) as object), ...account.config };
      }
      const parsed = channel.manifest.configSchema.safeParse(rawConfig);
      if (!parsed.success) throw new Error(formatZodError(parsed.error, `channels.${name}.config`).join('; '));
      const logger = deps.logger.child({ plugin: account.plugin, account: name });
      const { connections, keep_alive_ms: keepAliveMs, keep_alive_max_ms: keepAliveMaxMs } = account.pool;
      entry.http = new KernelChannelHttp(name, account.timeout_ms, logger, deps.metrics, { connections, keepAliveMs, keepAliveMaxMs });
      const dataDir = join(source.dataDir, 'plugins', account.plugin);
      mkdirSync(dataDir, { recursive: true });
      entry.instance = await channel.createAccount(parsed.data, {
        accountName: name, sandbox: account.sandbox, logger, http: entry.http, dataDir, configDir: source.dir, publicUrl: deps.publicUrl,
      });
      entry.payMethods = new Set(served);
      entry.payerFields = channel.manifest.payerFields ?? {};
    } catch (err) {
      entry.error = (err as Error).message;
      entry.http?.dispose();
      entry.http = null;
      problems.push({ name: `channels.${name}`, kind: 'channel', reason: entry.error });
    }
  }

  const capabilities: CapabilityEntry[] = [];
  for (const [name, cap] of Object.entries(config.capabilities)) {
    if (!cap.enabled) continue;
    const pluginName = cap.plugin ?? name;
    const entry: CapabilityEntry = { name, plugin: pluginName, instance: null, error: null, http: null };
    capabilities.push(entry);
    try {
      const plugin = await moduleFor(pluginName);
      if (plugin.manifest.kind !== 'capability') throw new Error(`${pluginName} is a ${plugin.manifest.kind} plugin, not a capability`);
      const capability = plugin as CapabilityPlugin;
      const parsed = capability.manifest.configSchema.safeParse(cap.config);
      if (!parsed.success) throw new Error(formatZodError(parsed.error, `capabilities.${name}.config`).join('; '));
      const logger = deps.logger.child({ plugin: pluginName });
      const dataDir = join(source.dataDir, 'plugins', pluginName);
      mkdirSync(dataDir, { recursive: true });
      entry.http = new KernelChannelHttp(name, 10_000, logger, deps.metrics);
      entry.instance = await capability.create(parsed.data, { logger, http: entry.http, dataDir, configDir: source.dir, publicUrl: deps.publicUrl });
    } catch (err) {
      entry.error = (err as Error).message;
      problems.push({ name: `capabilities.${name}`, kind: 'capability', reason: entry.error });
    }
  }

  // Nothing here touches the live routing state: a rejected candidate must change no breaker (see RoutingState.stateFor).
  const windowMs = config.routing.window_s * 1000;
  const routingAccounts = new Map<string, { state: AccountRoutingState; breaker: BreakerSettings }>();
  const routable: RoutableAccount[] = [...accounts.values()].map((a) => {
    const c = config.channels[a.name]!;
    const breaker = { errorRate: c.breaker.error_rate, minRequests: c.breaker.min_requests, openMs: c.breaker.open_s * 1000, halfOpenProbes: c.breaker.half_open_probes };
    const state = deps.routingState.stateFor(a.name, windowMs, breaker);
    routingAccounts.set(a.name, { state, breaker });
    return { name: a.name, payMethods: a.payMethods, available: a.instance !== null || a.describedOnly !== null, requiresBinding: a.requiresBinding, fees: c.fees, limits: c.limits, state };
  });
  const routing = new CompiledRouting(config.routing, routable, config.api.currencies);
  const servedBy = new Map([...accounts.values()].map((a) => [a.name, a.instance || a.describedOnly ? a.payMethods : null] as const));
  for (const reason of validateRouting(config.routing, routing, servedBy, config.api)) problems.push({ name: 'routing', kind: 'routing', reason });
  for (const p of problems) {
    // A broken routing table is never served: start-up exits and a reload is rejected.
    if (p.kind === 'routing') deps.logger.error({ problem: p.name, reason: p.reason }, 'config invalid: the routing table has errors');
    else deps.logger.error({ plugin: p.name, reason: p.reason }, 'plugin failed to load; the rest of the gateway keeps serving');
  }
  return new ConfigSnapshot(version, new Date(), source, accounts, capabilities, routing, problems, deps.publicUrl, { windowMs, accounts: routingAccounts });
}

/**
 * An inspection-only account entry from the plugin's manifest, without credentials: what it serves, and the fields
 * the config sets itself checked against the plugin's schema (the fields the simulator would supply cannot be).
 */
function describeFromManifest(entry: AccountEntry, channel: ChannelPlugin, own: Record<string, unknown>, prefix: string): void {
  const parsed = channel.manifest.configSchema.safeParse(own);
  if (!parsed.success) {
    const keys = new Set(Object.keys(own));
    const wrong = parsed.error.issues.filter((issue) => issue.code === 'unrecognized_keys' || (issue.path.length > 0 && keys.has(String(issue.path[0])) && !(issue.code === 'invalid_type' && issue.received === 'undefined')));
    if (wrong.length) throw new Error(formatZodError(new ZodError(wrong), prefix).join('; '));
  }
  entry.payMethods = entry.configuredPayMethods;
  entry.payerFields = channel.manifest.payerFields ?? {};
}
