/** Shared wiring for the WeChat Pay plugin tests: the real simulator, a notify receiver, and account factories. */
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
import { PostRecorder } from '../helpers/post-recorder.js';

export const noopLogger: PluginLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface Captured extends InboundNotification {
  path: string;
}

/** The kernel's notify URL: records every POST (headers + raw body) and answers 204. */
export class NotifyReceiver extends PostRecorder {
  constructor() {
    super(() => ({ status: 204 }));
  }

  get received(): Captured[] {
    return this.posts.map((p) => ({ path: p.path, headers: p.headers, rawBody: p.rawBody, query: {} }));
  }

  /** Waits for a notification on `path` that the account parses and `match` accepts. */
  waitFor(account: ChannelAccount, path: string, match: (n: ChannelNotification) => boolean, timeoutMs = 8000): Promise<{ parsed: ChannelNotification; raw: Captured }> {
    let seen = 0;
    return this.waitUntil(async () => {
      const batch = this.received.filter((c) => c.path === path);
      for (const raw of batch.slice(seen)) {
        const parsed = await account.parseNotification(raw);
        if (match(parsed)) return { parsed, raw };
      }
      seen = batch.length;
      return undefined;
    }, timeoutMs, `a matching notification on ${path}`);
  }

  waitForRaw(path: string, timeoutMs = 8000): Promise<Captured> {
    return this.waitUntil(() => this.received.find((c) => c.path === path), timeoutMs, `anything on ${path}`);
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
