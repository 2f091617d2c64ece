/** One configured UnionPay merchant: the ChannelAccount verbs over the ACP 5.1.0 gateway. */
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
  type PaymentAction,
  type PaymentReference,
  type RefundReference,
  type RefundRequest,
  type StatementLine,
} from '../../core/index.js';
import type { UnionPayConfig } from './config.js';
import { acknowledge, parseNotification } from './notifications.js';
import { parseStatementFile } from './statement.js';
import {
  chinaTime, fileFields, frontPageRespCode, mapRespCode, payerFormOf, paymentFromQuery, payTimeout, qrConsumeFields, queryFields,
  refundFields, refundFromQuery, settleDateOf, webConsumeFields, type Identity,
} from './transformers.js';
import { encodeForm, parseAcpResponse, signRequest, VerificationError, type AcpFields, type AcpVerifier, type SigningMaterial } from './transport.js';

export const PAY_METHODS = ['unionpay.web', 'unionpay.qr'] as const;

const FORM_CONTENT_TYPE = 'application/x-www-form-urlencoded;charset=UTF-8';

export interface AccountKeys {
  signing: SigningMaterial;
  verifier: AcpVerifier;
  /** Earliest notAfter of the configured CA certificates. */
  caNotAfter: Date;
}

export class UnionPayAccount implements ChannelAccount {
  private readonly id: Identity;

  constructor(
    private readonly config: UnionPayConfig,
    private readonly keys: AccountKeys,
    private readonly ctx: ChannelAccountContext,
  ) {
    this.id = { merId: config.mer_id, certId: keys.signing.certId };
  }

  // ---------------------------------------------------------------- transport

  /** Signs, POSTs, parses and verifies. Returns the verified fields whatever their respCode. */
  private async call(url: string, fields: AcpFields, operation: string, options: { requestId?: string; timeoutMs?: number } = {}): Promise<AcpFields> {
    const signed = await signRequest(fields, this.keys.signing.privateKey);
    const res = await this.ctx.http.send({ method: 'POST', url, headers: { 'content-type': FORM_CONTENT_TYPE }, body: encodeForm(signed), operation, ...options });
    if (res.status !== 200) throw new ChannelError('channel_unavailable', `UnionPay answered HTTP ${res.status} to ${operation}`, true, `HTTP_${res.status}`, true);
    const answer = parseAcpResponse(res.text);
    if (!answer.respCode) throw new ChannelError('unknown', `UnionPay answer to ${operation} has no respCode`, true);
    try {
      this.keys.verifier.verify(answer);
    } catch (err) {
      if (err instanceof VerificationError) throw new ChannelError('signature_invalid', `UnionPay answer to ${operation} rejected: ${err.message}`, true, answer.respCode);
      throw err;
    }
    return answer;
  }

  private failure(answer: AcpFields, operation: string): ChannelError {
    const mapped = mapRespCode(answer.respCode);
    const retryable = mapped.code === 'timeout' || mapped.code === 'channel_unavailable' || mapped.code === 'order_not_found';
    return new ChannelError(mapped.code, `UnionPay ${operation}: ${answer.respCode} ${answer.respMsg ?? ''}`.trim(), mapped.mayExist, answer.respCode, retryable);
  }

  // ---------------------------------------------------------------- payments

  async createPayment(req: CreatePaymentRequest): Promise<ChannelPaymentResult> {
    if (req.currency !== 'CNY') throw new ChannelError('invalid_request', `UnionPay takes CNY only, not ${req.currency}`, false);
    // The query repeats orderId + txnTime: both come from the payment (PaymentReference.createdAt = req.createdAt).
    const txnTime = chinaTime(req.createdAt);
    const input = {
      channelOrderNo: req.channelOrderNo, txnTime, amount: req.amount, backUrl: req.notifyUrl, frontUrl: req.returnUrl ?? req.notifyUrl,
      payTimeout: payTimeout(req.expiresAt, txnTime, this.config.pay_timeout_s),
    };
    switch (req.payMethod) {
      case 'unionpay.web': {
        // The payer's browser must POST this signed form to frontTransReq.do (the gateway answers GET with 405), so the
        // action carries the form: `form_action` + `form_method` + the signed fields. Nothing exists at UnionPay yet.
        const signed = await signRequest(webConsumeFields(this.id, input), this.keys.signing.privateKey);
        return { status: 'pending', action: { type: 'app', params: { form_action: this.config.front_trans_url, form_method: 'POST', ...signed } } };
      }
      case 'unionpay.qr': {
        const answer = await this.call(this.config.back_trans_url, qrConsumeFields(this.id, input), 'create_payment', { requestId: req.requestId });
        if (answer.respCode !== '00') throw this.failure(answer, 'create_payment');
        if (!answer.qrCode) throw new ChannelError('unknown', 'UnionPay accepted the QR order but sent no qrCode', true);
        return { status: 'pending', action: { type: 'qr_code', qr_code: answer.qrCode } };
      }
      default:
        throw new ChannelError('not_supported', `pay method ${req.payMethod} is not supported by unionpay`, false);
    }
  }

  async queryPayment(ref: PaymentReference): Promise<ChannelPaymentResult> {
    const txnTime = chinaTime(ref.createdAt);
    const answer = await this.call(this.config.query_url, queryFields(this.id, ref.channelOrderNo, txnTime), 'query_payment', { requestId: ref.requestId });
    if (answer.respCode === '00') return paymentFromQuery(answer);
    throw this.failure(answer, 'query_payment');
  }

  /**
   * UnionPay has no close for an unpaid consume: the order expires at its payTimeout (sent on create from expiresAt).
   * So this only checks that the order is not paid.
   */
  async closePayment(ref: PaymentReference): Promise<void> {
    const result = await this.queryPayment(ref);
    if (result.status === 'succeeded') throw new ChannelError('order_paid', `order ${ref.channelOrderNo} is already paid`, true);
  }

  // ---------------------------------------------------------------- refunds

  async refund(req: RefundRequest): Promise<ChannelRefundResult> {
    let origQryId = req.payment.channelTradeNo;
    if (!origQryId) {
      const paid = await this.queryPayment(req.payment);
      origQryId = paid.channelTradeNo;
      if (paid.status !== 'succeeded' || !origQryId) throw new ChannelError('invalid_request', `order ${req.payment.channelOrderNo} is not paid at UnionPay`, false);
    }
    // The refund's own txnTime; queryRefund repeats it from RefundReference.createdAt (= req.createdAt).
    const txnTime = chinaTime(req.createdAt);
    const answer = await this.call(this.config.back_trans_url, refundFields(this.id, {
      channelRefundNo: req.channelRefundNo, payMethod: req.payment.payMethod, txnTime, origQryId, amount: req.amount, backUrl: req.notifyUrl,
    }), 'refund', { requestId: req.requestId });
    if (answer.respCode === '00') return { status: 'pending', channelRefundNo: req.channelRefundNo };
    const mapped = mapRespCode(answer.respCode);
    // A defined business rejection (3x and up, refused before acceptance) is a failed refund, not an error.
    if (!mapped.mayExist && /^[3-9]/.test(answer.respCode!)) {
      return { status: 'failed', channelRefundNo: req.channelRefundNo, failure: { code: mapped.code, message: answer.respMsg || `respCode ${answer.respCode}`, channelCode: answer.respCode } };
    }
    throw this.failure(answer, 'refund');
  }

  async queryRefund(ref: RefundReference): Promise<ChannelRefundResult> {
    const answer = await this.call(this.config.query_url, queryFields(this.id, ref.channelRefundNo, chinaTime(ref.createdAt)), 'query_refund', { requestId: ref.requestId });
    if (answer.respCode === '00') return refundFromQuery(answer, ref.channelRefundNo);
    throw this.failure(answer, 'query_refund');
  }

  // ---------------------------------------------------------------- notifications

  async parseNotification(n: InboundNotification): Promise<ChannelNotification> {
    return parseNotification(n, this.keys.verifier, this.config.mer_id);
  }

  acknowledge(accepted: boolean): NotificationAck {
    return acknowledge(accepted);
  }

  // ---------------------------------------------------------------- statement

  async downloadStatement(date: string): Promise<StatementLine[]> {
    const settle = settleDateOf(date);
    const answer = await this.call(this.config.file_trans_url, fileFields(this.id, settle.mmdd, chinaTime(new Date())), 'download_statement', { timeoutMs: this.config.statement_timeout_ms });
    if (answer.respCode === '98') return []; // 文件不存在: no transactions that day
    if (answer.respCode !== '00') throw this.failure(answer, 'download_statement');
    if (!answer.fileContent) throw new ChannelError('unknown', 'UnionPay statement answer has no fileContent', false, answer.respCode);
    try {
      return parseStatementFile(answer.fileContent, settle.year, settle.month, settle.day);
    } catch (err) {
      throw new ChannelError('unknown', `UnionPay statement file unreadable: ${(err as Error).message}`, false, answer.respCode);
    }
  }

  // ---------------------------------------------------------------- sandbox, health

  /**
   * Sandbox only. A `unionpay.web` order exists at the gateway only once the payer's browser has posted the signed form
   * (`action`, as createPayment returned it) to frontTransReq.do, so that is done first; a QR order exists from create.
   * Then the simulator's control API pays or fails the order.
   */
  async simulatePayer(ref: PaymentReference, outcome: 'pay' | 'fail', action?: PaymentAction): Promise<void> {
    if (!this.ctx.sandbox) throw new ChannelError('not_supported', 'payer simulation exists only on sandbox accounts', false);
    if (ref.payMethod === 'unionpay.web') await this.submitPayerForm(ref, action);
    const base = new URL(this.config.back_trans_url).origin;
    const res = await this.ctx.http.send({
      method: 'POST', url: `${base}/__sim/orders/${encodeURIComponent(ref.channelOrderNo)}/${outcome}`,
      headers: { 'content-type': 'application/json' }, body: '{}', operation: 'simulate_payer', requestId: ref.requestId,
    });
    if (res.status < 200 || res.status >= 300) throw new ChannelError('invalid_request', `simulator refused to ${outcome} ${ref.channelOrderNo}: HTTP ${res.status} ${res.text.slice(0, 200)}`, true);
  }

  /** POSTs the signed consume form to frontTransReq.do as the payer's browser would. A repeat (12) means it was already posted. */
  private async submitPayerForm(ref: PaymentReference, action: PaymentAction | undefined): Promise<void> {
    const form = payerFormOf(action);
    if (!form) throw new ChannelError('invalid_request', `payer simulation of ${ref.channelOrderNo} needs the signed form action createPayment returned`, false);
    if (form.url !== this.config.front_trans_url || form.fields.orderId !== ref.channelOrderNo) {
      throw new ChannelError('invalid_request', `the form action is not this account's consume form for ${ref.channelOrderNo}`, false);
    }
    const res = await this.ctx.http.send({
      method: 'POST', url: form.url, headers: { 'content-type': FORM_CONTENT_TYPE }, body: encodeForm(form.fields), operation: 'simulate_payer_form', requestId: ref.requestId,
    });
    if (res.status !== 200) throw new ChannelError('channel_unavailable', `UnionPay answered HTTP ${res.status} to the payer form of ${ref.channelOrderNo}`, true, `HTTP_${res.status}`, true);
    const respCode = frontPageRespCode(res.text);
    if (respCode !== undefined && respCode !== '12') throw this.failure({ respCode, respMsg: 'payer form refused' }, 'simulate_payer_form');
  }

  async health(): Promise<HealthStatus> {
    const now = Date.now();
    if (this.keys.signing.notAfter.getTime() < now) return { ok: false, detail: `signing certificate ${this.keys.signing.certId} expired ${this.keys.signing.notAfter.toISOString()}` };
    if (this.keys.caNotAfter.getTime() < now) return { ok: false, detail: `a configured UnionPay CA certificate expired ${this.keys.caNotAfter.toISOString()}` };
    return { ok: true, detail: `merId ${this.config.mer_id}, certId ${this.keys.signing.certId}` };
  }

  async dispose(): Promise<void> {}
}
