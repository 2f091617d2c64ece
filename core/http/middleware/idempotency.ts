import { createHash } from 'node:crypto';
import { ApiError } from '../../errors.js';
import type { Store } from '../../store/index.js';
import type { CorbelMiddleware } from '../state.js';

/** A claim older than this whose request never completed is taken to have died with its process. */
const ABANDONED_AFTER_MS = 60_000;

/**
 * `Idempotency-Key` on a POST: the first response for a key is stored durably before it is sent,
 * and replayed for the same key and body; the same key with another body is a 409.
 */
export function idempotency(store: Store): CorbelMiddleware {
  return async (ctx, next) => {
    const key = ctx.get('idempotency-key');
    if (ctx.method !== 'POST' || !key) return next();
    if (key.length > 255) throw new ApiError('invalid_request', 'Idempotency-Key is at most 255 characters', 'Idempotency-Key');
    const appId = ctx.state.caller!.app.id;
    const hash = createHash('sha256').update(`${ctx.method} ${ctx.path}\n`).update(ctx.state.rawBody).digest('hex');
    const now = Date.now();
    const claim = await store.transaction(async (tx) => {
      const c = await store.idempotency.claim(tx, appId, key, hash, now);
      if (!c.claimed && c.statusCode === null && c.requestHash === hash && (await store.idempotency.reclaimStale(tx, appId, key, hash, now - ABANDONED_AFTER_MS, now))) {
        return { claimed: true as const };
      }
      return c;
    });
    if (!claim.claimed) {
      if (claim.requestHash !== hash) throw new ApiError('idempotency_key_reused', 'this Idempotency-Key was used with a different request body', 'Idempotency-Key');
      if (claim.statusCode === null) throw new ApiError('idempotency_in_progress', 'a request with this Idempotency-Key is still in progress', 'Idempotency-Key');
      ctx.status = claim.statusCode;
      ctx.body = claim.responseBody ?? '';
      ctx.type = 'application/json';
      ctx.set('Idempotent-Replayed', 'true');
      return;
    }
    try {
      await next();
    } catch (err) {
      if (err instanceof ApiError && err.status < 500) {
        ctx.status = err.status;
        ctx.body = err.toJSON();
      } else {
        await store.transaction((tx) => store.idempotency.release(tx, appId, key));
        throw err;
      }
    }
    if (ctx.status >= 500) {
      await store.transaction((tx) => store.idempotency.release(tx, appId, key));
      return;
    }
    const status = ctx.status;
    const body = typeof ctx.body === 'string' ? ctx.body : JSON.stringify(ctx.body ?? null);
    ctx.body = body;
    ctx.type = 'application/json';
    ctx.status = status;
    await store.transaction((tx) => store.idempotency.complete(tx, appId, key, status, body));
  };
}
