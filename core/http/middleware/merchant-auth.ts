import { createHmac, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { ApiError } from '../../errors.js';
import type { Store } from '../../store/index.js';
import type { AppRecord, BindingRecord, MerchantRecord } from '../../payments/types.js';
import type { CorbelMiddleware } from '../state.js';
import type { NonceGuard } from './nonces.js';

export const AUTH_SCHEMES = { hmac: 'CORBEL-HMAC-SHA256', rsa: 'CORBEL-RSA-SHA256' } as const;

export interface AuthorizationFields {
  scheme: string;
  app_id: string;
  timestamp: string;
  nonce: string;
  signature: string;
}

/** `SCHEME k="v",k="v"` → fields; null when the shape is wrong. */
export function parseAuthorization(header: string): AuthorizationFields | null {
  const space = header.indexOf(' ');
  if (space < 0) return null;
  const scheme = header.slice(0, space);
  const fields: Record<string, string> = {};
  const pattern = /\s*([a-z_]+)="([^"]*)"\s*(?:,|$)/gy;
  const rest = header.slice(space + 1);
  let consumed = 0;
  let m: RegExpExecArray | null;
  while ((m = pattern.exec(rest)) !== null) {
    fields[m[1]!] = m[2]!;
    consumed = pattern.lastIndex;
    if (consumed >= rest.length) break;
  }
  if (consumed !== rest.length) return null;
  const { app_id, timestamp, nonce, signature } = fields;
  if (!app_id || !timestamp || !nonce || !signature) return null;
  return { scheme, app_id, timestamp, nonce, signature };
}

const NEWLINE = Buffer.from('\n');

/** The bytes a merchant signs: METHOD\nPATH_WITH_QUERY\nTIMESTAMP\nNONCE\nBODY\n, with BODY the raw body bytes as sent. */
export function merchantSignedBytes(method: string, pathWithQuery: string, timestamp: string, nonce: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${method}\n${pathWithQuery}\n${timestamp}\n${nonce}\n`), body, NEWLINE]);
}

interface CachedCaller {
  app: AppRecord;
  merchant: MerchantRecord;
  bindings: BindingRecord[];
  hmacKey: Buffer | null;
  publicKey: KeyObject | null;
  expiresAt: number;
}

/** Apps with their parsed keys and merchants, cached briefly so the hot path parses no PEM and reads no row twice. */
export class CallerCache {
  private readonly entries = new Map<string, CachedCaller>();
  constructor(private readonly store: Store, private readonly ttlMs = 2_000) {}

  async get(appId: string): Promise<CachedCaller | null> {
    const hit = this.entries.get(appId);
    if (hit && hit.expiresAt > Date.now()) return hit;
    const app = await this.store.merchants.getApp(this.store.reads, appId);
    if (!app) return null;
    const merchant = await this.store.merchants.get(this.store.reads, app.merchantId);
    if (!merchant) return null;
    const bindings = await this.store.merchants.listBindings(this.store.reads, merchant.id);
    const entry: CachedCaller = {
      app, merchant, bindings,
      hmacKey: app.hmacSecret ? Buffer.from(app.hmacSecret, 'utf8') : null,
      publicKey: app.publicKeyPem ? (hit?.app.publicKeyPem === app.publicKeyPem ? hit.publicKey : createPublicKey(app.publicKeyPem)) : null,
      expiresAt: Date.now() + this.ttlMs,
    };
    this.entries.set(appId, entry);
    return entry;
  }

  invalidateMerchant(merchantId: string): void {
    for (const [id, e] of this.entries) if (e.merchant.id === merchantId) this.entries.delete(id);
  }
}

/**
 * Authenticates a merchant request: the app, the signature over the exact bytes, the timestamp
 * window and a nonce used once inside it, then that the merchant is active.
 */
export function merchantAuth(callers: CallerCache, nonces: NonceGuard): CorbelMiddleware {
  return async (ctx, next) => {
    const tolerance = ctx.state.snapshot.config.api.timestamp_tolerance_s;
    const header = ctx.get('authorization');
    if (!header) throw new ApiError('missing_authorization', `send an Authorization header: ${AUTH_SCHEMES.hmac} or ${AUTH_SCHEMES.rsa} app_id="…",timestamp="…",nonce="…",signature="…"`);
    const auth = parseAuthorization(header);
    if (!auth) throw new ApiError('malformed_authorization', 'Authorization must be SCHEME app_id="…",timestamp="…",nonce="…",signature="…"');
    if (auth.scheme !== AUTH_SCHEMES.hmac && auth.scheme !== AUTH_SCHEMES.rsa) throw new ApiError('malformed_authorization', `unknown scheme ${auth.scheme}`);
    if (!/^\d{1,12}$/.test(auth.timestamp)) throw new ApiError('malformed_authorization', 'timestamp must be unix seconds', 'timestamp');
    if (!/^[\x21-\x7e]{8,64}$/.test(auth.nonce)) throw new ApiError('malformed_authorization', 'nonce must be 8 to 64 printable characters', 'nonce');

    const caller = await callers.get(auth.app_id);
    if (!caller) throw new ApiError('unknown_app', `no app ${auth.app_id}`, 'app_id');
    const now = Date.now();
    const skew = Math.abs(now / 1000 - Number(auth.timestamp));
    if (skew > tolerance) throw new ApiError('timestamp_out_of_window', `timestamp is ${Math.round(skew)} s off the gateway clock; at most ${tolerance} s is accepted`, 'timestamp');

    const signed = merchantSignedBytes(ctx.method, ctx.originalUrl, auth.timestamp, auth.nonce, ctx.state.rawBody);
    const expectedScheme = caller.app.authType === 'hmac' ? AUTH_SCHEMES.hmac : AUTH_SCHEMES.rsa;
    if (auth.scheme !== expectedScheme) throw new ApiError('invalid_signature', `app ${auth.app_id} signs with ${expectedScheme}`, 'signature');
    if (!signatureValid(caller, signed, auth.signature)) throw new ApiError('invalid_signature', 'signature does not match the request', 'signature');

    if (!nonces.use(auth.app_id, auth.nonce, now + 2 * tolerance * 1000, now)) throw new ApiError('nonce_reused', 'nonce was already used inside the timestamp window', 'nonce');

    if (caller.app.status !== 'active') throw new ApiError('app_disabled', `app ${auth.app_id} is disabled`);
    if (caller.merchant.status !== 'active') throw new ApiError('merchant_not_active', `merchant ${caller.merchant.id} is ${caller.merchant.status}; only active merchants may transact`);
    ctx.state.caller = { app: caller.app, merchant: caller.merchant, bindings: caller.bindings, requestId: ctx.state.requestId };
    await next();
  };
}

function signatureValid(caller: CachedCaller, signed: Buffer, signature: string): boolean {
  const provided = Buffer.from(signature, 'base64');
  if (caller.hmacKey) {
    const expected = createHmac('sha256', caller.hmacKey).update(signed).digest();
    return provided.length === expected.length && timingSafeEqual(provided, expected);
  }
  if (caller.publicKey) {
    try {
      return verify('sha256', signed, caller.publicKey, provided);
    } catch {
      return false;
    }
  }
  return false;
}
