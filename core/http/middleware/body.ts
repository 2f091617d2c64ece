import getRawBody from 'raw-body';
import { ApiError } from '../../errors.js';
import type { CorbelMiddleware, CorbelContext } from '../state.js';

const EMPTY = Buffer.alloc(0);

/** Reads the raw body once, bounded by the configured limit; signatures are checked over these exact bytes. */
export function rawBody(): CorbelMiddleware {
  return async (ctx, next) => {
    if (ctx.method === 'GET' || ctx.method === 'HEAD' || ctx.method === 'DELETE') {
      ctx.state.rawBody = EMPTY;
      ctx.state.rawText = '';
    } else {
      const limit = ctx.state.snapshot.config.server.body_limit_bytes;
      const declared = Number(ctx.get('content-length') || '0');
      if (declared > limit) throw new ApiError('body_too_large', `request body is ${declared} bytes; the limit is ${limit}`);
      ctx.state.rawBody = await getRawBody(ctx.req, { limit });
      ctx.state.rawText = ctx.state.rawBody.toString('utf8');
    }
    await next();
  };
}

/** Parses the body as a JSON object, naming the problem when it is not one. */
export function jsonBody(ctx: CorbelContext): Record<string, unknown> {
  const text = ctx.state.rawText;
  if (text.trim() === '') return {};
  const type = ctx.get('content-type');
  if (type && !/^application\/([\w.+-]+\+)?json\b/i.test(type)) {
    throw new ApiError('invalid_request', `content-type must be application/json, got ${type}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ApiError('invalid_json', `request body is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ApiError('invalid_json', 'request body must be a JSON object');
  return value as Record<string, unknown>;
}
