/**
 * Pure signing and formatting helpers for the Alipay OpenAPI (v1, gateway.do) wire protocol.
 * Shared with nothing outside the simulator on purpose: the gateway plugin is written independently.
 */
import { createSign, createVerify, type KeyObject } from 'node:crypto';

export type ParamMap = Record<string, string>;

/** Requests: only `sign` is left out of the signed content (AJAVA getSignContent). */
export const REQUEST_SIGN_EXCLUDED: readonly string[] = ['sign'];
/** Notifications and return_url parameters: `sign` and `sign_type` are left out (AJAVA rsaCheckV1). */
export const NOTIFY_SIGN_EXCLUDED: readonly string[] = ['sign', 'sign_type'];

/**
 * The string Alipay signs: keys sorted, excluded keys and empty values dropped,
 * raw (not URL-encoded) values joined as `k=v&k=v`.
 */
export function buildSignContent(params: ParamMap, excluded: readonly string[] = REQUEST_SIGN_EXCLUDED): string {
  return Object.keys(params)
    .filter((key) => !excluded.includes(key) && params[key] !== undefined && params[key] !== '')
    .sort()
    .map((key) => `${key}=${params[key]}`)
    .join('&');
}

/** SHA256withRSA (PKCS#1 v1.5), base64: what Alipay calls RSA2. */
export function signRsa2(content: string, privateKey: KeyObject): string {
  return createSign('RSA-SHA256').update(content, 'utf8').sign(privateKey, 'base64');
}

export function verifyRsa2(content: string, signature: string, publicKey: KeyObject): boolean {
  try {
    return createVerify('RSA-SHA256').update(content, 'utf8').verify(publicKey, signature, 'base64');
  } catch {
    return false;
  }
}

/** A well-formed base64 signature that does not verify (fault `corrupt_signature`). */
export function corruptSignature(signature: string): string {
  const bytes = Buffer.from(signature, 'base64');
  if (bytes.length === 0) return 'AAAA';
  bytes[0] = bytes[0]! ^ 0xff;
  return bytes.toString('base64');
}

/**
 * Alipay's gateway escapes forward slashes in its JSON (`"https:\/\/qr.alipay.com\/..."`).
 * Keeping that forces verifiers to check the raw response bytes, not a re-serialisation.
 */
export function toAlipayJson(value: unknown): string {
  return JSON.stringify(value).replace(/\//g, '\\/');
}

/**
 * `{"<key>":<body>,"sign":"..."}` where the signature covers exactly the emitted text of `<body>`.
 * Without a key (unknown app) the real gateway answers unsigned.
 */
export function buildSignedResponse(
  responseKey: string,
  body: Record<string, unknown>,
  privateKey: KeyObject | null,
  corrupt = false,
): string {
  const bodyText = toAlipayJson(body);
  if (!privateKey) return `{"${responseKey}":${bodyText}}`;
  let sign = signRsa2(bodyText, privateKey);
  if (corrupt) sign = corruptSignature(sign);
  return `{"${responseKey}":${bodyText},"sign":"${sign}"}`;
}

/** `alipay.trade.query` -> `alipay_trade_query_response`. */
export function responseKeyFor(method: string): string {
  return `${method.replace(/\./g, '_')}_response`;
}

// ---------- amounts: yuan strings <-> integer fen, never floats ----------

const YUAN_PATTERN = /^(0|[1-9]\d{0,10})(\.\d{1,2})?$/;

/** Parses "88.8", "88.88", 88.88 (JSON number) into fen; null for anything else (3 decimals, signs, exponents). */
export function parseYuanToFen(value: unknown): number | null {
  let text: string;
  if (typeof value === 'string') text = value.trim();
  else if (typeof value === 'number' && Number.isFinite(value)) text = String(value);
  else return null;
  const match = YUAN_PATTERN.exec(text);
  if (!match) return null;
  const whole = Number(match[1]);
  const decimals = (match[2] ?? '.').slice(1).padEnd(2, '0');
  return whole * 100 + Number(decimals);
}

export function formatFenAsYuan(fen: number): string {
  const sign = fen < 0 ? '-' : '';
  const abs = Math.abs(fen);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

// ---------- time: Alipay speaks China Standard Time (UTC+8, no DST) ----------

const CHINA_OFFSET_MS = 8 * 3600 * 1000;

function chinaParts(date: Date) {
  const shifted = new Date(date.getTime() + CHINA_OFFSET_MS);
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return {
    year: pad(shifted.getUTCFullYear(), 4),
    month: pad(shifted.getUTCMonth() + 1),
    day: pad(shifted.getUTCDate()),
    hour: pad(shifted.getUTCHours()),
    minute: pad(shifted.getUTCMinutes()),
    second: pad(shifted.getUTCSeconds()),
    millis: pad(shifted.getUTCMilliseconds(), 3),
  };
}

/** "yyyy-MM-dd HH:mm:ss" in China time. */
export function formatChinaTime(date: Date): string {
  const p = chinaParts(date);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

/** "yyyy-MM-dd HH:mm:ss.SSS" (used by gmt_refund in notifications). */
export function formatChinaTimeMillis(date: Date): string {
  return `${formatChinaTime(date)}.${chinaParts(date).millis}`;
}

/** "yyyy-MM-dd" in China time. */
export function formatChinaDate(date: Date): string {
  return formatChinaTime(date).slice(0, 10);
}

/** Parses "yyyy-MM-dd HH:mm:ss" (China time); null if malformed or not a real calendar time. */
export function parseChinaTime(text: string): Date | null {
  const match = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(text);
  if (!match) return null;
  const [y, mo, d, h, mi, s] = match.slice(1).map(Number) as [number, number, number, number, number, number];
  const utc = Date.UTC(y, mo - 1, d, h, mi, s);
  const check = new Date(utc);
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) {
    return null;
  }
  return new Date(utc - CHINA_OFFSET_MS);
}
