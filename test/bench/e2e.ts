// End-to-end benchmark: payments created through the gateway (its own process, in front of the four channel
// simulators, each in its own process) against the same orders sent straight to the simulators by the channels'
// SDKs, a bare Koa app as the ceiling, and the irreducible work per payment measured in-process.
//
//   npm run -s bench -- --json   (-s keeps npm's banner off stdout)
//   npm run bench -- [--duration 5] [--rounds 3] [--connections 32] [--rate 500] [--rate-duration 5]
//                    [--sweep 100,200,300,400] [--warmup 10] [--channels wechatpay,alipay] [--cpu-prof <dir>] [--pin]
//
// --pin (Linux, taskset): the gateway on CPU 0 alone; the simulators, the Koa app and this process (load generators,
// SDKs) on CPU 1. It shows the gateway's latency without the stand-ins for the outside world preempting it, at the
// price of giving it one core. The direct SDK path then shares CPU 1 with its simulator.
//
// Throughput is closed-loop autocannon. Latency at a given rate is open-loop (pacedWindow in load.ts): requests
// at evenly spaced instants, latency counted from each one's due time; autocannon's overallRate sends bursts.
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import type { MerchantCredentials } from '../helpers/gateway.js';
import { signedPaymentRequest } from '../helpers/load.js';
import { CHANNELS, type ChannelName } from './channel-wire.js';
import { directClient, type DirectClient } from './direct-clients.js';
import { irreducibleCosts, medianCosts, type IrreducibleCosts } from './irreducible.js';
import { autocannonWindow, closedLoops, pacedCalls, pacedWindow, type LoadWindow } from './load.js';
import { ChildProcesses, firstJsonOnStdout, measureCpu, type Child } from './processes.js';
import { emit, flag, formatNumber, machine, median, numberOption, progress, round, stringOption, table } from './report.js';
import { CHANNEL_SETUP, checkChannelsServing, onboardMerchant, startGateway, startSimulator, type RunningGateway, type RunningSimulator } from './stack.js';
import { makeTempDir, removeTempDir } from './temp-dirs.js';

const settings = {
  json: flag('json'),
  durationS: numberOption('duration', 5),
  rounds: numberOption('rounds', 3),
  connections: numberOption('connections', 32),
  rate: numberOption('rate', 500),
  rateDurationS: numberOption('rate-duration', 5),
  sweep: rateList(stringOption('sweep') ?? '100,200,300,400'),
  // V8 keeps optimising the gateway's hot path for about 10 s of load on these 2 cores (--trace-opt); shorter, and the
  // first rounds pay for JIT compilation (about 6 % of the gateway's CPU with 2 s).
  warmupS: numberOption('warmup', 10),
  channels: channelList(stringOption('channels')),
  cpuProfileDir: stringOption('cpu-prof'),
  pin: flag('pin'),
};

const GOALS = { cpuRatio: 1.5, p99AtRateMs: 20 };

function rateList(option: string): number[] {
  const rates = option.split(',').filter(Boolean).map(Number);
  if (rates.some((r) => !Number.isFinite(r) || r <= 0)) throw new Error(`--sweep: expected positive request rates, got ${option}`);
  return rates;
}

function channelList(option: string | undefined): ChannelName[] {
  if (option === undefined) return [...CHANNELS];
  const names = option.split(',');
  const unknown = names.filter((n) => !CHANNELS.includes(n as ChannelName));
  if (unknown.length) throw new Error(`--channels: unknown ${unknown.join(', ')} (known: ${CHANNELS.join(', ')})`);
  return names as ChannelName[];
}

/** One load window and the CPU each process spent during it, per successful request. */
interface Measured {
  load: LoadWindow;
  /** ms of CPU per successful request, by process name. */
  cpuMsPerOk: Record<string, number>;
}

async function measured(pids: Record<string, number>, run: () => Promise<LoadWindow>): Promise<Measured> {
  const { result, cpuS } = await measureCpu(pids, run);
  const perOk = (s: number) => (result.ok > 0 ? (s * 1000) / result.ok : Number.NaN);
  return { load: result, cpuMsPerOk: Object.fromEntries(Object.entries(cpuS).map(([name, s]) => [name, perOk(s)])) };
}

function warnOnFailures(label: string, m: Measured): void {
  if (m.load.failed > 0) progress(`  ${label}: ${m.load.failed} failed (${m.load.failure})`);
}

// ---------------------------------------------------------------- summaries

interface WindowFigures {
  req_per_s: number;
  p50_ms: number;
  p99_ms: number;
  failed: number;
  /** CPU ms per successful request of each process involved. */
  cpu_ms_per_req: Record<string, number>;
}

/** Medians over the rounds (failed: the total), and each round's own figures. */
interface PathSummary extends WindowFigures {
  rounds: WindowFigures[];
}

function figures(w: Measured): WindowFigures {
  return {
    req_per_s: round(w.load.okPerSec), p50_ms: round(w.load.p50Ms), p99_ms: round(w.load.p99Ms), failed: w.load.failed,
    cpu_ms_per_req: Object.fromEntries(Object.entries(w.cpuMsPerOk).map(([name, v]) => [name, round(v)])),
  };
}

function summarise(windows: Measured[]): PathSummary {
  const names = Object.keys(windows[0]!.cpuMsPerOk);
  return {
    req_per_s: round(median(windows.map((w) => w.load.okPerSec))),
    p50_ms: round(median(windows.map((w) => w.load.p50Ms))),
    p99_ms: round(median(windows.map((w) => w.load.p99Ms))),
    failed: windows.reduce((n, w) => n + w.load.failed, 0),
    cpu_ms_per_req: Object.fromEntries(names.map((n) => [n, round(median(windows.map((w) => w.cpuMsPerOk[n]!)))])),
    rounds: windows.map(figures),
  };
}

/** Median over rounds of a ratio taken inside each round (both sides measured back to back). */
function roundRatio(gateway: Measured[], direct: Measured[], pick: (g: LoadWindow, d: LoadWindow) => number): number {
  return round(median(gateway.map((g, i) => pick(g.load, direct[i]!.load))));
}

// ---------------------------------------------------------------- the phases

interface Stack {
  simulators: Map<ChannelName, RunningSimulator>;
  gateway: RunningGateway;
  merchant: MerchantCredentials;
  koa: { url: string; child: Child };
}

async function startStack(children: ChildProcesses, dataDir: string): Promise<Stack> {
  progress(`starting the simulators (corbel simulate … --data-dir ${dataDir})`);
  const started = await Promise.all(CHANNELS.map((channel) => startSimulator(children, channel, dataDir)));
  const simulators = new Map(started.map((s) => [s.channel, s]));
  progress('starting the gateway (corbel serve) and the Koa ceiling app');
  const nodeFlags = settings.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${settings.cpuProfileDir}`] : [];
  const gateway = await startGateway(children, dataDir, nodeFlags);
  await checkChannelsServing(gateway.url);
  const merchant = await onboardMerchant(gateway.url);
  const koaChild = children.spawnNode('koa hello', ['dist/test/bench/koa-hello.js']);
  const koa = { url: (await firstJsonOnStdout<{ url: string }>(koaChild)).url, child: koaChild };
  if (settings.pin) {
    if (availableParallelism() < 2) throw new Error('--pin needs at least 2 CPUs');
    pinToCpu(gateway.child.pid, 0);
    for (const pid of [process.pid, koaChild.pid, ...started.map((s) => s.child.pid)]) pinToCpu(pid, 1);
    progress('pinned: the gateway on CPU 0; the simulators, the Koa app and the load generators on CPU 1');
  }
  return { simulators, gateway, merchant, koa };
}

/** Every thread of the process onto one CPU (taskset -a), or a clear error when that cannot be done here. */
function pinToCpu(pid: number, cpu: number): void {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
  } catch (err) {
    throw new Error(`--pin: taskset failed for pid ${pid} (${(err as Error).message}); is util-linux installed?`);
  }
}

async function measureCeiling(stack: Stack): Promise<PathSummary> {
  progress(`ceiling: bare Koa, ${settings.rounds} × ${settings.durationS} s, ${settings.connections} connections`);
  // The same signed create-payment requests as the gateway gets, so that the bytes on the wire match.
  const setupRequest = signedPaymentRequest(stack.merchant, 'wechat.native', 1000, 'koa');
  await autocannonWindow(stack.koa.url, { durationS: 1, connections: settings.connections, setupRequest });
  const windows: Measured[] = [];
  for (let r = 0; r < settings.rounds; r++) {
    windows.push(await measured({ koa: stack.koa.child.pid, client: process.pid }, () => autocannonWindow(stack.koa.url, { durationS: settings.durationS, connections: settings.connections, setupRequest })));
  }
  return summarise(windows);
}

interface ChannelResult {
  channel: ChannelName;
  pay_method: string;
  baseline: string;
  gateway: PathSummary;
  direct: PathSummary;
  /** SDK req/s ÷ gateway req/s, and gateway latency ÷ direct latency, per round, median. */
  overhead: { throughput_ratio: number; p50_ratio: number; p99_ratio: number };
  fixed_rate: PathSummary & { target_req_per_s: number; direct: WindowFigures };
  /** The same open-loop measurement at lower rates: where the latency goal still holds. */
  sweep: Array<WindowFigures & { target_req_per_s: number; direct: WindowFigures }>;
}

async function measureChannel(stack: Stack, channel: ChannelName): Promise<ChannelResult> {
  const { payMethod } = CHANNEL_SETUP[channel];
  const simulator = stack.simulators.get(channel)!;
  const client: DirectClient = directClient(channel, simulator.credentials, settings.connections);
  const setupRequest = signedPaymentRequest(stack.merchant, payMethod, 1000, `bench-${channel}`);
  const gatewayPids = { gateway: stack.gateway.child.pid, simulator: simulator.child.pid, client: process.pid };
  const directPids = { simulator: simulator.child.pid, client: process.pid };
  const viaGateway = (extra: { durationS: number }) =>
    measured(gatewayPids, () => autocannonWindow(`${stack.gateway.url}/v1/payments`, { connections: settings.connections, setupRequest, ...extra }));
  const pacedViaGateway = (ratePerS: number) =>
    measured(gatewayPids, () => pacedWindow(`${stack.gateway.url}/v1/payments`, { ratePerS, durationS: settings.rateDurationS, setupRequest }));
  const pacedDirect = (ratePerS: number) => measured(directPids, () => pacedCalls(() => client.createOrder(), { ratePerS, durationS: settings.rateDurationS }));
  const direct = (durationS: number) => measured(directPids, () => closedLoops(() => client.createOrder(), { concurrency: settings.connections, durationS }));
  try {
    progress(`${channel}: warm-up ${settings.warmupS} s through the gateway, ${settings.warmupS / 2} s direct`);
    warnOnFailures('warm-up via gateway', await viaGateway({ durationS: settings.warmupS }));
    warnOnFailures('warm-up direct', await direct(settings.warmupS / 2));
    const gatewayWindows: Measured[] = [];
    const directWindows: Measured[] = [];
    for (let r = 0; r < settings.rounds; r++) {
      progress(`${channel}: round ${r + 1}/${settings.rounds}: ${settings.durationS} s via the gateway, ${settings.durationS} s via ${client.kind.split(' ')[0]}`);
      // Alternate the order so that drift on a noisy machine does not favour one side.
      let gatewayWindow: Measured;
      let directWindow: Measured;
      if (r % 2 === 0) {
        gatewayWindow = await viaGateway({ durationS: settings.durationS });
        directWindow = await direct(settings.durationS);
      } else {
        directWindow = await direct(settings.durationS);
        gatewayWindow = await viaGateway({ durationS: settings.durationS });
      }
      warnOnFailures('via gateway', gatewayWindow);
      warnOnFailures('direct', directWindow);
      gatewayWindows.push(gatewayWindow);
      directWindows.push(directWindow);
    }
    const sweep: ChannelResult['sweep'] = [];
    const paced = async (rate: number) => {
      progress(`${channel}: paced ${rate} req/s for ${settings.rateDurationS} s via the gateway, then direct`);
      const gateway = await pacedViaGateway(rate);
      warnOnFailures(`paced ${rate} via gateway`, gateway);
      const direct = await pacedDirect(rate);
      warnOnFailures(`paced ${rate} direct`, direct);
      return { gateway, direct };
    };
    for (const rate of settings.sweep) {
      const { gateway, direct } = await paced(rate);
      sweep.push({ ...figures(gateway), target_req_per_s: rate, direct: figures(direct) });
    }
    const { gateway: atRate, direct: directAtRate } = await paced(settings.rate);
    return {
      channel, pay_method: payMethod, baseline: client.kind,
      gateway: summarise(gatewayWindows),
      direct: summarise(directWindows),
      overhead: {
        throughput_ratio: roundRatio(gatewayWindows, directWindows, (g, d) => d.okPerSec / g.okPerSec),
        p50_ratio: roundRatio(gatewayWindows, directWindows, (g, d) => g.p50Ms / d.p50Ms),
        p99_ratio: roundRatio(gatewayWindows, directWindows, (g, d) => g.p99Ms / d.p99Ms),
      },
      fixed_rate: { ...summarise([atRate]), target_req_per_s: settings.rate, direct: figures(directAtRate) },
      sweep,
    };
  } finally {
    client.close();
  }
}

interface CpuBudget {
  /** Medians over the measurements taken before each channel; sum_range_cpu_ms is the spread of their sums. */
  irreducible: IrreducibleCosts & { koa_request_cpu_ms: number; sum_cpu_ms: number; sum_range_cpu_ms: [number, number]; measurements: IrreducibleCosts[]; sum_formula: string };
  /**
   * ratio: CPU per payment in the closed-loop autocannon runs (the throughput runs the issue reports CPU for);
   * ratio_at_rate: at the paced target rate, where a load that is not saturating costs more per payment.
   */
  per_channel: Array<{ channel: ChannelName; gateway_cpu_ms_per_payment: number; ratio: number; gateway_cpu_ms_at_rate: number; ratio_at_rate: number; p99_at_rate_ms: number; rate_sustained: boolean; cpu_goal_met: boolean; p99_goal_met: boolean }>;
}

function cpuBudget(samples: IrreducibleCosts[], ceiling: PathSummary, channels: ChannelResult[]): CpuBudget {
  const koa = ceiling.cpu_ms_per_req.koa!;
  const sumOf = (c: IrreducibleCosts) => 2 * c.rsa_sign_cpu_ms + c.sqlite_insert_cpu_ms + koa;
  const costs = medianCosts(samples);
  const sum = sumOf(costs);
  const sums = samples.map(sumOf);
  return {
    irreducible: {
      ...costs, koa_request_cpu_ms: koa, sum_cpu_ms: round(sum), sum_range_cpu_ms: [round(Math.min(...sums)), round(Math.max(...sums))],
      measurements: samples, sum_formula: '2 × rsa_sign + sqlite_insert + koa_request',
    },
    per_channel: channels.map((c) => {
      const cpu = c.gateway.cpu_ms_per_req.gateway!;
      const ratio = round(cpu / sum);
      return {
        channel: c.channel, gateway_cpu_ms_per_payment: cpu, ratio,
        gateway_cpu_ms_at_rate: c.fixed_rate.cpu_ms_per_req.gateway!,
        ratio_at_rate: round(c.fixed_rate.cpu_ms_per_req.gateway! / sum),
        p99_at_rate_ms: c.fixed_rate.p99_ms,
        rate_sustained: c.fixed_rate.req_per_s >= 0.95 * settings.rate,
        cpu_goal_met: ratio <= GOALS.cpuRatio,
        p99_goal_met: c.fixed_rate.p99_ms < GOALS.p99AtRateMs && c.fixed_rate.req_per_s >= 0.95 * settings.rate,
      };
    }),
  };
}

// ---------------------------------------------------------------- output

const ms = (v: number | undefined) => formatNumber(v ?? Number.NaN);

function throughputTable(ceiling: PathSummary, channels: ChannelResult[]): string {
  const rows: string[][] = [['ceiling', 'bare Koa "hello"', formatNumber(ceiling.req_per_s), ms(ceiling.p50_ms), ms(ceiling.p99_ms), `koa ${ms(ceiling.cpu_ms_per_req.koa)}`, '—', ms(ceiling.cpu_ms_per_req.client)]];
  for (const c of channels) {
    rows.push([c.channel, `gateway ${c.pay_method}`, formatNumber(c.gateway.req_per_s), ms(c.gateway.p50_ms), ms(c.gateway.p99_ms), `gateway ${ms(c.gateway.cpu_ms_per_req.gateway)}`, ms(c.gateway.cpu_ms_per_req.simulator), ms(c.gateway.cpu_ms_per_req.client)]);
    rows.push([c.channel, `direct: ${c.baseline.split(' (')[0]}`, formatNumber(c.direct.req_per_s), ms(c.direct.p50_ms), ms(c.direct.p99_ms), '—', ms(c.direct.cpu_ms_per_req.simulator), ms(c.direct.cpu_ms_per_req.client)]);
  }
  return table(['channel', 'path', 'req/s', 'p50 ms', 'p99 ms', 'server CPU ms/req', 'simulator CPU ms/req', 'client CPU ms/req'], rows);
}

function overheadTable(channels: ChannelResult[]): string {
  return table(['channel', 'direct req/s ÷ gateway req/s', 'gateway p50 ÷ direct p50', 'gateway p99 ÷ direct p99'], channels.map((c) => [
    c.channel, formatNumber(c.overhead.throughput_ratio, '×'), formatNumber(c.overhead.p50_ratio, '×'), formatNumber(c.overhead.p99_ratio, '×'),
  ]));
}

function fixedRateTable(channels: ChannelResult[]): string {
  const rows: string[][] = [];
  for (const c of channels) {
    for (const w of [...c.sweep, c.fixed_rate]) {
      const met = w.p99_ms < GOALS.p99AtRateMs && w.req_per_s >= 0.95 * w.target_req_per_s;
      rows.push([c.channel, String(w.target_req_per_s), formatNumber(w.req_per_s), ms(w.p50_ms), ms(w.p99_ms), String(w.failed), ms(w.cpu_ms_per_req.gateway), ms(w.cpu_ms_per_req.simulator), met ? 'yes' : 'NO', ms(w.direct.p50_ms), ms(w.direct.p99_ms)]);
    }
  }
  return table(['channel', 'target req/s', 'achieved req/s', 'p50 ms', 'p99 ms', 'failed', 'gateway CPU ms/payment', 'simulator CPU ms/req', `p99 < ${GOALS.p99AtRateMs} ms`, 'direct p50 ms', 'direct p99 ms'], rows);
}

function budgetTables(budget: CpuBudget): string {
  const i = budget.irreducible;
  const parts = table(['irreducible work per payment', 'CPU ms'], [
    ['RSA-2048 sign (node:crypto) × 2', `${ms(i.rsa_sign_cpu_ms)} × 2`],
    ['durable sqlite insert (WAL, synchronous=FULL, autocommit)', ms(i.sqlite_insert_cpu_ms)],
    ['Koa request (ceiling run, server CPU)', ms(i.koa_request_cpu_ms)],
    ['sum', ms(i.sum_cpu_ms)],
    [`sum, lowest – highest of the ${i.measurements.length} measurements`, `${ms(i.sum_range_cpu_ms[0])} – ${ms(i.sum_range_cpu_ms[1])}`],
  ]);
  const ratios = table(['channel', 'gateway CPU ms/payment (closed loop)', '÷ irreducible', `≤ ${GOALS.cpuRatio}×`, `at ${settings.rate} req/s paced: CPU ms/payment`, `at ${settings.rate} req/s: ÷ irreducible`], budget.per_channel.map((c) => [
    c.channel, ms(c.gateway_cpu_ms_per_payment), formatNumber(c.ratio, '×'), c.cpu_goal_met ? 'yes' : 'NO', ms(c.gateway_cpu_ms_at_rate), formatNumber(c.ratio_at_rate, '×'),
  ]));
  return `${parts}\n\n${ratios}`;
}

function report(ceiling: PathSummary, channels: ChannelResult[], budget: CpuBudget): string {
  const closed = `closed loop, ${settings.connections} connections / concurrent loops, median of ${settings.rounds} rounds of ${settings.durationS} s`;
  return [
    `Throughput and latency (${closed}; CPU = process CPU time ÷ successful requests)`, throughputTable(ceiling, channels), '',
    'Gateway overhead (ratios taken within each round, then the median)', overheadTable(channels), '',
    `Fixed rates (open loop: evenly spaced requests, latency from each one's due time; ${settings.rateDurationS} s per rate)`, fixedRateTable(channels), '',
    'CPU per payment against the irreducible work (in-process; medians of the measurements taken before each channel)', budgetTables(budget),
  ].join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const children = new ChildProcesses();
  const dataDir = makeTempDir('corbel-bench-e2e-');
  try {
    const stack = await startStack(children, dataDir);
    const ceiling = await measureCeiling(stack);
    const channels: ChannelResult[] = [];
    // Measured again before each channel, with the gateway idle, so the denominator sees the machine as the run does.
    const costSamples: IrreducibleCosts[] = [];
    for (const channel of settings.channels) {
      progress(`irreducible work, in-process (before ${channel})`);
      costSamples.push(await irreducibleCosts(5));
      channels.push(await measureChannel(stack, channel));
    }
    const budget = cpuBudget(costSamples, ceiling, channels);
    const result = {
      bench: 'e2e', machine: machine(),
      settings: { duration_s: settings.durationS, rounds: settings.rounds, connections: settings.connections, rate: settings.rate, rate_duration_s: settings.rateDurationS, sweep: settings.sweep, warmup_s: settings.warmupS, pinned: settings.pin },
      goals: { cpu_ratio_max: GOALS.cpuRatio, p99_at_rate_ms_max: GOALS.p99AtRateMs },
      ceiling, channels, cpu_budget: budget,
    };
    const pinned = settings.pin ? 'Pinned (--pin): the gateway alone on CPU 0; the simulators, the Koa app and the load generators on CPU 1.\n\n' : '';
    emit(settings.json, result, pinned + report(ceiling, channels, budget));
  } finally {
    progress('stopping the child processes');
    await children.stopAll();
    removeTempDir(dataDir);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
