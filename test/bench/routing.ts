/**
 * Routing benchmark: decisions per second and per-decision latency for tables of 10 to 10,000
 * rules, heap growth and bytes allocated per million decisions, and a hot reload of the table under HTTP load.
 *   npm run bench:routing            a table on stdout
 *   npm run bench:routing -- --json  one JSON object
 */
import { compile, syntheticTable } from '../routing/table.js';
import { startGateway, activeMerchant, fixtureConfig, admin } from '../helpers/gateway.js';
import { runLoad, signedPaymentRequest } from '../helpers/load.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { bytesAllocatedUnder } from '../helpers/heap-sampler.js';

const json = process.argv.includes('--json');
const log = (...args: unknown[]) => console.error(...args);
const SIZES = [10, 100, 1_000, 10_000];
const ROUNDS = 7;
const DECISIONS_PER_ROUND = 1_000_000;
const gc = (globalThis as { gc?: () => void }).gc;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface Prepared {
  n: number;
  routing: ReturnType<typeof compile>['routing'];
  inputs: ReturnType<ReturnType<typeof syntheticTable>['inputs']>;
  compileMs: number;
  opsPerSec: number[];
}

let sink = 0;

function prepare(n: number): Prepared {
  const { routing: table, accounts, inputs: draw } = syntheticTable(n);
  const compileStart = performance.now();
  const { routing, problems } = compile(table, accounts);
  const compileMs = performance.now() - compileStart;
  if (problems.length) throw new Error(`table of ${n} has problems: ${problems.slice(0, 3).join('; ')}`);
  const inputs = draw(4_096);
  for (let i = 0; i < 300_000; i++) sink += routing.decide(inputs[i & 4_095]!).count;
  return { n, routing, inputs, compileMs, opsPerSec: [] };
}

function round(p: Prepared): void {
  const { routing, inputs } = p;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < DECISIONS_PER_ROUND; i++) sink += routing.decide(inputs[i & 4_095]!).count;
  p.opsPerSec.push(DECISIONS_PER_ROUND / (Number(process.hrtime.bigint() - t0) / 1e9));
}

function latencyAndHeap(p: Prepared) {
  const { routing, inputs } = p;
  // Per-decision latency: time each of 200k decisions, minus the cost of an empty timing pair.
  const samples = new Float64Array(200_000);
  let overhead = Infinity;
  for (let i = 0; i < 10_000; i++) {
    const a = process.hrtime.bigint();
    overhead = Math.min(overhead, Number(process.hrtime.bigint() - a));
  }
  for (let i = 0; i < samples.length; i++) {
    const a = process.hrtime.bigint();
    sink += routing.decide(inputs[i & 4_095]!).count;
    samples[i] = Math.max(0, Number(process.hrtime.bigint() - a) - overhead);
  }
  samples.sort();
  let heapGrowth: number | null = null;
  if (gc) {
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 1_000_000; i++) sink += routing.decide(inputs[i & 4_095]!).count;
    gc();
    gc();
    heapGrowth = Math.max(0, process.memoryUsage().heapUsed - before);
  }
  return {
    ops_per_s: Math.round(median(p.opsPerSec)),
    p50_ns: Math.round(samples[Math.floor(samples.length * 0.5)]!),
    p99_ns: Math.round(samples[Math.floor(samples.length * 0.99)]!),
    heap_growth_bytes_per_million: heapGrowth,
    allocated_bytes_per_million: 0,
    compile_ms: Math.round(p.compileMs),
  };
}

/**
 * Bytes allocated under decide() during a million decisions, garbage included: heap growth is measured between forced
 * GCs, so it shows only what is retained and would read 0 B for any amount of short-lived garbage. Counted by V8's
 * sampling heap profiler (one sample per 256 bytes on average, collected objects kept in the profile).
 */
function allocatedPerMillion(p: Prepared): Promise<number> {
  const { routing, inputs } = p;
  return bytesAllocatedUnder('decide', 256, () => {
    for (let i = 0; i < 1_000_000; i++) sink += routing.decide(inputs[i & 4_095]!).count;
  });
}

async function reloadUnderLoad() {
  const env = await startGateway(fixtureConfig(`  backup:
    plugin: fixture
    sandbox: true
    config: { secret: backup-secret-1 }
routing:
  rules:
    - name: main
      match: { pay_method: fixture.* }
      targets: [fixture_main, backup]
`));
  try {
    const creds = await activeMerchant(env.gw);
    const original = readFileSync(env.configPath, 'utf8');
    const variants = [original, original.replace('targets: [fixture_main, backup]', 'targets: [backup, fixture_main]')];
    let reloads = 0;
    let failedReloads = 0;
    let stop = false;
    const reloader = (async () => {
      while (!stop) {
        writeFileSync(env.configPath, variants[reloads % 2]!);
        if ((await admin(env.gw, 'POST', '/admin/config/reload')).status !== 200) failedReloads++;
        reloads++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const result = await runLoad(env.gw.url, { durationS: 5, connections: 16, setupRequest: signedPaymentRequest(creds, 'fixture.qr') });
    stop = true;
    await reloader;
    return { duration_s: 5, connections: 16, requests: result.requests, ok: result.ok, failed: result.non2xx + result.errors + result.timeouts, reloads, failed_reloads: failedReloads, req_per_s: Math.round(result.reqPerSec), p99_ms: result.p99 };
  } finally {
    await env.close();
  }
}

log(`compiling tables of ${SIZES.join(', ')} rules…`);
const prepared = SIZES.map(prepare);
// Rounds interleave the sizes, so drift on a noisy machine hits every size alike.
for (let r = 0; r < ROUNDS; r++) {
  log(`round ${r + 1}/${ROUNDS}`);
  for (const p of prepared) round(p);
}
const results: Record<string, ReturnType<typeof latencyAndHeap>> = {};
for (const p of prepared) {
  results[String(p.n)] = latencyAndHeap(p);
  results[String(p.n)]!.allocated_bytes_per_million = await allocatedPerMillion(p);
}
if (sink === -1) log('unreachable');
log('hot reload under load…');
const reload = await reloadUnderLoad();
const slowdown = results['10000']!.ops_per_s ? results['10']!.ops_per_s / results['10000']!.ops_per_s : null;

if (json) {
  // Keyed by table size and nothing else, for CI to track; the rest of the report goes to stderr.
  console.log(JSON.stringify(results));
  log(JSON.stringify({ slowdown_10000_vs_10: slowdown, reload_under_load: reload, node: process.version }));
} else {
  console.log('| rules | decisions/s (median of 7 × 1M) | p50 ns | p99 ns | heap growth / 1M decisions | allocated / 1M decisions | compile ms |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|');
  for (const n of SIZES) {
    const r = results[String(n)]!;
    console.log(`| ${n} | ${r.ops_per_s.toLocaleString('en')} | ${r.p50_ns} | ${r.p99_ns} | ${r.heap_growth_bytes_per_million === null ? 'n/a (run with --expose-gc)' : `${r.heap_growth_bytes_per_million} B`} | ${r.allocated_bytes_per_million.toLocaleString('en')} B | ${r.compile_ms} |`);
  }
  console.log(`\n10,000 rules vs 10: ${slowdown?.toFixed(2)}× slower`);
  console.log(`hot reload under load: ${reload.reloads} reloads during ${reload.duration_s} s of ${reload.connections}-connection load, ${reload.requests} requests, ${reload.failed} failed, ${reload.failed_reloads} failed reloads, ${reload.req_per_s} req/s`);
}
