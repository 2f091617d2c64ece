/**
 * Alipay asynchronous notifications (notify_type=trade_status_sync): a form POST signed with the Alipay
 * key over the sorted parameters excluding `sign` and `sign_type`. Acknowledged by the 7 bytes `success`.
 */
import type { KeyObject } from 'node:crypto';
import {
  ChannelError,
  type ChannelNotification, type InboundNotification, type NotificationAck,
} from '../../core/index.js';
import { parseChinaTime, parseForm, rsa2Verify, signContent } from './transport.js';
import { fromYuan, TRADE_STATUS } from './transformers.js';

export const NOTIFY_SIGN_EXCLUDED = ['sign', 'sign_type'] as const;

export interface NotificationIdentity {
  appId: string;
  sellerId?: string;
  alipayPublicKey: KeyObject;
}

/** Verifies the form's signature; returns the decoded parameters or throws signature_invalid. */
export function verifyNotification(n: InboundNotification, id: NotificationIdentity): Record<string, string> {
  const params = parseForm(n.rawBody);
  const sign = params.sign;
  if (!sign) throw new ChannelError('signature_invalid', 'alipay notification without sign', false);
  if (params.sign_type && params.sign_type !== 'RSA2') {
    throw new ChannelError('signature_invalid', `alipay notification sign_type ${params.sign_type} is not accepted (RSA2 only)`, false);
  }
  if (!rsa2Verify(signContent(params, NOTIFY_SIGN_EXCLUDED), sign, id.alipayPublicKey)) {
    throw new ChannelError('signature_invalid', 'alipay notification signature does not verify', false);
  }
  return params;
}

/** True when the notification reports a refund rather than the payment itself. */
export function isRefundNotification(p: Record<string, string>): boolean {
  if (p.out_biz_no || p.gmt_refund) return true;
  const fee = p.refund_fee;
  return fee !== undefined && fee !== '' && (fromYuan(fee, 'refund_fee') ?? 0) > 0;
}

/**
 * Verified parameters → what they mean to the kernel.
 * - A payment's TRADE_SUCCESS/TRADE_FINISHED carries no refund fields → payment succeeded, total_amount in fen.
 * - A refund keeps the trade in TRADE_SUCCESS (partial) or moves it to TRADE_CLOSED (full), and carries
 *   out_biz_no (our out_request_no), refund_fee (cumulative for the trade) and gmt_refund → refund succeeded.
 *   refund_fee is cumulative, so it is not this refund's amount and is not reported as one.
 * - TRADE_CLOSED without refund fields → the unpaid trade was closed.
 */
export function interpretNotification(p: Record<string, string>, id: Omit<NotificationIdentity, 'alipayPublicKey'>): ChannelNotification {
  if (p.app_id !== id.appId) {
    throw new ChannelError('signature_invalid', `alipay notification for app_id ${p.app_id ?? '(none)'}, this account is ${id.appId}`, false);
  }
  // ISV notifications come for the authorising merchant (auth_app_id ≠ app_id); only our own trades are seller-checked.
  const own = !p.auth_app_id || p.auth_app_id === p.app_id;
  if (id.sellerId && own && p.seller_id && p.seller_id !== id.sellerId) {
    throw new ChannelError('signature_invalid', `alipay notification for seller ${p.seller_id}, this account is ${id.sellerId}`, false);
  }
  if (p.notify_type && p.notify_type !== 'trade_status_sync') return { kind: 'ignored', reason: `notify_type ${p.notify_type}` };
  const channelOrderNo = p.out_trade_no;
  if (!channelOrderNo) return { kind: 'ignored', reason: 'no out_trade_no' };
  if (!p.trade_status) return { kind: 'ignored', reason: 'no trade_status' };
  if (p.trade_status === 'WAIT_BUYER_PAY') return { kind: 'ignored', reason: 'trade created, not paid yet' };
  if (!TRADE_STATUS[p.trade_status]) return { kind: 'ignored', reason: `trade_status ${p.trade_status}` };
  const status = TRADE_STATUS[p.trade_status]!;

  if (isRefundNotification(p)) {
    if (!p.out_biz_no) return { kind: 'ignored', reason: 'refund notification without out_biz_no' };
    return {
      kind: 'refund',
      channelRefundNo: p.out_biz_no,
      channelOrderNo,
      result: { status: 'succeeded', channelRefundNo: p.out_biz_no, succeededAt: parseChinaTime(p.gmt_refund) ?? new Date() },
    };
  }

  const amount = fromYuan(p.total_amount, 'total_amount');
  if (amount === undefined) throw new ChannelError('invalid_request', 'alipay notification without total_amount', false);
  if (status === 'closed') return { kind: 'payment', channelOrderNo, amount, result: { status: 'closed', channelTradeNo: p.trade_no || undefined } };
  const result = { status, channelTradeNo: p.trade_no || undefined, paidAmount: amount, paidAt: parseChinaTime(p.gmt_payment) ?? new Date() } as const;
  return { kind: 'payment', channelOrderNo, amount, result };
}

export function parseAlipayNotification(n: InboundNotification, id: NotificationIdentity): ChannelNotification {
  return interpretNotification(verifyNotification(n, id), id);
}

/** Alipay stops retrying only on the exact body `success`. */
export function acknowledge(accepted: boolean): NotificationAck {
  return accepted
    ? { status: 200, body: 'success', contentType: 'text/plain; charset=utf-8' }
    : { status: 400, body: 'fail', contentType: 'text/plain; charset=utf-8' };
}
