/**
 * Pure mapping between WeChat Pay's request/response shapes and the contract's types: prepay bodies, client pay
 * parameters, the trade-state and refund-status tables, and the error-code table. No I/O here.
 */
import { ChannelError, type ChannelPaymentResult, type ChannelRefundResult, type CreatePaymentRequest, type PaymentAction, type StandardChannelCode } from '../../core/index.js';

export const PAY_METHODS = ['wechat.native', 'wechat.jsapi', 'wechat.h5', 'wechat.app', 'wechat.micropay'] as const;
export type WechatPayMethod = (typeof PAY_METHODS)[number];
export type V3TradeType = 'native' | 'jsapi' | 'app' | 'h5';

export const V3_TRADE_TYPE: Record<Exclude<WechatPayMethod, 'wechat.micropay'>, V3TradeType> = {
  'wechat.native': 'native',
  'wechat.jsapi': 'jsapi',
  'wechat.app': 'app',
  'wechat.h5': 'h5',
};

export function isPayMethod(m: string): m is WechatPayMethod {
  return (PAY_METHODS as readonly string[]).includes(m);
}

/** Who the order is for: the direct merchant, or a sub-merchant of a service provider. */
export interface MerchantScope {
  partner: boolean;
  mchid: string;
  appid: string;
  subMchid?: string;
  subAppid?: string;
}

// ---------------------------------------------------------------- time

const CHINA_OFFSET_MS = 8 * 3600 * 1000;

/** RFC 3339 in China time, second precision: `2024-05-20T13:29:35+08:00` (the form WeChat's docs use). */
export function toChinaRfc3339(d: Date): string {
  return `${new Date(d.getTime() + CHINA_OFFSET_MS).toISOString().slice(0, 19)}+08:00`;
}

/** `yyyyMMddHHmmss` in China time (APIv2 time_end / time_expire). */
export function toChinaCompact(d: Date): string {
  return new Date(d.getTime() + CHINA_OFFSET_MS).toISOString().slice(0, 19).replace(/[-T:]/g, '');
}

const COMPACT_TIME = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/;

export function fromChinaCompact(s: string | undefined): Date | undefined {
  const m = s ? COMPACT_TIME.exec(s) : null;
  if (!m) return undefined;
  return new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}+08:00`);
}

export function parseTime(s: string | undefined): Date | undefined {
  if (!s) return undefined;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

// ---------------------------------------------------------------- requests

/** WeChat limits description to 127 characters. */
function description(subject: string): string {
  const chars = [...subject];
  return chars.length > 127 ? chars.slice(0, 127).join('') : subject;
}

function invalid(message: string): ChannelError {
  return new ChannelError('invalid_request', message, false);
}

export function assertCny(currency: string): void {
  if (currency !== 'CNY') throw new ChannelError('not_supported', `WeChat Pay domestic API takes CNY only, not ${currency}`, false);
}

/** The JSON body of a v3 prepay call (direct or partner). Throws invalid_request (never sent) for missing payer data. */
export function prepayBody(req: CreatePaymentRequest, tradeType: V3TradeType, scope: MerchantScope): Record<string, unknown> {
  assertCny(req.currency);
  const ids: Record<string, string> = scope.partner
    ? { sp_appid: scope.appid, sp_mchid: scope.mchid, sub_mchid: scope.subMchid ?? '', ...(scope.subAppid ? { sub_appid: scope.subAppid } : {}) }
    : { appid: scope.appid, mchid: scope.mchid };
  if (scope.partner && !scope.subMchid) throw invalid('service-provider mode needs a sub_mchid (binding.subMerchantId or config sub_mchid)');
  const body: Record<string, unknown> = {
    ...ids,
    description: description(req.subject),
    out_trade_no: req.channelOrderNo,
    time_expire: toChinaRfc3339(req.expiresAt),
    notify_url: req.notifyUrl,
    amount: { total: req.amount, currency: 'CNY' },
  };
  if (tradeType === 'jsapi') {
    if (!req.payer.openid) throw invalid('wechat.jsapi needs payer.openid');
    body.payer = scope.partner ? (scope.subAppid ? { sub_openid: req.payer.openid } : { sp_openid: req.payer.openid }) : { openid: req.payer.openid };
  }
  if (tradeType === 'h5') {
    if (!req.payer.client_ip) throw invalid('wechat.h5 needs payer.client_ip');
    body.scene_info = { payer_client_ip: req.payer.client_ip, h5_info: { type: 'Wap' } };
  } else if (req.payer.client_ip) {
    body.scene_info = { payer_client_ip: req.payer.client_ip };
  }
  return body;
}

/** The APIv2 micropay fields, before nonce_str/sign are added. */
export function micropayFields(req: CreatePaymentRequest, scope: MerchantScope, signType: 'MD5' | 'HMAC-SHA256'): Record<string, string | undefined> {
  assertCny(req.currency);
  if (!req.payer.auth_code) throw invalid('wechat.micropay needs payer.auth_code');
  if (!req.payer.client_ip) throw invalid('wechat.micropay needs payer.client_ip (spbill_create_ip)');
  if (scope.partner && !scope.subMchid) throw invalid('service-provider mode needs a sub_mchid (binding.subMerchantId or config sub_mchid)');
  return {
    appid: scope.appid,
    mch_id: scope.mchid,
    sub_appid: scope.partner ? scope.subAppid : undefined,
    sub_mch_id: scope.partner ? scope.subMchid : undefined,
    body: description(req.subject),
    out_trade_no: req.channelOrderNo,
    total_fee: String(req.amount),
    fee_type: 'CNY',
    spbill_create_ip: req.payer.client_ip,
    auth_code: req.payer.auth_code,
    time_expire: toChinaCompact(req.expiresAt),
    sign_type: signType,
  };
}

// ---------------------------------------------------------------- client pay parameters

export interface ClientSigner {
  sign(message: string): Promise<string>;
  nonce(): string;
  timestamp(): string;
}

/** The action the payer needs, from the prepay answer. JSAPI/APP parameters are signed with the merchant key. */
export async function actionFor(tradeType: V3TradeType, answer: { code_url?: string; prepay_id?: string; h5_url?: string }, appid: string, mchidForApp: string, signer: ClientSigner): Promise<PaymentAction> {
  switch (tradeType) {
    case 'native':
      if (!answer.code_url) throw new ChannelError('unknown', 'native prepay answer has no code_url', true);
      return { type: 'qr_code', qr_code: answer.code_url };
    case 'h5':
      if (!answer.h5_url) throw new ChannelError('unknown', 'h5 prepay answer has no h5_url', true);
      return { type: 'redirect', url: answer.h5_url };
    case 'jsapi': {
      if (!answer.prepay_id) throw new ChannelError('unknown', 'jsapi prepay answer has no prepay_id', true);
      const timeStamp = signer.timestamp();
      const nonceStr = signer.nonce();
      const pkg = `prepay_id=${answer.prepay_id}`;
      const paySign = await signer.sign(`${appid}\n${timeStamp}\n${nonceStr}\n${pkg}\n`);
      return { type: 'jsapi', params: { appId: appid, timeStamp, nonceStr, package: pkg, signType: 'RSA', paySign } };
    }
    case 'app': {
      if (!answer.prepay_id) throw new ChannelError('unknown', 'app prepay answer has no prepay_id', true);
      const timestamp = signer.timestamp();
      const noncestr = signer.nonce();
      const sign = await signer.sign(`${appid}\n${timestamp}\n${noncestr}\n${answer.prepay_id}\n`);
      return { type: 'app', params: { appid, partnerid: mchidForApp, prepayid: answer.prepay_id, package: 'Sign=WXPay', noncestr, timestamp, sign } };
    }
  }
}

// ---------------------------------------------------------------- status tables

export type TradeState = 'SUCCESS' | 'REFUND' | 'NOTPAY' | 'CLOSED' | 'REVOKED' | 'USERPAYING' | 'PAYERROR';

/** trade_state → contract status. REFUND means it was paid (and later (partly) refunded). */
export const TRADE_STATE_STATUS: Record<TradeState, ChannelPaymentResult['status']> = {
  SUCCESS: 'succeeded',
  REFUND: 'succeeded',
  NOTPAY: 'pending',
  USERPAYING: 'pending',
  CLOSED: 'closed',
  REVOKED: 'closed',
  PAYERROR: 'failed',
};

export interface V3Transaction {
  out_trade_no?: string;
  transaction_id?: string;
  trade_state?: string;
  trade_state_desc?: string;
  success_time?: string;
  mchid?: string;
  sp_mchid?: string;
  sub_mchid?: string;
  amount?: { total?: number; payer_total?: number; currency?: string };
}

export function transactionToResult(tx: V3Transaction): ChannelPaymentResult {
  const state = tx.trade_state as TradeState | undefined;
  const status = state ? TRADE_STATE_STATUS[state] : undefined;
  if (!status) throw new ChannelError('unknown', `unknown trade_state ${String(tx.trade_state)}`, true, tx.trade_state);
  const result: ChannelPaymentResult = { status };
  if (tx.transaction_id) result.channelTradeNo = tx.transaction_id;
  if (status === 'succeeded') {
    if (typeof tx.amount?.total === 'number') result.paidAmount = tx.amount.total;
    const at = parseTime(tx.success_time);
    if (at) result.paidAt = at;
  }
  if (status === 'failed') result.failure = { code: 'card_declined', message: tx.trade_state_desc || 'payment failed (PAYERROR)', channelCode: state };
  return result;
}

export type RefundStatus = 'SUCCESS' | 'CLOSED' | 'PROCESSING' | 'ABNORMAL';

export const REFUND_STATUS: Record<RefundStatus, { status: ChannelRefundResult['status']; failure?: StandardChannelCode }> = {
  SUCCESS: { status: 'succeeded' },
  PROCESSING: { status: 'pending' },
  CLOSED: { status: 'failed', failure: 'unknown' },
  /** The refund reached a frozen/cancelled card: needs handling off-line (退款异常). */
  ABNORMAL: { status: 'failed', failure: 'card_declined' },
};

export interface V3Refund {
  refund_id?: string;
  out_refund_no?: string;
  out_trade_no?: string;
  status?: string;
  refund_status?: string;
  success_time?: string;
  amount?: { refund?: number; total?: number };
}

export function refundToResult(r: V3Refund): ChannelRefundResult {
  const raw = r.status ?? r.refund_status;
  const row = raw ? REFUND_STATUS[raw as RefundStatus] : undefined;
  if (!row) throw new ChannelError('unknown', `unknown refund status ${String(raw)}`, true, raw);
  const result: ChannelRefundResult = { status: row.status };
  if (r.refund_id) result.channelRefundNo = r.refund_id;
  if (row.status === 'succeeded') {
    const at = parseTime(r.success_time);
    if (at) result.succeededAt = at;
  }
  if (row.failure) result.failure = { code: row.failure, message: `refund ${raw}`, channelCode: raw };
  return result;
}

// ---------------------------------------------------------------- error table

export interface ErrorMapping {
  code: StandardChannelCode;
  /** Whether the order (or refund) may exist at WeChat after this answer. */
  mayExist: boolean;
  retryable?: boolean;
}

/**
 * WeChat error codes (v3 `code` and APIv2 `err_code`) → standard codes. mayExist=false only for defined
 * pre-acceptance rejections; codes that say the order exists (duplicate, closed, paid) keep mayExist=true.
 */
export const ERROR_TABLE: Record<string, ErrorMapping> = {
  PARAM_ERROR: { code: 'invalid_request', mayExist: false },
  INVALID_REQUEST: { code: 'invalid_request', mayExist: false },
  APPID_MCHID_NOT_MATCH: { code: 'invalid_request', mayExist: false },
  MCH_NOT_EXISTS: { code: 'authentication_failed', mayExist: false },
  SIGN_ERROR: { code: 'authentication_failed', mayExist: false },
  SIGNERROR: { code: 'authentication_failed', mayExist: false },
  NOAUTH: { code: 'authentication_failed', mayExist: false },
  NO_AUTH: { code: 'authentication_failed', mayExist: false },
  REQUEST_BLOCKED: { code: 'invalid_request', mayExist: false },
  RULE_LIMIT: { code: 'invalid_request', mayExist: false },
  LACK_PARAMS: { code: 'invalid_request', mayExist: false },
  XML_FORMAT_ERROR: { code: 'invalid_request', mayExist: false },
  NOT_UTF8: { code: 'invalid_request', mayExist: false },
  REQUIRE_POST_METHOD: { code: 'invalid_request', mayExist: false },
  OUT_TRADE_NO_USED: { code: 'duplicate_order', mayExist: true },
  ORDERNOTEXIST: { code: 'order_not_found', mayExist: false },
  RESOURCE_NOT_EXISTS: { code: 'order_not_found', mayExist: false },
  ORDER_CLOSED: { code: 'order_closed', mayExist: true },
  ORDERCLOSED: { code: 'order_closed', mayExist: true },
  ORDERREVERSED: { code: 'order_closed', mayExist: true },
  ORDERPAID: { code: 'order_paid', mayExist: true },
  FREQUENCY_LIMITED: { code: 'rate_limited', mayExist: false, retryable: true },
  SYSTEMERROR: { code: 'channel_unavailable', mayExist: true, retryable: true },
  SYSTEM_ERROR: { code: 'channel_unavailable', mayExist: true, retryable: true },
  BANKERROR: { code: 'channel_unavailable', mayExist: true, retryable: true },
  NOTENOUGH: { code: 'insufficient_balance', mayExist: false },
  USERPAYING: { code: 'payer_action_required', mayExist: true },
  AUTH_CODE_INVALID: { code: 'invalid_request', mayExist: false },
  AUTH_CODE_ERROR: { code: 'invalid_request', mayExist: false },
  AUTHCODEEXPIRE: { code: 'payer_action_required', mayExist: false },
  NOTSUPORTCARD: { code: 'card_declined', mayExist: false },
  BUYER_MISMATCH: { code: 'invalid_request', mayExist: false },
  TRADE_ERROR: { code: 'card_declined', mayExist: false },
  USER_ACCOUNT_ABNORMAL: { code: 'card_declined', mayExist: false },
  NO_STATEMENT_EXIST: { code: 'order_not_found', mayExist: false },
  STATEMENT_CREATING: { code: 'channel_unavailable', mayExist: false, retryable: true },
};

export function mapErrorCode(channelCode: string, httpStatus?: number): ErrorMapping {
  const row = ERROR_TABLE[channelCode];
  if (row) return row;
  // Unknown code: only a server-side failure is classified, and nothing unknown is assumed "not created".
  if (httpStatus !== undefined && httpStatus >= 500) return { code: 'channel_unavailable', mayExist: true, retryable: true };
  return { code: 'unknown', mayExist: true };
}

export function channelErrorFor(channelCode: string, message: string, httpStatus?: number): ChannelError {
  const m = mapErrorCode(channelCode, httpStatus);
  return new ChannelError(m.code, `WeChat Pay ${channelCode}${httpStatus ? ` (HTTP ${httpStatus})` : ''}: ${message}`, m.mayExist, channelCode, m.retryable ?? false);
}

// ---------------------------------------------------------------- micropay results

/** What a micropay APIv2 answer means. SYSTEMERROR/BANKERROR/unknown → throw (outcome unknown, query it). */
export function micropayToResult(fields: Record<string, string>): ChannelPaymentResult {
  if (fields.result_code === 'SUCCESS') {
    const result: ChannelPaymentResult = { status: 'succeeded' };
    if (fields.transaction_id) result.channelTradeNo = fields.transaction_id;
    if (fields.total_fee && /^\d+$/.test(fields.total_fee)) result.paidAmount = Number(fields.total_fee);
    const at = fromChinaCompact(fields.time_end);
    if (at) result.paidAt = at;
    return result;
  }
  const errCode = fields.err_code ?? '';
  const message = fields.err_code_des || fields.return_msg || errCode;
  if (errCode === 'USERPAYING') return { status: 'pending' };
  const mapped = mapErrorCode(errCode);
  if (mapped.mayExist) throw channelErrorFor(errCode || 'UNKNOWN', message);
  return { status: 'failed', failure: { code: mapped.code, message, channelCode: errCode } };
}
