/**
 * Inbound notifications: verify the Wechatpay-* signature over the raw body, decrypt `resource`
 * (AEAD_AES_256_GCM with the APIv3 key), and map the event to the contract's ChannelNotification.
 */
import type { KeyObject } from 'node:crypto';
import { ChannelError, type ChannelNotification, type InboundNotification, type NotificationAck } from '../../core/index.js';
import { decryptResource, type EncryptedResource, type VerifyOutcome } from './transport.js';
import { refundToResult, transactionToResult, type V3Refund, type V3Transaction } from './transformers.js';

interface NotificationEnvelope {
  id?: string;
  event_type?: string;
  resource_type?: string;
  resource?: EncryptedResource & { original_type?: string };
}

export interface NotificationDeps {
  /** Verifies the Wechatpay-* headers against the body (refreshing platform certificates if the serial is new). */
  verify(headers: InboundNotification['headers'], body: string): Promise<VerifyOutcome>;
  apiV3Key: KeyObject;
  /** The merchant id the notification must be addressed to (mchid, or sp_mchid in service-provider mode). */
  mchid: string;
  partner: boolean;
}

function rejected(message: string): ChannelError {
  return new ChannelError('signature_invalid', message, false);
}

export async function parseNotification(n: InboundNotification, deps: NotificationDeps): Promise<ChannelNotification> {
  const body = n.rawBody.toString('utf8');
  const verified = await deps.verify(n.headers, body);
  if (!verified.ok) throw rejected(`WeChat Pay notification rejected: ${verified.reason}`);

  let envelope: NotificationEnvelope;
  try {
    envelope = JSON.parse(body) as NotificationEnvelope;
  } catch {
    throw new ChannelError('invalid_request', 'WeChat Pay notification body is not JSON', false);
  }
  const resource = envelope.resource;
  if (!resource || typeof resource.ciphertext !== 'string' || typeof resource.nonce !== 'string') {
    return { kind: 'ignored', reason: `notification ${envelope.id ?? '?'} (${envelope.event_type ?? '?'}) has no encrypted resource` };
  }
  let plain: Record<string, unknown>;
  try {
    plain = JSON.parse(decryptResource(deps.apiV3Key, resource).toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    // GCM authentication failed: the resource was not encrypted with our APIv3 key, or it was altered.
    throw rejected(`WeChat Pay notification resource does not decrypt: ${(err as Error).message}`);
  }

  const owner = String((deps.partner ? plain.sp_mchid : plain.mchid) ?? plain.mchid ?? '');
  if (owner && owner !== deps.mchid) return { kind: 'ignored', reason: `notification for merchant ${owner}, not ${deps.mchid}` };

  const event = envelope.event_type ?? '';
  if (event === 'TRANSACTION.SUCCESS') {
    const tx = plain as V3Transaction;
    if (typeof tx.out_trade_no !== 'string' || typeof tx.amount?.total !== 'number') {
      throw new ChannelError('invalid_request', 'TRANSACTION.SUCCESS resource lacks out_trade_no or amount.total', false);
    }
    return { kind: 'payment', channelOrderNo: tx.out_trade_no, amount: tx.amount.total, result: transactionToResult(tx) };
  }
  if (event === 'REFUND.SUCCESS' || event === 'REFUND.ABNORMAL' || event === 'REFUND.CLOSED') {
    const r = plain as V3Refund;
    if (typeof r.out_refund_no !== 'string') throw new ChannelError('invalid_request', `${event} resource lacks out_refund_no`, false);
    const result = refundToResult({ ...r, refund_status: r.refund_status ?? event.slice('REFUND.'.length) });
    const out: ChannelNotification = { kind: 'refund', channelRefundNo: r.out_refund_no, result };
    if (typeof r.out_trade_no === 'string') out.channelOrderNo = r.out_trade_no;
    if (typeof r.amount?.refund === 'number') out.amount = r.amount.refund;
    return out;
  }
  return { kind: 'ignored', reason: `event ${event || '(none)'} is not handled` };
}

/** 204 with no body accepts; a 5xx with {"code":"FAIL","message":…} makes WeChat retry. */
export function acknowledge(accepted: boolean): NotificationAck {
  if (accepted) return { status: 204 };
  return { status: 500, contentType: 'application/json', body: JSON.stringify({ code: 'FAIL', message: 'notification not processed; please retry' }) };
}
