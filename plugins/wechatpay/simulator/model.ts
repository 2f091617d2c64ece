// Simulator state and the pure functions that render it in WeChat's wire shapes.

export type TradeType = 'NATIVE' | 'JSAPI' | 'APP' | 'MWEB' | 'MICROPAY';
export type TradeState = 'SUCCESS' | 'REFUND' | 'NOTPAY' | 'CLOSED' | 'REVOKED' | 'USERPAYING' | 'PAYERROR';
export type RefundStatus = 'PROCESSING' | 'SUCCESS' | 'CLOSED' | 'ABNORMAL';

export interface NotificationAttempt {
  at: string;
  status: number | null;
  error?: string;
}

export interface NotificationRecord {
  id: string;
  event_type: string;
  url: string;
  body: string;
  plaintext: Record<string, unknown>;
  attempts: NotificationAttempt[];
  acknowledged: boolean;
  dropped: boolean;
}

export interface Refund {
  refund_id: string;
  out_refund_no: string;
  reason?: string;
  notify_url?: string;
  refund: number;
  status: RefundStatus;
  create_time: string;
  success_time?: string;
}

export interface Order {
  /** 'direct' for ordinary merchants, 'partner' for service-provider orders. */
  mode: 'direct' | 'partner';
  /** The merchant whose API keys sign requests for this order (mchid or sp_mchid). */
  signerMchid: string;
  appid: string;
  mchid: string;
  sub_appid?: string;
  sub_mchid?: string;
  out_trade_no: string;
  transaction_id: string;
  trade_type: TradeType;
  trade_state: TradeState;
  description: string;
  attach?: string;
  notify_url?: string;
  time_expire?: string;
  total: number;
  currency: string;
  payer: Record<string, string>;
  /** Canonical JSON of the create request, to tell an idempotent retry from a conflicting reuse. */
  requestFingerprint: string;
  prepay_id: string;
  code_url?: string;
  h5_url?: string;
  create_time: string;
  success_time?: string;
  refunds: Refund[];
  notifications: NotificationRecord[];
}

/** RFC 3339 in China time, as WeChat writes it: `2024-05-20T13:29:35+08:00`. */
export function chinaTime(date: Date): string {
  const shifted = new Date(date.getTime() + 8 * 3600 * 1000);
  return `${shifted.toISOString().slice(0, 19)}+08:00`;
}

/** `yyyy-MM-dd HH:mm:ss` in China time (statement rows). */
export function chinaDateTime(rfc3339: string): string {
  const shifted = new Date(new Date(rfc3339).getTime() + 8 * 3600 * 1000);
  return shifted.toISOString().slice(0, 19).replace('T', ' ');
}

/** `yyyyMMddHHmmss` in China time (APIv2 time_end). */
export function chinaCompactTime(date: Date): string {
  return chinaDateTime(chinaTime(date)).replace(/[- :]/g, '');
}

const TRADE_STATE_DESC: Record<TradeState, string> = {
  SUCCESS: '支付成功',
  REFUND: '转入退款',
  NOTPAY: '未支付',
  CLOSED: '已关闭',
  REVOKED: '已撤销（付款码支付）',
  USERPAYING: '用户支付中（付款码支付）',
  PAYERROR: '支付失败(其他原因，如银行返回失败)',
};

export function isPaid(order: Order): boolean {
  return order.trade_state === 'SUCCESS' || order.trade_state === 'REFUND';
}

/** The transaction resource: query answer and TRANSACTION.* notification plaintext. */
export function transactionResource(order: Order, amountOverride?: number): Record<string, unknown> {
  const paid = isPaid(order);
  const total = amountOverride ?? order.total;
  const ids = order.mode === 'partner'
    ? { sp_appid: order.appid, sp_mchid: order.mchid, ...(order.sub_appid ? { sub_appid: order.sub_appid } : {}), sub_mchid: order.sub_mchid }
    : { appid: order.appid, mchid: order.mchid };
  const resource: Record<string, unknown> = {
    ...ids,
    out_trade_no: order.out_trade_no,
    trade_state: order.trade_state,
    trade_state_desc: TRADE_STATE_DESC[order.trade_state],
    amount: paid
      ? { total, payer_total: total, currency: order.currency, payer_currency: order.currency }
      : { total, currency: order.currency, payer_currency: order.currency },
    promotion_detail: [],
  };
  if (order.attach !== undefined) resource.attach = order.attach;
  // WeChat only reveals the transaction id, trade type, bank and payer once money moved (or the payer is mid-payment).
  if (paid || order.trade_state === 'USERPAYING' || order.trade_state === 'PAYERROR') {
    resource.transaction_id = order.transaction_id;
    resource.trade_type = order.trade_type;
    resource.bank_type = 'OTHERS';
    resource.payer = order.payer;
  }
  if (paid && order.success_time) resource.success_time = order.success_time;
  return resource;
}

export function refundedTotal(order: Order, includeProcessing = true): number {
  return order.refunds
    .filter((refund) => refund.status === 'SUCCESS' || (includeProcessing && refund.status === 'PROCESSING'))
    .reduce((sum, refund) => sum + refund.refund, 0);
}

/** Refund resource: create / query answer. */
export function refundResource(order: Order, refund: Refund): Record<string, unknown> {
  const resource: Record<string, unknown> = {
    refund_id: refund.refund_id,
    out_refund_no: refund.out_refund_no,
    transaction_id: order.transaction_id,
    out_trade_no: order.out_trade_no,
    channel: 'ORIGINAL',
    user_received_account: '支付用户零钱',
    create_time: refund.create_time,
    status: refund.status,
    funds_account: 'AVAILABLE',
    amount: {
      total: order.total,
      refund: refund.refund,
      from: [],
      payer_total: order.total,
      payer_refund: refund.refund,
      settlement_refund: refund.refund,
      settlement_total: order.total,
      discount_refund: 0,
      currency: order.currency,
      refund_fee: 0,
    },
    promotion_detail: [],
  };
  if (refund.success_time) resource.success_time = refund.success_time;
  return resource;
}

/** REFUND.* notification plaintext. */
export function refundNotificationResource(order: Order, refund: Refund, amountOverride?: number): Record<string, unknown> {
  const ids = order.mode === 'partner' ? { sp_mchid: order.mchid, sub_mchid: order.sub_mchid } : { mchid: order.mchid };
  const refundAmount = amountOverride ?? refund.refund;
  return {
    ...ids,
    out_trade_no: order.out_trade_no,
    transaction_id: order.transaction_id,
    out_refund_no: refund.out_refund_no,
    refund_id: refund.refund_id,
    refund_status: refund.status,
    success_time: refund.success_time,
    user_received_account: '支付用户零钱',
    amount: { total: order.total, refund: refundAmount, payer_total: order.total, payer_refund: refundAmount },
  };
}

/** Stable JSON (sorted keys) so two requests with the same fields compare equal. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Fen → yuan with two decimals, as statements write amounts. */
export function yuan(fen: number): string {
  const sign = fen < 0 ? '-' : '';
  const abs = Math.abs(fen);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}
