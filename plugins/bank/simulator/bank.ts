// The bank's ledger: payments, refunds and the events they produce (PROTOCOL.md sections 5-8).
// Transport-free: the HTTP layer in app.ts authenticates, then calls these methods.
import type { FaultSet } from '../../../core/index.js';
import {
  DEFAULT_EXPIRE_SECONDS,
  businessDate,
  chinaTime,
  paymentObject,
  refundObject,
  sameRequest,
  statementCsv,
  type CreatePaymentRequest,
  type CreateRefundRequest,
  type Payment,
  type PaymentFailureCode,
  type PaymentObject,
  type Refund,
  type RefundFailureCode,
  type RefundObject,
} from './model.js';
import type { EventType, Notifier, NotificationRecord } from './notifier.js';

/** A protocol error (PROTOCOL.md section 4): HTTP status plus stable code. */
export class BankError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface BankOptions {
  merchantId: string;
  payerPageUrl: (bankTradeNo: string) => string;
  notifier: Notifier;
  faults: () => FaultSet;
  /** Delay before a refund settles to SUCCESS by itself; null = only through the control API. */
  refundSettleMs: number | null;
  log: (line: Record<string, unknown>) => void;
}

export class Bank {
  private readonly payments = new Map<string, Payment>();
  private readonly paymentsByBankNo = new Map<string, Payment>();
  private readonly refunds = new Map<string, Refund>();
  private readonly notifications = new Map<string, NotificationRecord[]>();
  private readonly settleTimers = new Set<NodeJS.Timeout>();
  private sequence = 0;

  constructor(private readonly opts: BankOptions) {}

  // ---- Merchant API -------------------------------------------------------------------------------------------

  createPayment(request: CreatePaymentRequest): Payment {
    const existing = this.findPayment(request.out_trade_no);
    if (existing) {
      if (!sameRequest(existing.request, request)) {
        throw new BankError(409, 'DUPLICATE_ORDER', `out_trade_no ${request.out_trade_no} exists with different parameters`);
      }
      return existing;
    }
    const now = Date.now();
    const payment: Payment = {
      merchantId: this.opts.merchantId,
      request,
      bankTradeNo: this.bankNumber('P', now),
      status: 'PROCESSING',
      createdAtMs: now,
      expiresAtMs: now + (request.expire_seconds ?? DEFAULT_EXPIRE_SECONDS) * 1000,
    };
    this.payments.set(request.out_trade_no, payment);
    this.paymentsByBankNo.set(payment.bankTradeNo, payment);
    this.opts.log({ event: 'payment.created', out_trade_no: request.out_trade_no, amount: request.amount });
    return payment;
  }

  /** Looks a payment up, closing it first if it expired unpaid. */
  findPayment(outTradeNo: string): Payment | undefined {
    return this.expireIfDue(this.payments.get(outTradeNo));
  }

  findPaymentByBankNo(bankTradeNo: string): Payment | undefined {
    return this.expireIfDue(this.paymentsByBankNo.get(bankTradeNo));
  }

  requirePayment(outTradeNo: string): Payment {
    const payment = this.findPayment(outTradeNo);
    if (!payment) throw new BankError(404, 'ORDER_NOT_FOUND', `no payment with out_trade_no ${outTradeNo}`);
    return payment;
  }

  closePayment(outTradeNo: string): Payment {
    const payment = this.requirePayment(outTradeNo);
    if (payment.status === 'SUCCESS') throw new BankError(409, 'ORDER_PAID', 'the payment succeeded; refund it instead');
    if (payment.status === 'PROCESSING') payment.status = 'CLOSED';
    return payment;
  }

  createRefund(request: CreateRefundRequest): Refund {
    const existing = this.refunds.get(request.out_refund_no);
    if (existing) {
      if (!sameRequest(existing.request, request)) {
        throw new BankError(409, 'DUPLICATE_REFUND', `out_refund_no ${request.out_refund_no} exists with different parameters`);
      }
      return existing;
    }
    const payment = this.requirePayment(request.out_trade_no);
    if (payment.status !== 'SUCCESS') throw new BankError(409, 'ORDER_NOT_PAID', `the payment is ${payment.status}, not SUCCESS`);
    const committed = this.refundsOf(payment)
      .filter((refund) => refund.status !== 'FAILED')
      .reduce((sum, refund) => sum + refund.request.amount, 0);
    if (committed + request.amount > payment.request.amount) {
      throw new BankError(409, 'REFUND_AMOUNT_EXCEEDED', `refundable amount is ${payment.request.amount - committed} fen`);
    }
    const now = Date.now();
    const refund: Refund = {
      merchantId: this.opts.merchantId,
      request,
      bankTradeNo: payment.bankTradeNo,
      bankRefundNo: this.bankNumber('R', now),
      notifyUrl: request.notify_url ?? payment.request.notify_url,
      status: 'PROCESSING',
      createdAtMs: now,
    };
    this.refunds.set(request.out_refund_no, refund);
    this.opts.log({ event: 'refund.created', out_refund_no: request.out_refund_no, amount: request.amount });
    if (this.opts.refundSettleMs !== null) {
      const timer = setTimeout(() => {
        this.settleTimers.delete(timer);
        if (refund.status === 'PROCESSING') this.settleRefund(refund.request.out_refund_no, 'SUCCESS');
      }, this.opts.refundSettleMs);
      this.settleTimers.add(timer);
    }
    return refund;
  }

  requireRefund(outRefundNo: string): Refund {
    const refund = this.refunds.get(outRefundNo);
    if (!refund) throw new BankError(404, 'REFUND_NOT_FOUND', `no refund with out_refund_no ${outRefundNo}`);
    return refund;
  }

  statement(date: string): string {
    return statementCsv(date, this.payments.values(), this.refunds.values());
  }

  paymentView(payment: Payment): PaymentObject {
    const refunded = this.refundsOf(payment)
      .filter((refund) => refund.status === 'SUCCESS')
      .reduce((sum, refund) => sum + refund.request.amount, 0);
    return paymentObject(payment, refunded, this.opts.payerPageUrl(payment.bankTradeNo));
  }

  refundView(refund: Refund): RefundObject {
    return refundObject(refund);
  }

  // ---- Payer and sandbox control ------------------------------------------------------------------------------

  /** The payer pays. `claimedAmount` is what the notification claims under the tamper_notify_amount fault. */
  pay(payment: Payment, claimedAmount?: number): Payment {
    if (payment.status === 'SUCCESS') return payment;
    if (payment.status !== 'PROCESSING') throw new BankError(409, 'ORDER_NOT_PAYABLE', `the payment is ${payment.status}`);
    payment.status = 'SUCCESS';
    payment.paidAtMs = Date.now();
    this.emit('payment.success', payment.request.out_trade_no, payment.request.notify_url, this.paymentView(payment), claimedAmount);
    return payment;
  }

  fail(payment: Payment, code: PaymentFailureCode = 'PAYER_CANCELLED', message = 'the payer cancelled the payment'): Payment {
    if (payment.status === 'FAILED') return payment;
    if (payment.status !== 'PROCESSING') throw new BankError(409, 'ORDER_NOT_PAYABLE', `the payment is ${payment.status}`);
    payment.status = 'FAILED';
    payment.failure = { code, message };
    this.emit('payment.failed', payment.request.out_trade_no, payment.request.notify_url, this.paymentView(payment));
    return payment;
  }

  settleRefund(outRefundNo: string, outcome: 'SUCCESS' | { code: RefundFailureCode; message: string }): Refund {
    const refund = this.requireRefund(outRefundNo);
    if (refund.status !== 'PROCESSING') throw new BankError(409, 'REFUND_SETTLED', `the refund is already ${refund.status}`);
    if (outcome === 'SUCCESS') {
      refund.status = 'SUCCESS';
      refund.succeededAtMs = Date.now();
    } else {
      refund.status = 'FAILED';
      refund.failure = outcome;
    }
    const type: EventType = outcome === 'SUCCESS' ? 'refund.success' : 'refund.failed';
    this.emit(type, refund.request.out_trade_no, refund.notifyUrl, this.refundView(refund));
    return refund;
  }

  notificationsOf(outTradeNo: string): NotificationRecord[] {
    return this.notifications.get(outTradeNo) ?? [];
  }

  refundsOf(payment: Payment): Refund[] {
    return [...this.refunds.values()].filter((refund) => refund.bankTradeNo === payment.bankTradeNo);
  }

  allPayments(): Payment[] {
    return [...this.payments.values()].map((payment) => this.expireIfDue(payment) ?? payment);
  }

  close(): void {
    for (const timer of this.settleTimers) clearTimeout(timer);
    this.settleTimers.clear();
  }

  // ---- Internals ----------------------------------------------------------------------------------------------

  private emit(type: EventType, outTradeNo: string, notifyUrl: string, data: PaymentObject | RefundObject, claimedAmount?: number): void {
    if (this.opts.faults().tamper_notify_amount) {
      // Signed correctly but claiming another amount: the merchant must compare with its own records.
      data = { ...data, amount: claimedAmount ?? Number(data.amount) + 1 };
    }
    const now = Date.now();
    const eventId = `EV${chinaTime(now).slice(0, 19).replace(/\D/g, '')}${String(++this.sequence).padStart(6, '0')}`;
    const record: NotificationRecord = {
      event_id: eventId,
      event_type: type,
      out_trade_no: outTradeNo,
      notify_url: notifyUrl,
      state: 'pending',
      body: JSON.stringify({ event_id: eventId, event_type: type, created_at: chinaTime(now), data }),
      attempts: [],
    };
    const list = this.notifications.get(outTradeNo) ?? [];
    list.push(record);
    this.notifications.set(outTradeNo, list);
    this.opts.notifier.emit(record);
  }

  private expireIfDue(payment: Payment | undefined): Payment | undefined {
    if (payment && payment.status === 'PROCESSING' && Date.now() >= payment.expiresAtMs) payment.status = 'CLOSED';
    return payment;
  }

  private bankNumber(prefix: 'P' | 'R', nowMs: number): string {
    return `${prefix}${businessDate(nowMs).replace(/-/g, '')}${String(++this.sequence).padStart(10, '0')}`;
  }
}
