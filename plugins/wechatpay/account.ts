/**
 * One configured WeChat Pay merchant (direct or service provider): builds each call, sends it through the
 * kernel's executor, verifies the answer, and maps it with the transformers.
 */
import type { KeyObject } from 'node:crypto';
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
  type MerchantBinding,
  type NotificationAck,
  type OutboundResponse,
  type PaymentReference,
  type RefundReference,
  type RefundRequest,
  rsaSha256SignBase64,
  type StatementLine,
} from '../../core/index.js';
import type { WechatPayConfig } from './config.js';
import { parsePlatformCertificate, type MerchantKeys, type PlatformCertificate } from './keys.js';
import { parseXml, toXml, v2Sign, v2Verify } from './micropay.js';
import { acknowledge, parseNotification } from './notifications.js';
import { parseTradeBill, verifyBillHash, type TradeBillAnswer } from './statement.js';
import {
  actionFor,
  channelErrorFor,
  isPayMethod,
  micropayFields,
  micropayToResult,
  prepayBody,
  refundToResult,
  transactionToResult,
  V3_TRADE_TYPE,
  type MerchantScope,
  type V3Refund,
  type V3Transaction,
} from './transformers.js';
import {
  authorizationHeader,
  CERTIFICATES_PATH,
  closePath,
  decryptResource,
  MICROPAY_PATH,
  newNonce,
  prepayPath,
  queryPath,
  refundQueryPath,
  REFUNDS_PATH,
  signedUrlPart,
  tradeBillPath,
  unixSeconds,
  verifySignature,
  signatureHeaders,
  type EncryptedResource,
  type VerifyOutcome,
} from './transport.js';

/** A forged serial must not make us hammer /v3/certificates: at most one refresh attempt per this interval… */
const CERT_REFRESH_MIN_INTERVAL_MS = 60_000;
/** …except while we hold no platform certificate at all (e.g. the first download failed at start-up). */
const CERT_REFRESH_EMPTY_INTERVAL_MS = 1_000;
const USER_AGENT = 'corbel-wechatpay/0.1';
const BILL_DATE = /^\d{4}-\d{2}-\d{2}$/;
const SIGNATURE_COMPLAINT = /签名|sign/i;

interface CertificatesAnswer {
  data?: Array<{ serial_no?: string; expire_time?: string; encrypt_certificate?: EncryptedResource }>;
}

type Headers = Record<string, string | string[] | undefined>;

export class WechatPayAccount implements ChannelAccount {
  private readonly baseUrl: string;
  private readonly partner: boolean;
  private platform = new Map<string, PlatformCertificate>();
  private refreshing: Promise<void> | null = null;
  private lastRefreshAttemptAt = 0;

  constructor(
    private readonly config: WechatPayConfig,
    private readonly keys: MerchantKeys,
    private readonly ctx: ChannelAccountContext,
  ) {
    this.baseUrl = config.base_url.replace(/\/+$/, '');
    this.partner = config.mode === 'service_provider';
  }

  // ---------------------------------------------------------------- transport

  private async send(operation: string, method: 'GET' | 'POST', url: string, body?: unknown, requestId?: string): Promise<OutboundResponse> {
    const text = body === undefined ? '' : JSON.stringify(body);
    const headers: Record<string, string> = {
      Authorization: await authorizationHeader({ mchid: this.config.mchid, serialNo: this.keys.serialNo, privateKey: this.keys.privateKey }, method, signedUrlPart(url), text),
      Accept: 'application/json',
      'User-Agent': USER_AGENT,
    };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return this.ctx.http.send({ method, url, headers, body: body === undefined ? undefined : text, operation, timeoutMs: this.config.timeout_ms, requestId });
  }

  /** A signed v3 call whose answer must verify; non-2xx answers become mapped ChannelErrors. */
  private async call<T>(operation: string, method: 'GET' | 'POST', path: string, body?: unknown, requestId?: string): Promise<{ status: number; data: T | null }> {
    const res = await this.send(operation, method, `${this.baseUrl}${path}`, body, requestId);
    const verified = await this.verify(res.headers, res.text);
    if (!verified.ok && res.status >= 500 && !signatureHeaders(res.headers)) {
      // An unsigned 5xx (a proxy or load balancer in front of WeChat): the channel is unavailable, outcome unknown.
      throw new ChannelError('channel_unavailable', `WeChat Pay ${operation} answered an unsigned HTTP ${res.status}`, true, String(res.status), true);
    }
    if (!verified.ok) {
      throw new ChannelError('signature_invalid', `WeChat Pay ${operation} answer (HTTP ${res.status}) not trusted: ${verified.reason}`, true);
    }
    return { status: res.status, data: this.interpret<T>(operation, res) };
  }

  private interpret<T>(operation: string, res: OutboundResponse): T | null {
    let json: unknown = null;
    if (res.text.trim() !== '') {
      try {
        json = JSON.parse(res.text);
      } catch {
        if (res.status >= 200 && res.status < 300) throw new ChannelError('unknown', `WeChat Pay ${operation} answered HTTP ${res.status} with a non-JSON body`, true);
      }
    }
    if (res.status >= 200 && res.status < 300) return json as T | null;
    const err = json as { code?: unknown; message?: unknown } | null;
    if (err && typeof err.code === 'string') return this.fail(err.code, typeof err.message === 'string' ? err.message : '', res.status);
    throw new ChannelError(res.status >= 500 ? 'channel_unavailable' : 'unknown', `WeChat Pay ${operation} answered HTTP ${res.status} without an error code`, true, String(res.status), res.status >= 500);
  }

  private fail(code: string, message: string, status: number): never {
    throw channelErrorFor(code, message, status);
  }

  // ---------------------------------------------------------------- verification keys

  private keyFor(serial: string, platform = this.platform): KeyObject | undefined {
    const pub = this.keys.publicKey;
    if (pub && serial === pub.id) return pub.key;
    const cert = platform.get(serial.toUpperCase());
    return cert && cert.expiresAt.getTime() > Date.now() ? cert.key : undefined;
  }

  /** Verifies with what we hold; an unknown platform serial triggers one (rate-limited) certificate refresh. */
  private async verify(headers: Headers, body: string): Promise<VerifyOutcome> {
    const skew = this.config.max_clock_skew_seconds;
    const first = verifySignature(headers, body, (s) => this.keyFor(s), skew);
    if (first.ok || !first.unknownSerial || !this.canRefreshFor(first.unknownSerial)) return first;
    try {
      await this.refreshPlatformCertificates();
    } catch (err) {
      this.ctx.logger.warn({ account: this.ctx.accountName, serial: first.unknownSerial, error: (err as Error).message }, 'platform certificate refresh failed');
      return first;
    }
    return verifySignature(headers, body, (s) => this.keyFor(s), skew);
  }

  private canRefreshFor(serial: string): boolean {
    if (this.config.platform_certificates !== 'fetch' || serial.startsWith('PUB_KEY_ID_')) return false;
    const interval = this.platform.size === 0 ? CERT_REFRESH_EMPTY_INTERVAL_MS : CERT_REFRESH_MIN_INTERVAL_MS;
    return this.refreshing !== null || Date.now() - this.lastRefreshAttemptAt >= interval;
  }

  /** Single-flight download of the platform certificates. */
  refreshPlatformCertificates(): Promise<void> {
    if (!this.refreshing) {
      this.lastRefreshAttemptAt = Date.now();
      this.refreshing = this.downloadPlatformCertificates().finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  /**
   * GET /v3/certificates: decrypt each encrypt_certificate with the APIv3 key (AES-GCM authenticates it), then check
   * the answer's own signature against the certificates it carries (plus those already known and the public key).
   */
  private async downloadPlatformCertificates(): Promise<void> {
    const res = await this.send('platform_certificates', 'GET', `${this.baseUrl}${CERTIFICATES_PATH}`);
    const answer = this.interpret<CertificatesAnswer>('platform_certificates', res);
    const now = Date.now();
    const next = new Map<string, PlatformCertificate>();
    for (const [serial, cert] of this.platform) if (cert.expiresAt.getTime() > now) next.set(serial, cert);
    for (const item of answer?.data ?? []) {
      if (!item.encrypt_certificate) continue;
      let cert: PlatformCertificate;
      try {
        cert = parsePlatformCertificate(decryptResource(this.keys.apiV3Key, item.encrypt_certificate).toString('utf8'));
      } catch (err) {
        throw new ChannelError('signature_invalid', `platform certificate ${item.serial_no ?? '?'} does not decrypt with the APIv3 key: ${(err as Error).message}`, false);
      }
      if (item.serial_no && item.serial_no.toUpperCase() !== cert.serialNo) {
        throw new ChannelError('signature_invalid', `platform certificate serial ${item.serial_no} does not match its certificate (${cert.serialNo})`, false);
      }
      if (cert.expiresAt.getTime() > now) next.set(cert.serialNo, cert);
    }
    const verified = verifySignature(res.headers, res.text, (s) => this.keyFor(s, next), this.config.max_clock_skew_seconds);
    if (!verified.ok) throw new ChannelError('signature_invalid', `GET /v3/certificates answer not trusted: ${verified.reason}`, false);
    this.platform = next;
    this.ctx.logger.info({ account: this.ctx.accountName, serials: [...next.keys()] }, 'WeChat Pay platform certificates loaded');
  }

  // ---------------------------------------------------------------- merchant scope

  private scopeFor(binding: MerchantBinding | undefined): MerchantScope {
    if (!this.partner) return { partner: false, mchid: this.config.mchid, appid: this.config.appid };
    const bound = binding?.subMerchantId ?? binding?.params.sub_mchid;
    const subMchid = bound ?? this.config.sub_mchid;
    // The configured sub_appid belongs to the configured default sub-merchant only.
    const subAppid = binding?.params.sub_appid ?? (bound === undefined || bound === this.config.sub_mchid ? this.config.sub_appid : undefined);
    const scope: MerchantScope = { partner: true, mchid: this.config.mchid, appid: this.config.appid };
    if (subMchid) scope.subMchid = subMchid;
    if (subAppid) scope.subAppid = subAppid;
    return scope;
  }

  private requireSubMchid(scope: MerchantScope): string | undefined {
    if (scope.partner && !scope.subMchid) throw new ChannelError('invalid_request', 'service-provider mode needs a sub_mchid (binding.subMerchantId or config sub_mchid)', false);
    return scope.subMchid;
  }

  // ---------------------------------------------------------------- payments

  async createPayment(req: CreatePaymentRequest): Promise<ChannelPaymentResult> {
    if (!isPayMethod(req.payMethod)) throw new ChannelError('not_supported', `WeChat Pay has no pay method ${req.payMethod}`, false);
    const scope = this.scopeFor(req.binding);
    if (req.payMethod === 'wechat.micropay') return this.micropay(req, scope);
    const tradeType = V3_TRADE_TYPE[req.payMethod];
    const body = prepayBody(req, tradeType, scope);
    const { data } = await this.call<{ code_url?: string; prepay_id?: string; h5_url?: string }>('create_payment', 'POST', prepayPath(scope.partner, tradeType), body, req.requestId);
    const clientAppid = scope.subAppid ?? scope.appid;
    const action = await actionFor(tradeType, data ?? {}, clientAppid, scope.partner ? scope.subMchid! : scope.mchid, {
      sign: (m) => rsaSha256SignBase64(m, this.keys.privateKey),
      nonce: newNonce,
      timestamp: () => unixSeconds(),
    });
    return { status: 'pending', action };
  }

  /** 付款码: the APIv2 XML endpoint, signed with the APIv2 key. */
  private async micropay(req: CreatePaymentRequest, scope: MerchantScope): Promise<ChannelPaymentResult> {
    const key = this.config.api_v2_key;
    if (!key) throw new ChannelError('not_supported', 'wechat.micropay needs api_v2_key in the account config', false);
    const signType = this.config.micropay_sign_type;
    const fields: Record<string, string | undefined> = { ...micropayFields(req, scope, signType), nonce_str: newNonce() };
    fields.sign = v2Sign(fields, key, signType);
    const res = await this.ctx.http.send({
      method: 'POST', url: `${this.baseUrl}${MICROPAY_PATH}`, operation: 'create_payment', timeoutMs: this.config.timeout_ms, requestId: req.requestId,
      headers: { 'Content-Type': 'text/xml; charset=utf-8', Accept: 'text/xml', 'User-Agent': USER_AGENT },
      body: toXml(fields),
    });
    if (res.status >= 500) throw new ChannelError('channel_unavailable', `WeChat Pay micropay answered HTTP ${res.status}`, true, String(res.status), true);
    const answer = res.status === 200 ? parseXml(res.text) : null;
    if (!answer) throw new ChannelError('unknown', `WeChat Pay micropay answered HTTP ${res.status} without an XML body`, true);
    if (answer.return_code !== 'SUCCESS') {
      // Communication-level rejection (bad signature, missing field, bad XML): WeChat did not accept the request.
      const msg = answer.return_msg ?? 'return_code FAIL';
      const code = SIGNATURE_COMPLAINT.test(msg) ? 'authentication_failed' : 'invalid_request';
      throw new ChannelError(code, `WeChat Pay micropay rejected: ${msg}`, false, 'FAIL');
    }
    if (!v2Verify(answer, key, signType)) throw new ChannelError('signature_invalid', 'WeChat Pay micropay answer signature does not verify', true);
    return micropayToResult(answer);
  }

  async queryPayment(ref: PaymentReference): Promise<ChannelPaymentResult> {
    const scope = this.scopeFor(ref.binding);
    const { data } = await this.call<V3Transaction>('query_payment', 'GET', queryPath(scope.partner, ref.channelOrderNo, scope.mchid, this.requireSubMchid(scope)), undefined, ref.requestId);
    if (!data) throw new ChannelError('unknown', 'WeChat Pay query answered without a transaction', true);
    return transactionToResult(data);
  }

  async closePayment(ref: PaymentReference): Promise<void> {
    const scope = this.scopeFor(ref.binding);
    const body = scope.partner ? { sp_mchid: scope.mchid, sub_mchid: this.requireSubMchid(scope) } : { mchid: scope.mchid };
    await this.call('close_payment', 'POST', closePath(scope.partner, ref.channelOrderNo), body, ref.requestId);
  }

  // ---------------------------------------------------------------- refunds

  async refund(req: RefundRequest): Promise<ChannelRefundResult> {
    const scope = this.scopeFor(req.payment.binding);
    const body: Record<string, unknown> = {
      ...(scope.partner ? { sub_mchid: this.requireSubMchid(scope) } : {}),
      out_trade_no: req.payment.channelOrderNo,
      out_refund_no: req.channelRefundNo,
      ...(req.reason ? { reason: [...req.reason].slice(0, 80).join('') } : {}),
      notify_url: req.notifyUrl,
      amount: { refund: req.amount, total: req.payment.amount, currency: 'CNY' },
    };
    const { data } = await this.call<V3Refund>('refund', 'POST', REFUNDS_PATH, body, req.requestId);
    if (!data) throw new ChannelError('unknown', 'WeChat Pay refund answered without a refund', true);
    return refundToResult(data);
  }

  async queryRefund(ref: RefundReference): Promise<ChannelRefundResult> {
    const scope = this.scopeFor(ref.payment.binding);
    const { data } = await this.call<V3Refund>('query_refund', 'GET', refundQueryPath(ref.channelRefundNo, scope.partner ? this.requireSubMchid(scope) : undefined), undefined, ref.requestId);
    if (!data) throw new ChannelError('unknown', 'WeChat Pay refund query answered without a refund', true);
    return refundToResult(data);
  }

  // ---------------------------------------------------------------- notifications

  parseNotification(n: InboundNotification): Promise<ChannelNotification> {
    return parseNotification(n, { verify: (h, b) => this.verify(h, b), apiV3Key: this.keys.apiV3Key, mchid: this.config.mchid, partner: this.partner });
  }

  acknowledge(accepted: boolean): NotificationAck {
    return acknowledge(accepted);
  }

  // ---------------------------------------------------------------- statement

  /** The ALL trade bill of one day (YYYY-MM-DD); in service-provider mode, of the default sub-merchant. */
  async downloadStatement(date: string): Promise<StatementLine[]> {
    if (!BILL_DATE.test(date)) throw new ChannelError('invalid_request', `bill date must be YYYY-MM-DD, not ${date}`, false);
    const { data } = await this.call<TradeBillAnswer>('statement', 'GET', tradeBillPath(date, this.partner ? this.config.sub_mchid : undefined));
    if (!data?.download_url) throw new ChannelError('unknown', 'trade bill answer has no download_url', false);
    // The download itself is not signed by WeChat; the SHA1 from the signed answer above authenticates it.
    const file = await this.send('statement_download', 'GET', data.download_url);
    if (file.status !== 200) this.interpret('statement_download', file);
    verifyBillHash(file.body, data);
    return parseTradeBill(file.text);
  }

  // ---------------------------------------------------------------- sandbox, health

  async simulatePayer(ref: PaymentReference, outcome: 'pay' | 'fail'): Promise<void> {
    if (!this.ctx.sandbox) throw new ChannelError('not_supported', 'simulatePayer works on sandbox accounts only', false);
    const res = await this.ctx.http.send({
      method: 'POST', url: `${this.baseUrl}/__sim/orders/${encodeURIComponent(ref.channelOrderNo)}/${outcome}`, operation: 'simulate_payer',
      headers: { 'Content-Type': 'application/json' }, body: '{}', requestId: ref.requestId,
    });
    if (res.status >= 300) throw new ChannelError(res.status === 404 ? 'order_not_found' : 'unknown', `simulator ${outcome} answered HTTP ${res.status}: ${res.text.slice(0, 200)}`, false);
  }

  async health(): Promise<HealthStatus> {
    const now = Date.now();
    const expires = this.keys.certificateExpiresAt;
    if (expires && expires.getTime() <= now) return { ok: false, detail: `merchant API certificate expired ${expires.toISOString()}` };
    const platform = [...this.platform.values()].filter((c) => c.expiresAt.getTime() > now);
    if (platform.length === 0 && !this.keys.publicKey) return { ok: false, detail: 'no valid platform certificate or WeChat Pay public key to verify answers with' };
    const parts = [`mode ${this.config.mode}`, `${platform.length} platform certificate(s)`];
    if (this.keys.publicKey) parts.push(`public key ${this.keys.publicKey.id}`);
    return { ok: true, detail: parts.join(', ') };
  }

  async dispose(): Promise<void> {
    await this.refreshing?.catch(() => undefined);
  }
}
