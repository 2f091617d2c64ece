import type { GatewaySigner } from '../../crypto/gateway-keys.js';
import type { CorbelContext, CorbelMiddleware } from '../state.js';

/**
 * Serialises the JSON body once and signs it with the gateway key (Corbel-Timestamp/Nonce/Signature), or takes the
 * signature a route made ahead for exactly this body (presign).
 */
export function signResponse(signer: GatewaySigner): CorbelMiddleware {
  return async (ctx, next) => {
    await next();
    let body = ctx.body;
    if (body === undefined || body === null) body = '';
    if (Buffer.isBuffer(body) || typeof (body as { pipe?: unknown }).pipe === 'function') return;
    if (typeof body !== 'string') {
      const status = ctx.status;
      body = JSON.stringify(body);
      ctx.body = body;
      ctx.type = 'application/json';
      ctx.status = status;
    }
    const presigned = ctx.state.presigned;
    const headers = await (presigned && presigned.body === body ? presigned.headers : signer.signHeaders(body as string));
    for (const [name, value] of Object.entries(headers)) ctx.set(name, value);
  };
}

/**
 * Signs a body ahead of time, while the write it reports is still committing, so the signature and the commit overlap.
 * Returns the body, to be sent only once that write has committed; a route that ends up sending another body just
 * gets it signed as usual.
 */
export function presign(ctx: CorbelContext, signer: GatewaySigner, payload: unknown): string {
  const body = JSON.stringify(payload);
  const headers = signer.signHeaders(body);
  // Unused when the guess fails: its failure must not become an unhandled rejection.
  headers.catch(() => undefined);
  ctx.state.presigned = { body, headers };
  // Set now: a string body set later keeps it (Koa would type it text/plain).
  ctx.type = 'application/json';
  return body;
}
