// The system under test, each part in its own process: the four channel simulators (`corbel simulate`), the gateway
// (`corbel serve`) taking its sandbox credentials from them, and one onboarded merchant with an HMAC app.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MerchantCredentials } from '../helpers/gateway.js';
import { CHANNELS, type ChannelName } from './channel-wire.js';
import { discardStdout, firstJsonOnStdout, matchOnStderr, type Child, type ChildProcesses } from './processes.js';

export const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';

/** The channel account, QR-type pay method and simulator identity of each channel. */
export const CHANNEL_SETUP: Record<ChannelName, { account: string; payMethod: string; simulator: string }> = {
  wechatpay: { account: 'wechat_sandbox', payMethod: 'wechat.native', simulator: 'direct' },
  alipay: { account: 'alipay_sandbox', payMethod: 'alipay.qr', simulator: 'true' },
  unionpay: { account: 'unionpay_sandbox', payMethod: 'unionpay.qr', simulator: 'true' },
  bank: { account: 'bank_sandbox', payMethod: 'bank.b2c', simulator: 'true' },
};

export interface RunningSimulator {
  channel: ChannelName;
  url: string;
  /** Path of the credentials.json it wrote. */
  credentials: string;
  child: Child;
}

export async function startSimulator(children: ChildProcesses, channel: ChannelName, dataDir: string): Promise<RunningSimulator> {
  const child = children.spawnNode(`${channel} simulator`, ['bin/corbel', 'simulate', channel, '--port', '0', '--data-dir', dataDir]);
  const printed = await firstJsonOnStdout<{ url: string; credentials: string }>(child, 60_000);
  discardStdout(child);
  return { channel, url: printed.url, credentials: printed.credentials, child };
}

/**
 * The gateway's config: simulators started apart (credentials from their files), quiet logs, the poller on.
 * The poller's first query of a payment is pushed past the bench's end (backoff 600 s), so each load window
 * measures the creation of payments only, not the queries of earlier windows' payments.
 */
export function gatewayConfigYaml(): string {
  const accounts = CHANNELS.map((channel) => {
    const s = CHANNEL_SETUP[channel];
    return `  ${s.account}:\n    plugin: ${channel}\n    sandbox: true\n    simulator: ${s.simulator}`;
  }).join('\n');
  const rules = CHANNELS.map((channel) => {
    const s = CHANNEL_SETUP[channel];
    return `    - name: ${channel}\n      match: { pay_method: "${s.payMethod.split('.')[0]}.*" }\n      targets: [${s.account}]`;
  }).join('\n');
  return `mode: sandbox
server:
  host: 127.0.0.1
  port: 0
admin:
  token: ${ADMIN_TOKEN}
log:
  level: warn
simulators:
  enabled: false
poller:
  enabled: true
  interval_ms: 1000
  backoff_s: [600]
channels:
${accounts}
routing:
  rules:
${rules}
`;
}

export interface RunningGateway {
  url: string;
  child: Child;
}

/** `node bin/corbel --config <dir>/corbel.yaml serve` with CORBEL_DATA_DIR=<dir>; extra node flags go first. */
export async function startGateway(children: ChildProcesses, dataDir: string, nodeFlags: string[] = []): Promise<RunningGateway> {
  const configPath = join(dataDir, 'corbel.yaml');
  writeFileSync(configPath, gatewayConfigYaml());
  const child = children.spawnNode('gateway', [...nodeFlags, 'bin/corbel', '--config', configPath, 'serve'], { CORBEL_DATA_DIR: dataDir });
  discardStdout(child);
  const [, url] = await matchOnStderr(child, /corbel listening on (http:\/\/\S+)/, 60_000);
  return { url: url!, child };
}

async function admin(gatewayUrl: string, method: string, path: string, body?: unknown): Promise<Record<string, any>> {
  const res = await fetch(gatewayUrl + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`admin ${method} ${path}: HTTP ${res.status} ${text}`);
  return text ? (JSON.parse(text) as Record<string, any>) : {};
}

/** Creates, approves and gives an HMAC app to one merchant through the admin API. */
export async function onboardMerchant(gatewayUrl: string): Promise<MerchantCredentials> {
  const merchant = await admin(gatewayUrl, 'POST', '/admin/merchants', { name: 'Bench shop' });
  await admin(gatewayUrl, 'POST', `/admin/merchants/${merchant.id}/approve`, {});
  const app = await admin(gatewayUrl, 'POST', `/admin/merchants/${merchant.id}/apps`, { auth_type: 'hmac' });
  return { merchantId: merchant.id as string, appId: app.id as string, secret: app.secret as string };
}

/** Fails early, with the gateway's own words, when a channel account did not come up. */
export async function checkChannelsServing(gatewayUrl: string): Promise<void> {
  const res = await fetch(`${gatewayUrl}/readyz`);
  const ready = (await res.json()) as { channels_serving: number; plugin_problems: unknown[] };
  if (res.status !== 200 || ready.channels_serving !== CHANNELS.length) {
    throw new Error(`gateway serves ${ready.channels_serving} of ${CHANNELS.length} channel accounts: ${JSON.stringify(ready)}`);
  }
}
