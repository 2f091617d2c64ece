// Inbound notifications (PROTOCOL.md 7): verify, then translate into the kernel's ChannelNotification; and the
// exact acknowledgement the bank expects. The kernel does the rest: it matches the amount against its record,
// applies the transition idempotently (duplicates and out-of-order deliveries are normal), and only then asks
// for the acknowledgement, so a notification we failed to record is retried by the bank.
import type { KeyObject } from 'node:crypto';
import { ChannelError, type ChannelNotification, type InboundNotification, type NotificationAck } from '../../core/index.js';
import { notificationProblem, type HeaderNames } from './transport.js';
import { parseWire, paymentResult, refundResult, type WireSchemas } from './transformers.js';

export interface NotificationVerifier {
  merchantId: string;
  bankPublicKey: KeyObject;
  names: HeaderNames;
  maxSkewS: number;
  schemas: WireSchemas;
}

/**
 * A forged, tampered, replayed or probing request throws 'signature_invalid' with mayExist=false: it says nothing
 * about any order, and the kernel answers it with a non-acknowledgement.
 */
export function parseBankNotification(n: InboundNotification, v: NotificationVerifier, nowMs = Date.now()): ChannelNotification {
  const problem = notificationProblem(n.headers, n.rawBody, v.merchantId, v.bankPublicKey, v.names, v.maxSkewS, nowMs);
  if (problem) throw new ChannelError('signature_invalid', `notification rejected: ${problem}`, false);

  // From here on the body is the bank's own words; a shape we do not understand is still not acknowledged (the
  // throw), so the bank keeps retrying while an operator looks, rather than the event being silently dropped.
  let json: unknown;
  try {
    json = JSON.parse(n.rawBody.toString('utf8'));
  } catch {
    throw new ChannelError('unknown', 'notification body is not JSON', false);
  }
  const event = parseWire(v.schemas.event, json, 'notification');

  switch (event.event_type) {
    case 'payment.success':
    case 'payment.failed': {
      const payment = parseWire(v.schemas.payment, event.data, 'payment notification');
      checkMerchant(payment.merchant_id, v.merchantId);
      // `amount` is what the bank claims was paid; the kernel compares it with the payment's amount.
      return { kind: 'payment', channelOrderNo: payment.out_trade_no, amount: payment.amount, result: paymentResult(payment) };
    }
    case 'refund.success':
    case 'refund.failed': {
      const refund = parseWire(v.schemas.refund, event.data, 'refund notification');
      checkMerchant(refund.merchant_id, v.merchantId);
      return { kind: 'refund', channelRefundNo: refund.out_refund_no, channelOrderNo: refund.out_trade_no, amount: refund.amount, result: refundResult(refund) };
    }
    default:
      // A verified event of a type added after this plugin was written: acknowledge it (so the bank stops
      // resending) and let the kernel log it; the poller still queries anything that stays pending.
      return { kind: 'ignored', reason: `event_type ${event.event_type} (event ${event.event_id})` };
  }
}

function checkMerchant(claimed: string, ours: string): void {
  if (claimed !== ours) throw new ChannelError('signature_invalid', `notification data is for merchant ${JSON.stringify(claimed)}`, false);
}

/** PROTOCOL.md 7: exactly HTTP 200 with `{"code":"SUCCESS"}`; anything else makes the bank deliver again. */
const ACCEPTED: NotificationAck = { status: 200, body: '{"code":"SUCCESS"}', contentType: 'application/json; charset=utf-8' };
const REJECTED: NotificationAck = { status: 500, body: '{"code":"FAIL"}', contentType: 'application/json; charset=utf-8' };

export function acknowledgement(accepted: boolean): NotificationAck {
  return accepted ? ACCEPTED : REJECTED;
}
