/**
 * Pure mapping between Alipay's request/response shapes and the contract's types: the pay-method table,
 * the trade-status table and the error-code table. No I/O here.
 */
import {
  ChannelError, fenToYuan, yuanToFen, MoneyFormatError,
  type ChannelPaymentResult, type ChannelPaymentStatus, type ChannelRefundResult, type CreatePaymentRequest,
  type MinorUnits, type StandardChannelCode,
} from '../../core/index.js';
import { chinaTime, parseChinaTime, type GatewayResponse } from './transport.js';

// ------------------------------------------------------------------ pay methods

export type PayMethodKind = 'server' | 'redirect' | 'app';

export interface PayMethodSpec {
  method: string;
  productCode: string;
  kind: PayMethodKind;
}

/** Each pay method Corbel offers → the OpenAPI method, product code and how the payer is reached. */
export const PAY_METHODS = {
  'alipay.qr': { method: 'alipay.trade.precreate', productCode: 'FACE_TO_FACE_PAYMENT', kind: 'server' },
  'alipay.page': { method: 'alipay.trade.page.pay', productCode: 'FAST_INSTANT_TRADE_PAY', kind: 'redirect' },
  'alipay.wap': { method: 'alipay.trade.wap.pay', productCode: 'QUICK_WAP_WAY', kind: 'redirect' },
  'alipay.app': { method: 'alipay.trade.app.pay', productCode: 'QUICK_MSECURITY_PAY', kind: 'app' },
  'alipay.barcode': { method: 'alipay.trade.pay', productCode: 'FACE_TO_FACE_PAYMENT', kind: 'server' },
} as const satisfies Record<string, PayMethodSpec>;

export type AlipayPayMethod = keyof typeof PAY_METHODS;
export const PAY_METHOD_NAMES = Object.keys(PAY_METHODS) as AlipayPayMethod[];

export function payMethodSpec(payMethod: string): PayMethodSpec {
  const spec = (PAY_METHODS as Record<string, PayMethodSpec>)[payMethod];
  if (!spec) throw new ChannelError('not_supported', `alipay does not serve pay method ${payMethod}`, false);
  return spec;
}

// ------------------------------------------------------------------ amounts

/** Contract fen → Alipay's two-decimal yuan string; anything that is not a non-negative safe integer is a bug upstream. */
export function toYuan(fen: MinorUnits): string {
  try {
    return fenToYuan(fen);
  } catch (err) {
    throw new ChannelError('invalid_request', (err as Error).message, false);
  }
}

/** Alipay's yuan value (a string, sometimes a JSON number) → fen; undefined when absent, throws when malformed. */
export function fromYuan(value: unknown, field: string): MinorUnits | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : undefined;
  try {
    if (text === undefined) throw new MoneyFormatError(value, 'not a string');
    return yuanToFen(text);
  } catch (err) {
    throw new ChannelError('unknown', `alipay sent a malformed ${field}: ${(err as Error).message}`, true);
  }
}

/** Signed statement amounts such as "-1.00" → magnitude in fen. */
export function fromSignedYuan(value: string | undefined, field: string): MinorUnits {
  const text = (value ?? '').trim();
  if (text === '') return 0;
  return fromYuan(text.startsWith('-') ? text.slice(1) : text, field) ?? 0;
}

// ------------------------------------------------------------------ requests

export interface PaymentBizOptions {
  sellerId?: string;
}

/** biz_content of the pay call for one CreatePaymentRequest (validated before any network call). */
export function paymentBizContent(req: CreatePaymentRequest, opts: PaymentBizOptions = {}): Record<string, unknown> {
  const spec = payMethodSpec(req.payMethod);
  if (req.currency !== 'CNY') throw new ChannelError('not_supported', `alipay (domestic) settles CNY only, not ${req.currency}`, false);
  if (req.amount < 1) throw new ChannelError('invalid_request', 'amount must be at least 0.01 CNY', false);
  if (req.amount > 100_000_000_00) throw new ChannelError('invalid_request', 'amount exceeds Alipay\'s 100000000.00 CNY limit', false);
  const biz: Record<string, unknown> = {
    out_trade_no: req.channelOrderNo,
    total_amount: toYuan(req.amount),
    subject: req.subject.slice(0, 256),
    product_code: spec.productCode,
    time_expire: chinaTime(req.expiresAt),
  };
  if (opts.sellerId) biz.seller_id = opts.sellerId;
  if (req.payMethod === 'alipay.barcode') {
    const code = req.payer.auth_code?.trim();
    if (!code) throw new ChannelError('invalid_request', 'alipay.barcode needs payer.auth_code', false);
    biz.scene = 'bar_code';
    biz.auth_code = code;
  }
  if (req.payMethod === 'alipay.wap' && req.returnUrl) biz.quit_url = req.returnUrl;
  return biz;
}

// ------------------------------------------------------------------ statuses

/** trade_status → contract status. */
export const TRADE_STATUS: Readonly<Record<string, ChannelPaymentStatus>> = {
  WAIT_BUYER_PAY: 'pending',
  TRADE_SUCCESS: 'succeeded',
  TRADE_FINISHED: 'succeeded',
  TRADE_CLOSED: 'closed',
};

export function tradeStatus(status: unknown): ChannelPaymentStatus {
  const mapped = typeof status === 'string' ? TRADE_STATUS[status] : undefined;
  if (!mapped) throw new ChannelError('unknown', `alipay returned an unknown trade_status ${JSON.stringify(status)}`, true);
  return mapped;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined);

/** alipay.trade.query (or a 10000 alipay.trade.pay) response body → result. */
export function queryResult(body: Record<string, unknown>): ChannelPaymentResult {
  const status = tradeStatus(body.trade_status);
  const result: ChannelPaymentResult = { status };
  const tradeNo = str(body.trade_no);
  if (tradeNo) result.channelTradeNo = tradeNo;
  if (status === 'succeeded') {
    const paid = fromYuan(body.total_amount, 'total_amount');
    if (paid !== undefined) result.paidAmount = paid;
    const at = parseChinaTime(str(body.send_pay_date) ?? str(body.gmt_payment));
    if (at) result.paidAt = at;
  }
  return result;
}

/** alipay.trade.pay: 10000 paid at once; 10003 waiting for the payer (password/confirmation). */
export function barcodePayResult(res: GatewayResponse): ChannelPaymentResult {
  const tradeNo = str(res.body.trade_no);
  if (res.code === '10000') {
    const r: ChannelPaymentResult = { status: 'succeeded' };
    if (tradeNo) r.channelTradeNo = tradeNo;
    const paid = fromYuan(res.body.total_amount, 'total_amount');
    if (paid !== undefined) r.paidAmount = paid;
    r.paidAt = parseChinaTime(str(res.body.gmt_payment)) ?? new Date();
    return r;
  }
  if (res.code === '10003') return tradeNo ? { status: 'pending', channelTradeNo: tradeNo, action: null } : { status: 'pending', action: null };
  const err = mapError(res);
  if (err.decline) return { status: 'failed', failure: { code: err.code, message: err.message, channelCode: err.channelCode } };
  throw toChannelError(err);
}

/** alipay.trade.refund → result; `fund_change: Y` is a refund that moved money now. */
export function refundResult(body: Record<string, unknown>, channelRefundNo: string): ChannelRefundResult | 'query' {
  if (body.fund_change === 'Y') {
    return { status: 'succeeded', channelRefundNo, succeededAt: parseChinaTime(str(body.gmt_refund_pay)) ?? new Date() };
  }
  return 'query';
}

/** alipay.trade.fastpay.refund.query → result; refund_status REFUND_SUCCESS is the only proof of success. */
export function refundQueryResult(body: Record<string, unknown>, channelRefundNo: string): ChannelRefundResult {
  if (body.refund_status === 'REFUND_SUCCESS') {
    return { status: 'succeeded', channelRefundNo, succeededAt: parseChinaTime(str(body.gmt_refund_pay)) ?? new Date() };
  }
  return { status: 'pending', channelRefundNo };
}

/**
 * Whether fastpay.refund.query found the refund at all: 10000 without refund fields (refund_amount,
 * refund_status) means "not received"; out_trade_no/out_request_no may still be echoed.
 */
export function refundFound(body: Record<string, unknown>): boolean {
  return str(body.refund_amount) !== undefined || str(body.refund_status) !== undefined;
}

// ------------------------------------------------------------------ errors

export interface MappedError {
  code: StandardChannelCode;
  mayExist: boolean;
  retryable: boolean;
  /** A payer/business decline that is a result value (status failed), not an exception. */
  decline: boolean;
  channelCode: string;
  message: string;
}

interface ErrorRule {
  code: StandardChannelCode;
  mayExist: boolean;
  retryable?: boolean;
  decline?: boolean;
}

/**
 * 40004 sub_codes (ACQ.* and isp.*). `mayExist` answers: could the trade (or refund) exist at Alipay
 * after this answer? A business rejection of a new order proves nothing was created; codes that speak
 * of an existing trade say it does.
 */
export const SUB_CODE_RULES: Readonly<Record<string, ErrorRule>> = {
  'ACQ.SYSTEM_ERROR': { code: 'channel_unavailable', mayExist: true, retryable: true },
  'ACQ.INVALID_PARAMETER': { code: 'invalid_request', mayExist: false },
  'ACQ.ACCESS_FORBIDDEN': { code: 'authentication_failed', mayExist: false },
  'ACQ.PARTNER_ERROR': { code: 'authentication_failed', mayExist: false },
  'ACQ.SELLER_BEEN_BLOCKED': { code: 'authentication_failed', mayExist: false },
  'ACQ.EXIST_FORBIDDEN_WORD': { code: 'invalid_request', mayExist: false },
  'ACQ.TOTAL_FEE_EXCEED': { code: 'invalid_request', mayExist: false },
  'ACQ.CONTEXT_INCONSISTENT': { code: 'duplicate_order', mayExist: true },
  'ACQ.TRADE_HAS_SUCCESS': { code: 'order_paid', mayExist: true },
  'ACQ.TRADE_HAS_FINISHED': { code: 'order_paid', mayExist: true },
  'ACQ.TRADE_HAS_CLOSE': { code: 'order_closed', mayExist: true },
  'ACQ.TRADE_NOT_EXIST': { code: 'order_not_found', mayExist: false },
  'ACQ.TRADE_STATUS_ERROR': { code: 'order_paid', mayExist: true },
  // Payer declines on alipay.trade.pay: the attempt is over.
  'ACQ.PAYMENT_AUTH_CODE_INVALID': { code: 'payer_action_required', mayExist: false, decline: true },
  'ACQ.BUYER_BALANCE_NOT_ENOUGH': { code: 'insufficient_balance', mayExist: false, decline: true },
  'ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH': { code: 'insufficient_balance', mayExist: false, decline: true },
  'ACQ.PAYMENT_FAIL': { code: 'card_declined', mayExist: false, decline: true },
  'ACQ.BUYER_SELLER_EQUAL': { code: 'card_declined', mayExist: false, decline: true },
  'ACQ.BUYER_ENABLE_STATUS_FORBID': { code: 'card_declined', mayExist: false, decline: true },
  'ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT': { code: 'card_declined', mayExist: false, decline: true },
  'ACQ.PAYMENT_REQUEST_HAS_RISK': { code: 'card_declined', mayExist: false, decline: true },
  'ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE': { code: 'card_declined', mayExist: false, decline: true },
  'ACQ.USER_FACE_PAYMENT_SWITCH_OFF': { code: 'card_declined', mayExist: false, decline: true },
  'ACQ.PULL_MOBILE_CASHIER_FAIL': { code: 'card_declined', mayExist: false, decline: true },
  'ACQ.MOBILE_PAYMENT_SWITCH_OFF': { code: 'card_declined', mayExist: false, decline: true },
  'ACQ.TRADE_BUYER_NOT_MATCH': { code: 'card_declined', mayExist: false, decline: true },
  // Refunds.
  'ACQ.REFUND_AMT_NOT_EQUAL_TOTAL': { code: 'refund_exceeds_amount', mayExist: false, decline: true },
  'ACQ.DISCORDANT_REPEAT_REQUEST': { code: 'invalid_request', mayExist: true },
  'ACQ.SELLER_BALANCE_NOT_ENOUGH': { code: 'insufficient_balance', mayExist: false, decline: true },
  'ACQ.TRADE_NOT_ALLOW_REFUND': { code: 'not_supported', mayExist: false, decline: true },
  'ACQ.REASON_TRADE_BEEN_FREEZEN': { code: 'not_supported', mayExist: false, decline: true },
  'ACQ.REFUND_FEE_ERROR': { code: 'invalid_request', mayExist: false, decline: true },
  // Statement.
  'isp.bill_not_exist': { code: 'order_not_found', mayExist: false },
};

/**
 * Top-level codes. 20000 is a system error after the gateway accepted the call (anything may exist);
 * 20001/40001/40002/40006 are rejections before the business layer ran (nothing was created).
 */
export const CODE_RULES: Readonly<Record<string, ErrorRule>> = {
  '20000': { code: 'channel_unavailable', mayExist: true, retryable: true },
  '20001': { code: 'authentication_failed', mayExist: false },
  '40001': { code: 'invalid_request', mayExist: false },
  '40002': { code: 'invalid_request', mayExist: false },
  '40003': { code: 'invalid_request', mayExist: false },
  '40006': { code: 'authentication_failed', mayExist: false },
};

/** 40002 sub_codes that deserve a sharper standard code than invalid_request. */
const PRE_ACCEPTANCE_SUB_CODES: Readonly<Record<string, StandardChannelCode>> = {
  'isv.invalid-signature': 'signature_invalid',
  'isv.invalid-app-id': 'authentication_failed',
  'isv.missing-app-id': 'authentication_failed',
  'isv.invalid-signature-type': 'signature_invalid',
  'isv.missing-signature': 'signature_invalid',
  'aop.invalid-app-auth-token': 'authentication_failed',
  'aop.invalid-auth-token': 'authentication_failed',
};

/** Any non-success gateway answer → standard code + mayExist (unknown codes are treated as ambiguous). */
export function mapError(res: Pick<GatewayResponse, 'code' | 'msg' | 'subCode' | 'subMsg'>): MappedError {
  const channelCode = res.subCode ? `${res.code}/${res.subCode}` : res.code;
  const message = `alipay ${res.code} ${res.msg}${res.subCode ? `: ${res.subCode} ${res.subMsg ?? ''}` : ''}`.trim();
  const sub = res.subCode ? SUB_CODE_RULES[res.subCode] : undefined;
  if (res.code === '40004' && sub) {
    return { code: sub.code, mayExist: sub.mayExist, retryable: sub.retryable ?? false, decline: sub.decline ?? false, channelCode, message };
  }
  const top = CODE_RULES[res.code];
  if (top) {
    const sharper = res.subCode ? PRE_ACCEPTANCE_SUB_CODES[res.subCode] : undefined;
    return { code: sharper ?? top.code, mayExist: top.mayExist, retryable: top.retryable ?? false, decline: false, channelCode, message };
  }
  // 40004 with an unlisted sub_code, or an unknown code: assume the worst for money safety.
  return { code: 'unknown', mayExist: true, retryable: false, decline: false, channelCode, message };
}

export function toChannelError(e: MappedError): ChannelError {
  return new ChannelError(e.code, e.message, e.mayExist, e.channelCode, e.retryable);
}

/** alipay.trade.close failures: the kernel reacts to order_paid / order_not_found / order_closed. */
export function closeError(e: MappedError): ChannelError {
  const sub = e.channelCode.split('/')[1];
  if (sub === 'ACQ.TRADE_STATUS_ERROR' || sub === 'ACQ.TRADE_HAS_SUCCESS' || sub === 'ACQ.TRADE_HAS_FINISHED') {
    return new ChannelError('order_paid', e.message, true, e.channelCode);
  }
  if (sub === 'ACQ.TRADE_HAS_CLOSE') return new ChannelError('order_closed', e.message, true, e.channelCode);
  return toChannelError(e);
}
