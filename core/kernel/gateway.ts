import 'reflect-metadata';
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { container } from 'tsyringe';
import type { DestinationStream } from 'pino';
import { loadConfig, defaultConfigPath, ConfigError, type LoadedConfig } from '../config/load.js';
import { RoutingState, type AccountRoutingState } from '../routing/state.js';
import type { CompiledRouting } from '../routing/engine.js';
import { createLogger, type Logger } from '../ops/logger.js';
import { Metrics } from '../ops/metrics.js';
import { Store } from '../store/index.js';
import { loadOrCreateGatewayKey, type GatewaySigner } from '../crypto/gateway-keys.js';
import { randomToken } from '../crypto/ids.js';
import { PaymentService } from '../payments/service.js';
import { MerchantService } from '../merchants/service.js';
import { WebhookDispatcher, type DispatcherSettings } from '../webhooks/dispatcher.js';
import { CallerCache } from '../http/middleware/merchant-auth.js';
import { NonceGuard } from '../http/middleware/nonces.js';
import { buildApp } from '../http/app.js';
import { ConfigRuntime } from './runtime.js';
import { loadPlugin } from './plugin-loader.js';
import type { ChannelPlugin, RunningChannelSimulator } from '../contract/channel.js';
import { TOKENS } from './tokens.js';

export interface GatewayOptions {
  /** Config file; null to run on defaults and the environment alone. */
  configPath?: string | null;
  env?: NodeJS.ProcessEnv;
  logDestination?: DestinationStream;
  /** Watch the config file and SIGHUP (off in tests that reload by hand). */
  watchConfig?: boolean;
}

/**
 * The running gateway: store, config runtime, HTTP server, webhook dispatcher and poller, wired
 * in one tsyringe child container per instance (so several can run in one process, as tests do).
 */
export class Gateway {
  private draining = false;
  private pollTimer: NodeJS.Timeout | null = null;
  private maintenanceTimer: NodeJS.Timeout | null = null;
  private polling = false;
  private readonly inFlight = { count: 0 };

  private constructor(
    readonly server: Server,
    readonly url: string,
    readonly store: Store,
    readonly runtime: ConfigRuntime,
    readonly payments: PaymentService,
    readonly merchants: MerchantService,
    readonly webhooks: WebhookDispatcher,
    readonly signer: GatewaySigner,
    readonly logger: Logger,
    readonly metrics: Metrics,
    readonly adminToken: string | undefined,
    private readonly simulators: Map<string, RunningChannelSimulator>,
    private readonly nonces: NonceGuard,
  ) {}

  static async start(opts: GatewayOptions = {}): Promise<Gateway> {
    const env = opts.env ?? process.env;
    const source = loadConfig(opts.configPath === undefined ? defaultConfigPath(env) : opts.configPath, env);
    const { config, dataDir } = source;
    mkdirSync(dataDir, { recursive: true });
    const logger = createLogger(config.log.level, opts.logDestination);
    const metrics = new Metrics();
    const store = await Store.open(join(dataDir, config.store.path));
    const signer = loadOrCreateGatewayKey(dataDir);
    const adminToken = resolveAdminToken(source, logger);
    const simulators = config.simulators.enabled ? await startSimulators(source, logger) : new Map<string, RunningChannelSimulator>();

    // Listen first: with port 0 the public URL (which notify URLs are built from) is only known now.
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.server.port, config.server.host, () => resolve());
    });
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.server.port;
    const url = `http://${config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host}:${port}`;
    const publicUrl = (config.server.public_url ?? url).replace(/\/$/, '');

    const routingState = new RoutingState();
    // Without in-process simulators, sandbox accounts take the credentials of simulators started apart (`corbel simulate`).
    const simulatorCredentials = config.simulators.enabled ? new Map([...simulators].map(([name, sim]) => [name, sim.credentials])) : readSimulatorCredentials(source);
    const runtime = await ConfigRuntime.start(source, env, { logger, metrics, publicUrl, routingState, simulators: simulatorCredentials }, store);
    const routingProblems = runtime.current.problems.filter((p) => p.kind === 'routing');
    if (routingProblems.length > 0) {
      await runtime.stop();
      server.close();
      for (const sim of simulators.values()) await sim.close();
      await store.close();
      throw new ConfigError(routingProblems.map((p) => p.reason));
    }
    await seedDailyUsage(store, runtime.current.routing, (name) => routingState.account(name));

    const scope = container.createChildContainer();
    let dispatcher: WebhookDispatcher | null = null;
    scope.registerInstance(TOKENS.Store, store);
    scope.registerInstance(TOKENS.Metrics, metrics);
    scope.registerInstance(TOKENS.Logger, logger);
    scope.registerInstance(TOKENS.Signer, signer);
    scope.registerInstance(TOKENS.Runtime, runtime);
    scope.registerInstance(TOKENS.RoutingState, routingState);
    scope.registerInstance(TOKENS.AccountWork, runtime.work);
    scope.registerInstance(TOKENS.OutboxSignal, { wake: () => dispatcher?.wake() });
    scope.registerInstance(TOKENS.DefaultFeeRate, () => runtime.current.config.fees.default_rate_bps);
    scope.registerInstance<() => DispatcherSettings>(TOKENS.DispatcherSettings, () => {
      const w = runtime.current.config.webhooks;
      return {
        timeoutMs: w.timeout_ms, retryScheduleS: w.retry_schedule_s, maxAttempts: w.max_attempts, pollIntervalMs: w.poll_interval_ms, concurrency: w.concurrency,
        allowPrivateTargets: w.allow_private_targets ?? runtime.current.config.mode === 'sandbox',
      };
    });
    dispatcher = scope.resolve(WebhookDispatcher);
    const payments = scope.resolve(PaymentService);
    const merchants = scope.resolve(MerchantService);
    const callers = new CallerCache(store);
    const nonces = new NonceGuard(store, logger);
    await nonces.load();
    await payments.alertPendingOnUnservedAccounts(runtime.current);
    merchants.onChange((id) => callers.invalidateMerchant(id));

    const gateway = new Gateway(server, url, store, runtime, payments, merchants, dispatcher, signer, logger, metrics, adminToken, simulators, nonces);
    const app = buildApp({
      store, payments, merchants, runtime, signer, webhooks: dispatcher, metrics, logger, callers, nonces,
      adminToken: () => adminToken, isDraining: () => gateway.draining, inFlight: gateway.inFlight,
    });
    server.keepAliveTimeout = 5_000;
    // A client that declares a body and never sends it must not hold a request open for Node's default 5 minutes.
    server.requestTimeout = 15_000;
    server.headersTimeout = 10_000;
    server.on('request', app.callback());
    dispatcher.start();
    gateway.startBackgroundJobs();
    if (opts.watchConfig !== false) runtime.watch();
    logger.info({ url, public_url: publicUrl, mode: config.mode, data_dir: dataDir, config: source.path, channels: [...runtime.current.accounts.keys()], simulators: Object.fromEntries([...simulators].map(([n, s]) => [n, s.url])) }, 'corbel gateway listening');
    return gateway;
  }

  /** Base URLs of the in-process sandbox simulators, by plugin name. */
  simulatorUrls(): Record<string, string> {
    return Object.fromEntries([...this.simulators].map(([name, sim]) => [name, sim.url]));
  }

  private startBackgroundJobs(): void {
    const poll = async () => {
      const poller = this.runtime.current.config.poller;
      if (!poller.enabled || this.polling || this.draining) return;
      this.polling = true;
      const snapshot = this.runtime.current.acquire();
      try {
        await this.payments.pollPending(snapshot, poller.backoff_s);
      } catch (err) {
        this.logger.error({ err: (err as Error).message }, 'poller pass failed');
      } finally {
        snapshot.release();
        this.polling = false;
      }
    };
    this.pollTimer = setInterval(() => void poll(), this.runtime.current.config.poller.interval_ms);
    this.pollTimer.unref();
    const maintain = async () => {
      const now = Date.now();
      await this.nonces.purge(now).catch((err: Error) => this.logger.warn({ err: err.message }, 'nonce purge failed'));
      await this.store.transaction((tx) => this.store.idempotency.purge(tx, now - 7 * 86_400_000)).catch((err: Error) => this.logger.warn({ err: err.message }, 'maintenance failed'));
    };
    this.maintenanceTimer = setInterval(() => void maintain(), 60_000);
    this.maintenanceTimer.unref();
  }

  /** Graceful stop: refuse new requests, let in-flight ones finish (up to the grace period), then flush and close. */
  async stop(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const grace = this.runtime.current.config.server.shutdown_grace_ms;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const timer = setTimeout(() => this.server.closeAllConnections(), grace);
    await closed;
    clearTimeout(timer);
    // Sockets are gone, but handlers cut off at the grace period may still be recording a channel's answer: let them.
    const deadline = Date.now() + grace;
    while (this.inFlight.count > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (this.inFlight.count > 0) this.logger.warn({ in_flight: this.inFlight.count }, 'stopping with requests still running');
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.maintenanceTimer) clearInterval(this.maintenanceTimer);
    while (this.polling) await new Promise((r) => setTimeout(r, 10));
    await this.nonces.flush();
    await this.webhooks.stop();
    await this.runtime.stop();
    for (const sim of this.simulators.values()) await sim.close().catch(() => undefined);
    await this.store.close();
    this.logger.info('corbel gateway stopped');
    this.logger.flush?.();
  }
}

/**
 * Daily limits count from what the store already holds for today, so a restart does not reset them. `stateOf` is the
 * routing state an account's usage goes into (undefined: not tracked).
 */
export async function seedDailyUsage(store: Store, routing: CompiledRouting, stateOf: (account: string) => AccountRoutingState | undefined): Promise<void> {
  const day = routing.day(Date.now());
  const dayStart = day * 86_400_000 - routing.config.utc_offset_minutes * 60_000;
  for (const u of await store.payments.usageSince(store.reads, dayStart)) {
    const account = stateOf(u.account);
    if (!account) continue;
    account.usage.roll(day);
    account.usage.amount = u.amount;
    account.usage.count = u.count;
  }
}

/** Sandbox convenience: without a configured token, one is generated once and kept in the data dir. */
function resolveAdminToken(source: LoadedConfig, logger: Logger): string | undefined {
  if (source.config.admin.token) return source.config.admin.token;
  if (source.config.mode !== 'sandbox') {
    logger.warn('no admin token configured: the admin API is disabled');
    return undefined;
  }
  const path = join(source.dataDir, 'admin-token');
  if (!existsSync(path)) {
    writeFileSync(path, randomToken(24) + '\n', { mode: 0o600 });
    logger.info({ path }, 'sandbox admin token generated');
  }
  return readFileSync(path, 'utf8').trim();
}

/** Credentials that simulators running in other processes wrote into the data dir. */
export function readSimulatorCredentials(source: LoadedConfig): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const account of Object.values(source.config.channels)) {
    if (!account.simulator || out.has(account.plugin)) continue;
    const path = join(source.dataDir, 'simulators', account.plugin, 'credentials.json');
    if (existsSync(path)) out.set(account.plugin, JSON.parse(readFileSync(path, 'utf8')) as unknown);
  }
  return out;
}

/** Starts, once per process, the simulator of every plugin a sandbox account asks for. */
async function startSimulators(source: LoadedConfig, logger: Logger): Promise<Map<string, RunningChannelSimulator>> {
  const started = new Map<string, RunningChannelSimulator>();
  for (const account of Object.values(source.config.channels)) {
    if (!account.sandbox || !account.simulator || started.has(account.plugin)) continue;
    try {
      const plugin = (await loadPlugin(account.plugin, source.config.plugins, source.dir)) as ChannelPlugin;
      if (!plugin.sandbox) continue;
      const sim = await plugin.sandbox.startSimulator({ dataDir: source.dataDir, host: source.config.server.host });
      started.set(account.plugin, sim);
      logger.info({ plugin: account.plugin, url: sim.url }, 'channel simulator started');
    } catch (err) {
      logger.error({ plugin: account.plugin, err: (err as Error).message }, 'channel simulator failed to start');
    }
  }
  return started;
}
