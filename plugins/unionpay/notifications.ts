/**
 * Back notifications (form POST to backUrl): verify, then map to the contract. UnionPay acknowledges with any HTTP 200
 * and re-sends on anything else.
 */
import { ChannelError, type ChannelNotification, type InboundNotification, type NotificationAck } from '../../core/index.js';
import { parseFen, declineCode } from './transformers.js';
import { parseFormBody, VerificationError, type AcpFields, type AcpVerifier } from './transport.js';

/** Notification txnType values. */
const CONSUME = '01';
const REFUND = '04';

function isSuccess(respCode: string | undefined): boolean {
  return respCode === '00' || respCode === 'A6';
}

/** Maps verified notification fields (pure). */
export function notificationFromFields(fields: AcpFields, merId: string): ChannelNotification {
  if (fields.merId !== merId) return { kind: 'ignored', reason: `notification for merchant ${fields.merId ?? '(none)'}, not ${merId}` };
  const amount = parseFen(fields.txnAmt);
  const respCode = fields.respCode;
  const failure = { code: declineCode(respCode), message: fields.respMsg || `respCode ${respCode}`, channelCode: respCode };
  if (fields.txnType === CONSUME) {
    if (!fields.orderId || amount === undefined) return { kind: 'ignored', reason: 'consume notification without orderId or txnAmt' };
    return {
      kind: 'payment',
      channelOrderNo: fields.orderId,
      amount,
      result: isSuccess(respCode)
        ? { status: 'succeeded', channelTradeNo: fields.queryId || undefined, paidAmount: amount }
        : { status: 'failed', channelTradeNo: fields.queryId || undefined, failure },
    };
  }
  if (fields.txnType === REFUND) {
    if (!fields.orderId) return { kind: 'ignored', reason: 'refund notification without orderId' };
    return {
      kind: 'refund',
      channelRefundNo: fields.orderId,
      amount,
      result: isSuccess(respCode) ? { status: 'succeeded', channelRefundNo: fields.orderId } : { status: 'failed', channelRefundNo: fields.orderId, failure },
    };
  }
  return { kind: 'ignored', reason: `txnType ${fields.txnType ?? '(none)'} is not handled` };
}

export function parseNotification(n: InboundNotification, verifier: AcpVerifier, merId: string): ChannelNotification {
  const fields = parseFormBody(n.rawBody);
  try {
    verifier.verify(fields);
  } catch (err) {
    if (err instanceof VerificationError) throw new ChannelError('signature_invalid', `UnionPay notification rejected: ${err.message}`, false);
    throw err;
  }
  return notificationFromFields(fields, merId);
}

export function acknowledge(accepted: boolean): NotificationAck {
  return accepted ? { status: 200, body: 'ok', contentType: 'text/plain; charset=utf-8' } : { status: 400, body: 'fail', contentType: 'text/plain; charset=utf-8' };
}
