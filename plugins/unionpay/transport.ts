/**
 * UnionPay ACP 5.1.0 wire layer: the k=v message format, signMethod 01 signing and verification, and the key
 * material it needs (parsed once per account). No I/O here except what createAccount hands in.
 */
import { createHash, createPrivateKey, verify as rsaVerify, X509Certificate, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { rsaSha256SignBase64 } from '../../core/index.js';

export type AcpFields = Record<string, string>;

/** The organisation UnionPay's signing certificate must name in the third `@`-field of its CN. */
export const UNIONPAY_CN_ORG = '中国银联股份有限公司';

// ---------------------------------------------------------------- message format

/**
 * The signed string: fields sorted by key (UTF-16 code-unit order, as Java's TreeMap), `signature` left out, joined as
 * `k=v&…` with raw values. A sender leaves out blank values (`skipEmpty`); a verifier signs over what it received.
 */
export function signString(fields: AcpFields, skipEmpty: boolean): string {
  const keys = Object.keys(fields).filter((k) => k !== 'signature' && (!skipEmpty || fields[k] !== '')).sort();
  return keys.map((k) => `${k}=${fields[k]}`).join('&');
}

/** signMethod 01 first hash: lowercase hex SHA-256 of the signed string (UTF-8). */
export function signDigestHex(fields: AcpFields, skipEmpty: boolean): string {
  return createHash('sha256').update(signString(fields, skipEmpty), 'utf8').digest('hex');
}

/** Drops blank values (what the acpsdk does before signing) and adds `signature`. */
export async function signRequest(fields: AcpFields, key: KeyObject): Promise<AcpFields> {
  const out: AcpFields = {};
  for (const [k, v] of Object.entries(fields)) if (v !== '' && k !== 'signature') out[k] = v;
  const digest = signDigestHex(out, true);
  out.signature = await rsaSha256SignBase64(digest, key);
  return out;
}

export function encodeForm(fields: AcpFields): string {
  return new URLSearchParams(fields).toString();
}

/**
 * Parses a synchronous response `k=v&k=v`. Values are raw (not URL-encoded); the first `=` ends the key; a value may
 * hold `{…}` or `[…]` (possibly nested) and an `&` inside them does not separate fields. An unclosed bracket swallows
 * the rest of the text into that value, as the acpsdk parser does.
 */
export function parseAcpResponse(text: string): AcpFields {
  const out: AcpFields = {};
  const body = text.replace(/^\uFEFF/, '').replace(/[\r\n]+$/, '');
  if (body === '') return out;
  let i = 0;
  const n = body.length;
  while (i < n) {
    const eq = body.indexOf('=', i);
    const amp = body.indexOf('&', i);
    if (eq === -1 || (amp !== -1 && amp < eq)) {
      // A segment without '=': a key with no value. Skip to the next separator.
      const end = amp === -1 ? n : amp;
      const key = body.slice(i, end);
      if (key !== '') out[key] = '';
      i = end + 1;
      continue;
    }
    const key = body.slice(i, eq);
    let j = eq + 1;
    const closers: string[] = [];
    for (; j < n; j++) {
      const c = body[j]!;
      if (c === '{') closers.push('}');
      else if (c === '[') closers.push(']');
      else if (closers.length > 0 && c === closers[closers.length - 1]) closers.pop();
      else if (c === '&' && closers.length === 0) break;
    }
    if (key !== '') out[key] = body.slice(eq + 1, j);
    i = j + 1;
  }
  return out;
}

/** Parses a form-encoded notification body (application/x-www-form-urlencoded, UTF-8). */
export function parseFormBody(raw: Buffer | string): AcpFields {
  const out: AcpFields = {};
  for (const [k, v] of new URLSearchParams(typeof raw === 'string' ? raw : raw.toString('utf8'))) out[k] = v;
  return out;
}

// ---------------------------------------------------------------- key material

export interface SigningMaterial {
  privateKey: KeyObject;
  /** Decimal serial of the signing certificate. */
  certId: string;
  notAfter: Date;
}

/** Decimal form of a hex certificate serial (forge and X509Certificate give hex). */
export function serialToDecimal(hex: string): string {
  const clean = hex.replace(/[^0-9a-fA-F]/g, '');
  if (clean === '') throw new Error('empty certificate serial');
  return BigInt(`0x${clean}`).toString(10);
}

/** Opens the merchant .pfx once: its private key (as a node:crypto KeyObject) and the matching certificate. */
export function loadSigningMaterial(pfx: Buffer, password: string): SigningMaterial {
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(pfx.toString('binary')));
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, password);
  } catch (err) {
    throw new Error(`cannot open the signing .pfx (wrong password or not PKCS#12): ${(err as Error).message}`);
  }
  const keyBags = [
    ...(p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[forge.pki.oids.pkcs8ShroudedKeyBag] ?? []),
    ...(p12.getBags({ bagType: forge.pki.oids.keyBag })[forge.pki.oids.keyBag] ?? []),
  ];
  const keyBag = keyBags.find((b) => b.key);
  if (!keyBag?.key) throw new Error('the signing .pfx holds no private key');
  const key = keyBag.key as forge.pki.rsa.PrivateKey;
  const certs = (p12.getBags({ bagType: forge.pki.oids.certBag })[forge.pki.oids.certBag] ?? []).map((b) => b.cert).filter((c): c is forge.pki.Certificate => !!c);
  // The merchant certificate is the one whose public key matches the private key (the .pfx may also hold CAs).
  const cert = certs.find((c) => {
    const pub = c.publicKey as forge.pki.rsa.PublicKey;
    return pub.n !== undefined && pub.n.equals(key.n) && pub.e.equals(key.e);
  });
  if (!cert) throw new Error('the signing .pfx holds no certificate matching its private key');
  return {
    privateKey: createPrivateKey(forge.pki.privateKeyToPem(key)),
    certId: serialToDecimal(cert.serialNumber),
    notAfter: cert.validity.notAfter,
  };
}

/** PEM or DER certificate bytes → X509Certificate. */
export function parseCertificate(data: Buffer | string): X509Certificate {
  return new X509Certificate(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
}

// ---------------------------------------------------------------- verification

export class VerificationError extends Error {}

/** The third `@`-field of the CN (`041@Z12400000000000000@中国银联股份有限公司@00000001`). */
export function cnOrganisation(cert: X509Certificate): string | undefined {
  const cn = cert.subject.split('\n').find((line) => line.startsWith('CN='));
  return cn?.slice(3).split('@')[2];
}

/**
 * Verifies UnionPay's messages: the `signPubKeyCert` they carry must chain to the configured intermediate and root,
 * be within its validity dates and name UnionPay in its CN; the signature is the double hash over every received field
 * but `signature`. Certificates that passed are cached by their PEM text.
 */
/** A signing certificate that passed the chain and CN checks, with what each message needs from it read once. */
interface TrustedCertificate {
  cert: X509Certificate;
  /** X509Certificate.publicKey builds a new KeyObject on every read. */
  publicKey: KeyObject;
  validFromMs: number;
  validToMs: number;
}

export class AcpVerifier {
  private readonly verified = new Map<string, TrustedCertificate>();

  constructor(
    private readonly root: X509Certificate,
    private readonly middle: X509Certificate,
    private readonly now: () => Date = () => new Date(),
  ) {
    if (!middle.checkIssued(root) || !middle.verify(root.publicKey)) throw new Error('the configured middle_cert is not issued by root_cert');
  }

  /** Throws VerificationError with the reason; returns when the message is UnionPay's and untampered. */
  verify(fields: AcpFields): void {
    const pem = fields.signPubKeyCert;
    const signature = fields.signature;
    if (!pem) throw new VerificationError('no signPubKeyCert');
    if (!signature) throw new VerificationError('no signature');
    const trusted = this.certificate(pem);
    const digest = signDigestHex(fields, false);
    let ok = false;
    try {
      ok = rsaVerify('sha256', Buffer.from(digest, 'utf8'), trusted.publicKey, Buffer.from(signature, 'base64'));
    } catch {
      ok = false;
    }
    if (!ok) throw new VerificationError('signature does not verify');
  }

  private certificate(pem: string): TrustedCertificate {
    const now = this.now();
    const cached = this.verified.get(pem);
    if (cached) {
      if (now.getTime() < cached.validFromMs || now.getTime() > cached.validToMs) this.checkDates(cached.cert, now);
      return cached;
    }
    let cert: X509Certificate;
    try {
      cert = parseCertificate(pem);
    } catch {
      throw new VerificationError('signPubKeyCert is not a certificate');
    }
    if (!cert.checkIssued(this.middle) || !cert.verify(this.middle.publicKey)) throw new VerificationError('signPubKeyCert is not issued by the configured middle certificate');
    this.checkDates(this.middle, now);
    this.checkDates(this.root, now);
    this.checkDates(cert, now);
    if (cnOrganisation(cert) !== UNIONPAY_CN_ORG) throw new VerificationError('signPubKeyCert does not name UnionPay in its CN');
    if (this.verified.size > 32) this.verified.clear();
    const trusted = { cert, publicKey: cert.publicKey, validFromMs: new Date(cert.validFrom).getTime(), validToMs: new Date(cert.validTo).getTime() };
    this.verified.set(pem, trusted);
    return trusted;
  }

  private checkDates(cert: X509Certificate, now: Date): void {
    if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) throw new VerificationError(`certificate ${cert.serialNumber} is outside its validity dates`);
  }
}
