/**
 * Test-side UnionPay ACP 5.1.0 client, written from the published specification and independent of the
 * simulator's own code: node:crypto for hashing/RSA, node-forge only to open the merchant's .pfx.
 */
import { createHash, createPrivateKey, createSign, createVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import forge from 'node-forge';
import { PostRecorder } from '../helpers/post-recorder.js';

export type Fields = Record<string, string>;

/** Sorted `k=v&…` over non-empty fields except `signature` (ACP 5.1.0 signMethod 01). */
export function acpSignString(fields: Fields): string {
  return Object.keys(fields)
    .filter((k) => k !== 'signature' && fields[k] !== '')
    .sort()
    .map((k) => `${k}=${fields[k]}`)
    .join('&');
}

export function sha256HexOf(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

export function acpSign(fields: Fields, key: KeyObject): string {
  return createSign('RSA-SHA256').update(sha256HexOf(acpSignString(fields)), 'utf8').sign(key, 'base64');
}

export function acpVerify(fields: Fields, cert: X509Certificate): boolean {
  return createVerify('RSA-SHA256')
    .update(sha256HexOf(acpSignString(fields)), 'utf8')
    .verify(cert.publicKey, fields.signature ?? '', 'base64');
}

/** Opens the merchant PKCS#12 and returns its private key and certificate serial (decimal = certId). */
export function openPfx(path: string, password: string): { key: KeyObject; certId: string } {
  const der = readFileSync(path).toString('binary');
  const p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(der), password);
  const keyBag = p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[forge.pki.oids.pkcs8ShroudedKeyBag]![0];
  const certBags = p12.getBags({ bagType: forge.pki.oids.certBag })[forge.pki.oids.certBag]!;
  // The end-entity certificate is the one whose public key matches the private key.
  const privateKey = keyBag.key as forge.pki.rsa.PrivateKey;
  const own = certBags.find((bag) => (bag.cert!.publicKey as forge.pki.rsa.PublicKey).n.equals(privateKey.n))!.cert!;
  return {
    key: createPrivateKey(forge.pki.privateKeyToPem(privateKey)),
    certId: BigInt('0x' + own.serialNumber).toString(10),
  };
}

/**
 * Splits a raw `k=v&k=v` answer. Values are not URL-encoded (PEM, base64) and may nest `{…}` / `[…]`
 * structures whose inner `&` is not a separator.
 */
export function parseAcp(text: string): Fields {
  const out: Fields = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) break;
    const key = text.slice(i, eq);
    let depth = 0;
    let j = eq + 1;
    for (; j < text.length; j++) {
      const ch = text[j];
      if (ch === '{' || ch === '[') depth++;
      else if ((ch === '}' || ch === ']') && depth > 0) depth--;
      else if (ch === '&' && depth === 0) break;
    }
    out[key] = text.slice(eq + 1, j);
    i = j + 1;
  }
  return out;
}

export async function postForm(url: string, fields: Fields, timeoutMs = 5000): Promise<{ status: number; text: string }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' },
    body: new URLSearchParams(fields).toString(),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: response.status, text: await response.text() };
}

/**
 * acpsdk-style check of a message from UnionPay: signPubKeyCert must chain to the intermediate and root,
 * be currently valid, have `中国银联股份有限公司` as the third @-field of its CN, and verify the signature.
 */
export function verifyUnionPayMessage(fields: Fields, rootPem: string, middlePem: string): { ok: boolean; reason?: string } {
  const root = new X509Certificate(rootPem);
  const middle = new X509Certificate(middlePem);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(fields.signPubKeyCert ?? '');
  } catch {
    return { ok: false, reason: 'signPubKeyCert unreadable' };
  }
  if (!root.verify(root.publicKey) || !middle.verify(root.publicKey) || !middle.checkIssued(root)) return { ok: false, reason: 'middle not from root' };
  if (!cert.checkIssued(middle) || !cert.verify(middle.publicKey)) return { ok: false, reason: 'cert not from middle' };
  const now = Date.now();
  if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now) return { ok: false, reason: 'expired' };
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? '';
  if (cn.split('@')[2] !== '中国银联股份有限公司') return { ok: false, reason: `CN owner ${cn}` };
  if (!acpVerify(fields, cert)) return { ok: false, reason: 'signature' };
  return { ok: true };
}

/** Beijing time yyyyMMddHHmmss. */
export function chinaTxnTime(date = new Date()): string {
  return new Date(date.getTime() + 8 * 3600_000).toISOString().replace(/\D/g, '').slice(0, 14);
}

let orderSeq = 0;
export function newOrderId(prefix = 'T'): string {
  orderSeq++;
  return `${prefix}${Date.now().toString(36)}${process.pid}${orderSeq}`.replace(/[^0-9A-Za-z]/g, '').slice(0, 32).padEnd(8, '0');
}

export interface ReceivedNotification {
  path: string;
  fields: Fields;
  at: number;
}

/** A merchant notification endpoint: records every POST as form fields and answers with `statusFor(path, n)`. */
export class NotifyReceiver extends PostRecorder {
  statusFor: (path: string, nthForPath: number) => number = () => 200;

  constructor() {
    super((post, n) => {
      const status = this.statusFor(post.path, n);
      return { status, body: status === 200 ? 'ok' : 'error' };
    });
  }

  get received(): ReceivedNotification[] {
    return this.posts.map((p) => ({ path: p.path, fields: Object.fromEntries(new URLSearchParams(p.rawBody.toString('utf8'))), at: p.at }));
  }

  forPath(path: string): ReceivedNotification[] {
    return this.received.filter((r) => r.path === path);
  }

  waitFor(path: string, count: number, timeoutMs = 5000): Promise<ReceivedNotification[]> {
    return this.waitUntil(() => {
      const got = this.forPath(path);
      return got.length >= count ? got : undefined;
    }, timeoutMs, `${count} notification(s) on ${path} (got ${this.forPath(path).length})`);
  }
}
