import 'reflect-metadata';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, defaultConfigPath, loadConfig, type LoadedConfig } from '../core/config/load.js';
import { Store } from '../core/store/index.js';
import { migrate } from '../core/store/migrations.js';
import { SqliteDatabase } from '../core/store/sqlite.js';
import { MerchantService, type MerchantAction } from '../core/merchants/service.js';
import { verifyLedger } from '../core/ledger/verify.js';
import { appToApi, merchantToApi } from '../core/payments/present.js';
import { ApiError } from '../core/errors.js';
import { Gateway, readSimulatorCredentials, seedDailyUsage } from '../core/kernel/gateway.js';
import { buildSnapshot, unservedAccounts, type AccountEntry, type ConfigSnapshot } from '../core/kernel/snapshot.js';
import { loadPlugin } from '../core/kernel/plugin-loader.js';
import { createLogger } from '../core/ops/logger.js';
import { Metrics } from '../core/ops/metrics.js';
import { RoutingState } from '../core/routing/state.js';
import { checkExplainRequest, explainInput, explainRoute } from '../core/routing/explain.js';
import { explainQuerySchema, parseInput, type ExplainQuery } from '../core/http/schemas.js';
import type { CompiledRouting } from '../core/routing/engine.js';
import type { ChannelPlugin } from '../core/contract/channel.js';

/**
 * With --json, whatever goes wrong is printed to stdout as one JSON object, `{"error":{"code","message",…}}`, and the
 * exit status stays non-zero: a script reading the output gets JSON either way. Commander's own usage errors included,
 * so it is read from the arguments rather than from a command's parsed options.
 */
const wantsJson = process.argv.slice(2).includes('--json');

const program = new Command();
program.name('corbel').description('Corbel: a self-hosted, plugin-based aggregated payment gateway').version('0.1.0')
  .option('-c, --config <path>', 'config file (env CORBEL_CONFIG)', defaultConfigPath())
  // Inherited by every command defined below: usage errors are thrown to the handler at the end, not exited on.
  .exitOverride()
  .configureOutput({ outputError: (text, write) => { if (!wantsJson) write(text); } });

function source(): LoadedConfig {
  return loadConfig(program.opts<{ config: string }>().config);
}

/** Opens the store; commands that only read it refuse a data dir that has none (a typo must not pass as "empty"). */
async function withStore<T>(fn: (store: Store, src: LoadedConfig) => Promise<T>, opts: { mustExist?: boolean } = {}): Promise<T> {
  const src = source();
  const path = join(src.dataDir, src.config.store.path);
  if (opts.mustExist && !existsSync(path)) throw new Error(`no store at ${path}: check --config and CORBEL_DATA_DIR`);
  const store = await Store.open(path);
  try {
    return await fn(store, src);
  } finally {
    await store.close();
  }
}

function print(json: boolean | undefined, value: unknown, human: () => string): void {
  console.log(json ? JSON.stringify(value, null, 2) : human());
}

program.command('serve').description('start the gateway (HTTP API, webhooks, poller; simulators in sandbox)')
  .option('-p, --port <port>', 'listen port (env CORBEL_PORT)')
  .action(async (opts: { port?: string }) => {
    const env = { ...process.env, ...(opts.port ? { CORBEL_PORT: opts.port } : {}) };
    const gateway = await Gateway.start({ configPath: program.opts<{ config: string }>().config, env });
    console.error(`corbel listening on ${gateway.url}${gateway.adminToken ? ` (admin token in ${join(gateway.runtime.current.source.dataDir, 'admin-token')} or your config)` : ''}`);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      gateway.logger.info({ signal }, 'shutting down');
      void gateway.stop().then(() => process.exit(0), () => process.exit(1));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

program.command('migrate').description('apply pending schema migrations to the store').option('--json')
  .action(async (opts: { json?: boolean }) => {
    const src = source();
    const db = await SqliteDatabase.open(join(src.dataDir, src.config.store.path));
    try {
      const result = await migrate(db);
      print(opts.json, result, () => (result.applied.length ? `applied ${result.applied.join(', ')} (schema ${result.to})` : `schema is up to date (${result.to})`));
    } finally {
      await db.close();
    }
  });

const config = program.command('config').description('configuration');
config.command('check').description('validate the config file and load every plugin it names').option('--json')
  .action(async (opts: { json?: boolean }) => {
    let src: LoadedConfig;
    try {
      src = source();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      print(opts.json, { ok: false, problems: err.problems }, () => `config invalid:\n  ${err.problems.join('\n  ')}`);
      process.exitCode = 1;
      return;
    }
    const snapshot = await inspectSnapshot(src);
    await snapshot.dispose();
    // Routing problems name their rule and field themselves (`routing.rules.2 (promo).targets.1: …`).
    const pluginProblems = snapshot.problems.filter((p) => p.kind !== 'routing').map((p) => `${p.name}: ${p.reason}`);
    const routingProblems = snapshot.problems.filter((p) => p.kind === 'routing').map((p) => p.reason);
    const problems = [...pluginProblems, ...routingProblems];
    const warnings = describedOnly(snapshot.accounts.values());
    const report = { ok: problems.length === 0, path: src.path, channels: [...snapshot.accounts.keys()], problems, plugin_problems: pluginProblems, routing_problems: routingProblems, warnings };
    print(opts.json, report, () => [
      problems.length ? `config ${src.path ?? '(defaults)'} is invalid:` : `config ${src.path ?? '(defaults)'} is valid: ${snapshot.accounts.size} channel account(s), ${snapshot.capabilities.length} capability(ies)`,
      ...(pluginProblems.length ? ['plugin problems:', ...pluginProblems.map((p) => `  ${p}`)] : []),
      ...(routingProblems.length ? ['routing problems:', ...routingProblems.map((p) => `  ${p}`)] : []),
      ...warnings.map((w) => `note: ${w}`),
    ].join('\n'));
    if (problems.length) process.exitCode = 1;
  });

/**
 * The config's snapshot, built to be inspected and never served: a sandbox account whose simulator has issued no
 * credentials yet (a fresh data dir: `corbel serve` starts the simulators) is described from its plugin's manifest
 * rather than failing, so checking and explaining work before the gateway has ever run.
 */
function inspectSnapshot(src: LoadedConfig): Promise<ConfigSnapshot> {
  return buildSnapshot(0, src, {
    logger: createLogger('silent'), metrics: new Metrics({ defaultMetrics: false }), publicUrl: src.config.server.public_url ?? 'http://localhost',
    simulators: readSimulatorCredentials(src), routingState: new RoutingState(), describeWithoutSimulator: true,
  });
}

/** `channels.<name>: …` for each account described from its manifest instead of instantiated. */
function describedOnly(accounts: Iterable<AccountEntry>): string[] {
  return [...accounts].filter((a) => a.describedOnly).map((a) => `channels.${a.name}: ${a.describedOnly}`);
}

/**
 * A flag given more than once keeps every value, so the shared checks refuse it as the API refuses a repeated query
 * parameter (`--amount: give it once, as a single value`) instead of the last one silently winning.
 */
const everyValue = (value: string, previous: string | string[] | undefined): string | string[] => (previous === undefined ? value : [previous, value].flat());

const route = program.command('route').description('the routing table');
route.command('explain').description('which rule matches a payment, the accounts it would try in order, and why')
  .requiredOption('--pay-method <method>', 'pay method', everyValue).requiredOption('--amount <fen>', 'amount in minor units (digits only)', everyValue)
  .option('--currency <code>', 'currency (one of api.currencies; default CNY)', everyValue)
  .option('--merchant <id>', 'merchant id; tags and bindings are read from the store when it has the merchant', everyValue).option('--app <id>', 'app id', everyValue)
  .option('--client-ip <ip>', 'payer IP, for payer_region rules (IPv4, or IPv4-mapped IPv6)', everyValue)
  .option('--metadata <k=v,...>', 'metadata pairs, split at the first "="; repeatable', (value: string, previous: string[]) => [...previous, ...value.split(',').filter(Boolean)], [] as string[])
  .option('--json')
  .action(async (opts: { payMethod: string | string[]; amount: string | string[]; currency?: string | string[]; merchant?: string | string[]; app?: string | string[]; clientIp?: string | string[]; metadata: string[]; json?: boolean }) => {
    const src = source();
    const snapshot = await inspectSnapshot(src);
    try {
      const routingProblems = snapshot.problems.filter((p) => p.kind === 'routing');
      if (routingProblems.length) throw new ConfigError(routingProblems.map((p) => p.reason));
      const unserved = unservedAccounts(snapshot.accounts);
      const q = inFlagTerms(() => {
        // The same checks as GET /admin/routing/explain, so the CLI and the API accept and refuse the same requests.
        const parsed = parseInput(explainQuerySchema, { pay_method: opts.payMethod, amount: opts.amount, currency: opts.currency, merchant: opts.merchant, app: opts.app, client_ip: opts.clientIp, metadata: opts.metadata });
        checkExplainRequest(snapshot.routing, src.config.api, parsed, unserved);
        return parsed;
      });
      const facts = await storeFacts(src, snapshot.routing, q.merchant);
      const explained = explainRoute(snapshot.routing, explainInput(q, facts.merchant, facts.bindings), {
        merchantFound: !q.merchant || facts.merchant !== undefined, unserved: new Map(unserved.map((a) => [a.name, a])),
      });
      const targets = new Set(explained.targets.map((t) => t.account));
      explained.warnings.push(...describedOnly([...snapshot.accounts.values()].filter((a) => targets.has(a.name))));
      const state = offlineState(q, q.currency !== 'CNY', facts.usageCounted ? 'counted from the store' : `not counted (no store at ${storePath(src)})`);
      print(opts.json, { ...explained, state }, () => [
        explained.summary,
        ...explained.targets.map((t) => `  ${t.usable ? '✓' : '✗'} ${t.account}: ${t.reason}${t.cost !== undefined ? `, cost ${t.cost}` : ''}${t.weight !== undefined ? `, weight ${t.weight}` : ''}${t.success_rate !== undefined ? `, success ${t.success_rate ?? 'n/a'}` : ''}`),
        ...explained.warnings.map((w) => `note: ${w}`),
        `note: ${state.note}`,
      ].join('\n'));
    } finally {
      await snapshot.dispose();
    }
  });

/** Runs the shared explain checks and words their errors as the CLI's flags: `--amount: must be …`, not `amount: must be …`. */
function inFlagTerms<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (!(err instanceof ApiError) || !err.param) throw err;
    const message = err.message.startsWith(`${err.param}: `) ? err.message.slice(err.param.length + 2) : err.message;
    const option = `--${err.param.replace(/_/g, '-')}`;
    throw new FlagError(err.code, `${option}: ${message}`, err.param, option);
  }
}

/** A refused flag value, worded as the flag; keeps the API's error code and parameter for --json. */
class FlagError extends Error {
  constructor(readonly code: string, message: string, readonly param: string, readonly option: string) {
    super(message);
    this.name = 'FlagError';
  }
}

function storePath(src: LoadedConfig): string {
  return join(src.dataDir, src.config.store.path);
}

/**
 * What the store knows, when there is one (a missing store is not created just to look): the merchant's record and
 * bindings (none when it lacks the merchant), and today's usage of each account, seeded into the explanation's
 * routing state as the gateway does at start, so daily limits are judged as a payment now would be.
 */
async function storeFacts(src: LoadedConfig, routing: CompiledRouting, merchantId: string | undefined): Promise<{ merchant?: { tags: string[] }; bindings: string[]; usageCounted: boolean }> {
  if (!existsSync(storePath(src))) return { bindings: [], usageCounted: false };
  return withStore(async (store) => {
    await seedDailyUsage(store, routing, (name) => routing.accounts[routing.accountIndex.get(name) ?? -1]?.state);
    const merchant = merchantId ? await store.merchants.get(store.reads, merchantId) : undefined;
    if (!merchant) return { bindings: [], usageCounted: true };
    return { merchant, bindings: (await store.merchants.listBindings(store.reads, merchant.id)).map((b) => b.account), usageCounted: true };
  });
}

/**
 * The CLI explains from the config and the store alone: this process has seen no channel call, so every breaker is
 * closed and there are no success rates. Says so, and where the running gateway answers with its live state.
 */
function offlineState(q: ExplainQuery, withCurrency: boolean, dailyUsage: string): { live: false; daily_usage: string; live_endpoint: string; note: string } {
  const query = new URLSearchParams({ pay_method: q.pay_method, amount: String(q.amount) });
  if (withCurrency) query.set('currency', q.currency);
  if (q.merchant) query.set('merchant', q.merchant);
  if (q.app) query.set('app', q.app);
  if (q.client_ip) query.set('client_ip', q.client_ip);
  for (const [key, value] of Object.entries(q.metadata)) query.append('metadata', `${key}=${value}`);
  const endpoint = `GET /admin/routing/explain?${query.toString()}`;
  return {
    live: false, daily_usage: dailyUsage, live_endpoint: endpoint,
    note: `explained offline: breakers shown closed and no success rates (this process saw no channel calls), daily usage ${dailyUsage}; the running gateway's live state: ${endpoint} (admin token)`,
  };
}

const merchant = program.command('merchant').description('merchants: onboarding and review');
merchant.command('create').requiredOption('--name <name>').option('--tags <tags>', 'comma-separated').option('--fee-rate-bps <bps>').option('--json')
  .action((opts: { name: string; tags?: string; feeRateBps?: string; json?: boolean }) => withStore(async (store, src) => {
    const m = await new MerchantService(store, () => src.config.fees.default_rate_bps).create({
      name: opts.name, tags: opts.tags?.split(',').filter(Boolean), fee_rate_bps: opts.feeRateBps === undefined ? undefined : Number(opts.feeRateBps),
    });
    print(opts.json, merchantToApi(m), () => `${m.id} ${m.status} ${m.name}`);
  }));
for (const action of ['approve', 'reject', 'suspend'] as MerchantAction[]) {
  merchant.command(`${action} <id>`).option('--reason <reason>').option('--json')
    .action((id: string, opts: { reason?: string; json?: boolean }) => withStore(async (store, src) => {
      const m = await new MerchantService(store, () => src.config.fees.default_rate_bps).review(id, action, opts.reason);
      print(opts.json, merchantToApi(m), () => `${m.id} ${m.status}`);
    }));
}
merchant.command('list').addOption(new Option('--status <status>').choices(['pending_review', 'active', 'rejected', 'suspended'])).option('--json')
  .action((opts: { status?: 'active'; json?: boolean }) => withStore(async (store, src) => {
    const list = await new MerchantService(store, () => src.config.fees.default_rate_bps).list(opts.status);
    print(opts.json, list.map(merchantToApi), () => list.map((m) => `${m.id}\t${m.status}\t${m.name}`).join('\n') || '(no merchants)');
  }));

const app = program.command('app').description('merchant apps and their keys');
app.command('create').requiredOption('--merchant <id>').addOption(new Option('--auth <type>').choices(['hmac', 'rsa']).default('hmac'))
  .option('--public-key-file <path>', 'RSA public key PEM (otherwise a key pair is generated)').option('--notify-url <url>').option('--json')
  .action((opts: { merchant: string; auth: 'hmac' | 'rsa'; publicKeyFile?: string; notifyUrl?: string; json?: boolean }) => withStore(async (store, src) => {
    const created = await new MerchantService(store, () => src.config.fees.default_rate_bps).createApp(opts.merchant, {
      auth_type: opts.auth, public_key: opts.publicKeyFile ? readFileSync(opts.publicKeyFile, 'utf8') : undefined, notify_url: opts.notifyUrl,
    });
    const out = { ...appToApi(created.app), secret: created.secret, private_key: created.private_key };
    print(opts.json, out, () => `${created.app.id} (${created.app.authType})\n${created.secret ? `secret: ${created.secret}` : created.private_key ? created.private_key : 'public key registered'}\nshown once: store it now`);
  }));

const webhook = program.command('webhook').description('merchant webhooks');
webhook.command('redeliver <event_id>').description('queue an event for delivery again now').option('--json')
  .action((id: string, opts: { json?: boolean }) => withStore(async (store) => {
    const ok = await store.transaction((tx) => store.webhooks.redeliver(tx, id, Date.now()));
    if (!ok) throw new ApiError('event_not_found', `no event ${id} with a notify URL`);
    print(opts.json, { ok: true, event_id: id }, () => `${id} queued for redelivery`);
  }));

const ledger = program.command('ledger').description('the double-entry ledger');
ledger.command('verify').description('check every journal balances and the balances match the payments').option('--json')
  .action((opts: { json?: boolean }) => withStore(async (store) => {
    const report = await verifyLedger(store);
    print(opts.json, report, () => report.ok ? `ledger ok: ${report.journals} journals balance and match the payments and refunds` : `ledger NOT ok:\n  ${report.problems.join('\n  ')}`);
    if (!report.ok) process.exitCode = 1;
  }, { mustExist: true }));

program.command('simulate <channel>').description('run one channel simulator on its own').option('-p, --port <port>', 'port', '0').option('--data-dir <dir>', 'key material directory', './data')
  .action(async (channel: string, opts: { port: string; dataDir: string }) => {
    const plugin = (await loadPlugin(channel, {}, process.cwd())) as ChannelPlugin;
    if (!plugin.sandbox) throw new Error(`plugin ${channel} ships no simulator`);
    const sim = await plugin.sandbox.startSimulator({ dataDir: opts.dataDir, port: Number(opts.port) });
    console.log(JSON.stringify({ channel, url: sim.url, credentials: join(opts.dataDir, 'simulators', channel, 'credentials.json') }, null, 2));
    process.on('SIGINT', () => void sim.close().then(() => process.exit(0)));
    process.on('SIGTERM', () => void sim.close().then(() => process.exit(0)));
  });

/** An error as the JSON object --json prints. */
function errorJson(err: unknown): { error: Record<string, unknown> } {
  if (err instanceof FlagError) return { error: { code: err.code, message: err.message, param: err.param, option: err.option } };
  if (err instanceof ConfigError) return { error: { code: 'config_invalid', message: 'invalid config', problems: err.problems } };
  if (err instanceof ApiError) return { error: { code: err.code, message: err.message, param: err.param ?? null } };
  if (err instanceof CommanderError) return { error: { code: 'invalid_usage', message: err.message.replace(/^error: /, '') } };
  return { error: { code: 'command_failed', message: err instanceof Error ? err.message : String(err) } };
}

program.parseAsync().catch((err: unknown) => {
  // --help and --version end here too (exitOverride), successfully.
  if (err instanceof CommanderError && err.exitCode === 0) process.exit(0);
  if (wantsJson) console.log(JSON.stringify(errorJson(err), null, 2));
  else if (err instanceof CommanderError) { /* commander has printed it */ }
  else if (err instanceof ConfigError) console.error(err.message);
  else if (err instanceof ApiError) console.error(`${err.code}: ${err.message}`);
  else console.error(err instanceof Error ? err.message : err);
  process.exit(err instanceof CommanderError ? err.exitCode : 1);
});
