import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHmac, createSign, createVerify, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { Writable } from 'node:stream';
import { Gateway } from '../../core/kernel/gateway.js';

const DIST = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const FIXTURE_PLUGIN = join(DIST, 'test/fixtures/fixture-channel/index.js');
export const BROKEN_PLUGIN = join(DIST, 'test/fixtures/broken-plugin/index.js');
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/** A config for tests: fixture channel accounts, fast retries, quiet logs. Extra YAML is appended. */
export function fixtureConfig(extra = ''): string {
  return `mode: sandbox
server:
  host: 127.0.0.1
  port: 0
  shutdown_grace_ms: 2000
admin:
  token: ${ADMIN_TOKEN}
log:
  level: silent
webhooks:
  retry_schedule_s: [1]
  poll_interval_ms: 100
  timeout_ms: 1000
poller:
  interval_ms: 200
  backoff_s: [1]
plugins:
  fixture: ${FIXTURE_PLUGIN}
  broken: ${BROKEN_PLUGIN}
channels:
  fixture_main:
    plugin: fixture
    sandbox: true
    config:
      secret: fixture-secret-1
${extra}`;
}

export interface TestGateway {
  gw: Gateway;
  dir: string;
  configPath: string;
  logs: string[];
  restart(): Promise<TestGateway>;
  close(): Promise<void>;
}

/** Starts a gateway on a fresh data dir (or the given one) with a real sqlite file and a real port. */
export async function startGateway(configYaml = fixtureConfig(), existingDir?: string): Promise<TestGateway> {
  const dir = existingDir ?? mkdtempSync(join(tmpdir(), 'corbel-test-'));
  const configPath = join(dir, 'corbel.yaml');
  if (!existingDir) writeFileSync(configPath, configYaml);
  const logs: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { logs.push(chunk.toString()); cb(); } });
  const gw = await Gateway.start({ configPath, env: { CORBEL_DATA_DIR: join(dir, 'data') }, logDestination: sink as never, watchConfig: false });
  const handle: TestGateway = {
    gw, dir, configPath, logs,
    async restart() {
      await gw.stop();
      return startGateway(configYaml, dir);
    },
    async close() {
      await gw.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}

export interface MerchantCredentials {
  merchantId: string;
  appId: string;
  secret?: string;
  privateKey?: string;
}

export async function admin(gw: Gateway, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(gw.url + path, {
    method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

/** Onboards a merchant through the admin API and returns an app's credentials. */
export async function activeMerchant(gw: Gateway, opts: { auth?: 'hmac' | 'rsa'; notify_url?: string; approve?: boolean } = {}): Promise<MerchantCredentials> {
  const m = await admin(gw, 'POST', '/admin/merchants', { name: 'Test shop', tags: ['retail'] });
  if (opts.approve !== false) await admin(gw, 'POST', `/admin/merchants/${m.json.id}/approve`, {});
  const app = await admin(gw, 'POST', `/admin/merchants/${m.json.id}/apps`, { auth_type: opts.auth ?? 'hmac', ...(opts.notify_url ? { notify_url: opts.notify_url } : {}) });
  return { merchantId: m.json.id, appId: app.json.id, secret: app.json.secret, privateKey: app.json.private_key };
}

export interface SignedResponse {
  status: number;
  json: any;
  text: string;
  headers: Headers;
  signatureValid: boolean;
}

/** A merchant SDK in miniature: signs requests per the API contract and verifies the gateway's response signature. */
export class MerchantClient {
  constructor(readonly baseUrl: string, readonly creds: MerchantCredentials, private readonly gatewayPublicKey: string) {}

  static async for(gw: Gateway, creds: MerchantCredentials): Promise<MerchantClient> {
    const keys = (await (await fetch(gw.url + '/v1/gateway/keys')).json()) as { keys: Array<{ public_key: string }> };
    return new MerchantClient(gw.url, creds, keys.keys[0]!.public_key);
  }

  authorization(method: string, pathWithQuery: string, body: string, over: { timestamp?: string; nonce?: string; signature?: string; appId?: string } = {}): string {
    const timestamp = over.timestamp ?? Math.floor(Date.now() / 1000).toString();
    const nonce = over.nonce ?? randomBytes(12).toString('hex');
    const signed = `${method}\n${pathWithQuery}\n${timestamp}\n${nonce}\n${body}\n`;
    let signature = over.signature;
    let scheme = 'CORBEL-HMAC-SHA256';
    if (!signature) {
      if (this.creds.secret) signature = createHmac('sha256', this.creds.secret).update(signed).digest('base64');
      else {
        scheme = 'CORBEL-RSA-SHA256';
        signature = createSign('sha256').update(signed).sign(this.creds.privateKey!, 'base64');
      }
    } else if (!this.creds.secret) scheme = 'CORBEL-RSA-SHA256';
    return `${scheme} app_id="${over.appId ?? this.creds.appId}",timestamp="${timestamp}",nonce="${nonce}",signature="${signature}"`;
  }

  async request(method: string, pathWithQuery: string, body?: unknown, opts: { headers?: Record<string, string>; raw?: string; auth?: Parameters<MerchantClient['authorization']>[3] } = {}): Promise<SignedResponse> {
    const text = opts.raw ?? (body === undefined ? '' : JSON.stringify(body));
    const res = await fetch(this.baseUrl + pathWithQuery, {
      method,
      headers: { 'content-type': 'application/json', authorization: this.authorization(method, pathWithQuery, text, opts.auth), ...opts.headers },
      body: method === 'GET' ? undefined : text,
    });
    const responseText = await res.text();
    return { status: res.status, text: responseText, json: responseText ? safeJson(responseText) : null, headers: res.headers, signatureValid: this.verify(res.headers, responseText) };
  }

  verify(headers: Headers | Record<string, string | string[] | undefined>, body: string): boolean {
    const get = (n: string) => (headers instanceof Headers ? headers.get(n) : (headers[n.toLowerCase()] as string | undefined)) ?? '';
    const signed = `${get('Corbel-Timestamp')}\n${get('Corbel-Nonce')}\n${body}\n`;
    try {
      return createVerify('sha256').update(signed).verify(this.gatewayPublicKey, get('Corbel-Signature'), 'base64');
    } catch {
      return false;
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export interface ReceivedWebhook { headers: IncomingMessage['headers']; body: string; json: any }

/** A merchant's webhook endpoint: records what arrives; `respond` decides the status per delivery. */
export async function webhookReceiver(respond: (n: number) => number = () => 200): Promise<{ url: string; received: ReceivedWebhook[]; server: Server; close(): Promise<void>; waitFor(pred: (w: ReceivedWebhook[]) => boolean, ms?: number): Promise<ReceivedWebhook[]> }> {
  const received: ReceivedWebhook[] = [];
  let count = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      count++;
      const status = respond(count);
      if (status >= 200 && status < 300) received.push({ headers: req.headers, body, json: JSON.parse(body) });
      res.statusCode = status;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/hooks`, received, server,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
    waitFor: (pred, ms = 10_000) => waitUntil(() => (pred(received) ? received : undefined), ms),
  };
}

export async function waitUntil<T>(probe: () => T | undefined | Promise<T | undefined>, ms = 10_000, stepMs = 50): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
