import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { promisify } from 'node:util';
import { brotliDecompress, gunzip, inflate } from 'node:zlib';
import { ChannelError } from '../contract/channel.js';
import type { ChannelHttp, OutboundRequest, OutboundResponse, PluginLogger } from '../contract/plugin.js';
import type { Metrics } from '../ops/metrics.js';
import { currentRequestId } from '../ops/context.js';

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

/** Why a call ended without an answer, and whether its bytes may have reached the channel. */
interface Failure {
  code: 'timeout' | 'channel_unavailable';
  detail: string;
  errno?: string;
  /** The socket was connected (TLS included) when it failed: the request may have been read by the channel. */
  connected: boolean;
}

/**
 * The kernel's one executor for channel calls: keep-alive agents and a timeout per account, no automatic retries
 * (a retry of a payment call is the kernel's decision, not the transport's), and every failure classified as
 * "never sent" (mayExist=false) or "sent, fate unknown" (mayExist=true).
 *
 * It sits on node:http rather than got because it is the hot path of every payment: on this project's machine a
 * keep-alive POST through got costs about 0.3 ms of CPU against 0.1 ms through node:http (`npm run bench:http`),
 * and got's retries, redirects, hooks and caching are all turned off here anyway. The classification is read from
 * the socket itself: until it has connected (and finished TLS), not one byte of the request can have left.
 */
export class KernelChannelHttp implements ChannelHttp {
  private readonly httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 64 });

  constructor(
    private readonly accountName: string,
    private readonly timeoutMs: number,
    private readonly logger: PluginLogger,
    private readonly metrics: Metrics,
  ) {}

  async send(req: OutboundRequest): Promise<OutboundResponse> {
    const started = performance.now();
    try {
      const res = await this.exchange(req);
      this.observe(req.operation, String(res.status), started);
      this.logger.debug({ account: this.accountName, operation: req.operation, status: res.status, ms: Math.round(performance.now() - started) }, 'channel call');
      return res;
    } catch (err) {
      const classified = err instanceof ChannelError ? err : new ChannelError('unknown', `channel ${this.accountName} call failed: ${(err as Error).message}`, true);
      this.observe(req.operation, classified.code, started);
      this.logger.warn({ account: this.accountName, operation: req.operation, error: classified.message, may_exist: classified.mayExist }, 'channel call failed');
      throw classified;
    }
  }

  private exchange(req: OutboundRequest): Promise<OutboundResponse> {
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      return Promise.reject(new ChannelError('channel_unavailable', `channel ${this.accountName}: invalid URL ${JSON.stringify(req.url)}`, false, 'ERR_INVALID_URL', true));
    }
    const https = url.protocol === 'https:';
    if (!https && url.protocol !== 'http:') {
      return Promise.reject(new ChannelError('channel_unavailable', `channel ${this.accountName}: unsupported protocol ${url.protocol}`, false, 'ERR_INVALID_PROTOCOL', true));
    }
    const headers: OutgoingHttpHeaders = { ...req.headers };
    const requestId = currentRequestId();
    if (requestId && !Object.keys(headers).some((name) => name.toLowerCase() === 'x-request-id')) headers['x-request-id'] = requestId;
    if (req.body !== undefined) headers['content-length'] = Buffer.byteLength(req.body);
    const timeoutMs = req.timeoutMs ?? this.timeoutMs;

    return new Promise<OutboundResponse>((resolve, reject) => {
      let connected = false;
      let settled = false;
      let connectTimer: NodeJS.Timeout | undefined;
      let callTimer: NodeJS.Timeout | undefined;
      let request: ClientRequest | undefined;

      const fail = (failure: Failure) => {
        if (settled) return;
        settled = true;
        clearTimeout(callTimer);
        clearTimeout(connectTimer);
        request?.destroy();
        reject(this.failureError(failure));
      };
      const succeed = (res: OutboundResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(callTimer);
        resolve(res);
      };

      try {
        request = (https ? httpsRequest : httpRequest)(url, { method: req.method, headers, agent: https ? this.httpsAgent : this.httpAgent }, (res) => {
          this.readAnswer(res).then(succeed, (err: Error) => fail({ code: 'channel_unavailable', detail: `answer broken off: ${err.message}`, errno: (err as NodeJS.ErrnoException).code, connected: true }));
        });
      } catch (err) {
        // Node refuses the request before opening anything (an invalid header value or method): nothing was sent.
        fail({ code: 'channel_unavailable', detail: `request refused before sending: ${(err as Error).message}`, errno: (err as NodeJS.ErrnoException).code, connected: false });
        return;
      }
      callTimer = setTimeout(() => fail({ code: 'timeout', detail: `no answer within ${timeoutMs} ms`, connected }), timeoutMs);
      request.on('socket', (socket: Socket) => {
        // A kept-alive socket arrives connected; a new one must finish TCP (and TLS) before anything is written.
        if (!socket.connecting) {
          connected = true;
          return;
        }
        connectTimer = setTimeout(() => fail({ code: 'timeout', detail: `no connection within ${Math.min(timeoutMs, CONNECT_TIMEOUT_CAP_MS)} ms`, connected: false }), Math.min(timeoutMs, CONNECT_TIMEOUT_CAP_MS));
        socket.once(https ? 'secureConnect' : 'connect', () => {
          connected = true;
          clearTimeout(connectTimer);
        });
      });
      request.on('error', (err: NodeJS.ErrnoException) => fail({ code: 'channel_unavailable', detail: err.code ?? err.message, errno: err.code, connected }));
      request.end(req.body);
    });
  }

  private async readAnswer(res: IncomingMessage): Promise<OutboundResponse> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) throw new Error(`answer larger than ${MAX_RESPONSE_BYTES} bytes`);
      chunks.push(chunk);
    }
    let body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
    const encoding = res.headers['content-encoding']?.trim().toLowerCase();
    const decompress = encoding ? DECOMPRESS[encoding] : undefined;
    if (decompress && body.length > 0) body = await decompress(body);
    return { status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') };
  }

  private failureError(f: Failure): ChannelError {
    const where = `channel ${this.accountName}`;
    if (f.code === 'timeout') return new ChannelError('timeout', `${where} timed out: ${f.detail}`, f.connected, undefined, true);
    return new ChannelError('channel_unavailable', `${where} unreachable: ${f.detail}`, f.connected, f.errno, true);
  }

  private observe(operation: string, outcome: string, started: number): void {
    this.metrics.channelCalls.observe({ account: this.accountName, operation, outcome }, (performance.now() - started) / 1000);
  }

  dispose(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
