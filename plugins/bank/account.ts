// One configured bank account: the contract's flows, each one a signed call through BankTransport and a mapping
// through transformers.ts. Everything that could be parsed or derived ahead of time (keys, header names, wire
// schemas) was, in createBankAccount, so a flow does nothing per request but sign, send, verify and map.
import {
  ChannelError,
  type ChannelAccount,
  type ChannelAccountContext,
  type ChannelNotification,
  type ChannelPaymentResult,
  type ChannelRefundResult,
  type CreatePaymentRequest,
  type HealthStatus,
  type InboundNotification,
  type NotificationAck,
  type PaymentReference,
  type RefundReference,
  type RefundRequest,
  type StatementLine,
} from '../../core/index.js';
import type { BankConfig } from './config.js';
import { loadBankKeys } from './keys.js';
import { acknowledgement, parseBankNotification, type NotificationVerifier } from './notifications.js';
import { isStatementDate, parseStatement } from './statement.js';
import {
  createPaymentBody,
  createRefundBody,
  parseWire,
  paymentResult,
  refundResult,
  wireSchemas,
  type BankPayment,
  type BankRefund,
  type WireSchemas,
} from './transformers.js';
import { BankTransport, headerNames } from './transport.js';

export async function createBankAccount(config: BankConfig, ctx: ChannelAccountContext): Promise<ChannelAccount> {
  // Read and parse the keys now: a missing or wrong key fails this account at config load, not at the first payment.
  const keys = await loadBankKeys(config, ctx.configDir);
  const names = headerNames(config.header_prefix);
  const transport = new BankTransport(
    { baseUrl: config.base_url, apiPrefix: config.api_prefix, merchantId: config.merchant_id, names, ...keys },
    ctx.http,
  );
  const schemas = wireSchemas(config.amount_unit);
  const verifier: NotificationVerifier = { merchantId: config.merchant_id, bankPublicKey: keys.bankPublicKey, names, maxSkewS: config.notify_max_skew_s, schemas };
  return new BankAccount(config, ctx, transport, schemas, verifier);
}

/** Path segment for an identifier; the kernel's numbers are alphanumeric, this only guards the request-target. */
const segment = (id: string) => encodeURIComponent(id);

class BankAccount implements ChannelAccount {
  constructor(
    private readonly config: BankConfig,
    private readonly ctx: ChannelAccountContext,
    private readonly transport: BankTransport,
    private readonly schemas: WireSchemas,
    private readonly verifier: NotificationVerifier,
  ) {}

  async createPayment(req: CreatePaymentRequest): Promise<ChannelPaymentResult> {
    // Built (and validated) before anything is sent: a rejected request here provably created nothing.
    const body = createPaymentBody(req, this.config.amount_unit, new Date());
    const json = await this.transport.callJson({ operation: 'create_payment', method: 'POST', path: '/payments', json: body, requestId: req.requestId });
    const payment = this.payment(json, req.channelOrderNo, req.amount);
    const result = paymentResult(payment);
    // A pending order the payer cannot reach is useless; but it exists, so the kernel must treat it as such.
    if (result.status === 'pending' && !result.action) {
      throw new ChannelError('unknown', `bank created ${req.channelOrderNo} without a ${body.scene === 'b2c' ? 'pay_url' : 'qr_code'}`, true);
    }
    return result;
  }

  async queryPayment(ref: PaymentReference): Promise<ChannelPaymentResult> {
    // ORDER_NOT_FOUND surfaces as ChannelError('order_not_found', mayExist=false), which the kernel expects.
    const json = await this.transport.callJson({ operation: 'query_payment', method: 'GET', path: `/payments/${segment(ref.channelOrderNo)}`, requestId: ref.requestId });
    // No amount check here, unlike create: the result carries the bank's paid amount and the kernel raises its
    // amount_mismatch alert from it, which is more useful than an error that leaves the payment pending forever.
    return paymentResult(this.payment(json, ref.channelOrderNo));
  }

  async closePayment(ref: PaymentReference): Promise<void> {
    // 200 means "can no longer be paid" (CLOSED, or FAILED which is just as final); ORDER_PAID and ORDER_NOT_FOUND
    // come back as the ChannelErrors 'order_paid' and 'order_not_found' the kernel reacts to.
    const json = await this.transport.callJson({ operation: 'close_payment', method: 'POST', path: `/payments/${segment(ref.channelOrderNo)}/close`, json: {}, requestId: ref.requestId });
    const payment = this.payment(json, ref.channelOrderNo);
    // Not in the spec's close table, but if a 200 ever said SUCCESS, reporting the close as done would lose money.
    if (payment.status === 'SUCCESS') throw new ChannelError('order_paid', `${ref.channelOrderNo} is paid`, true, 'ORDER_PAID');
  }

  async refund(req: RefundRequest): Promise<ChannelRefundResult> {
    const body = createRefundBody(req, this.config.amount_unit);
    const json = await this.transport.callJson({ operation: 'refund', method: 'POST', path: '/refunds', json: body, requestId: req.requestId });
    return refundResult(this.refundObject(json, req.channelRefundNo, req.amount));
  }

  async queryRefund(ref: RefundReference): Promise<ChannelRefundResult> {
    const json = await this.transport.callJson({ operation: 'query_refund', method: 'GET', path: `/refunds/${segment(ref.channelRefundNo)}`, requestId: ref.requestId });
    return refundResult(this.refundObject(json, ref.channelRefundNo));
  }

  async parseNotification(n: InboundNotification): Promise<ChannelNotification> {
    return parseBankNotification(n, this.verifier);
  }

  acknowledge(accepted: boolean): NotificationAck {
    return acknowledgement(accepted);
  }

  async downloadStatement(date: string): Promise<StatementLine[]> {
    if (!isStatementDate(date)) throw new ChannelError('invalid_request', `statement date ${JSON.stringify(date)} is not YYYY-MM-DD`, false);
    // The transport verifies the signature over the CSV bytes before we read a single row.
    const res = await this.transport.call({ operation: 'download_statement', method: 'GET', path: `/statements/${date}`, timeoutMs: this.config.statement_timeout_ms });
    return parseStatement(res.text, this.config.amount_unit);
  }

  async simulatePayer(ref: PaymentReference, outcome: 'pay' | 'fail'): Promise<void> {
    // The control API exists only on the simulator; on a live account this must be impossible, not just unused.
    if (!this.ctx.sandbox) throw new ChannelError('not_supported', 'simulatePayer is for sandbox accounts only', false);
    const res = await this.ctx.http.send({
      method: 'POST',
      url: `${this.config.base_url}/__sim/orders/${segment(ref.channelOrderNo)}/${outcome}`,
      headers: { 'content-type': 'application/json' },
      body: '{}',
      operation: `simulate_${outcome}`,
      requestId: ref.requestId,
    });
    if (res.status === 404) throw new ChannelError('order_not_found', `simulator has no order ${ref.channelOrderNo}`, false);
    if (res.status === 409) throw new ChannelError('order_closed', `simulator refused to ${outcome} ${ref.channelOrderNo}: ${res.text}`, false);
    if (res.status !== 200) throw new ChannelError('unknown', `simulator answered ${res.status} to ${outcome}: ${res.text}`, true);
  }

  async health(): Promise<HealthStatus> {
    // Keys were parsed at creation and raw RSA keys do not expire; calling the bank here would turn every
    // health probe into load on the bank and make our health depend on its latency.
    return { ok: true, detail: `merchant ${this.config.merchant_id} at ${this.config.base_url}` };
  }

  async dispose(): Promise<void> {
    // Nothing to release: the HTTP agents belong to the kernel, and KeyObjects are garbage-collected.
  }

  /**
   * A verified payment object, checked to be the one we asked about: a signed answer about another order (or,
   * right after creating it, another amount) would mean a bank-side mix-up, and acting on it could mark the wrong
   * payment paid.
   */
  private payment(json: unknown, channelOrderNo: string, amount?: number): BankPayment {
    const payment = parseWire(this.schemas.payment, json, 'payment');
    if (payment.out_trade_no !== channelOrderNo) throw new ChannelError('unknown', `bank answered about order ${payment.out_trade_no}, not ${channelOrderNo}`, true);
    if (amount !== undefined && payment.amount !== amount) throw new ChannelError('unknown', `bank reports ${channelOrderNo} for ${payment.amount} fen, expected ${amount}`, true);
    return payment;
  }

  private refundObject(json: unknown, channelRefundNo: string, amount?: number): BankRefund {
    const refund = parseWire(this.schemas.refund, json, 'refund');
    if (refund.out_refund_no !== channelRefundNo) throw new ChannelError('unknown', `bank answered about refund ${refund.out_refund_no}, not ${channelRefundNo}`, true);
    if (amount !== undefined && refund.amount !== amount) throw new ChannelError('unknown', `bank reports refund ${channelRefundNo} for ${refund.amount} fen, expected ${amount}`, true);
    return refund;
  }
}
