import { createVerify, type KeyObject } from 'node:crypto';
import { ChannelError, rsaSha256SignBase64 } from '../../core/index.js';

/** Alipay's gateway works in China Standard Time (UTC+8, no DST), whatever the host's TZ. */
const CHINA_OFFSET_MS = 8 * 3600_000;

const pad = (n: number) => (n < 10 ? `0${n}` : String(n));

/** "yyyy-MM-dd HH:mm:ss" in China time. */
export function chinaTime(at: Date): string {
  const d = new Date(at.getTime() + CHINA_OFFSET_MS);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

const CHINA_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?$/;

/** Parses "yyyy-MM-dd HH:mm:ss[.SSS]" as China time; undefined when absent or malformed. */
export function parseChinaTime(text: string | undefined): Date | undefined {
  const m = text ? CHINA_TIME.exec(text.trim()) : null;
  if (!m) return undefined;
  const ms = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, m[7] ? +m[7].padEnd(3, '0') : 0);
  return new Date(ms - CHINA_OFFSET_MS);
}

/**
 * The string Alipay signs: parameters sorted by key, empty values and the excluded keys dropped,
 * joined as raw (not URL-encoded) `k=v&k=v`. Requests exclude only `sign`; notifications also `sign_type`.
 */
export function signContent(params: Record<string, string | undefined>, exclude: readonly string[] = ['sign']): string {
  return Object.keys(params)
    .filter((k) => !exclude.includes(k) && params[k] !== undefined && params[k] !== '')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
}

export function rsa2Sign(content: string, key: KeyObject): Promise<string> {
  return rsaSha256SignBase64(content, key);
}

export function rsa2Verify(content: string | Buffer, signature: string, key: KeyObject): boolean {
  if (!signature) return false;
  try {
    return createVerify('RSA-SHA256').update(content).verify(key, signature, 'base64');
  } catch {
    return false;
  }
}

export interface CommonParams {
  appId: string;
  method: string;
  bizContent: Record<string, unknown>;
  notifyUrl?: string;
  returnUrl?: string;
  appAuthToken?: string;
  now: Date;
}

/** Builds and signs the full parameter set of one OpenAPI call (public-key mode, RSA2). */
export async function signedParams(p: CommonParams, key: KeyObject): Promise<Record<string, string>> {
  const params: Record<string, string> = {
    app_id: p.appId,
    method: p.method,
    format: 'JSON',
    charset: 'utf-8',
    sign_type: 'RSA2',
    timestamp: chinaTime(p.now),
    version: '1.0',
    biz_content: JSON.stringify(p.bizContent),
  };
  if (p.notifyUrl) params.notify_url = p.notifyUrl;
  if (p.returnUrl) params.return_url = p.returnUrl;
  if (p.appAuthToken) params.app_auth_token = p.appAuthToken;
  params.sign = await rsa2Sign(signContent(params), key);
  return params;
}

/** `k=v&…` with every value percent-encoded (UTF-8): a form body, a GET query, or an app order string. */
export function encodeParams(params: Record<string, string>): string {
  return Object.keys(params)
    .map((k) => `${k}=${encodeURIComponent(params[k]!)}`)
    .join('&');
}

/** The gateway URL with `charset=utf-8` in the query, so the gateway decodes the form body as UTF-8. */
export function gatewayPostUrl(gatewayUrl: string): string {
  const url = new URL(gatewayUrl);
  url.searchParams.set('charset', 'utf-8');
  return url.toString();
}

/** A browser GET URL of a page method (page.pay, wap.pay): the gateway plus all signed parameters. */
export function gatewayGetUrl(gatewayUrl: string, params: Record<string, string>): string {
  return `${gatewayUrl}${gatewayUrl.includes('?') ? '&' : '?'}${encodeParams(params)}`;
}

/** `<method with dots as underscores>_response`. */
export function responseKey(method: string): string {
  return `${method.replace(/\./g, '_')}_response`;
}

/**
 * The exact source text of each top-level member's value of a JSON object, without re-serializing.
 * Returns null when the text is not a JSON object.
 */
export function topLevelMembers(text: string): Map<string, string> | null {
  let i = 0;
  const n = text.length;
  const ws = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  };
  const skipString = (): boolean => {
    if (text[i] !== '"') return false;
    i++;
    while (i < n && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= n) return false;
    i++;
    return true;
  };
  const skipValue = (): boolean => {
    const c = text[i];
    if (c === '"') return skipString();
    if (c === '{' || c === '[') {
      let depth = 0;
      while (i < n) {
        const ch = text[i];
        if (ch === '"') {
          if (!skipString()) return false;
          continue;
        }
        if (ch === '{' || ch === '[') depth++;
        else if (ch === '}' || ch === ']') depth--;
        i++;
        if (depth === 0) return true;
      }
      return false;
    }
    const start = i;
    while (i < n && text[i] !== ',' && text[i] !== '}' && text[i] !== ' ' && text[i] !== '\n' && text[i] !== '\r' && text[i] !== '\t') i++;
    return i > start;
  };
  const out = new Map<string, string>();
  ws();
  if (text[i] !== '{') return null;
  i++;
  ws();
  if (text[i] === '}') return out;
  for (;;) {
    ws();
    const keyStart = i;
    if (!skipString()) return null;
    let key: string;
    try {
      key = JSON.parse(text.slice(keyStart, i)) as string;
    } catch {
      return null;
    }
    ws();
    if (text[i] !== ':') return null;
    i++;
    ws();
    const valueStart = i;
    if (!skipValue()) return null;
    out.set(key, text.slice(valueStart, i));
    ws();
    if (text[i] === ',') {
      i++;
      continue;
    }
    if (text[i] === '}') return out;
    return null;
  }
}

export interface GatewayResponse {
  /** The parsed `<method>_response` (or `error_response`) object. */
  body: Record<string, unknown>;
  code: string;
  msg: string;
  subCode?: string;
  subMsg?: string;
  /** Whether a `sign` was present and verified over the exact response bytes. */
  signed: boolean;
}

/**
 * Cuts `<method>_response` (or `error_response`) out of the raw gateway text and verifies `sign` over
 * exactly those bytes. A present but wrong signature throws signature_invalid (mayExist=true); an absent
 * one is reported as `signed: false` so the caller decides (Alipay leaves some pre-acceptance errors unsigned).
 */
export function parseGatewayResponse(raw: string, method: string, alipayPublicKey: KeyObject): GatewayResponse {
  const members = topLevelMembers(raw);
  if (!members) throw new ChannelError('unknown', `alipay ${method}: response is not a JSON object`, true);
  const key = responseKey(method);
  const source = members.get(key) ?? members.get('error_response');
  if (source === undefined) throw new ChannelError('unknown', `alipay ${method}: response has no ${key}`, true);
  let body: Record<string, unknown>;
  let sign: unknown;
  try {
    body = JSON.parse(source) as Record<string, unknown>;
    const signSource = members.get('sign');
    sign = signSource === undefined ? undefined : JSON.parse(signSource);
  } catch {
    throw new ChannelError('unknown', `alipay ${method}: response is not valid JSON`, true);
  }
  if (body === null || typeof body !== 'object') throw new ChannelError('unknown', `alipay ${method}: ${key} is not an object`, true);
  let signed = false;
  if (typeof sign === 'string' && sign !== '') {
    if (!rsa2Verify(Buffer.from(source, 'utf8'), sign, alipayPublicKey)) {
      throw new ChannelError('signature_invalid', `alipay ${method}: response signature does not verify`, true);
    }
    signed = true;
  }
  const str = (v: unknown) => (typeof v === 'string' ? v : v === undefined || v === null ? undefined : String(v));
  return {
    body,
    code: str(body.code) ?? '',
    msg: str(body.msg) ?? '',
    subCode: str(body.sub_code),
    subMsg: str(body.sub_msg),
    signed,
  };
}

/** Form body parsing for notifications: percent-decoding to bytes, then the message's declared charset. */
export function parseForm(raw: Buffer): Record<string, string> {
  const text = raw.toString('latin1');
  const pairs: Array<[Buffer, Buffer]> = [];
  for (const part of text.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? '' : part.slice(eq + 1);
    pairs.push([percentDecode(k), percentDecode(v)]);
  }
  const charsetPair = pairs.find(([k]) => k.toString('latin1') === 'charset');
  const charset = charsetPair ? charsetPair[1].toString('latin1').trim().toLowerCase() : 'utf-8';
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(charset === 'utf8' ? 'utf-8' : charset);
  } catch {
    decoder = new TextDecoder('utf-8');
  }
  const out: Record<string, string> = {};
  for (const [k, v] of pairs) out[decoder.decode(k)] = decoder.decode(v);
  return out;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function percentDecode(s: string): Buffer {
  const bytes = Buffer.allocUnsafe(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2b) {
      bytes[n++] = 0x20;
      continue;
    }
    if (c === 0x25 && i + 2 < s.length) {
      const hi = hexValue(s.charCodeAt(i + 1));
      const lo = hexValue(s.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        bytes[n++] = hi * 16 + lo;
        i += 2;
        continue;
      }
    }
    bytes[n++] = c & 0xff;
  }
  return bytes.subarray(0, n);
}
