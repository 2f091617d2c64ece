import type { PaymentRecord, RefundRecord, MerchantRecord, AppRecord, BindingRecord } from './types.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The payment object of the merchant API. */
export function paymentToApi(p: PaymentRecord) {
  return {
    id: p.id,
    object: 'payment' as const,
    status: p.status,
    amount: p.amount,
    amount_refunded: p.amountRefunded,
    currency: p.currency,
    pay_method: p.payMethod,
    channel: p.channel,
    channel_account: p.channelAccount,
    channel_trade_no: p.channelTradeNo,
    out_trade_no: p.outTradeNo,
    subject: p.subject,
    action: p.action,
    failure: p.failure,
    metadata: p.metadata,
    routing: p.routing,
    created_at: iso(p.createdAt),
    expires_at: iso(p.expiresAt),
    paid_at: iso(p.paidAt),
  };
}

export function refundToApi(r: RefundRecord) {
  return {
    id: r.id,
    object: 'refund' as const,
    payment_id: r.paymentId,
    out_refund_no: r.outRefundNo,
    status: r.status,
    amount: r.amount,
    reason: r.reason,
    failure: r.failure,
    created_at: iso(r.createdAt),
    succeeded_at: iso(r.succeededAt),
  };
}

export function merchantToApi(m: MerchantRecord) {
  return { id: m.id, object: 'merchant' as const, name: m.name, status: m.status, tags: m.tags, fee_rate_bps: m.feeRateBps, created_at: iso(m.createdAt), updated_at: iso(m.updatedAt) };
}

/** Never includes the secret: it is shown once, when the app is created. */
export function appToApi(a: AppRecord) {
  return { id: a.id, object: 'app' as const, merchant_id: a.merchantId, auth_type: a.authType, public_key: a.publicKeyPem, notify_url: a.notifyUrl, status: a.status, created_at: iso(a.createdAt) };
}

export function bindingToApi(b: BindingRecord) {
  return { merchant_id: b.merchantId, account: b.account, sub_merchant_id: b.subMerchantId, params: b.params, created_at: iso(b.createdAt) };
}
