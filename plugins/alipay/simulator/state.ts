/** The simulator's model of trades, refunds and notifications. */
import { randomBytes, randomInt } from 'node:crypto';
import { formatChinaDate, formatFenAsYuan, formatChinaTime } from './signing.js';

export type TradeStatus = 'WAIT_BUYER_PAY' | 'TRADE_SUCCESS' | 'TRADE_CLOSED' | 'TRADE_FINISHED';
/** Which API created the order; decides product_code and the payer-page flow. */
export type TradeOrigin = 'precreate' | 'page' | 'wap' | 'app' | 'barcode' | 'create';

export interface RefundRecord {
  outRequestNo: string;
  refundFen: number;
  reason?: string;
  gmtRefund: Date;
}

export interface NotificationAttempt {
  at: string;
  duplicate?: boolean;
  httpStatus?: number;
  responseBody?: string;
  error?: string;
  acknowledged: boolean;
}

export type NotificationKind = 'payment' | 'refund' | 'close';

export interface NotificationRecord {
  notifyId: string;
  kind: NotificationKind;
  url: string;
  params: Record<string, string>;
  state: 'scheduled' | 'acknowledged' | 'exhausted' | 'lost';
  attempts: NotificationAttempt[];
}

export interface Trade {
  /** Internal handle for payer-page URLs (out_trade_no is only unique per seller). */
  simId: string;
  appId: string;
  /** auth_app_id: the app the trade belongs to (sub-merchant app in ISV mode). */
  authAppId: string;
  sellerId: string;
  outTradeNo: string;
  /** Assigned once the trade exists at Alipay (for precreate: when the QR is scanned). */
  tradeNo?: string;
  origin: TradeOrigin;
  productCode: string;
  subject: string;
  body?: string;
  totalFen: number;
  passbackParams?: string;
  /** Order parameters that must match when the same out_trade_no is submitted again. */
  fingerprint: string;
  /** False for a precreated trade whose QR code has not been scanned yet. */
  exists: boolean;
  status: TradeStatus;
  notifyUrl?: string;
  returnUrl?: string;
  qrToken?: string;
  gmtCreate: Date;
  gmtPayment?: Date;
  gmtClose?: Date;
  buyerId?: string;
  buyerLogonId?: string;
  refunds: RefundRecord[];
  notifications: NotificationRecord[];
}

export function refundedFen(trade: Trade): number {
  return trade.refunds.reduce((sum, r) => sum + r.refundFen, 0);
}

export function isPaid(trade: Trade): boolean {
  return trade.gmtPayment !== undefined;
}

function randomDigits(count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) out += String(randomInt(10));
  return out;
}

/** 28 digits like real trade numbers: date + "22001" + 15 digits. */
export function newTradeNo(now: Date): string {
  return `${formatChinaDate(now).replace(/-/g, '')}22001${randomDigits(15)}`;
}

export function newBuyer(): { buyerId: string; buyerLogonId: string } {
  return { buyerId: `2088${randomDigits(12)}`, buyerLogonId: `138****${randomDigits(4)}` };
}

export function newNotifyId(): string {
  return `${formatChinaTime(new Date()).replace(/\D/g, '')}${randomBytes(10).toString('hex')}`;
}

export function newToken(): string {
  return randomBytes(12).toString('hex');
}

export class TradeStore {
  private readonly trades = new Map<string, Trade>();
  private readonly bySimId = new Map<string, Trade>();

  private key(sellerId: string, outTradeNo: string): string {
    return `${sellerId}\u0000${outTradeNo}`;
  }

  add(trade: Trade): void {
    this.trades.set(this.key(trade.sellerId, trade.outTradeNo), trade);
    this.bySimId.set(trade.simId, trade);
  }

  get(sellerId: string, outTradeNo: string): Trade | undefined {
    return this.trades.get(this.key(sellerId, outTradeNo));
  }

  bySim(simId: string): Trade | undefined {
    return this.bySimId.get(simId);
  }

  byTradeNo(sellerId: string, tradeNo: string): Trade | undefined {
    for (const t of this.trades.values()) if (t.sellerId === sellerId && t.tradeNo === tradeNo) return t;
    return undefined;
  }

  byQrToken(token: string): Trade | undefined {
    for (const t of this.trades.values()) if (t.qrToken === token) return t;
    return undefined;
  }

  /** Control API lookup by merchant order number, across sellers (latest created wins). */
  byOutTradeNo(outTradeNo: string): Trade | undefined {
    let found: Trade | undefined;
    for (const t of this.trades.values()) {
      if (t.outTradeNo === outTradeNo && (!found || t.gmtCreate >= found.gmtCreate)) found = t;
    }
    return found;
  }

  all(): Trade[] {
    return [...this.trades.values()];
  }
}

/** JSON view for the control API (amounts in fen, times in China time). */
export function tradeView(trade: Trade): Record<string, unknown> {
  const refunded = refundedFen(trade);
  return {
    out_trade_no: trade.outTradeNo,
    trade_no: trade.tradeNo ?? null,
    app_id: trade.appId,
    seller_id: trade.sellerId,
    origin: trade.origin,
    product_code: trade.productCode,
    subject: trade.subject,
    exists_at_channel: trade.exists,
    status: trade.status,
    total_fen: trade.totalFen,
    total_amount: formatFenAsYuan(trade.totalFen),
    refunded_fen: refunded,
    refunds: trade.refunds.map((r) => ({
      out_request_no: r.outRequestNo,
      refund_fen: r.refundFen,
      gmt_refund: formatChinaTime(r.gmtRefund),
    })),
    notify_url: trade.notifyUrl ?? null,
    return_url: trade.returnUrl ?? null,
    gmt_create: formatChinaTime(trade.gmtCreate),
    gmt_payment: trade.gmtPayment ? formatChinaTime(trade.gmtPayment) : null,
    gmt_close: trade.gmtClose ? formatChinaTime(trade.gmtClose) : null,
    buyer_id: trade.buyerId ?? null,
    notifications: trade.notifications.map((n) => ({
      notify_id: n.notifyId,
      kind: n.kind,
      trade_status: n.params.trade_status,
      url: n.url,
      state: n.state,
      params: n.params,
      attempts: n.attempts,
    })),
  };
}
