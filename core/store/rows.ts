import type { AppRecord, BindingRecord, MerchantRecord, PaymentRecord, RefundRecord, WebhookEventRecord } from '../payments/types.js';
import type { Row } from './sqlite.js';

// Row → record mappers: the only place that knows column names and JSON-encoded columns.
const str = (v: unknown): string => v as string;
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : (v as string));
const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const json = <T>(v: unknown, fallback: T): T => (typeof v === 'string' && v !== '' ? (JSON.parse(v) as T) : fallback);

export function toPayment(r: Row): PaymentRecord {
  return {
    id: str(r.id),
    merchantId: str(r.merchant_id),
    appId: str(r.app_id),
    outTradeNo: str(r.out_trade_no),
    amount: num(r.amount),
    amountRefunded: num(r.amount_refunded),
    currency: str(r.currency),
    payMethod: str(r.pay_method),
    channel: strOrNull(r.channel),
    channelAccount: strOrNull(r.channel_account),
    channelOrderNo: strOrNull(r.channel_order_no),
    channelTradeNo: strOrNull(r.channel_trade_no),
    status: str(r.status) as PaymentRecord['status'],
    subject: strOrNull(r.subject),
    notifyUrl: strOrNull(r.notify_url),
    returnUrl: strOrNull(r.return_url),
    payer: json(r.payer, {}),
    metadata: json(r.metadata, {}),
    action: json(r.action, null),
    failure: json(r.failure, null),
    routing: json(r.routing, null),
    fee: num(r.fee),
    expiresAt: num(r.expires_at),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    paidAt: numOrNull(r.paid_at),
    checkCount: num(r.check_count),
    nextCheckAt: numOrNull(r.next_check_at),
    binding: json(r.channel_binding, null),
  };
}

export function toRefund(r: Row): RefundRecord {
  return {
    id: str(r.id),
    paymentId: str(r.payment_id),
    merchantId: str(r.merchant_id),
    outRefundNo: str(r.out_refund_no),
    amount: num(r.amount),
    reason: strOrNull(r.reason),
    status: str(r.status) as RefundRecord['status'],
    channelRefundNo: strOrNull(r.channel_refund_no),
    failure: json(r.failure, null),
    feeReturned: num(r.fee_returned),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    succeededAt: numOrNull(r.succeeded_at),
  };
}

export function toMerchant(r: Row): MerchantRecord {
  return {
    id: str(r.id),
    name: str(r.name),
    status: str(r.status) as MerchantRecord['status'],
    tags: json(r.tags, []),
    feeRateBps: num(r.fee_rate_bps),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
  };
}

export function toApp(r: Row): AppRecord {
  return {
    id: str(r.id),
    merchantId: str(r.merchant_id),
    authType: str(r.auth_type) as AppRecord['authType'],
    hmacSecret: strOrNull(r.hmac_secret),
    publicKeyPem: strOrNull(r.public_key_pem),
    notifyUrl: strOrNull(r.notify_url),
    status: str(r.status) as AppRecord['status'],
    createdAt: num(r.created_at),
  };
}

export function toBinding(r: Row): BindingRecord {
  return {
    merchantId: str(r.merchant_id),
    account: str(r.account),
    subMerchantId: strOrNull(r.sub_merchant_id),
    params: json(r.params, {}),
    createdAt: num(r.created_at),
  };
}

export function toWebhookEvent(r: Row): WebhookEventRecord {
  return {
    id: str(r.id),
    merchantId: str(r.merchant_id),
    type: str(r.type),
    objectId: str(r.object_id),
    payload: str(r.payload),
    url: strOrNull(r.url),
    status: str(r.status) as WebhookEventRecord['status'],
    attempts: num(r.attempts),
    nextAttemptAt: numOrNull(r.next_attempt_at),
    lastError: strOrNull(r.last_error),
    createdAt: num(r.created_at),
    deliveredAt: numOrNull(r.delivered_at),
  };
}
