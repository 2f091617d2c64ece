// How a message is authenticated on the wire (PROTOCOL.md 3): the base string, request signing, and the checks on
// everything the bank sends back. The functions at the top are pure and covered by the spec's test vectors; the
// BankTransport class at the bottom is the one place that calls the kernel's HTTP executor.
//
// Another bank of this family mostly differs here: what goes into the signed string, the algorithm, and where the
// signature travels. Keep that knowledge in this file so the flows (account.ts) stay the same.
import { createHash, randomBytes, verify, type KeyObject } from 'node:crypto';
import { ChannelError, rsaSha256SignBase64, type ChannelHttp, type OutboundResponse } from '../../core/index.js';
import { bankError } from './transformers.js';

// ---- Pure signing helpers ------------------------------------------------------------------------------------------

/** The four header names, derived once from the configured prefix (e.g. `X-Bank-`). */
export interface HeaderNames {
  merchant: string;
  timestamp: string;
  nonce: string;
  signature: string;
}

export function headerNames(prefix: string): HeaderNames {
  return { merchant: `${prefix}Merchant`, timestamp: `${prefix}Timestamp`, nonce: `${prefix}Nonce`, signature: `${prefix}Signature` };
}

export function sha256Hex(body: Buffer | string): string {
  return createHash('sha256').update(body).digest('hex');
}

export interface BaseStringParts {
  /** Request: the method; response: the 3-digit status; notification: `NOTIFY`. */
  line1: string;
  /** Request and response: the request-target; notification: `-`. */
  line2: string;
  merchantId: string;
  timestamp: string;
  nonce: string;
  /** The exact bytes transmitted; hashing anything re-serialized would break on the first whitespace difference. */
  body: Buffer | string;
}

/** PROTOCOL.md 3.1: six lines, each ending in `\n`, the last one included. */
export function baseString(p: BaseStringParts): string {
  return `${p.line1}\n${p.line2}\n${p.merchantId}\n${p.timestamp}\n${p.nonce}\n${sha256Hex(p.body)}\n`;
}

/** RSASSA-PKCS1-v1_5 with SHA-256, standard base64. */
export function signBase(base: string, key: KeyObject): Promise<string> {
  return rsaSha256SignBase64(base, key);
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export function verifyBase(base: string, signature: string, key: KeyObject): boolean {
  // Buffer.from(…, 'base64') silently skips junk characters; insist on the canonical alphabet instead.
  if (!BASE64.test(signature)) return false;
  try {
    return verify('sha256', Buffer.from(base, 'utf8'), key, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

/** 128 random bits as 32 hex digits: inside the spec's 16–64 `[A-Za-z0-9]`, and never repeats in practice. */
export function newNonce(): string {
  return randomBytes(16).toString('hex');
}

const NONCE = /^[A-Za-z0-9]{16,64}$/;
const TIMESTAMP = /^\d{1,12}$/;

/**
 * One header value. Node and got both deliver header names in lower case, which makes HTTP's case-insensitivity a
 * plain lookup. A repeated header arrives as an array and is treated as absent: we could not tell which copy was signed.
 */
export function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return typeof value === 'string' ? value : undefined;
}

export interface SignedHeadersInput {
  line1: string;
  line2: string;
  merchantId: string;
  body: Buffer;
  key: KeyObject;
  names: HeaderNames;
  /** Fixed only by tests (the spec's test vectors); otherwise the current time and a fresh nonce. */
  timestamp?: string;
  nonce?: string;
}

export async function signedHeaders(input: SignedHeadersInput): Promise<Record<string, string>> {
  const timestamp = input.timestamp ?? String(Math.floor(Date.now() / 1000));
  const nonce = input.nonce ?? newNonce();
  const base = baseString({ line1: input.line1, line2: input.line2, merchantId: input.merchantId, timestamp, nonce, body: input.body });
  return {
    [input.names.merchant]: input.merchantId,
    [input.names.timestamp]: timestamp,
    [input.names.nonce]: nonce,
    [input.names.signature]: await signBase(base, input.key),
  };
}

/** What the bank's signature headers say, once each is present and well formed. */
interface BankSignatureHeaders {
  merchant: string;
  timestamp: string;
  nonce: string;
  signature: string;
}

function readSignatureHeaders(headers: Record<string, string | string[] | undefined>, names: HeaderNames): BankSignatureHeaders | string {
  const merchant = headerValue(headers, names.merchant);
  const timestamp = headerValue(headers, names.timestamp);
  const nonce = headerValue(headers, names.nonce);
  const signature = headerValue(headers, names.signature);
  if (merchant === undefined || timestamp === undefined || nonce === undefined || signature === undefined) return 'signature headers missing';
  if (!TIMESTAMP.test(timestamp) || !NONCE.test(nonce)) return 'signature headers malformed';
  return { merchant, timestamp, nonce, signature };
}

/**
 * PROTOCOL.md 3.3 for a response: the signature over (status, our request-target, …, body digest) verifies with
 * the bank key, the merchant is us, and the nonce is the one we sent, which binds the answer to this very request
 * so a recorded answer to another request cannot be replayed. Returns why it failed, or null when trusted.
 */
export function responseProblem(
  res: { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer },
  sent: { target: string; nonce: string },
  merchantId: string,
  bankKey: KeyObject,
  names: HeaderNames,
): string | null {
  const h = readSignatureHeaders(res.headers, names);
  if (typeof h === 'string') return h;
  const base = baseString({ line1: String(res.status).padStart(3, '0'), line2: sent.target, merchantId: h.merchant, timestamp: h.timestamp, nonce: h.nonce, body: res.body });
  if (!verifyBase(base, h.signature, bankKey)) return 'signature does not verify with the bank public key';
  if (h.merchant !== merchantId) return `answer is for merchant ${JSON.stringify(h.merchant)}`;
  if (h.nonce !== sent.nonce) return 'answer does not echo our nonce';
  return null;
}

/**
 * PROTOCOL.md 3.3 for a notification: signature over (`NOTIFY`, `-`, …), merchant is us, timestamp fresh.
 * Freshness is what makes a replayed old notification fail; each retry carries a fresh timestamp, so a genuine
 * retry still passes.
 */
export function notificationProblem(
  headers: Record<string, string | string[] | undefined>,
  rawBody: Buffer,
  merchantId: string,
  bankKey: KeyObject,
  names: HeaderNames,
  maxSkewS: number,
  nowMs: number,
): string | null {
  const h = readSignatureHeaders(headers, names);
  if (typeof h === 'string') return h;
  const base = baseString({ line1: 'NOTIFY', line2: '-', merchantId: h.merchant, timestamp: h.timestamp, nonce: h.nonce, body: rawBody });
  if (!verifyBase(base, h.signature, bankKey)) return 'signature does not verify with the bank public key';
  if (h.merchant !== merchantId) return `notification is for merchant ${JSON.stringify(h.merchant)}`;
  if (Math.abs(nowMs / 1000 - Number(h.timestamp)) > maxSkewS) return 'timestamp outside the accepted window';
  return null;
}

// ---- The one HTTP path ---------------------------------------------------------------------------------------------

export interface TransportOptions {
  baseUrl: string;
  apiPrefix: string;
  merchantId: string;
  names: HeaderNames;
  merchantPrivateKey: KeyObject;
  bankPublicKey: KeyObject;
}

export interface BankCall {
  /** Operation name for the kernel's logs and metrics. */
  operation: string;
  method: 'GET' | 'POST';
  /** Below api_prefix, e.g. `/payments/P123`; already URL-safe. */
  path: string;
  /** JSON body for POST; serialized once, and those exact bytes are both hashed and sent. */
  json?: object;
  timeoutMs?: number;
  /** The merchant request this call serves (ChannelCallScope.requestId). */
  requestId?: string;
}

export class BankTransport {
  constructor(
    private readonly options: TransportOptions,
    private readonly http: ChannelHttp,
  ) {}

  /**
   * Signs, sends, verifies. Returns a trusted 200 answer; throws for everything else:
   * - the kernel's ChannelError when the request failed in transit (it knows whether it left: mayExist);
   * - 'signature_invalid' with mayExist=true when the answer cannot be trusted (3.3: "treat the outcome as unknown");
   * - the mapped bank error for a trusted non-200 answer (transformers.ts BANK_ERRORS).
   */
  async call(call: BankCall): Promise<OutboundResponse> {
    const { baseUrl, apiPrefix, merchantId, names } = this.options;
    const target = `${apiPrefix}${call.path}`;
    const body = call.json === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(call.json), 'utf8');
    const headers = await signedHeaders({ line1: call.method, line2: target, merchantId, body, key: this.options.merchantPrivateKey, names });
    if (call.json !== undefined) headers['content-type'] = 'application/json; charset=utf-8';
    const nonce = headers[names.nonce]!;

    const res = await this.http.send({
      method: call.method,
      url: `${baseUrl}${target}`,
      headers,
      body: call.json === undefined ? undefined : body,
      timeoutMs: call.timeoutMs,
      operation: call.operation,
      requestId: call.requestId,
    });

    // Verify before looking at the body at all, error bodies included: an unsigned "404 ORDER_NOT_FOUND" from a
    // proxy or an attacker must not be able to make the kernel fail over while the order is live at the bank.
    const problem = responseProblem(res, { target, nonce }, merchantId, this.options.bankPublicKey, names);
    if (problem) throw new ChannelError('signature_invalid', `untrusted ${res.status} answer to ${call.operation}: ${problem}`, true);
    if (res.status === 200) return res;

    let error: { code?: unknown; message?: unknown } = {};
    try {
      error = JSON.parse(res.text) as typeof error;
    } catch {
      // A signed but unreadable error body falls through as an unknown code (mayExist=true).
    }
    throw bankError(res.status, typeof error.code === 'string' ? error.code : undefined, typeof error.message === 'string' ? error.message : undefined);
  }

  /** call() for a JSON answer; a body that is not JSON leaves the outcome unknown. */
  async callJson(call: BankCall): Promise<unknown> {
    const res = await this.call(call);
    try {
      return JSON.parse(res.text) as unknown;
    } catch {
      throw new ChannelError('unknown', `${call.operation}: the bank's 200 answer is not JSON`, true);
    }
  }
}
