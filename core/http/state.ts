import type { ParameterizedContext, Next } from 'koa';
import type { ConfigSnapshot } from '../kernel/snapshot.js';
import type { Caller } from '../payments/service.js';

/** Everything one request carries, typed once. */
export interface CorbelState {
  requestId: string;
  snapshot: ConfigSnapshot;
  /** The raw request body, exactly as received (signatures cover these bytes). */
  rawBody: Buffer;
  rawText: string;
  caller?: Caller;
}

export type CorbelContext = ParameterizedContext<CorbelState, { params: Record<string, string> }>;
export type CorbelMiddleware = (ctx: CorbelContext, next: Next) => Promise<void>;
