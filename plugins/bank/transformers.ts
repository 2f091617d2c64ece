// The pure half of the plugin: the bank's wire types, the conversions between them and the contract's types,
// and the tables that decide what each bank status and error code means to the kernel. Nothing here does I/O,
// so every table has a table-driven test (test/plugins/bank-transformers.test.ts). When adapting the plugin to
// another bank, most of the work is in this file: its field names, its statuses and its error codes.
import {
  ChannelError,
  fenToYuan,
  yuanToFen,
  z,
  type ChannelPaymentResult,
  type ChannelPaymentStatus,
  type ChannelRefundResult,
  type ChannelRefundStatus,
  type CreatePaymentRequest,
  type MinorUnits,
  type RefundRequest,
  type StandardChannelCode,
} from '../../core/index.js';

// ---- Pay methods -----------------------------------------------------------------------------------------------

/** The kernel's pay method names this plugin serves, and the bank `scene` each one is created with. */
export const SCENES = { 'bank.b2c': 'b2c', 'bank.qr': 'qr' } as const;
export type PayMethod = keyof typeof SCENES;
export type Scene = (typeof SCENES)[PayMethod];
export const PAY_METHODS = Object.keys(SCENES) as PayMethod[];

// ---- Amounts ---------------------------------------------------------------------------------------------------

/**
 * The contract counts integer fen; this spec does too, but many banks of the same family send two-decimal yuan
 * strings. Conversion happens only here, exactly (no floats), so the rest of the plugin never sees a yuan value.
 */
export type AmountUnit = 'fen' | 'yuan';

export function amountToWire(fen: MinorUnits, unit: AmountUnit): number | string {
  return unit === 'fen' ? fen : fenToYuan(fen);
}

/**
 * A wire amount back to fen. In yuan mode a JSON number is accepted too: JSON.parse yields the double closest to
 * the decimal the bank wrote, and String() of that double is the shortest text that maps back to it, i.e. the
 * bank's own digits; yuanToFen then rejects anything with a third decimal instead of rounding it away.
 */
export function amountFromWire(value: unknown, unit: AmountUnit): MinorUnits {
  if (unit === 'fen') {
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
    if (typeof value === 'string' && /^(0|[1-9]\d{0,15})$/.test(value) && Number.isSafeInteger(Number(value))) return Number(value);
    throw new TypeError(`not an amount in fen: ${JSON.stringify(value)}`);
  }
  if (typeof value === 'string' || typeof value === 'number') return yuanToFen(String(value));
  throw new TypeError(`not an amount in yuan: ${JSON.stringify(value)}`);
}

// ---- Wire objects (PROTOCOL.md 5.1, 6.1, 7) ----------------------------------------------------------------------

export const PAYMENT_STATUSES = ['PROCESSING', 'SUCCESS', 'FAILED', 'CLOSED'] as const;
export const REFUND_STATUSES = ['PROCESSING', 'SUCCESS', 'FAILED'] as const;
export type BankPaymentStatus = (typeof PAYMENT_STATUSES)[number];
export type BankRefundStatus = (typeof REFUND_STATUSES)[number];

/**
 * Zod schemas for what the bank sends, built once per account because the amount fields depend on the unit.
 * Only fields the plugin reads are declared; unknown ones pass through untouched (banks add fields over time,
 * and an added field must not take payments down).
 */
export function wireSchemas(unit: AmountUnit) {
  const amount = z.unknown().transform((value, ctx) => {
    try {
      return amountFromWire(value, unit);
    } catch (err) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
      return z.NEVER;
    }
  });
  const time = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'not an RFC 3339 time');
  const payment = z
    .object({
      merchant_id: z.string(),
      out_trade_no: z.string(),
      bank_trade_no: z.string(),
      scene: z.string(),
      amount,
      currency: z.string(),
      status: z.enum(PAYMENT_STATUSES),
      pay_url: z.string().optional(),
      qr_code: z.string().optional(),
      paid_at: time.optional(),
      failure_code: z.string().optional(),
      failure_message: z.string().optional(),
    })
    .passthrough();
  const refund = z
    .object({
      merchant_id: z.string(),
      out_trade_no: z.string(),
      out_refund_no: z.string(),
      bank_refund_no: z.string(),
      amount,
      currency: z.string(),
      status: z.enum(REFUND_STATUSES),
      succeeded_at: time.optional(),
      failure_code: z.string().optional(),
      failure_message: z.string().optional(),
    })
    .passthrough();
  const event = z.object({ event_id: z.string(), event_type: z.string(), data: z.record(z.unknown()) }).passthrough();
  return { payment, refund, event };
}

export type WireSchemas = ReturnType<typeof wireSchemas>;
export type BankPayment = z.output<WireSchemas['payment']>;
export type BankRefund = z.output<WireSchemas['refund']>;

/**
 * Validates a verified body against a wire schema. A signed body that does not match the spec is still a body we
 * cannot interpret, so the outcome of the call is unknown: mayExist=true.
 */
export function parseWire<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, json: unknown, what: string): T {
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new ChannelError('unknown', `bank sent a malformed ${what}: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`, true);
}

// ---- Requests ----------------------------------------------------------------------------------------------------

/** PROTOCOL.md 5.3 limits; checked before sending, so a request the bank would refuse never leaves (mayExist=false). */
const MIN_EXPIRE_S = 60;
const MAX_EXPIRE_S = 86_400;
const MAX_AMOUNT = 10_000_000_000;
const MAX_SUBJECT_CHARS = 128;
const MAX_URL_CHARS = 256;

function invalid(message: string): ChannelError {
  return new ChannelError('invalid_request', message, false);
}

function checkAmount(fen: MinorUnits): void {
  if (!Number.isSafeInteger(fen) || fen < 1 || fen > MAX_AMOUNT) throw invalid(`amount ${fen} is outside 1..${MAX_AMOUNT} fen`);
}

function checkUrl(url: string, field: string): void {
  if (url.length > MAX_URL_CHARS) throw invalid(`${field} is longer than ${MAX_URL_CHARS} characters`);
  if (!/^https?:\/\/[^\s]+$/i.test(url)) throw invalid(`${field} must be an absolute http(s) URL`);
}

/**
 * The bank counts expiry from when it receives the request; the kernel gives an absolute time. Rounding up keeps
 * the bank's expiry no earlier than the kernel's, so the kernel never closes an order the bank still shows open
 * to the payer for longer; clamping fits the bank's accepted range. Note the consequence: a resend of the same
 * create a few seconds later carries a different expire_seconds and gets DUPLICATE_ORDER, not the idempotent
 * echo. The kernel never resends (it uses a new channelOrderNo per attempt and queries on doubt), so that is fine.
 */
export function expireSeconds(expiresAt: Date, now: Date): number {
  const seconds = Math.ceil((expiresAt.getTime() - now.getTime()) / 1000);
  return Math.min(MAX_EXPIRE_S, Math.max(MIN_EXPIRE_S, seconds));
}

/** Truncates by code point, never inside a surrogate pair (which would make invalid UTF-8 on the wire). */
function subjectOf(subject: string, fallback: string): string {
  const chars = Array.from(subject.trim());
  return chars.length === 0 ? fallback : chars.slice(0, MAX_SUBJECT_CHARS).join('');
}

export interface CreatePaymentWire {
  out_trade_no: string;
  amount: number | string;
  currency: 'CNY';
  subject: string;
  scene: Scene;
  notify_url: string;
  return_url?: string;
  expire_seconds: number;
}

export function createPaymentBody(req: CreatePaymentRequest, unit: AmountUnit, now: Date): CreatePaymentWire {
  const scene = SCENES[req.payMethod as PayMethod];
  if (!scene) throw new ChannelError('not_supported', `pay method ${req.payMethod} is not served by this plugin`, false);
  if (req.currency !== 'CNY') throw new ChannelError('not_supported', `currency ${req.currency} is not supported (CNY only)`, false);
  checkAmount(req.amount);
  checkUrl(req.notifyUrl, 'notify_url');
  if (req.returnUrl !== undefined) checkUrl(req.returnUrl, 'return_url');
  return {
    out_trade_no: req.channelOrderNo,
    amount: amountToWire(req.amount, unit),
    currency: 'CNY',
    subject: subjectOf(req.subject, req.channelOrderNo),
    scene,
    notify_url: req.notifyUrl,
    // Optional fields are left out, not sent empty: the bank compares absent with absent for idempotency.
    ...(req.returnUrl !== undefined ? { return_url: req.returnUrl } : {}),
    expire_seconds: expireSeconds(req.expiresAt, now),
  };
}

export interface CreateRefundWire {
  out_trade_no: string;
  out_refund_no: string;
  amount: number | string;
  reason?: string;
  notify_url: string;
}

export function createRefundBody(req: RefundRequest, unit: AmountUnit): CreateRefundWire {
  checkAmount(req.amount);
  checkUrl(req.notifyUrl, 'notify_url');
  const reason = req.reason === undefined ? undefined : Array.from(req.reason).slice(0, MAX_SUBJECT_CHARS).join('');
  return {
    out_trade_no: req.payment.channelOrderNo,
    out_refund_no: req.channelRefundNo,
    amount: amountToWire(req.amount, unit),
    ...(reason ? { reason } : {}),
    // Sent although the bank would default to the payment's: the gateway's public URL may have changed since.
    notify_url: req.notifyUrl,
  };
}

// ---- Status tables (PROTOCOL.md 5.2, 6.1, checklist item 3) ------------------------------------------------------

/**
 * CLOSED maps to the contract's own 'closed' rather than the checklist's "failed": the contract distinguishes a
 * payment nobody paid (closed/expired) from one the payer's bank declined (failed, with a reason).
 */
export const PAYMENT_STATUS: Record<BankPaymentStatus, ChannelPaymentStatus> = {
  PROCESSING: 'pending',
  SUCCESS: 'succeeded',
  FAILED: 'failed',
  CLOSED: 'closed',
};

export const REFUND_STATUS: Record<BankRefundStatus, ChannelRefundStatus> = {
  PROCESSING: 'pending',
  SUCCESS: 'succeeded',
  FAILED: 'failed',
};

/**
 * Why a payment or refund ended FAILED (the bank's failure_code) in the kernel's words. The contract has no
 * "cancelled"; a cancelling payer is someone who has to act again, hence payer_action_required.
 */
export const FAILURE_CODE: Record<string, StandardChannelCode> = {
  PAYER_CANCELLED: 'payer_action_required',
  INSUFFICIENT_FUNDS: 'insufficient_balance',
  ACCOUNT_FROZEN: 'card_declined',
  RISK_REJECTED: 'card_declined',
  ACCOUNT_CLOSED: 'card_declined',
  REFUND_REJECTED: 'card_declined',
};

function failureOf(wire: { failure_code?: string; failure_message?: string }) {
  const channelCode = wire.failure_code ?? 'UNKNOWN';
  return { code: FAILURE_CODE[channelCode] ?? 'unknown', message: wire.failure_message ?? channelCode, channelCode };
}

export function paymentResult(wire: BankPayment): ChannelPaymentResult {
  const status = PAYMENT_STATUS[wire.status];
  const result: ChannelPaymentResult = { status, channelTradeNo: wire.bank_trade_no };
  if (status === 'pending') {
    // The action is what the payer must do next; without it a pending b2c/qr payment cannot be completed.
    if (wire.pay_url !== undefined && wire.scene === 'b2c') result.action = { type: 'redirect', url: wire.pay_url };
    else if (wire.qr_code !== undefined && wire.scene === 'qr') result.action = { type: 'qr_code', qr_code: wire.qr_code };
  }
  if (status === 'succeeded') {
    result.paidAmount = wire.amount;
    if (wire.paid_at !== undefined) result.paidAt = new Date(wire.paid_at);
  }
  if (status === 'failed') result.failure = failureOf(wire);
  return result;
}

export function refundResult(wire: BankRefund): ChannelRefundResult {
  const status = REFUND_STATUS[wire.status];
  const result: ChannelRefundResult = { status, channelRefundNo: wire.bank_refund_no };
  if (status === 'succeeded' && wire.succeeded_at !== undefined) result.succeededAt = new Date(wire.succeeded_at);
  if (status === 'failed') result.failure = failureOf(wire);
  return result;
}

// ---- Error table (PROTOCOL.md 4) -----------------------------------------------------------------------------------

export interface ErrorMeaning {
  code: StandardChannelCode;
  /**
   * Could the order (or refund) exist at the bank after this answer? false only where the spec guarantees the
   * request had no effect: every 401 ("a rejected request has no effect", 3.2), 400 and 404 are checked before
   * execution (3.2 processing order). true where something with that number already exists (duplicates, paid).
   */
  mayExist: boolean;
  /** Whether sending again (re-signed) can succeed, per the spec's "Safe to resend?" column. */
  retryable: boolean;
}

export const BANK_ERRORS: Record<string, ErrorMeaning> = {
  INVALID_REQUEST: { code: 'invalid_request', mayExist: false, retryable: false },
  // Our own credentials or signing are wrong: a configuration problem, distinct from 'signature_invalid',
  // which this plugin reserves for "the bank's signature did not verify".
  AUTH_HEADER_MISSING: { code: 'authentication_failed', mayExist: false, retryable: false },
  MERCHANT_NOT_FOUND: { code: 'authentication_failed', mayExist: false, retryable: false },
  SIGNATURE_INVALID: { code: 'authentication_failed', mayExist: false, retryable: false },
  // Clock skew or a (practically impossible) nonce collision: re-signing fixes it, the request had no effect.
  TIMESTAMP_EXPIRED: { code: 'authentication_failed', mayExist: false, retryable: true },
  NONCE_REUSED: { code: 'authentication_failed', mayExist: false, retryable: true },
  // An unknown path means base_url or api_prefix is misconfigured.
  NOT_FOUND: { code: 'invalid_request', mayExist: false, retryable: false },
  ORDER_NOT_FOUND: { code: 'order_not_found', mayExist: false, retryable: false },
  REFUND_NOT_FOUND: { code: 'order_not_found', mayExist: false, retryable: false },
  STATEMENT_NOT_READY: { code: 'channel_unavailable', mayExist: false, retryable: true },
  // An order/refund with this number exists (with other parameters): never treat it as absent.
  DUPLICATE_ORDER: { code: 'duplicate_order', mayExist: true, retryable: false },
  DUPLICATE_REFUND: { code: 'duplicate_order', mayExist: true, retryable: false },
  ORDER_PAID: { code: 'order_paid', mayExist: true, retryable: false },
  // Refund refused before creation: the refund does not exist.
  ORDER_NOT_PAID: { code: 'invalid_request', mayExist: false, retryable: false },
  REFUND_AMOUNT_EXCEEDED: { code: 'refund_exceeds_amount', mayExist: false, retryable: false },
  // "The request may or may not have been processed."
  SYSTEM_ERROR: { code: 'channel_unavailable', mayExist: true, retryable: true },
};

/** A code the spec does not list: assume the worst (it may have been processed). */
const UNKNOWN_ERROR: ErrorMeaning = { code: 'unknown', mayExist: true, retryable: false };

export function errorMeaning(bankCode: string | undefined): ErrorMeaning {
  return (bankCode !== undefined && Object.hasOwn(BANK_ERRORS, bankCode) ? BANK_ERRORS[bankCode] : undefined) ?? UNKNOWN_ERROR;
}

/** A verified non-200 answer as the ChannelError the kernel acts on. */
export function bankError(httpStatus: number, bankCode: string | undefined, message: string | undefined): ChannelError {
  const meaning = errorMeaning(bankCode);
  const text = `bank answered ${httpStatus} ${bankCode ?? '(no code)'}${message ? `: ${message}` : ''}`;
  return new ChannelError(meaning.code, text, meaning.mayExist, bankCode, meaning.retryable);
}
