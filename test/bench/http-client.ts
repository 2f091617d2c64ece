// Channel-call client cost: CPU per keep-alive POST for the kernel's executor (KernelChannelHttp, on undici), got
// configured as the executor first was (retries, redirects and errors off, keep-alive agent, timeouts) and bare
// node:http (what the executor used next), against the same small server in its own process, with the same
// concurrency, in interleaved rounds.
//
//   npm run bench:http [-- --json] [-- --requests 5000] [-- --rounds 5]
import { Agent, request } from 'node:http';
import { got } from 'got';
import type { PluginLogger } from '../../core/index.js';
import { KernelChannelHttp } from '../../core/kernel/channel-http.js';
import { Metrics } from '../../core/ops/metrics.js';
import { ChildProcesses, firstJsonOnStdout } from './processes.js';
import { emit, formatNumber, machine, median, numberOption, progress, round, table, flag } from './report.js';

const settings = { json: flag('json'), requests: numberOption('requests', 5000), rounds: numberOption('rounds', 5), concurrency: 32 };

const BODY = Buffer.from(JSON.stringify({ mchid: '1900000001', out_trade_no: 'pay_0123456789abcdef_1', description: 'bench order', amount: { total: 1000, currency: 'CNY' } }));
const HEADERS = { 'content-type': 'application/json', accept: 'application/json', authorization: `WECHATPAY2-SHA256-RSA2048 ${'a'.repeat(420)}` };

type Call = () => Promise<unknown>;

async function cpuPerCall(call: Call): Promise<number> {
  const before = process.cpuUsage();
  let issued = 0;
  await Promise.all(Array.from({ length: settings.concurrency }, async () => {
    while (issued++ < settings.requests) await call();
  }));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000 / settings.requests;
}

async function main(): Promise<void> {
  const children = new ChildProcesses();
  try {
    const server = children.spawnNode('echo server', ['dist/test/bench/koa-hello.js']);
    const { url } = await firstJsonOnStdout<{ url: string }>(server);
    const target = `${url}/v3/pay/transactions/native`;
    const silent: PluginLogger = { debug() {}, info() {}, warn() {}, error() {} };
    const executor = new KernelChannelHttp('bench', 10_000, silent, new Metrics({ defaultMetrics: false }));
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const viaGot = got.extend({
      agent: { http: agent }, retry: { limit: 0 }, throwHttpErrors: false, followRedirect: false, decompress: true,
      responseType: 'buffer', timeout: { connect: 3_000, request: 10_000 },
    });
    const rawAgent = new Agent({ keepAlive: true, maxSockets: 64 });
    const clients: Record<string, Call> = {
      'kernel executor (undici)': () => executor.send({ method: 'POST', url: target, headers: HEADERS, body: BODY, operation: 'create_payment' }),
      'got 14 (as the executor was configured)': () => viaGot(target, { method: 'POST', headers: HEADERS, body: BODY }),
      'bare node:http request': () => new Promise<void>((resolve, reject) => {
        const req = request(target, { method: 'POST', agent: rawAgent, headers: { ...HEADERS, 'content-length': BODY.length } }, (res) => {
          res.resume();
          res.once('end', resolve);
        });
        req.once('error', reject);
        req.end(BODY);
      }),
    };
    progress(`warm-up, then ${settings.rounds} interleaved rounds of ${settings.requests} POSTs per client (${settings.concurrency} concurrent)`);
    for (const call of Object.values(clients)) await cpuPerCall(call);
    const samples: Record<string, number[]> = Object.fromEntries(Object.keys(clients).map((k) => [k, []]));
    for (let r = 0; r < settings.rounds; r++) {
      for (const [name, call] of Object.entries(clients)) samples[name]!.push(await cpuPerCall(call));
    }
    executor.dispose();
    agent.destroy();
    rawAgent.destroy();
    const results = Object.fromEntries(Object.entries(samples).map(([name, ms]) => [name, { client_cpu_ms_per_request: round(median(ms)) }]));
    const kernel = results['kernel executor (undici)']!.client_cpu_ms_per_request;
    const rows = Object.entries(results).map(([name, r]) => [name, formatNumber(r.client_cpu_ms_per_request), formatNumber(round(r.client_cpu_ms_per_request / kernel), '×')]);
    emit(settings.json, { bench: 'http-client', machine: machine(), settings, results },
      table(['client', `client CPU ms / request (median of ${settings.rounds})`, '÷ kernel executor'], rows));
  } finally {
    await children.stopAll();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
