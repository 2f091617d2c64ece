// Pure signing / encryption helpers for the WeChat Pay simulator.
// Written from the protocol description (docs/SDK behaviour), sharing no code with the gateway plugin.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createSign,
  createVerify,
  randomBytes,
  type KeyObject,
} from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Random alphanumeric string, the shape WeChat uses for nonces. */
export function randomNonce(length = 32): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const byte of bytes) out += BASE62[byte % 62];
  return out;
}

export function unixSeconds(now = Date.now()): number {
  return Math.floor(now / 1000);
}

/** `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n`: what a merchant signs for an APIv3 request. */
export function requestSigningMessage(method: string, pathAndQuery: string, timestamp: string, nonce: string, body: string): string {
  return `${method}\n${pathAndQuery}\n${timestamp}\n${nonce}\n${body}\n`;
}

/** `TIMESTAMP\nNONCE\nBODY\n`: what WeChat signs for responses and notifications. */
export function responseSigningMessage(timestamp: string, nonce: string, body: string): string {
  return `${timestamp}\n${nonce}\n${body}\n`;
}

export function rsaSha256Sign(message: string, privateKey: KeyObject): string {
  return createSign('RSA-SHA256').update(message).sign(privateKey, 'base64');
}

export function rsaSha256Verify(message: string, signatureBase64: string, publicKey: KeyObject): boolean {
  try {
    return createVerify('RSA-SHA256').update(message).verify(publicKey, signatureBase64, 'base64');
  } catch {
    return false;
  }
}

export interface AuthorizationFields {
  mchid: string;
  nonce_str: string;
  timestamp: string;
  serial_no: string;
  signature: string;
}

export const AUTHORIZATION_SCHEMA = 'WECHATPAY2-SHA256-RSA2048';

/** Parses `WECHATPAY2-SHA256-RSA2048 k="v",k="v"`; null when the header is malformed or incomplete. */
export function parseAuthorization(header: string | undefined): AuthorizationFields | null {
  if (!header) return null;
  const trimmed = header.trim();
  if (!trimmed.startsWith(`${AUTHORIZATION_SCHEMA} `)) return null;
  const fields: Record<string, string> = {};
  const pairPattern = /([a-z_]+)="([^"]*)"/g;
  for (const match of trimmed.slice(AUTHORIZATION_SCHEMA.length + 1).matchAll(pairPattern)) {
    fields[match[1]] = match[2];
  }
  const { mchid, nonce_str, timestamp, serial_no, signature } = fields;
  if (!mchid || !nonce_str || !timestamp || !serial_no || !signature) return null;
  return { mchid, nonce_str, timestamp, serial_no, signature };
}

export interface EncryptedResource {
  algorithm: 'AEAD_AES_256_GCM';
  ciphertext: string;
  associated_data: string;
  nonce: string;
}

/** AEAD_AES_256_GCM as WeChat uses it: key = APIv3 key ASCII bytes, iv = nonce bytes, tag appended to the ciphertext. */
export function aesGcmEncrypt(plaintext: string, apiV3Key: string, nonce: string, associatedData: string): string {
  const cipher = createCipheriv('aes-256-gcm', Buffer.from(apiV3Key, 'utf8'), Buffer.from(nonce, 'utf8'));
  cipher.setAAD(Buffer.from(associatedData, 'utf8'));
  return Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]).toString('base64');
}

export function aesGcmDecrypt(ciphertextBase64: string, apiV3Key: string, nonce: string, associatedData: string): string {
  const raw = Buffer.from(ciphertextBase64, 'base64');
  const tag = raw.subarray(raw.length - 16);
  const decipher = createDecipheriv('aes-256-gcm', Buffer.from(apiV3Key, 'utf8'), Buffer.from(nonce, 'utf8'));
  decipher.setAAD(Buffer.from(associatedData, 'utf8'));
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(raw.subarray(0, raw.length - 16)), decipher.final()]).toString('utf8');
}

export function encryptResource(plaintext: string, apiV3Key: string, associatedData: string): EncryptedResource {
  // WeChat uses a 12-character alphanumeric nonce as the GCM IV.
  const nonce = randomNonce(12);
  return { algorithm: 'AEAD_AES_256_GCM', ciphertext: aesGcmEncrypt(plaintext, apiV3Key, nonce, associatedData), associated_data: associatedData, nonce };
}

// ---- APIv2 (XML, MD5 / HMAC-SHA256 with the 32-char v2 key) ----

export type V2SignType = 'MD5' | 'HMAC-SHA256';

/** `k=v&k=v&...&key=V2KEY` over non-empty fields except `sign`, keys sorted in ASCII order. */
export function v2SigningString(fields: Record<string, string>): string {
  return Object.keys(fields)
    .filter((key) => key !== 'sign' && fields[key] !== '' && fields[key] !== undefined)
    .sort()
    .map((key) => `${key}=${fields[key]}`)
    .join('&');
}

export function v2Sign(fields: Record<string, string>, v2Key: string, signType: V2SignType): string {
  const message = `${v2SigningString(fields)}&key=${v2Key}`;
  const digest = signType === 'HMAC-SHA256'
    ? createHmac('sha256', v2Key).update(message, 'utf8').digest('hex')
    : createHash('md5').update(message, 'utf8').digest('hex');
  return digest.toUpperCase();
}

/** Flat `<xml><k><![CDATA[v]]></k>…</xml>` parser; null when the payload is not such a document. */
export function parseV2Xml(xml: string): Record<string, string> | null {
  const root = /^\s*(?:<\?xml[^>]*\?>\s*)?<xml>([\s\S]*)<\/xml>\s*$/.exec(xml);
  if (!root) return null;
  const fields: Record<string, string> = {};
  const elementPattern = /<([A-Za-z_][\w]*)>(?:<!\[CDATA\[([\s\S]*?)\]\]>|([^<]*))<\/\1>/g;
  for (const match of root[1].matchAll(elementPattern)) {
    fields[match[1]] = match[2] ?? decodeXmlEntities(match[3] ?? '');
  }
  return fields;
}

function decodeXmlEntities(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

export function buildV2Xml(fields: Record<string, string>): string {
  const body = Object.entries(fields)
    .filter(([, value]) => value !== undefined && value !== '')
    .map(([key, value]) => (/^\d+$/.test(value) ? `<${key}>${value}</${key}>` : `<${key}><![CDATA[${value}]]></${key}>`))
    .join('');
  return `<xml>${body}</xml>`;
}

export function sha1Hex(data: Buffer): string {
  return createHash('sha1').update(data).digest('hex');
}
