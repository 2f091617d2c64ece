// The bank's records and their wire representations (PROTOCOL.md sections 1, 5, 6, 8). Pure: no I/O.
import { z } from 'zod';

export type PaymentStatus = 'PROCESSING' | 'SUCCESS' | 'FAILED' | 'CLOSED';
export type RefundStatus = 'PROCESSING' | 'SUCCESS' | 'FAILED';
export type PaymentScene = 'b2c' | 'qr';

export const PAYMENT_FAILURE_CODES = ['PAYER_CANCELLED', 'INSUFFICIENT_FUNDS', 'ACCOUNT_FROZEN', 'RISK_REJECTED'] as const;
export const REFUND_FAILURE_CODES = ['ACCOUNT_CLOSED', 'REFUND_REJECTED'] as const;
export type PaymentFailureCode = (typeof PAYMENT_FAILURE_CODES)[number];
export type RefundFailureCode = (typeof REFUND_FAILURE_CODES)[number];

const MERCHANT_NO = /^[A-Za-z0-9_-]{6,32}$/;
const MAX_AMOUNT_FEN = 10_000_000_000;
const CHINA_OFFSET_MS = 8 * 3600 * 1000;

export const DEFAULT_EXPIRE_SECONDS = 1800;

const merchantNo = z.string().regex(MERCHANT_NO, 'must be 6-32 characters of [A-Za-z0-9_-]');
const amountFen = z.number().int('must be an integer number of fen').min(1).max(MAX_AMOUNT_FEN);
const httpUrl = z
  .string()
  .max(256)
  .refine((value) => {
    try {
      const url = new URL(value);
      return url.protocol === 'http:' || url.protocol === 'https:';
    } catch {
      return false;
    }
  }, 'must be an absolute http: or https: URL');

export const createPaymentRequest = z.object({
  out_trade_no: merchantNo,
  amount: amountFen,
  currency: z.literal('CNY'),
  subject: z.string().min(1).max(128),
  scene: z.enum(['b2c', 'qr']),
  notify_url: httpUrl,
  return_url: httpUrl.optional(),
  attach: z.string().max(128).optional(),
  expire_seconds: z.number().int().min(60).max(86400).optional(),
});
export type CreatePaymentRequest = z.infer<typeof createPaymentRequest>;

export const createRefundRequest = z.object({
  out_trade_no: merchantNo,
  out_refund_no: merchantNo,
  amount: amountFen,
  reason: z.string().max(128).optional(),
  notify_url: httpUrl.optional(),
});
export type CreateRefundRequest = z.infer<typeof createRefundRequest>;

export const closePaymentRequest = z.object({});

export function isMerchantNo(value: string): boolean {
  return MERCHANT_NO.test(value);
}

/** Parses a request body against a schema; the message names the first offending field, as INVALID_REQUEST requires. */
export function parseBody<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, raw: Buffer): { ok: true; value: T } | { ok: false; message: string } {
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch {
    return { ok: false, message: 'body is not valid JSON' };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { ok: false, message: 'body must be a JSON object' };
  const result = schema.safeParse(json);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  const field = issue.path.join('.') || 'body';
  return { ok: false, message: `${field}: ${issue.message}` };
}

/** Equality used for idempotent creation: the same fields with the same values, absent only equal to absent. */
export function sameRequest<T extends object>(a: T, b: T): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof T>;
  for (const key of keys) if (a[key] !== b[key]) return false;
  return true;
}

export interface Payment {
  merchantId: string;
  request: CreatePaymentRequest;
  bankTradeNo: string;
  status: PaymentStatus;
  createdAtMs: number;
  expiresAtMs: number;
  paidAtMs?: number;
  failure?: { code: PaymentFailureCode; message: string };
}

export interface Refund {
  merchantId: string;
  request: CreateRefundRequest;
  bankTradeNo: string;
  bankRefundNo: string;
  notifyUrl: string;
  status: RefundStatus;
  createdAtMs: number;
  succeededAtMs?: number;
  failure?: { code: RefundFailureCode; message: string };
}

/** Sandbox fee: 0.6 %, rounded half up to the fen (PROTOCOL.md section 11). */
export function feeFen(amount: number): number {
  return Math.floor((amount * 6 + 500) / 1000);
}

/** RFC 3339 at second precision in China Standard Time, e.g. 2025-03-14T09:26:53+08:00. */
export function chinaTime(ms: number): string {
  return `${new Date(ms + CHINA_OFFSET_MS).toISOString().slice(0, 19)}+08:00`;
}

/** The business date (UTC+08:00), YYYY-MM-DD. */
export function businessDate(ms: number): string {
  return new Date(ms + CHINA_OFFSET_MS).toISOString().slice(0, 10);
}

/** True for a real calendar date written YYYY-MM-DD. */
export function isCalendarDate(value: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return false;
  const parsed = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(parsed.getTime()) && parsed.toISOString().slice(0, 10) === value;
}

export type PaymentObject = Record<string, string | number>;
export type RefundObject = Record<string, string | number>;

/** The payment object of PROTOCOL.md 5.1. Fields without a value are omitted, never null. */
export function paymentObject(payment: Payment, refundedAmount: number, payerPageUrl: string): PaymentObject {
  const req = payment.request;
  const object: PaymentObject = {
    merchant_id: payment.merchantId,
    out_trade_no: req.out_trade_no,
    bank_trade_no: payment.bankTradeNo,
    scene: req.scene,
    amount: req.amount,
    currency: req.currency,
    subject: req.subject,
  };
  if (req.attach !== undefined) object.attach = req.attach;
  object.status = payment.status;
  if (payment.status === 'PROCESSING') object[req.scene === 'b2c' ? 'pay_url' : 'qr_code'] = payerPageUrl;
  object.created_at = chinaTime(payment.createdAtMs);
  object.expires_at = chinaTime(payment.expiresAtMs);
  if (payment.status === 'SUCCESS' && payment.paidAtMs !== undefined) {
    object.paid_at = chinaTime(payment.paidAtMs);
    object.fee = feeFen(req.amount);
  }
  object.refunded_amount = refundedAmount;
  if (payment.status === 'FAILED' && payment.failure) {
    object.failure_code = payment.failure.code;
    object.failure_message = payment.failure.message;
  }
  return object;
}

/** The refund object of PROTOCOL.md 6.1. */
export function refundObject(refund: Refund): RefundObject {
  const req = refund.request;
  const object: RefundObject = {
    merchant_id: refund.merchantId,
    out_trade_no: req.out_trade_no,
    bank_trade_no: refund.bankTradeNo,
    out_refund_no: req.out_refund_no,
    bank_refund_no: refund.bankRefundNo,
    amount: req.amount,
    currency: 'CNY',
  };
  if (req.reason !== undefined) object.reason = req.reason;
  object.status = refund.status;
  object.created_at = chinaTime(refund.createdAtMs);
  if (refund.status === 'SUCCESS' && refund.succeededAtMs !== undefined) object.succeeded_at = chinaTime(refund.succeededAtMs);
  if (refund.status === 'FAILED' && refund.failure) {
    object.failure_code = refund.failure.code;
    object.failure_message = refund.failure.message;
  }
  return object;
}

export const STATEMENT_HEADER = 'event_time,type,out_trade_no,bank_trade_no,out_refund_no,bank_refund_no,amount,fee,currency';

/** The CSV statement of one business date (PROTOCOL.md section 8). */
export function statementCsv(date: string, payments: Iterable<Payment>, refunds: Iterable<Refund>): string {
  interface Row { atMs: number; bankNo: string; columns: Array<string | number> }
  const rows: Row[] = [];
  for (const payment of payments) {
    if (payment.status !== 'SUCCESS' || payment.paidAtMs === undefined || businessDate(payment.paidAtMs) !== date) continue;
    const req = payment.request;
    rows.push({
      atMs: payment.paidAtMs,
      bankNo: payment.bankTradeNo,
      columns: [chinaTime(payment.paidAtMs), 'PAYMENT', req.out_trade_no, payment.bankTradeNo, '', '', req.amount, feeFen(req.amount), 'CNY'],
    });
  }
  for (const refund of refunds) {
    if (refund.status !== 'SUCCESS' || refund.succeededAtMs === undefined || businessDate(refund.succeededAtMs) !== date) continue;
    const req = refund.request;
    rows.push({
      atMs: refund.succeededAtMs,
      bankNo: refund.bankRefundNo,
      columns: [chinaTime(refund.succeededAtMs), 'REFUND', req.out_trade_no, refund.bankTradeNo, req.out_refund_no, refund.bankRefundNo, req.amount, 0, 'CNY'],
    });
  }
  // Order by event_time at the protocol's second precision, then by bank number.
  rows.sort((a, b) => Math.floor(a.atMs / 1000) - Math.floor(b.atMs / 1000) || (a.bankNo < b.bankNo ? -1 : a.bankNo > b.bankNo ? 1 : 0));
  return [STATEMENT_HEADER, ...rows.map((row) => row.columns.join(','))].map((line) => `${line}\n`).join('');
}
