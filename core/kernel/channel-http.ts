import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { got, RequestError, TimeoutError, type Got } from 'got';
import { ChannelError } from '../contract/channel.js';
import type { ChannelHttp, OutboundRequest, OutboundResponse, PluginLogger } from '../contract/plugin.js';
import type { Metrics } from '../ops/metrics.js';
import { currentRequestId } from '../ops/context.js';

/** Connection errors that happen before a single byte of the request reaches the channel. */
const NEVER_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_INVALID_URL', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']);
/** got timeout phases that end before the request is written. */
const PRE_SEND_TIMEOUTS = new Set(['lookup', 'connect', 'secureConnect']);

/**
 * The kernel's one executor for channel calls: keep-alive agents and a timeout per account,
 * no automatic retries (a retry of a payment call is the kernel's decision, not the transport's),
 * and every failure classified as "never sent" (mayExist=false) or "sent, fate unknown" (mayExist=true).
 */
export class KernelChannelHttp implements ChannelHttp {
  private readonly client: Got;
  private readonly httpAgent: HttpAgent;
  private readonly httpsAgent: HttpsAgent;

  constructor(
    private readonly accountName: string,
    private readonly timeoutMs: number,
    private readonly logger: PluginLogger,
    private readonly metrics: Metrics,
  ) {
    this.httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
    this.httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 64 });
    // Everything that is the same for every call lives in the instance, so a call merges little.
    this.client = got.extend({
      agent: { http: this.httpAgent, https: this.httpsAgent },
      retry: { limit: 0 },
      throwHttpErrors: false,
      followRedirect: false,
      decompress: true,
      responseType: 'buffer',
      timeout: { connect: Math.min(timeoutMs, 3_000), request: timeoutMs },
    });
  }

  async send(req: OutboundRequest): Promise<OutboundResponse> {
    const started = performance.now();
    const requestId = currentRequestId();
    const headers: Record<string, string> = { ...req.headers };
    if (requestId && !headers['x-request-id']) headers['x-request-id'] = requestId;
    try {
      const res = await this.client(req.url, {
        method: req.method,
        headers,
        body: req.body,
        ...(req.timeoutMs === undefined ? {} : { timeout: { connect: Math.min(req.timeoutMs, 3_000), request: req.timeoutMs } }),
      });
      const body = res.body as unknown as Buffer;
      this.observe(req.operation, String(res.statusCode), started);
      this.logger.debug({ account: this.accountName, operation: req.operation, status: res.statusCode, ms: Math.round(performance.now() - started) }, 'channel call');
      return { status: res.statusCode, headers: res.headers, body, text: body.toString('utf8') };
    } catch (err) {
      const classified = this.classify(err);
      this.observe(req.operation, classified.code, started);
      this.logger.warn({ account: this.accountName, operation: req.operation, error: classified.message, may_exist: classified.mayExist }, 'channel call failed');
      throw classified;
    }
  }

  private classify(err: unknown): ChannelError {
    if (err instanceof TimeoutError) {
      const neverSent = PRE_SEND_TIMEOUTS.has(err.event);
      return new ChannelError('timeout', `channel ${this.accountName} timed out (${err.event})`, !neverSent, undefined, true);
    }
    if (err instanceof RequestError) {
      const neverSent = err.code !== undefined && NEVER_SENT_CODES.has(err.code);
      return new ChannelError('channel_unavailable', `channel ${this.accountName} unreachable: ${err.code ?? err.message}`, !neverSent, err.code, true);
    }
    return new ChannelError('unknown', `channel ${this.accountName} call failed: ${(err as Error).message}`, true);
  }

  private observe(operation: string, outcome: string, started: number): void {
    this.metrics.channelCalls.observe({ account: this.accountName, operation, outcome }, (performance.now() - started) / 1000);
  }

  dispose(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
