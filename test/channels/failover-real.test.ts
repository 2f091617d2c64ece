import test from 'ava';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import wechatpay from '../../plugins/wechatpay/index.js';
import { startGateway, activeMerchant, MerchantClient, waitUntil, ADMIN_TOKEN } from '../helpers/gateway.js';

/**
 * Failover through the real executor and the real WeChat Pay plugin, not a fixture that throws a chosen `mayExist`:
 * wechat_a reaches the simulator through a TCP proxy that can refuse connections, swallow a request (a timeout after
 * sending) or drop the answer; wechat_b reaches the same simulator directly. What each account really sent is read
 * from the proxy and from the simulator's own order book (each order carries the notify URL of the account that made it).
 */
type Mode = 'forward' | 'refuse' | 'blackhole' | 'drop_response';

class ChannelProxy {
  mode: Mode = 'forward';
  /** Request lines that reached the proxy, e.g. `POST /v3/pay/transactions/native`. */
  readonly requests: string[] = [];
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly targetPort: number) {}

  async listen(): Promise<void> {
    this.server = createServer((client) => {
      this.sockets.add(client);
      client.on('close', () => this.sockets.delete(client));
      client.on('error', () => client.destroy());
      const mode = this.mode;
      const upstream = mode === 'blackhole' ? null : createConnection(this.targetPort, '127.0.0.1');
      client.on('data', (chunk: Buffer) => {
        const line = chunk.toString('latin1').split('\r\n')[0]!;
        if (/^[A-Z]+ \//.test(line)) this.requests.push(line.replace(/ HTTP\/1\.1$/, ''));
        upstream?.write(chunk);
      });
      if (!upstream) return;
      this.sockets.add(upstream);
      upstream.on('close', () => { this.sockets.delete(upstream); client.destroy(); });
      upstream.on('error', () => client.destroy());
      upstream.on('data', (chunk: Buffer) => { if (mode !== 'drop_response') client.write(chunk); });
    });
    await new Promise<void>((resolve) => this.server.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Sets the mode for new connections; open ones are cut, so no keep-alive connection carries the old mode over. */
  async set(mode: Mode): Promise<void> {
    for (const s of this.sockets) s.destroy();
    if (mode === 'refuse' && this.mode !== 'refuse') await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (mode !== 'refuse' && this.mode === 'refuse') await this.listen();
    this.mode = mode;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    if (this.mode !== 'refuse') await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

test.serial('refused → the next account; timeout after sending or lost answer → that account only, one order at most, never a second', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corbel-failover-'));
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const sim = await wechatpay.sandbox!.startSimulator({ dataDir, port: 0 });
  const proxy = new ChannelProxy(Number(new URL(sim.url).port));
  await proxy.listen();
  writeFileSync(join(dir, 'corbel.yaml'), `mode: sandbox
server: { host: 127.0.0.1, port: 0, shutdown_grace_ms: 2000 }
admin: { token: ${ADMIN_TOKEN} }
log: { level: silent }
poller: { interval_ms: 200, backoff_s: [1] }
simulators: { enabled: false }
channels:
  wechat_a: { plugin: wechatpay, sandbox: true, simulator: direct, timeout_ms: 500, config: { base_url: "http://127.0.0.1:${proxy.port}" } }
  wechat_b: { plugin: wechatpay, sandbox: true, simulator: direct, timeout_ms: 500 }
routing:
  rules:
    - name: wechat
      match: { pay_method: wechat.* }
      targets: [wechat_a, wechat_b]
`);
  const env = await startGateway(undefined, dir);
  try {
    const client = await MerchantClient.for(env.gw, await activeMerchant(env.gw));
    /** The simulator's whole order book (it serves this test only), as [order number, account whose notify URL it carries]. */
    const book = async (): Promise<Array<[string, string]>> => {
      const orders = (await (await fetch(`${sim.url}/__sim/orders`)).json()) as Array<{ out_trade_no: string; notify_url: string }>;
      return orders.map((o) => [o.out_trade_no, o.notify_url.split('/').pop()!]);
    };
    /** Orders that appeared since the last look, at either account: what the step just taken made, whatever their numbers. */
    const seen = new Set<string>();
    const newOrders = async (): Promise<Array<[string, string]>> => {
      const fresh = (await book()).filter(([no]) => !seen.has(no));
      for (const [no] of fresh) seen.add(no);
      return fresh;
    };
    /** The order number the payment names now (its latest attempt's), as the gateway stored it. */
    const orderNoOf = async (paymentId: string) => (await env.gw.store.payments.get(env.gw.store.reads, paymentId))!.channelOrderNo!;
    const creates = () => proxy.requests.filter((r) => r === 'POST /v3/pay/transactions/native').length;

    // Connection refused: provably nothing at wechat_a, so the payment moves to wechat_b, which creates the one order.
    await proxy.set('refuse');
    const refused = await client.request('POST', '/v1/payments', { out_trade_no: 'fo-refused', amount: 101, pay_method: 'wechat.native' });
    t.is(refused.status, 201, refused.text);
    t.deepEqual(refused.json.routing.attempts.map((a: any) => [a.channel, a.outcome, a.error_code]), [['wechat_a', 'not_created', 'channel_unavailable'], ['wechat_b', 'created', undefined]]);
    t.is(refused.json.channel_account, 'wechat_b');
    const refusedNo = await orderNoOf(refused.json.id);
    t.deepEqual(await newOrders(), [[refusedNo, 'wechat_b']], 'one order, the payment\'s, made by wechat_b');
    t.is(creates(), 0);

    // Sent, never answered: wechat_a received exactly one create; nothing was sent to wechat_b, now or later.
    await proxy.set('blackhole');
    const swallowed = await client.request('POST', '/v1/payments', { out_trade_no: 'fo-timeout', amount: 102, pay_method: 'wechat.native' });
    t.is(swallowed.status, 201, swallowed.text);
    t.deepEqual(swallowed.json.routing.attempts.map((a: any) => [a.channel, a.outcome, a.error_code]), [['wechat_a', 'unknown', 'timeout']]);
    t.is(creates(), 1, 'one create reached wechat_a');
    await new Promise((r) => setTimeout(r, 1_500));
    const later = await client.request('GET', `/v1/payments/${swallowed.json.id}`);
    t.is(later.json.status, 'pending');
    t.deepEqual(later.json.routing.attempts.map((a: any) => [a.channel, a.outcome, a.error_code]), [['wechat_a', 'unknown', 'timeout']], 'still the one attempt');
    t.deepEqual(await newOrders(), [], 'no new order anywhere: wechat_a never passed it on, wechat_b was never asked');
    t.is(creates(), 1, 'the gateway queried, it did not create again');

    // Processed, answer lost: the one order exists at wechat_a only, and the gateway learns its fate there.
    await proxy.set('drop_response');
    const lost = await client.request('POST', '/v1/payments', { out_trade_no: 'fo-lost', amount: 103, pay_method: 'wechat.native' });
    t.deepEqual(lost.json.routing.attempts.map((a: any) => [a.channel, a.outcome]), [['wechat_a', 'unknown']]);
    const lostNo = await orderNoOf(lost.json.id);
    t.deepEqual(await newOrders(), [[lostNo, 'wechat_a']], 'one order, the payment\'s, made by wechat_a');
    await proxy.set('forward');
    await fetch(`${sim.url}/__sim/orders/${lostNo}/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    await waitUntil(async () => ((await client.request('GET', `/v1/payments/${lost.json.id}`)).json.status === 'succeeded' ? true : undefined), 10_000);
    t.deepEqual(await newOrders(), [], 'still the one order');
    t.deepEqual((await book()).sort(), [[refusedNo, 'wechat_b'], [lostNo, 'wechat_a']].sort(), 'three payments, two orders in all: the timed-out one made none');
  } finally {
    await env.close();
    await proxy.close();
    await sim.close();
  }
});
