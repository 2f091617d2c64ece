// Signature primitives of PROTOCOL.md section 3. Pure functions over node:crypto key objects (parsed once at startup).
import { createHash, randomBytes, sign, verify, type KeyObject } from 'node:crypto';

export const SIGNATURE_HEADERS = {
  merchant: 'x-bank-merchant',
  timestamp: 'x-bank-timestamp',
  nonce: 'x-bank-nonce',
  signature: 'x-bank-signature',
} as const;

/** LINE1 of a notification's base string, and its fixed LINE2. */
export const NOTIFY_LINE1 = 'NOTIFY';
export const NOTIFY_LINE2 = '-';

export const NONCE_PATTERN = /^[A-Za-z0-9]{16,64}$/;
export const TIMESTAMP_PATTERN = /^[0-9]{1,12}$/;

export interface SignedMessage {
  /** Request: HTTP method. Response: 3-digit status. Notification: `NOTIFY`. */
  line1: string;
  /** Request and response: the request-target. Notification: `-`. */
  line2: string;
  merchantId: string;
  timestamp: string;
  nonce: string;
  body: Buffer | string;
}

export function bodySha256Hex(body: Buffer | string): string {
  return createHash('sha256').update(body).digest('hex');
}

export function baseString(message: SignedMessage): string {
  return [message.line1, message.line2, message.merchantId, message.timestamp, message.nonce, bodySha256Hex(message.body)]
    .map((line) => `${line}\n`)
    .join('');
}

export function signBase64(message: SignedMessage, privateKey: KeyObject): string {
  return sign('sha256', Buffer.from(baseString(message), 'utf8'), privateKey).toString('base64');
}

export function verifyBase64(message: SignedMessage, signatureBase64: string, publicKey: KeyObject): boolean {
  // Reject non-canonical base64 up front: Buffer.from silently skips invalid characters.
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(signatureBase64)) return false;
  try {
    return verify('sha256', Buffer.from(baseString(message), 'utf8'), publicKey, Buffer.from(signatureBase64, 'base64'));
  } catch {
    return false;
  }
}

/** 32 characters of [A-Za-z0-9]; within the 16-64 the protocol allows. */
export function newNonce(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(32), (byte) => alphabet[byte % alphabet.length]).join('');
}

export function unixSeconds(nowMs: number = Date.now()): string {
  return String(Math.floor(nowMs / 1000));
}

/** For the `corrupt_signature` fault: still well-formed base64 of the right length, but wrong bytes. */
export function corruptSignature(signatureBase64: string): string {
  const bytes = Buffer.from(signatureBase64, 'base64');
  bytes[bytes.length - 1] ^= 0x01;
  return bytes.toString('base64');
}
