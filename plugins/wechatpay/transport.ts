/**
 * WeChat Pay API v3 wire mechanics: URLs, the WECHATPAY2-SHA256-RSA2048 request signature, response and
 * notification signature verification, and the AEAD_AES_256_GCM envelope. Pure apart from the clock and randomness.
 */
import { createDecipheriv, createVerify, randomBytes, type KeyObject } from 'node:crypto';
import { rsaSha256SignBase64 } from '../../core/index.js';

export const AUTH_SCHEME = 'WECHATPAY2-SHA256-RSA2048';
/** WeChat's probe notifications carry a signature with this prefix; they must never verify. */
export const SIGNTEST_PREFIX = 'WECHATPAY/SIGNTEST/';
const GCM_TAG_BYTES = 16;
const UNIX_SECONDS = /^\d{1,12}$/;

// ---------------------------------------------------------------- URLs

const enc = encodeURIComponent;

/** `/v3/pay/transactions/{native|jsapi|app|h5}` or the partner (service-provider) twin. */
export function prepayPath(partner: boolean, tradeType: 'native' | 'jsapi' | 'app' | 'h5'): string {
  return `${partner ? '/v3/pay/partner/transactions' : '/v3/pay/transactions'}/${tradeType}`;
}

export function queryPath(partner: boolean, outTradeNo: string, mchid: string, subMchid?: string): string {
  return partner
    ? `/v3/pay/partner/transactions/out-trade-no/${enc(outTradeNo)}?sp_mchid=${enc(mchid)}&sub_mchid=${enc(subMchid ?? '')}`
    : `/v3/pay/transactions/out-trade-no/${enc(outTradeNo)}?mchid=${enc(mchid)}`;
}

export function closePath(partner: boolean, outTradeNo: string): string {
  return `${partner ? '/v3/pay/partner/transactions' : '/v3/pay/transactions'}/out-trade-no/${enc(outTradeNo)}/close`;
}

export const REFUNDS_PATH = '/v3/refund/domestic/refunds';

export function refundQueryPath(outRefundNo: string, subMchid?: string): string {
  return `${REFUNDS_PATH}/${enc(outRefundNo)}${subMchid ? `?sub_mchid=${enc(subMchid)}` : ''}`;
}

export function tradeBillPath(billDate: string, subMchid?: string): string {
  return `/v3/bill/tradebill?bill_date=${enc(billDate)}&bill_type=ALL${subMchid ? `&sub_mchid=${enc(subMchid)}` : ''}`;
}

export const CERTIFICATES_PATH = '/v3/certificates';
export const MICROPAY_PATH = '/pay/micropay';

/** The part of a URL WeChat signs: path plus `?query`, no scheme or host. */
export function signedUrlPart(url: string): string {
  const u = new URL(url);
  return `${u.pathname}${u.search}`;
}

// ---------------------------------------------------------------- request signing

export function newNonce(): string {
  return randomBytes(16).toString('hex').toUpperCase();
}

export function unixSeconds(now: Date = new Date()): string {
  return String(Math.floor(now.getTime() / 1000));
}

/** `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n`: each line, the last included, ends with a newline. */
export function requestSigningString(method: string, urlPart: string, timestamp: string, nonce: string, body: string): string {
  return `${method}\n${urlPart}\n${timestamp}\n${nonce}\n${body}\n`;
}

export interface MerchantSigner {
  mchid: string;
  serialNo: string;
  privateKey: KeyObject;
}

/** Every v3 call carries one, so its RSA signature is computed on the thread pool rather than the event loop. */
export async function authorizationHeader(signer: MerchantSigner, method: string, urlPart: string, body: string, timestamp = unixSeconds(), nonce = newNonce()): Promise<string> {
  const signature = await rsaSha256SignBase64(requestSigningString(method, urlPart, timestamp, nonce, body), signer.privateKey);
  return `${AUTH_SCHEME} mchid="${signer.mchid}",nonce_str="${nonce}",timestamp="${timestamp}",serial_no="${signer.serialNo}",signature="${signature}"`;
}

// ---------------------------------------------------------------- response / notification verification

export interface WechatpaySignatureHeaders {
  timestamp: string;
  nonce: string;
  signature: string;
  serial: string;
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string {
  const v = headers[name] ?? headers[name.toLowerCase()];
  return (Array.isArray(v) ? v[0] : v)?.trim() ?? '';
}

/** Reads the four Wechatpay-* headers (case-insensitively, as Node lowercases them); null when any is missing. */
export function signatureHeaders(headers: Record<string, string | string[] | undefined>): WechatpaySignatureHeaders | null {
  const lower: Record<string, string | string[] | undefined> = {};
  for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = v;
  const h = {
    timestamp: header(lower, 'wechatpay-timestamp'),
    nonce: header(lower, 'wechatpay-nonce'),
    signature: header(lower, 'wechatpay-signature'),
    serial: header(lower, 'wechatpay-serial'),
  };
  return h.timestamp && h.nonce && h.signature && h.serial ? h : null;
}

export function responseSigningString(timestamp: string, nonce: string, body: string): string {
  return `${timestamp}\n${nonce}\n${body}\n`;
}

export type VerifyOutcome =
  | { ok: true; serial: string }
  | { ok: false; reason: string; unknownSerial?: string };

/**
 * Verifies the Wechatpay-* signature over `timestamp\nnonce\nbody\n` with the key the serial names.
 * `keyFor` returns undefined for an unknown serial (the caller may refresh platform certificates and retry).
 */
export function verifySignature(
  headers: Record<string, string | string[] | undefined>,
  body: string,
  keyFor: (serial: string) => KeyObject | undefined,
  maxSkewSeconds: number,
  now: Date = new Date(),
): VerifyOutcome {
  const h = signatureHeaders(headers);
  if (!h) return { ok: false, reason: 'missing Wechatpay-Timestamp/Nonce/Signature/Serial header' };
  if (h.signature.startsWith(SIGNTEST_PREFIX)) return { ok: false, reason: 'WECHATPAY/SIGNTEST probe signature' };
  if (!UNIX_SECONDS.test(h.timestamp)) return { ok: false, reason: 'malformed Wechatpay-Timestamp' };
  const skew = Math.abs(Math.floor(now.getTime() / 1000) - Number(h.timestamp));
  if (skew > maxSkewSeconds) return { ok: false, reason: `Wechatpay-Timestamp is ${skew}s away from the local clock` };
  const key = keyFor(h.serial);
  if (!key) return { ok: false, reason: `unknown Wechatpay-Serial ${h.serial}`, unknownSerial: h.serial };
  let valid = false;
  try {
    valid = createVerify('RSA-SHA256').update(responseSigningString(h.timestamp, h.nonce, body)).verify(key, h.signature, 'base64');
  } catch {
    valid = false;
  }
  return valid ? { ok: true, serial: h.serial } : { ok: false, reason: `signature does not verify with serial ${h.serial}` };
}

// ---------------------------------------------------------------- AEAD_AES_256_GCM

export interface EncryptedResource {
  algorithm?: string;
  ciphertext: string;
  nonce: string;
  associated_data?: string;
}

/** Decrypts a notification resource or an encrypt_certificate: key = APIv3 key, IV = nonce, tag = last 16 bytes. */
export function decryptResource(apiV3Key: KeyObject, resource: EncryptedResource): Buffer {
  if (resource.algorithm && resource.algorithm !== 'AEAD_AES_256_GCM') throw new Error(`unsupported algorithm ${resource.algorithm}`);
  const data = Buffer.from(resource.ciphertext, 'base64');
  if (data.length <= GCM_TAG_BYTES) throw new Error('ciphertext shorter than the GCM tag');
  const decipher = createDecipheriv('aes-256-gcm', apiV3Key, Buffer.from(resource.nonce, 'utf8'));
  decipher.setAuthTag(data.subarray(data.length - GCM_TAG_BYTES));
  decipher.setAAD(Buffer.from(resource.associated_data ?? '', 'utf8'));
  return Buffer.concat([decipher.update(data.subarray(0, data.length - GCM_TAG_BYTES)), decipher.final()]);
}

// ---------------------------------------------------------------- error bodies

export interface WechatErrorBody {
  code: string;
  message: string;
  detail?: unknown;
}

export function parseErrorBody(text: string): WechatErrorBody | null {
  try {
    const v = JSON.parse(text) as Partial<WechatErrorBody>;
    if (v && typeof v.code === 'string') return { code: v.code, message: typeof v.message === 'string' ? v.message : '', detail: v.detail };
  } catch {
    /* not JSON */
  }
  return null;
}
