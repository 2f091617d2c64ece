/**
 * ACP 5.1.0 message signing (signMethod=01), as the UnionPay gateway does it:
 *   1. sort all fields except `signature` by key (byte order), skip blank values, join as `k=v&k=v` with raw values;
 *   2. take the lowercase hex SHA-256 of that string (UTF-8);
 *   3. SHA256withRSA (PKCS#1 v1.5) over the hex string, base64.
 * Pure functions; keys are node:crypto KeyObjects parsed once at startup.
 */
import { createHash, createSign, createVerify, type KeyObject } from 'node:crypto';

export type AcpFields = Record<string, string>;

/** The string that is hashed: sorted `k=v&…` over every non-blank field except `signature`. */
export function buildSignString(fields: AcpFields): string {
  return Object.keys(fields)
    .filter((key) => key !== 'signature' && fields[key] !== undefined && fields[key] !== '')
    .sort()
    .map((key) => `${key}=${fields[key]}`)
    .join('&');
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

export function signFields(fields: AcpFields, privateKey: KeyObject): string {
  const digestHex = sha256Hex(buildSignString(fields));
  return createSign('RSA-SHA256').update(digestHex, 'utf8').sign(privateKey, 'base64');
}

export function verifyFields(fields: AcpFields, publicKey: KeyObject): boolean {
  const signature = fields.signature;
  if (!signature) return false;
  const digestHex = sha256Hex(buildSignString(fields));
  try {
    return createVerify('RSA-SHA256').update(digestHex, 'utf8').verify(publicKey, signature, 'base64');
  } catch {
    return false;
  }
}

/**
 * Returns a syntactically valid but wrong signature (for the `corrupt_signature` fault):
 * a real signature over a different string, so it is well-formed base64 of the right length.
 */
export function corruptSignature(fields: AcpFields, privateKey: KeyObject): string {
  const digestHex = sha256Hex(buildSignString(fields) + '&corrupted=1');
  return createSign('RSA-SHA256').update(digestHex, 'utf8').sign(privateKey, 'base64');
}

/**
 * Serialises a response the way the gateway writes it: `k=v&k=v`, raw (not URL-encoded) values.
 * Values such as signPubKeyCert (PEM with newlines) and base64 signatures go out verbatim.
 */
export function formatAcpResponse(fields: AcpFields): string {
  return Object.keys(fields)
    .sort()
    .map((key) => `${key}=${fields[key]}`)
    .join('&');
}

/**
 * Parses a raw `k=v&k=v` response. An `&` inside a `{…}` or `[…]` value is not a separator
 * (the gateway nests such structures in fields like reqReserved or riskRateInfo).
 */
export function parseAcpResponse(text: string): AcpFields {
  const fields: AcpFields = {};
  let key = '';
  let value = '';
  let inKey = true;
  let depth = 0;
  const flush = (): void => {
    if (key !== '') fields[key] = value;
    key = '';
    value = '';
    inKey = true;
  };
  for (const ch of text) {
    if (inKey) {
      if (ch === '=') inKey = false;
      else if (ch === '&') flush();
      else key += ch;
      continue;
    }
    if (ch === '{' || ch === '[') depth++;
    else if ((ch === '}' || ch === ']') && depth > 0) depth--;
    if (ch === '&' && depth === 0) flush();
    else value += ch;
  }
  flush();
  return fields;
}
