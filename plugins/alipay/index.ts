import {
  ChannelError,
  type ChannelAccount, type ChannelAccountContext, type ChannelPaymentResult, type ChannelPlugin, type ChannelRefundResult,
  type CreatePaymentRequest, type InboundNotification, type MerchantBinding, type PaymentReference, type PaymentAction, type RefundReference,
  type RefundRequest, type StatementLine,
} from '../../core/index.js';
import { alipayConfigSchema, type AlipayConfig } from './config.js';
import { loadKeys, type AlipayKeys } from './keys.js';
import {
  encodeParams, gatewayGetUrl, gatewayPostUrl, parseGatewayResponse, signedParams, type GatewayResponse,
} from './transport.js';
import {
  PAY_METHOD_NAMES, barcodePayResult, closeError, mapError, payMethodSpec, paymentBizContent, queryResult, refundFound,
  refundQueryResult, refundResult, toChannelError, toYuan,
} from './transformers.js';
import { acknowledge, parseAlipayNotification } from './notifications.js';
import { parseBillZip } from './statement.js';
import { accountConfig } from './sandbox.js';

const NAME = 'alipay';
const DATE = /^\d{4}-\d{2}-\d{2}$/;

interface CallOptions {
  operation: string;
  notifyUrl?: string;
  appAuthToken?: string;
  requestId?: string;
}

class AlipayAccount implements ChannelAccount {
  private readonly postUrl: string;

  constructor(
    private readonly cfg: AlipayConfig,
    private readonly keys: AlipayKeys,
    private readonly ctx: ChannelAccountContext,
  ) {
    this.postUrl = gatewayPostUrl(cfg.gateway_url);
  }

  /** ISV mode: the binding's app_auth_token wins over the account's. */
  private token(binding: MerchantBinding | undefined): string | undefined {
    return binding?.params.app_auth_token || this.cfg.app_auth_token || undefined;
  }

  private sign(method: string, bizContent: Record<string, unknown>, extra: { notifyUrl?: string; returnUrl?: string; appAuthToken?: string }): Promise<Record<string, string>> {
    return signedParams({ appId: this.cfg.app_id, method, bizContent, now: new Date(), ...extra }, this.keys.appPrivateKey);
  }

  /** One server call: sign, POST the form, cut and verify the response. Non-10000 codes are returned, not thrown. */
  private async call(method: string, bizContent: Record<string, unknown>, opts: CallOptions): Promise<GatewayResponse> {
    const params = await this.sign(method, bizContent, { notifyUrl: opts.notifyUrl, appAuthToken: opts.appAuthToken });
    const res = await this.ctx.http.send({
      method: 'POST',
      url: this.postUrl,
      headers: { 'content-type': 'application/x-www-form-urlencoded;charset=utf-8', accept: 'application/json' },
      body: encodeParams(params),
      operation: opts.operation,
      requestId: opts.requestId,
    });
    if (res.status !== 200) {
      throw new ChannelError('channel_unavailable', `alipay ${method}: HTTP ${res.status}`, true, `HTTP_${res.status}`, true);
    }
    const parsed = parseGatewayResponse(res.text, method, this.keys.alipayPublicKey);
    if (!parsed.signed) {
      // Alipay leaves some pre-acceptance errors unsigned; an unsigned answer proves nothing either way.
      if (parsed.code === '10000' || parsed.code === '10003') {
        throw new ChannelError('signature_invalid', `alipay ${method}: success response without sign`, true);
      }
      const mapped = mapError(parsed);
      throw new ChannelError(mapped.code, `${mapped.message} (unsigned response)`, true, mapped.channelCode);
    }
    return parsed;
  }

  async createPayment(req: CreatePaymentRequest): Promise<ChannelPaymentResult> {
    const spec = payMethodSpec(req.payMethod);
    const biz = paymentBizContent(req, { sellerId: this.cfg.seller_id });
    const appAuthToken = this.token(req.binding);
    if (spec.kind === 'redirect') {
      const params = await this.sign(spec.method, biz, { notifyUrl: req.notifyUrl, returnUrl: req.returnUrl, appAuthToken });
      return { status: 'pending', action: { type: 'redirect', url: gatewayGetUrl(this.cfg.gateway_url, params) } };
    }
    if (spec.kind === 'app') {
      const params = await this.sign(spec.method, biz, { notifyUrl: req.notifyUrl, appAuthToken });
      return { status: 'pending', action: { type: 'app', params: { order_string: encodeParams(params) } } };
    }
    const res = await this.call(spec.method, biz, { operation: 'create_payment', notifyUrl: req.notifyUrl, appAuthToken, requestId: req.requestId });
    if (req.payMethod === 'alipay.barcode') return barcodePayResult(res);
    if (res.code !== '10000') throw toChannelError(mapError(res));
    const qr = res.body.qr_code;
    if (typeof qr !== 'string' || !qr) throw new ChannelError('unknown', 'alipay precreate: 10000 without qr_code', true);
    return { status: 'pending', action: { type: 'qr_code', qr_code: qr } };
  }

  async queryPayment(ref: PaymentReference): Promise<ChannelPaymentResult> {
    const res = await this.call('alipay.trade.query', { out_trade_no: ref.channelOrderNo }, { operation: 'query_payment', appAuthToken: this.token(ref.binding), requestId: ref.requestId });
    if (res.code !== '10000') throw toChannelError(mapError(res));
    return queryResult(res.body);
  }

  async closePayment(ref: PaymentReference): Promise<void> {
    const appAuthToken = this.token(ref.binding);
    const res = await this.call('alipay.trade.close', { out_trade_no: ref.channelOrderNo }, { operation: 'close_payment', appAuthToken, requestId: ref.requestId });
    if (res.code === '10000') return;
    const mapped = mapError(res);
    if (mapped.channelCode.endsWith('/ACQ.TRADE_STATUS_ERROR')) {
      // Not WAIT_BUYER_PAY: either paid or already closed; one query tells which.
      const now = await this.queryPayment(ref).catch(() => undefined);
      if (now?.status === 'closed') throw new ChannelError('order_closed', mapped.message, true, mapped.channelCode);
    }
    throw closeError(mapped);
  }

  async refund(req: RefundRequest): Promise<ChannelRefundResult> {
    const appAuthToken = this.token(req.payment.binding);
    const biz: Record<string, unknown> = {
      out_trade_no: req.payment.channelOrderNo,
      refund_amount: toYuan(req.amount),
      out_request_no: req.channelRefundNo,
    };
    if (req.reason) biz.refund_reason = req.reason.slice(0, 256);
    const res = await this.call('alipay.trade.refund', biz, { operation: 'refund', appAuthToken, requestId: req.requestId });
    if (res.code !== '10000') {
      const mapped = mapError(res);
      const sub = mapped.channelCode.split('/')[1];
      // A trade that cannot be refunded (unpaid, closed, unknown) is a business refusal: nothing was refunded.
      if (mapped.decline || sub === 'ACQ.TRADE_STATUS_ERROR' || sub === 'ACQ.TRADE_HAS_CLOSE' || sub === 'ACQ.TRADE_NOT_EXIST') {
        const code = sub === 'ACQ.TRADE_NOT_EXIST' ? 'order_not_found' : sub === 'ACQ.TRADE_HAS_CLOSE' || sub === 'ACQ.TRADE_STATUS_ERROR' ? 'order_closed' : mapped.code;
        return { status: 'failed', channelRefundNo: req.channelRefundNo, failure: { code, message: mapped.message, channelCode: mapped.channelCode } };
      }
      throw toChannelError(mapped);
    }
    const immediate = refundResult(res.body, req.channelRefundNo);
    if (immediate !== 'query') return immediate;
    // fund_change N: a repeat of a refund already made, or one still in progress; the refund query decides.
    return this.queryRefund({ channelRefundNo: req.channelRefundNo, payment: req.payment, amount: req.amount, createdAt: req.createdAt }).catch((err: unknown) => {
      if (err instanceof ChannelError && err.code === 'order_not_found') return { status: 'pending', channelRefundNo: req.channelRefundNo } as const;
      throw err;
    });
  }

  async queryRefund(ref: RefundReference): Promise<ChannelRefundResult> {
    const res = await this.call(
      'alipay.trade.fastpay.refund.query',
      { out_trade_no: ref.payment.channelOrderNo, out_request_no: ref.channelRefundNo, query_options: ['gmt_refund_pay'] },
      { operation: 'query_refund', appAuthToken: this.token(ref.payment.binding), requestId: ref.requestId },
    );
    if (res.code !== '10000') throw toChannelError(mapError(res));
    if (!refundFound(res.body)) {
      // Alipay: an empty answer means the refund request was not received (or has not been processed yet).
      throw new ChannelError('order_not_found', `alipay has no refund ${ref.channelRefundNo} (yet)`, false);
    }
    return refundQueryResult(res.body, ref.channelRefundNo);
  }

  async parseNotification(n: InboundNotification) {
    return parseAlipayNotification(n, { appId: this.cfg.app_id, sellerId: this.cfg.seller_id, alipayPublicKey: this.keys.alipayPublicKey });
  }

  acknowledge(accepted: boolean) {
    return acknowledge(accepted);
  }

  async downloadStatement(date: string): Promise<StatementLine[]> {
    if (!DATE.test(date)) throw new ChannelError('invalid_request', `statement date must be YYYY-MM-DD, got ${date}`, false);
    const res = await this.call('alipay.data.dataservice.bill.downloadurl.query', { bill_type: 'trade', bill_date: date }, { operation: 'statement_url', appAuthToken: this.cfg.app_auth_token });
    if (res.code !== '10000') throw toChannelError(mapError(res));
    const url = res.body.bill_download_url;
    if (typeof url !== 'string' || !url) throw new ChannelError('unknown', 'alipay bill: no bill_download_url', false);
    const file = await this.ctx.http.send({ method: 'GET', url, operation: 'statement_download', timeoutMs: this.cfg.statement_timeout_ms });
    if (file.status !== 200) throw new ChannelError('channel_unavailable', `alipay bill download: HTTP ${file.status}`, false, `HTTP_${file.status}`, true);
    return parseBillZip(new Uint8Array(file.body.buffer, file.body.byteOffset, file.body.byteLength));
  }

  async simulatePayer(ref: PaymentReference, outcome: 'pay' | 'fail', action?: PaymentAction): Promise<void> {
    if (!this.ctx.sandbox) throw new ChannelError('not_supported', 'payer simulation is for sandbox accounts only', false);
    // Page and wap trades exist only once the payer's browser opens the signed cashier URL: open it as the payer would.
    if (action?.type === 'redirect') await this.ctx.http.send({ method: 'GET', url: action.url, operation: 'simulate_payer_open', requestId: ref.requestId });
    const base = new URL(this.cfg.gateway_url);
    const url = new URL(`/__sim/orders/${encodeURIComponent(ref.channelOrderNo)}/${outcome}`, base.origin).toString();
    const res = await this.ctx.http.send({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body: '{}', operation: 'simulate_payer', requestId: ref.requestId });
    if (res.status !== 200) throw new ChannelError('unknown', `alipay simulator ${outcome}: HTTP ${res.status} ${res.text.slice(0, 200)}`, false);
  }

  async health() {
    return { ok: true, detail: `app ${this.cfg.app_id}, keys loaded` };
  }

  async dispose(): Promise<void> {}
}

const plugin: ChannelPlugin<AlipayConfig> = {
  manifest: {
    name: NAME,
    version: '0.1.0',
    kind: 'channel',
    contract: '1',
    description: 'Alipay OpenAPI (gateway.do, RSA2 public-key mode): QR, PC page, mobile web, app and barcode payments',
    payMethods: PAY_METHOD_NAMES,
    payerFields: { 'alipay.barcode': ['auth_code'] },
    configSchema: alipayConfigSchema,
  },
  async createAccount(config, ctx) {
    const keys = await loadKeys(config, ctx.configDir);
    return new AlipayAccount(config, keys, ctx);
  },
  sandbox: {
    async startSimulator(opts) {
      const sim = await import('./simulator/index.js');
      return sim.startAlipaySimulator({ dataDir: opts.dataDir, host: opts.host, port: opts.port });
    },
    accountConfig,
  },
};

export default plugin;
