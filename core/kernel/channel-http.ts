import { promisify } from 'node:util';
import { brotliDecompress, gunzip, inflate } from 'node:zlib';
import { Agent, type Dispatcher } from 'undici';
import { poolSchema } from '../config/schema.js';
import { ChannelError } from '../contract/channel.js';
import type { ChannelHttp, OutboundRequest, OutboundResponse, PluginLogger } from '../contract/plugin.js';
import type { Metrics } from '../ops/metrics.js';

/** A connection is given at most this long to open, within the call's own timeout. */
const CONNECT_TIMEOUT_CAP_MS = 3_000;
/** Statement files are the largest answers a channel sends; anything past this is not a channel answer. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);
const brotliAsync = promisify(brotliDecompress);
/** Bounded on the way out too: a small compressed body must not expand past what a channel answer can be. */
const DECOMPRESS: Record<string, (input: Buffer) => Promise<Buffer>> = {
  gzip: (b) => gunzipAsync(b, { maxOutputLength: MAX_RESPONSE_BYTES }),
  'x-gzip': (b) => gunzipAsync(b, { maxOutputLength: MAX_RESPONSE_BYTES }),
  deflate: (b) => inflateAsync(b, { maxOutputLength: MAX_RESPONSE_BYTES }),
  br: (b) => brotliAsync(b, { maxOutputLength: MAX_RESPONSE_BYTES }),
};

/** An account's connection pool: `channels.<account>.pool`, read once when its executor is built. */
export interface PoolSettings {
  /** Connections to each origin at most; calls beyond them queue. */
  connections: number;
  /** Idle time after which a connection is closed, when the answer carries no Keep-Alive hint. */
  keepAliveMs: number;
  /** The longest a channel's `Keep-Alive: timeout=N` hint may keep an idle connection. */
  keepAliveMaxMs: number;
}

/** The pool an account gets when its config sets none: the schema's defaults, so they are written in one place. */
export const DEFAULT_POOL: Readonly<PoolSettings> = (() => {
  const pool = poolSchema.parse({});
  return Object.freeze({ connections: pool.connections, keepAliveMs: pool.keep_alive_ms, keepAliveMaxMs: pool.keep_alive_max_ms });
})();

/** Bounds the parsed-URL cache should a plugin build URLs per call (query strings). */
const MAX_CACHED_TARGETS = 256;

interface Target {
  origin: string;
  path: string;
}

/** Why a call ended without an answer, and whether its bytes may have reached the channel. */
interface Failure {
  code: 'timeout' | 'channel_unavailable';
  detail: string;
  errno?: string;
  /** The socket was connected (TLS included) when it failed: the request may have been read by the channel. */
  connected: boolean;
}

/**
 * The kernel's one executor for channel calls: a keep-alive connection pool and a timeout per account, no automatic
 * retries (a retry of a payment call is the kernel's decision, not the transport's), and every failure classified as
 * "never sent" (mayExist=false) or "sent, fate unknown" (mayExist=true).
 *
 * It dispatches through undici rather than got or node:http because it is the hot path of every payment: on this
 * project's machine a keep-alive POST costs about 0.3 ms of client CPU through got as it was configured, 0.06 ms
 * through node:http and 0.03 ms through undici (`npm run bench:http`). The classification comes from undici's
 * request lifecycle: a request is written only after `onRequestStart`, on a socket that has finished connecting
 * (TLS included), so a failure before that point sent nothing.
 */
export class KernelChannelHttp implements ChannelHttp {
  private readonly agent: Agent;
  /** Channel endpoints are a handful of fixed URLs per account: each is parsed once. */
  private readonly targets = new Map<string, Target>();

  /**
   * `pool` is fixed for the executor's life: a config reload that changes it (as one that changes the timeout) builds
   * the account a new executor in the new snapshot, and the old one closes once its calls have finished.
   */
  constructor(
    private readonly accountName: string,
    private readonly timeoutMs: number,
    private readonly logger: PluginLogger,
    private readonly metrics: Metrics,
    readonly pool: Readonly<PoolSettings> = DEFAULT_POOL,
  ) {
    // Connect timeouts are enforced here too, so a handshake that hangs past the cap frees its pool slot.
    this.agent = new Agent({
      connections: pool.connections, pipelining: 1, keepAliveTimeout: pool.keepAliveMs, keepAliveMaxTimeout: pool.keepAliveMaxMs,
      connect: { timeout: CONNECT_TIMEOUT_CAP_MS }, headersTimeout: 0, bodyTimeout: 0,
    });
  }

  async send(req: OutboundRequest): Promise<OutboundResponse> {
    const started = performance.now();
    try {
      const res = await this.exchange(req);
      this.observe(req.operation, String(res.status), started);
      this.logger.debug({ account: this.accountName, operation: req.operation, status: res.status, ms: Math.round(performance.now() - started), request_id: req.requestId }, 'channel call');
      return res;
    } catch (err) {
      const classified = err instanceof ChannelError ? err : new ChannelError('unknown', `channel ${this.accountName} call failed: ${(err as Error).message}`, true);
      this.observe(req.operation, classified.code, started);
      this.logger.warn({ account: this.accountName, operation: req.operation, error: classified.message, may_exist: classified.mayExist, request_id: req.requestId }, 'channel call failed');
      throw classified;
    }
  }

  private exchange(req: OutboundRequest): Promise<OutboundResponse> {
    const target = this.targets.get(req.url) ?? this.parseTarget(req.url);
    if (target instanceof ChannelError) return Promise.reject(target);
    const headers: Record<string, string> = { ...req.headers };
    const requestId = req.requestId;
    if (requestId && !Object.keys(headers).some((name) => name.toLowerCase() === 'x-request-id')) headers['x-request-id'] = requestId;
    const timeoutMs = req.timeoutMs ?? this.timeoutMs;

    return new Promise<OutboundResponse>((resolve, reject) => {
      let connected = false;
      let settled = false;
      let status = 0;
      let responseHeaders: OutboundResponse['headers'] = {};
      let chunks: Buffer[] = [];
      let size = 0;

      const fail = (failure: Failure, controller?: Dispatcher.DispatchController) => {
        if (settled) return;
        settled = true;
        clearTimeout(callTimer);
        controller?.abort(new Error(failure.detail));
        reject(this.failureError(failure));
      };
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart: (controller) => {
          // The call already ended (timed out while queued or connecting): it must not be written now. Throwing (not
          // controller.abort(), which destroys the socket) makes undici error this request before writing a byte and
          // keep the warm connection for the next one (client-h1.js writeH1: onConnect in try/catch, then `aborted`).
          if (settled) throw new Error('call already ended before it could be sent');
          connected = true;
          requestController = controller;
        },
        onResponseStart: (_controller, statusCode, headers) => {
          status = statusCode;
          responseHeaders = headers;
          chunks = [];
          size = 0;
        },
        onResponseData: (controller, chunk) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) fail({ code: 'channel_unavailable', detail: `answer larger than ${MAX_RESPONSE_BYTES} bytes`, connected: true }, controller);
          else chunks.push(chunk);
        },
        onResponseEnd: () => {
          if (settled) return;
          const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
          this.decoded(status, responseHeaders, body).then(
            (res) => {
              if (settled) return;
              settled = true;
              clearTimeout(callTimer);
              resolve(res);
            },
            (err: Error) => fail({ code: 'channel_unavailable', detail: `answer could not be decoded: ${err.message}`, connected: true }),
          );
        },
        onResponseError: (_controller, err: Error & { code?: string }) => {
          // A connect timeout is undici's own (the cap); every other error before onRequestStart also sent nothing.
          const code = err.code === 'UND_ERR_CONNECT_TIMEOUT' ? 'timeout' : 'channel_unavailable';
          fail({ code, detail: err.code ?? err.message, errno: err.code, connected });
        },
      };
      let requestController: Dispatcher.DispatchController | undefined;
      const callTimer = setTimeout(() => fail({ code: 'timeout', detail: `no answer within ${timeoutMs} ms`, connected }, requestController), timeoutMs);
      try {
        this.agent.dispatch({ origin: target.origin, path: target.path, method: req.method, headers, body: req.body }, handler);
      } catch (err) {
        // undici reports a request it refuses (invalid header or method, closed agent) through onResponseError; this
        // catches anything that throws instead. Either way nothing was sent.
        fail({ code: 'channel_unavailable', detail: `request refused before sending: ${(err as Error).message}`, errno: (err as NodeJS.ErrnoException).code, connected: false });
      }
    });
  }

  private parseTarget(raw: string): Target | ChannelError {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return new ChannelError('channel_unavailable', `channel ${this.accountName}: invalid URL ${JSON.stringify(raw)}`, false, 'ERR_INVALID_URL', true);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      return new ChannelError('channel_unavailable', `channel ${this.accountName}: unsupported protocol ${url.protocol}`, false, 'ERR_INVALID_PROTOCOL', true);
    }
    const target = { origin: url.origin, path: `${url.pathname}${url.search}` };
    if (this.targets.size >= MAX_CACHED_TARGETS) this.targets.clear();
    this.targets.set(raw, target);
    return target;
  }

  private async decoded(status: number, headers: OutboundResponse['headers'], raw: Buffer): Promise<OutboundResponse> {
    const encoding = headers['content-encoding'];
    const decompress = typeof encoding === 'string' ? DECOMPRESS[encoding.trim().toLowerCase()] : undefined;
    const body = decompress && raw.length > 0 ? await decompress(raw) : raw;
    return { status, headers, body, text: body.toString('utf8') };
  }

  private failureError(f: Failure): ChannelError {
    const where = `channel ${this.accountName}`;
    if (f.code === 'timeout') return new ChannelError('timeout', `${where} timed out: ${f.detail}`, f.connected, undefined, true);
    return new ChannelError('channel_unavailable', `${where} unreachable: ${f.detail}`, f.connected, f.errno, true);
  }

  private observe(operation: string, outcome: string, started: number): void {
    this.metrics.channelCalls.observe({ account: this.accountName, operation, outcome }, (performance.now() - started) / 1000);
  }

  /** Lets calls in flight finish, then closes the pool's connections. */
  dispose(): void {
    void this.agent.close().catch(() => undefined);
  }
}
