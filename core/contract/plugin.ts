import type { ZodType, ZodTypeDef } from 'zod';

export type PluginKind = 'channel' | 'capability';

export interface PluginManifest<Config = unknown> {
  name: string;
  version: string;
  kind: PluginKind;
  /** Semver-ish range of the kernel contract this plugin was written against, e.g. "1". */
  contract: string;
  description?: string;
  /** Validates the plugin's own config block; its messages are reported with the config path. */
  configSchema: ZodType<Config, ZodTypeDef, unknown>;
}

export interface HealthStatus {
  ok: boolean;
  detail?: string;
}

/** Structured logger handed to plugins; secrets passed in fields named like keys or secrets are redacted. */
export interface PluginLogger {
  debug(obj: Record<string, unknown>, msg?: string): void;
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
  error(obj: Record<string, unknown>, msg?: string): void;
}

export interface OutboundRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Overrides the account's per-call timeout. */
  timeoutMs?: number;
  /** Name of the operation for logs and metrics, e.g. "create_payment". */
  operation: string;
  /** The merchant request this call serves (ChannelCallScope.requestId): sent as X-Request-Id unless a header sets its own. */
  requestId?: string;
}

export interface OutboundResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The body as UTF-8 text, decoded once. */
  text: string;
}

/**
 * The kernel's one HTTP executor for channel calls. It throws ChannelError with
 * mayExist=false when the request provably never reached the channel (DNS, refused connection)
 * and mayExist=true when it was sent and not answered (timeout, reset after sending).
 */
export interface ChannelHttp {
  send(req: OutboundRequest): Promise<OutboundResponse>;
}

export interface PluginContext {
  logger: PluginLogger;
  http: ChannelHttp;
  /** Directory for the plugin's own files (keys it generates, caches). */
  dataDir: string;
  /** Directory config-relative paths are resolved against. */
  configDir: string;
  /** Base URL where the gateway is reachable from the channel (for notify URLs). */
  publicUrl: string;
}
