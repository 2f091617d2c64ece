/**
 * Asynchronous notifications (notify_type=trade_status_sync): form POST to notify_url, acknowledged only by
 * the body `success`, retried on the configured schedule otherwise.
 */
import type { KeyObject } from 'node:crypto';
import type { FaultSet } from '../../../core/index.js';
import {
  buildSignContent, corruptSignature, formatChinaTime, formatChinaTimeMillis, formatFenAsYuan,
  NOTIFY_SIGN_EXCLUDED, signRsa2, toAlipayJson,
} from './signing.js';
import {
  type NotificationKind, type NotificationRecord, type Trade, newNotifyId, refundedFen,
} from './state.js';

export interface NotificationEvent {
  kind: NotificationKind;
  /** For refund notifications: the refund that triggered it. */
  outRequestNo?: string;
  gmtRefund?: Date;
  /** Amount the notification claims when `tamper_notify_amount` is on. */
  tamperedFen?: number;
}

/** Builds and signs the notification form for the trade's current state. */
export function buildNotificationParams(
  trade: Trade,
  event: NotificationEvent,
  faults: FaultSet,
  alipayPrivateKey: KeyObject,
  now: Date,
): Record<string, string> {
  const claimedFen = faults.tamper_notify_amount ? (event.tamperedFen ?? trade.totalFen + 100) : trade.totalFen;
  const paid = trade.gmtPayment !== undefined;
  const paidAmount = paid ? formatFenAsYuan(claimedFen) : '0.00';
  const params: Record<string, string> = {
    notify_type: 'trade_status_sync',
    notify_id: newNotifyId(),
    notify_time: formatChinaTime(now),
    app_id: trade.appId,
    auth_app_id: trade.authAppId,
    charset: 'utf-8',
    version: '1.0',
    sign_type: 'RSA2',
    trade_no: trade.tradeNo ?? '',
    out_trade_no: trade.outTradeNo,
    trade_status: trade.status,
    subject: trade.subject,
    total_amount: formatFenAsYuan(claimedFen),
    receipt_amount: paidAmount,
    invoice_amount: paidAmount,
    buyer_pay_amount: paidAmount,
    point_amount: '0.00',
    seller_id: trade.sellerId,
    gmt_create: formatChinaTime(trade.gmtCreate),
  };
  if (trade.body) params.body = trade.body;
  if (trade.passbackParams) params.passback_params = trade.passbackParams;
  if (trade.buyerId) params.buyer_id = trade.buyerId;
  if (trade.buyerLogonId) params.buyer_logon_id = trade.buyerLogonId;
  if (trade.gmtPayment) {
    params.gmt_payment = formatChinaTime(trade.gmtPayment);
    // Real notifications spell the channel key in camelCase inside this JSON string.
    params.fund_bill_list = toAlipayJson([{ amount: paidAmount, fundChannel: 'ALIPAYACCOUNT' }]);
  }
  if (event.kind === 'refund' || (event.kind === 'close' && refundedFen(trade) > 0)) {
    // refund_fee is the cumulative refunded amount; out_biz_no the refund's out_request_no.
    params.refund_fee = formatFenAsYuan(refundedFen(trade));
    if (event.outRequestNo) params.out_biz_no = event.outRequestNo;
    if (event.gmtRefund) params.gmt_refund = formatChinaTimeMillis(event.gmtRefund);
  }
  if (trade.gmtClose) params.gmt_close = formatChinaTime(trade.gmtClose);
  for (const key of Object.keys(params)) if (params[key] === '') delete params[key];

  let sign = signRsa2(buildSignContent(params, NOTIFY_SIGN_EXCLUDED), alipayPrivateKey);
  if (faults.corrupt_signature) sign = corruptSignature(sign);
  params.sign = sign;
  return params;
}

type Logger = (line: Record<string, unknown>) => void;

export class Notifier {
  private readonly timers = new Set<NodeJS.Timeout>();
  /** `out_of_order` holds a trade's notification until the next one overtakes it. */
  private readonly held = new Map<string, { record: NotificationRecord; timer: NodeJS.Timeout; duplicate: boolean }>();
  private closed = false;

  constructor(
    private readonly retryDelaysMs: number[],
    private readonly log: Logger,
  ) {}

  /** Records the notification on the trade and schedules its delivery according to the fault set. */
  dispatch(trade: Trade, params: Record<string, string>, kind: NotificationKind, faults: FaultSet): NotificationRecord | null {
    if (!trade.notifyUrl) return null;
    const record: NotificationRecord = {
      notifyId: params.notify_id!,
      kind,
      url: trade.notifyUrl,
      params,
      state: 'scheduled',
      attempts: [],
    };
    trade.notifications.push(record);
    const duplicate = faults.notify === 'duplicate';
    switch (faults.notify) {
      case 'lost':
        record.state = 'lost';
        this.log({ event: 'notify_lost', notify_id: record.notifyId, out_trade_no: trade.outTradeNo });
        break;
      case 'delayed':
        this.later(faults.notify_delay_ms, () => this.attempt(record, 0, false));
        break;
      case 'out_of_order': {
        const previous = this.held.get(trade.simId);
        if (previous) {
          // The later notification goes first, the earlier right after it.
          clearTimeout(previous.timer);
          this.timers.delete(previous.timer);
          this.held.delete(trade.simId);
          void this.attempt(record, 0, false).then(() => this.attempt(previous.record, 0, false));
        } else {
          const timer = this.later(Math.max(faults.notify_delay_ms, 1000), () => {
            this.held.delete(trade.simId);
            return this.attempt(record, 0, false);
          });
          this.held.set(trade.simId, { record, timer, duplicate: false });
        }
        break;
      }
      default:
        void this.attempt(record, 0, duplicate);
    }
    return record;
  }

  /** Control API: deliver the record again now (restarting its retry schedule if it is not acknowledged). */
  resend(record: NotificationRecord): Promise<void> {
    if (record.state === 'lost') record.state = 'scheduled';
    return this.attempt(record, 0, false, true);
  }

  private later(delayMs: number, run: () => Promise<void> | void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.closed) void run();
    }, delayMs);
    this.timers.add(timer);
    return timer;
  }

  private async post(record: NotificationRecord, duplicate: boolean): Promise<boolean> {
    const attempt: NotificationRecord['attempts'][number] = { at: new Date().toISOString(), acknowledged: false };
    if (duplicate) attempt.duplicate = true;
    record.attempts.push(attempt);
    try {
      const response = await fetch(record.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
        body: new URLSearchParams(record.params).toString(),
        signal: AbortSignal.timeout(10_000),
        redirect: 'manual',
      });
      const text = await response.text();
      attempt.httpStatus = response.status;
      attempt.responseBody = text.slice(0, 200);
      // Alipay only stops when the merchant prints exactly "success".
      attempt.acknowledged = response.status === 200 && text === 'success';
    } catch (err) {
      attempt.error = err instanceof Error ? err.message : String(err);
    }
    this.log({ event: 'notify_attempt', notify_id: record.notifyId, url: record.url, ...attempt });
    return attempt.acknowledged;
  }

  private async attempt(record: NotificationRecord, retryIndex: number, duplicate: boolean, manual = false): Promise<void> {
    if (this.closed) return;
    if (record.state === 'acknowledged' && !manual) return;
    const acknowledged = await this.post(record, false);
    if (duplicate && !this.closed) await this.post(record, true);
    if (acknowledged || record.attempts.some((a) => a.acknowledged)) {
      record.state = 'acknowledged';
      return;
    }
    if (retryIndex < this.retryDelaysMs.length) {
      this.later(this.retryDelaysMs[retryIndex]!, () => this.attempt(record, retryIndex + 1, false));
    } else {
      record.state = 'exhausted';
    }
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.held.clear();
  }
}
