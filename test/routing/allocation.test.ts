import test from 'ava';
import { bytesAllocatedUnder } from '../helpers/heap-sampler.js';
import { compile, input, syntheticTable } from './table.js';
import type { CompiledRouting, RoutingInput } from '../../core/routing/engine.js';

/**
 * "No allocation per decision in steady state", measured as allocated, not as retained: the heap sampler counts every
 * object created under decide() (collected ones included), where heap growth after a forced GC would show 0 for any
 * amount of short-lived garbage. Before: Math.random() results, a closure per multi-condition rule, a destructuring
 * iterator per metadata rule and boxed times cost 12 B per decision on the benchmark's table and ~400 B on this one.
 */
async function bytesPerDecision(routing: CompiledRouting, inputs: RoutingInput[]): Promise<number> {
  for (let k = 0; k < 3_000_000; k++) routing.decide(inputs[k % inputs.length]!);
  const n = 200_000;
  const bytes = await bytesAllocatedUnder('decide', 64, () => {
    for (let k = 0; k < n; k++) routing.decide(inputs[k % inputs.length]!);
  });
  return bytes / n;
}

test.serial('a decision allocates nothing in steady state: every strategy, every kind of condition, limits', async (t) => {
  const acc = (name: string) => ({ name, payMethods: ['wechat.native', 'alipay.qr'] });
  const { routing, problems } = compile({
    regions: { sh: ['101.80.0.0/13'] }, groups: { g: ['mch_1'] },
    rules: [
      { name: 'meta', match: { metadata: { campaign: 'x', ref: '*' } }, targets: ['a'] },
      { name: 'tag_hours', match: { merchant_tag: 'gold', hours: { from: 1, to: 3 } }, targets: ['a'] },
      { name: 'region_dates', match: { payer_region: 'sh', dates: { from: '2020-01-01', to: '2020-01-02' } }, targets: ['a'] },
      { name: 'group_app', match: { merchant_group: 'g', app: 'app_z' }, targets: ['a'] },
      { name: 'weighted', match: { amount_max: 999 }, strategy: 'weighted', targets: [{ account: 'a', weight: 1 }, { account: 'b', weight: 3 }] },
      { name: 'cheap', match: { amount_min: 1000, amount_max: 1999 }, strategy: 'lowest_cost', targets: ['a', 'b'] },
      { name: 'best', match: { amount_min: 2000, amount_max: 2999 }, strategy: 'success_rate', targets: ['a', 'b'] },
      { name: 'rest', match: {}, targets: ['b', 'a'] },
    ],
  }, [{ ...acc('a'), fees: { default: { fixed: 1, rate_bps: 30 } }, limits: { daily_count: 1e9 } }, { ...acc('b'), fees: { default: { fixed: 0, rate_bps: 38 } } }]);
  t.deepEqual(problems, []);
  // Payer IPs as IPv4 and as IPv4-mapped IPv6 in dotted and hex spellings (101.81.0.x is ::ffff:6551:x).
  const clientIp = (k: number) => [`101.81.0.${k % 200}`, `::ffff:101.81.0.${k % 200}`, `::FFFF:6551:${(k % 200).toString(16)}`, `0:0:0:0:0:ffff:6551:${(k % 200).toString(16).padStart(4, '0')}`][k % 4]!;
  const inputs = Array.from({ length: 4_096 }, (_, k) => input({
    amount: 1 + ((k * 37) % 4_000), merchantTags: ['retail'], metadata: { campaign: 'y' }, clientIp: clientIp(k), now: Date.now(),
  }));
  t.true(inputs.every((i) => routing.regionOf(i.clientIp)?.[0] === 'sh'), 'every spelling is in the region, so the region condition runs to its end');
  const bytes = await bytesPerDecision(routing, inputs);
  t.true(bytes < 1, `${bytes.toFixed(2)} bytes allocated per decision`);
});

test.serial("the benchmark's table: no allocation per decision either", async (t) => {
  const { routing: table, accounts, inputs } = syntheticTable(1_000);
  const { routing } = compile(table, accounts);
  const bytes = await bytesPerDecision(routing, inputs(4_096));
  t.true(bytes < 1, `${bytes.toFixed(2)} bytes allocated per decision`);
});
