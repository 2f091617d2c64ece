import type { ParameterizedContext, Next } from 'koa';
import type { ConfigSnapshot } from '../kernel/snapshot.js';
import type { SignedHeaders } from '../crypto/gateway-keys.js';
import type { Caller } from '../payments/service.js';

/** Everything one request carries, typed once. */
export interface CorbelState {
  requestId: string;
  snapshot: ConfigSnapshot;
  /** The raw request body, exactly as received (signatures cover these bytes). */
  rawBody: Buffer;
  rawText: string;
  caller?: Caller;
  /** A response body signed ahead, while the write it reports was committing; used only if the body sent is this one. */
  presigned?: { body: string; headers: Promise<SignedHeaders> };
}

export type CorbelContext = ParameterizedContext<CorbelState, { params: Record<string, string> }>;
export type CorbelMiddleware = (ctx: CorbelContext, next: Next) => Promise<void>;
