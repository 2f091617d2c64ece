/**
 * Pure mapping between UnionPay ACP 5.1.0 messages and the contract: request field sets, China-time formats, the
 * respCode tables and the result mapping. No I/O.
 */
import type { ChannelPaymentResult, ChannelRefundResult, PaymentAction, StandardChannelCode } from '../../core/index.js';
import type { AcpFields } from './transport.js';

export const ACP_VERSION = '5.1.0';
const CHINA_OFFSET_MS = 8 * 3600 * 1000;

// ---------------------------------------------------------------- time

/**
 * yyyyMMddHHmmss in China time (UTC+8, no DST). A transaction's txnTime is chinaTime of its contract createdAt
 * (CreatePaymentRequest/PaymentReference, RefundRequest/RefundReference), so a query repeats it exactly.
 */
export function chinaTime(date: Date): string {
  const d = new Date(date.getTime() + CHINA_OFFSET_MS);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

/** yyyyMMddHHmmss (China time) → Date; undefined when malformed. */
export function parseChinaTime(s: string | undefined): Date | undefined {
  const m = s ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(s) : null;
  if (!m) return undefined;
  const [, y, mo, d, h, mi, se] = m.map(Number) as [number, number, number, number, number, number, number];
  return new Date(Date.UTC(y, mo - 1, d, h, mi, se) - CHINA_OFFSET_MS);
}

/** MMDD of a settlement date given as YYYY-MM-DD or YYYYMMDD. */
export function settleDateOf(date: string): { year: number; month: number; day: number; mmdd: string } {
  const m = /^(\d{4})-?(\d{2})-?(\d{2})$/.exec(date);
  if (!m) throw new Error(`statement date must be YYYY-MM-DD, got ${JSON.stringify(date)}`);
  return { year: Number(m[1]), month: Number(m[2]), day: Number(m[3]), mmdd: `${m[2]}${m[3]}` };
}

/** payTimeout: the earlier of expiresAt and txnTime + pay_timeout_s. */
export function payTimeout(expiresAt: Date, txnTime: string, payTimeoutS: number | undefined): string {
  let end = expiresAt.getTime();
  const start = parseChinaTime(txnTime);
  if (payTimeoutS !== undefined && start) end = Math.min(end, start.getTime() + payTimeoutS * 1000);
  return chinaTime(new Date(end));
}

// ---------------------------------------------------------------- amounts

export function fenDigits(fen: number): string {
  if (!Number.isSafeInteger(fen) || fen <= 0) throw new Error(`amount must be a positive integer of fen, got ${fen}`);
  return String(fen);
}

/** txnAmt / settleAmt (fen digits) → fen; undefined when absent or malformed. */
export function parseFen(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d{1,15}$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

// ---------------------------------------------------------------- requests

export interface Identity {
  merId: string;
  certId: string;
}

function common(id: Identity): AcpFields {
  return { version: ACP_VERSION, encoding: 'utf-8', signMethod: '01', accessType: '0', merId: id.merId, certId: id.certId };
}

export interface ConsumeInput {
  channelOrderNo: string;
  txnTime: string;
  amount: number;
  backUrl: string;
  frontUrl: string;
  payTimeout: string;
}

/** Browser consume (frontTransReq.do): 01/01, bizType 000201, channelType 07. */
export function webConsumeFields(id: Identity, o: ConsumeInput): AcpFields {
  return {
    ...common(id), txnType: '01', txnSubType: '01', bizType: '000201', channelType: '07', currencyCode: '156',
    orderId: o.channelOrderNo, txnTime: o.txnTime, txnAmt: fenDigits(o.amount), backUrl: o.backUrl, frontUrl: o.frontUrl, payTimeout: o.payTimeout,
  };
}

/** QR consume (backTransReq.do): 01/07, bizType 000000. */
export function qrConsumeFields(id: Identity, o: ConsumeInput): AcpFields {
  return {
    ...common(id), txnType: '01', txnSubType: '07', bizType: '000000', channelType: '08', currencyCode: '156',
    orderId: o.channelOrderNo, txnTime: o.txnTime, txnAmt: fenDigits(o.amount), backUrl: o.backUrl, payTimeout: o.payTimeout,
  };
}

export function queryFields(id: Identity, orderId: string, txnTime: string): AcpFields {
  return { ...common(id), txnType: '00', txnSubType: '00', bizType: '000000', orderId, txnTime };
}

export interface RefundInput {
  channelRefundNo: string;
  payMethod: string;
  txnTime: string;
  origQryId: string;
  amount: number;
  backUrl: string;
}

export function refundFields(id: Identity, r: RefundInput): AcpFields {
  return {
    // The refund repeats the original product: gateway consume (000201, PC) or QR consume (000000, mobile).
    ...common(id), txnType: '04', txnSubType: '00', ...(r.payMethod === 'unionpay.qr' ? { bizType: '000000', channelType: '08' } : { bizType: '000201', channelType: '07' }), currencyCode: '156',
    orderId: r.channelRefundNo, txnTime: r.txnTime, txnAmt: fenDigits(r.amount), origQryId: r.origQryId, backUrl: r.backUrl,
  };
}

export function fileFields(id: Identity, mmdd: string, txnTime: string): AcpFields {
  return { ...common(id), txnType: '76', txnSubType: '01', bizType: '000000', fileType: '00', settleDate: mmdd, txnTime };
}

// ---------------------------------------------------------------- respCode tables

export interface CodeMapping {
  code: StandardChannelCode;
  /** Whether the transaction may exist at UnionPay after this answer. */
  mayExist: boolean;
}

/**
 * respCode of a synchronous answer that is not 00 (acceptance). 03/04/05 mean "sent, outcome unknown" (query later);
 * the 1x/3x codes are rejections before acceptance, except 12 (the orderId+txnTime already exists).
 */
export const RESP_CODES: Record<string, CodeMapping> = {
  '01': { code: 'unknown', mayExist: true },
  '02': { code: 'channel_unavailable', mayExist: false },
  '03': { code: 'timeout', mayExist: true },
  '04': { code: 'unknown', mayExist: true },
  '05': { code: 'unknown', mayExist: true },
  '06': { code: 'channel_unavailable', mayExist: false },
  '10': { code: 'invalid_request', mayExist: false },
  '11': { code: 'signature_invalid', mayExist: false },
  '12': { code: 'duplicate_order', mayExist: true },
  '13': { code: 'invalid_request', mayExist: false },
  '14': { code: 'invalid_request', mayExist: false },
  '30': { code: 'card_declined', mayExist: false },
  '31': { code: 'authentication_failed', mayExist: false },
  '32': { code: 'not_supported', mayExist: false },
  '33': { code: 'refund_exceeds_amount', mayExist: false },
  // 查无此交易: UnionPay's own advice is "unknown, query later" (a browser order exists once the payer submits it).
  '34': { code: 'order_not_found', mayExist: true },
  '35': { code: 'order_not_found', mayExist: false },
  '36': { code: 'invalid_request', mayExist: false },
  '37': { code: 'order_closed', mayExist: false },
  '38': { code: 'not_supported', mayExist: false },
  '39': { code: 'not_supported', mayExist: false },
  '40': { code: 'card_declined', mayExist: false },
  '41': { code: 'card_declined', mayExist: false },
  '51': { code: 'insufficient_balance', mayExist: false },
  '61': { code: 'invalid_request', mayExist: false },
  '98': { code: 'order_not_found', mayExist: false },
};

/** Unknown codes: 0x system-side → may exist; 1x/3x/6x/7x/8x/9x request-side rejections → did not. */
export function mapRespCode(respCode: string | undefined): CodeMapping {
  if (respCode && RESP_CODES[respCode]) return RESP_CODES[respCode]!;
  if (respCode && /^[13-9]\d$/.test(respCode)) return { code: 'unknown', mayExist: false };
  return { code: 'unknown', mayExist: true };
}

/** origRespCode of a query (the original transaction's own result). */
export type OrigOutcome = 'succeeded' | 'pending' | 'failed';

export function origOutcome(origRespCode: string | undefined): OrigOutcome {
  if (origRespCode === '00' || origRespCode === 'A6') return 'succeeded';
  if (origRespCode === '03' || origRespCode === '04' || origRespCode === '05' || origRespCode === undefined || origRespCode === '') return 'pending';
  return 'failed';
}

/** Failure code of a transaction that UnionPay reports as failed (origRespCode / a failed notification's respCode). */
export function declineCode(respCode: string | undefined): StandardChannelCode {
  const mapped = mapRespCode(respCode).code;
  return mapped === 'unknown' || mapped === 'timeout' ? 'card_declined' : mapped;
}

/** The result of a consume query answered with respCode 00. */
export function paymentFromQuery(fields: AcpFields): ChannelPaymentResult {
  const outcome = origOutcome(fields.origRespCode);
  const channelTradeNo = fields.queryId || undefined;
  if (outcome === 'succeeded') {
    return {
      status: 'succeeded', channelTradeNo, paidAmount: parseFen(fields.txnAmt), paidAt: parseChinaTime(fields.txnTime),
    };
  }
  if (outcome === 'pending') return { status: 'pending', channelTradeNo };
  return {
    status: 'failed', channelTradeNo,
    failure: { code: declineCode(fields.origRespCode), message: fields.origRespMsg || `origRespCode ${fields.origRespCode}`, channelCode: fields.origRespCode },
  };
}

/** The result of a refund query answered with respCode 00. */
export function refundFromQuery(fields: AcpFields, channelRefundNo: string): ChannelRefundResult {
  const outcome = origOutcome(fields.origRespCode);
  if (outcome === 'succeeded') return { status: 'succeeded', channelRefundNo };
  if (outcome === 'pending') return { status: 'pending', channelRefundNo };
  return { status: 'failed', channelRefundNo, failure: { code: declineCode(fields.origRespCode), message: fields.origRespMsg || `origRespCode ${fields.origRespCode}`, channelCode: fields.origRespCode } };
}

// ---------------------------------------------------------------- sandbox payer

/** The browser form a `unionpay.web` action carries: where to POST it and the signed fields to post. */
export interface PayerForm {
  url: string;
  fields: AcpFields;
}

/** The form of an `app` action created for `unionpay.web` (`form_action`, `form_method` POST, signed fields); else undefined. */
export function payerFormOf(action: PaymentAction | undefined): PayerForm | undefined {
  if (action?.type !== 'app') return undefined;
  const { form_action: url, form_method: method, ...fields } = action.params;
  if (!url || (method !== undefined && method.toUpperCase() !== 'POST') || !fields.signature) return undefined;
  return { url, fields };
}

/** The respCode of the gateway's HTML error page answering a front form (`respCode=…`); undefined for a payer page. */
export function frontPageRespCode(html: string): string | undefined {
  return /respCode=(?:<[^>]*>)?\s*([0-9A-Za-z]{2})\b/.exec(html)?.[1];
}
