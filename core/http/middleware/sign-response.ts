import type { GatewaySigner } from '../../crypto/gateway-keys.js';
import type { CorbelMiddleware } from '../state.js';

/** Serialises the JSON body once and signs it with the gateway key (Corbel-Timestamp/Nonce/Signature). */
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
    const headers = await signer.signHeaders(body as string);
    for (const [name, value] of Object.entries(headers)) ctx.set(name, value);
  };
}
