/** Shared wiring for the WeChat Pay plugin tests: the real simulator, a notify receiver, and account factories. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startWechatPaySimulator } from '../../plugins/wechatpay/simulator/index.js';
import plugin from '../../plugins/wechatpay/index.js';
import type { WechatPayConfig } from '../../plugins/wechatpay/config.js';
import type { ChannelAccount, ChannelAccountContext, ChannelNotification, InboundNotification, PluginLogger } from '../../core/index.js';
import { KernelChannelHttp } from '../../core/kernel/channel-http.js';
import { Metrics } from '../../core/ops/metrics.js';

export const noopLogger: PluginLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface Captured extends InboundNotification {
  path: string;
}

/** A tiny notify endpoint: records every POST (headers + raw body) and answers 204. */
export class NotifyReceiver {
  readonly received: Captured[] = [];
  private server!: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.received.push({ path: req.url ?? '/', headers: { ...req.headers }, rawBody: Buffer.concat(chunks), query: {} });
        res.statusCode = 204;
        res.end();
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Waits for a notification on `path` that the account parses and `match` accepts. */
  async waitFor(account: ChannelAccount, path: string, match: (n: ChannelNotification) => boolean, timeoutMs = 8000): Promise<{ parsed: ChannelNotification; raw: Captured }> {
    const deadline = Date.now() + timeoutMs;
    let seen = 0;
    while (Date.now() < deadline) {
      const batch = this.received.filter((c) => c.path === path);
      for (const raw of batch.slice(seen)) {
        const parsed = await account.parseNotification(raw);
        if (match(parsed)) return { parsed, raw };
      }
      seen = batch.length;
      await sleep(25);
    }
    throw new Error(`no matching notification on ${path} within ${timeoutMs} ms`);
  }

  async waitForRaw(path: string, timeoutMs = 8000): Promise<Captured> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const hit = this.received.find((c) => c.path === path);
      if (hit) return hit;
      await sleep(25);
    }
    throw new Error(`nothing received on ${path}`);
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface Harness {
  sim: Awaited<ReturnType<typeof startWechatPaySimulator>>;
  receiver: NotifyReceiver;
  dataDir: string;
  account(variant?: string, opts?: { timeoutMs?: number; sandbox?: boolean; configure?: (c: WechatPayConfig) => WechatPayConfig }): Promise<ChannelAccount>;
  simApi(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }>;
  close(): Promise<void>;
}

export async function startHarness(): Promise<Harness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'corbel-wxplugin-'));
  const sim = await startWechatPaySimulator({ dataDir, notifyRetryDelaysMs: [300, 600, 1200] });
  const receiver = new NotifyReceiver();
  await receiver.start();
  const https: KernelChannelHttp[] = [];
  return {
    sim,
    receiver,
    dataDir,
    async account(variant, opts = {}) {
      const http = new KernelChannelHttp('wx', opts.timeoutMs ?? 5000, noopLogger, new Metrics({ defaultMetrics: false }));
      https.push(http);
      const ctx: ChannelAccountContext = {
        logger: noopLogger, http, dataDir, configDir: dataDir, publicUrl: receiver.url, accountName: 'wx', sandbox: opts.sandbox ?? true,
      };
      const config = plugin.sandbox!.accountConfig(sim.credentials, variant);
      return plugin.createAccount(opts.configure ? opts.configure(config) : config, ctx);
    },
    async simApi(method, path, body) {
      const res = await fetch(`${sim.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, json: text ? JSON.parse(text) : null };
    },
    async close() {
      for (const h of https) h.dispose();
      await receiver.close();
      await sim.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

let seq = 0;
/** A fresh alphanumeric channel order number (≤ 32 chars). */
export function orderNo(prefix = 'T'): string {
  seq += 1;
  return `${prefix}${Date.now().toString(36)}${seq}${randomBytes(3).toString('hex')}`.slice(0, 32);
}

/** Today in China (the bill date the simulator files today's trades under). */
export function chinaToday(): string {
  return new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
}
