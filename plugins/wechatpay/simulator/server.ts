// HTTP front of the WeChat Pay simulator: APIv3 JSON endpoints, the APIv2 micropay XML endpoint, the /__sim control
// API and the payer pages. Plain node:http so faults can act on the socket itself.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { defaultFaults, faultsApplyTo, parseFaults, takeCountedFault, type FaultSet } from '../../../core/index.js';
import {
  encryptResource,
  parseAuthorization,
  requestSigningMessage,
  responseSigningMessage,
  rsaSha256Sign,
  rsaSha256Verify,
  sha1Hex,
  randomNonce,
  unixSeconds,
} from './crypto.js';
import { buildTradeBill, type BillType } from './bill.js';
import type { KeyMaterial, MerchantKeys } from './keys.js';
import {
  canonicalJson,
  chinaTime,
  isPaid,
  refundedTotal,
  refundNotificationResource,
  refundResource,
  transactionResource,
  type NotificationRecord,
  type Order,
  type Refund,
  type TradeType,
} from './model.js';
import { Notifier } from './notifier.js';
import { handleMicropay, micropaySystemError } from './micropay.js';
import { payerPage, resultPage } from './payer-page.js';

export type VerificationMode = 'platform_certificate' | 'public_key';

export interface SimulatorConfig {
  keys: KeyMaterial;
  retryDelaysMs: number[];
  /** How long a refund stays PROCESSING before it succeeds. */
  refundDelayMs: number;
  verificationMode: VerificationMode;
  log: (line: Record<string, unknown>) => void;
}

/** What a handler produces; the server adds signatures, faults and writes it. */
export interface ApiResponse {
  status: number;
  /** JSON body (already serialised) or raw bytes for downloads / XML. */
  body?: string | Buffer;
  contentType?: string;
  /** false for bill downloads and APIv2 XML: no Wechatpay-* signature headers. */
  sign?: boolean;
  /** Merchant whose verification mode picks the signing key. */
  mchid?: string;
}

export interface RequestContext {
  method: string;
  /** Raw path + query exactly as sent: what the merchant signed. */
  rawUrl: string;
  path: string;
  query: URLSearchParams;
  body: string;
  headers: IncomingMessage['headers'];
}

const MAX_BODY_BYTES = 1024 * 1024;
const CLOCK_SKEW_SECONDS = 300;
const BILL_URL_TTL_MS = 30_000;

export function jsonError(status: number, code: string, message: string, detail?: Record<string, unknown>): ApiResponse {
  return { status, body: JSON.stringify(detail ? { code, message, detail } : { code, message }) };
}

function json(status: number, value: unknown): ApiResponse {
  return { status, body: JSON.stringify(value) };
}

/** PARAM_ERROR in WeChat's wording for a missing required field. */
function missingField(location: 'body' | 'query' | 'uri_template', path: string, label: string): ApiResponse {
  return jsonError(400, 'PARAM_ERROR', `输入源“/${location}/${path}”映射到字段“${label}”必填性规则校验失败，此字段为必填项`, { location, value: null });
}

function invalidField(location: 'body' | 'query', path: string, label: string, value: unknown): ApiResponse {
  return jsonError(400, 'PARAM_ERROR', `输入源“/${location}/${path}”映射到字段“${label}”格式校验失败`, { location, value });
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return !!value && typeof value === 'object' && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function digits(count: number): string {
  let out = '';
  while (out.length < count) out += randomBytes(8).readBigUInt64BE().toString().slice(1);
  return out.slice(0, count);
}

const TRADE_TYPE_BY_PATH: Record<string, TradeType> = { native: 'NATIVE', jsapi: 'JSAPI', app: 'APP', h5: 'MWEB' };
const OUT_TRADE_NO_PATTERN = /^[0-9A-Za-z_\-|*]{6,32}$/;

export class WechatPaySimulator {
  readonly orders = new Map<string, Order>();
  faults: FaultSet = defaultFaults();
  readonly verificationModes = new Map<string, VerificationMode>();
  private readonly billFiles = new Map<string, { mchid: string; content: Buffer; gzip: boolean; expiresAt: number }>();
  private readonly heldNotifications = new Map<Order, { mchid: string; record: NotificationRecord }>();
  private readonly notifier: Notifier;
  private readonly sockets = new Set<Socket>();
  private server: Server | null = null;
  baseUrl = '';

  constructor(private readonly config: SimulatorConfig) {
    for (const merchant of config.keys.merchants) this.verificationModes.set(merchant.identity.mchid, config.verificationMode);
    this.notifier = new Notifier({
      retryDelaysMs: config.retryDelaysMs,
      signHeaders: (mchid, body) => this.signatureHeaders(mchid, body),
      log: config.log,
    });
  }

  // ---------------------------------------------------------------- lifecycle

  async listen(host: string, port: number): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('simulator did not bind a TCP port');
    this.baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
    return this.baseUrl;
  }

  async close(): Promise<void> {
    this.notifier.close();
    const server = this.server;
    this.server = null;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Held (timeout fault) and keep-alive sockets would keep close() waiting forever.
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  // ---------------------------------------------------------------- keys & signing

  get keyMaterial(): KeyMaterial {
    return this.config.keys;
  }

  merchant(mchid: string): MerchantKeys | undefined {
    return this.config.keys.merchants.find((merchant) => merchant.identity.mchid === mchid);
  }

  /** Wechatpay-* headers for a body, with the key of the merchant's verification mode. */
  signatureHeaders(mchid: string | undefined, body: string): Record<string, string> {
    const { platform } = this.config.keys;
    const merchant = mchid ? this.merchant(mchid) : undefined;
    const usePublicKey = merchant !== undefined && this.verificationModes.get(merchant.identity.mchid) === 'public_key';
    const timestamp = String(unixSeconds());
    const nonce = randomNonce(32);
    const key = usePublicKey ? platform.publicKeyPrivateKey : platform.certificatePrivateKey;
    // corrupt_signature: a genuine RSA signature over the wrong message, so only verification can catch it.
    const message = this.faults.corrupt_signature ? responseSigningMessage(timestamp, nonce, `${body}corrupted`) : responseSigningMessage(timestamp, nonce, body);
    return {
      'Wechatpay-Timestamp': timestamp,
      'Wechatpay-Nonce': nonce,
      'Wechatpay-Signature': rsaSha256Sign(message, key),
      'Wechatpay-Serial': usePublicKey && merchant ? merchant.wechatpayPublicKeyId : platform.certificateSerial,
    };
  }

  /** Checks the Authorization header; returns the merchant or WeChat's 401 answer. */
  authenticate(ctx: RequestContext): MerchantKeys | ApiResponse {
    const auth = parseAuthorization(typeof ctx.headers.authorization === 'string' ? ctx.headers.authorization : undefined);
    if (!auth) return jsonError(401, 'SIGN_ERROR', 'Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》');
    const merchant = this.merchant(auth.mchid);
    if (!merchant) return jsonError(401, 'SIGN_ERROR', '商户号不存在或未开通APIv3');
    if (auth.serial_no.toUpperCase() !== merchant.certificateSerial) {
      return jsonError(401, 'SIGN_ERROR', '商户证书序列号有误。请使用签名私钥匹配的证书序列号', { location: 'header', serial_no: auth.serial_no });
    }
    const timestamp = Number(auth.timestamp);
    if (!Number.isInteger(timestamp) || Math.abs(unixSeconds() - timestamp) > CLOCK_SKEW_SECONDS) {
      return jsonError(401, 'SIGN_ERROR', '请求的时间戳已过期或不合法，请检查系统时间');
    }
    const message = requestSigningMessage(ctx.method, ctx.rawUrl, auth.timestamp, auth.nonce_str, ctx.body);
    if (!rsaSha256Verify(message, auth.signature, merchant.publicKey)) {
      return jsonError(401, 'SIGN_ERROR', '签名错误，请检查后再试');
    }
    return merchant;
  }

  // ---------------------------------------------------------------- HTTP plumbing

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: string;
    try {
      body = await readBody(req);
    } catch {
      res.statusCode = 413;
      res.end();
      return;
    }
    const rawUrl = req.url ?? '/';
    const parsed = new URL(rawUrl, 'http://simulator.local');
    const ctx: RequestContext = { method: (req.method ?? 'GET').toUpperCase(), rawUrl, path: parsed.pathname, query: parsed.searchParams, body, headers: req.headers };
    try {
      if (ctx.path.startsWith('/__sim') || ctx.path.startsWith('/cgi-bin/mmpayweb-bin/')) {
        this.write(res, this.handleControl(ctx));
        return;
      }
      await this.handleChannel(ctx, req, res);
    } catch (err) {
      this.config.log({ msg: 'wechatpay simulator internal error', error: err instanceof Error ? err.message : String(err), path: ctx.path });
      if (!res.headersSent) this.write(res, { ...jsonError(500, 'SYSTEMERROR', '系统错误'), sign: false });
    }
  }

  private async handleChannel(ctx: RequestContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const isV2 = ctx.path === '/pay/micropay';
    const faults = this.faults;
    if (faultsApplyTo(faults, ctx.path)) {
      if (faults.latency_ms > 0) await sleep(faults.latency_ms);
      if (faults.timeout) return; // never answer; the socket is destroyed on close()
      if (takeCountedFault(faults, 'connection_reset')) {
        req.socket.destroy();
        return;
      }
      if (takeCountedFault(faults, 'http_5xx')) {
        this.write(res, isV2 ? micropaySystemError() : jsonError(500, 'SYSTEMERROR', '系统错误'));
        return;
      }
      const response = isV2 ? handleMicropay(this, ctx) : this.routeV3(ctx);
      if (takeCountedFault(faults, 'response_lost')) {
        req.socket.destroy();
        return;
      }
      this.write(res, response);
      return;
    }
    this.write(res, isV2 ? handleMicropay(this, ctx) : this.routeV3(ctx));
  }

  private write(res: ServerResponse, response: ApiResponse): void {
    const body = response.body ?? '';
    const headers: Record<string, string> = { 'Request-ID': randomUUID().replace(/-/g, '').toUpperCase() };
    if (response.body !== undefined) headers['Content-Type'] = response.contentType ?? 'application/json; charset=utf-8';
    if (response.sign !== false) Object.assign(headers, this.signatureHeaders(response.mchid, Buffer.isBuffer(body) ? body.toString('utf8') : body));
    res.writeHead(response.status, headers);
    res.end(body);
  }

  // ---------------------------------------------------------------- APIv3 routes

  private routeV3(ctx: RequestContext): ApiResponse {
    const auth = this.authenticate(ctx);
    if (!('identity' in auth)) return auth;
    const merchant = auth;
    const response = this.dispatchV3(ctx, merchant);
    return { mchid: merchant.identity.mchid, ...response };
  }

  private dispatchV3(ctx: RequestContext, merchant: MerchantKeys): ApiResponse {
    const { method, path } = ctx;
    let match: RegExpExecArray | null;
    if (method === 'GET' && path === '/v3/certificates') return this.certificates(merchant);
    if (method === 'POST' && (match = /^\/v3\/pay\/(partner\/)?transactions\/(native|jsapi|app|h5)$/.exec(path))) {
      return this.withJsonBody(ctx, (body) => this.createOrder(merchant, match![1] ? 'partner' : 'direct', match![2], body));
    }
    if (method === 'GET' && (match = /^\/v3\/pay\/(partner\/)?transactions\/(out-trade-no|id)\/([^/]+)$/.exec(path))) {
      return this.queryOrder(ctx, merchant, match[1] ? 'partner' : 'direct', match[2] === 'id' ? 'transaction_id' : 'out_trade_no', decodeURIComponent(match[3]));
    }
    if (method === 'POST' && (match = /^\/v3\/pay\/(partner\/)?transactions\/out-trade-no\/([^/]+)\/close$/.exec(path))) {
      return this.withJsonBody(ctx, (body) => this.closeOrder(merchant, match![1] ? 'partner' : 'direct', decodeURIComponent(match![2]), body));
    }
    if (method === 'POST' && path === '/v3/refund/domestic/refunds') return this.withJsonBody(ctx, (body) => this.createRefund(merchant, body));
    if (method === 'GET' && (match = /^\/v3\/refund\/domestic\/refunds\/([^/]+)$/.exec(path))) return this.queryRefund(ctx, merchant, decodeURIComponent(match[1]));
    if (method === 'GET' && path === '/v3/bill/tradebill') return this.tradeBill(ctx, merchant);
    if (method === 'GET' && path === '/v3/billdownload/file') return this.downloadBill(ctx, merchant);
    return jsonError(404, 'RESOURCE_NOT_EXISTS', '请求的资源不存在');
  }

  private withJsonBody(ctx: RequestContext, handler: (body: Json) => ApiResponse): ApiResponse {
    let parsed: unknown;
    try {
      parsed = JSON.parse(ctx.body);
    } catch {
      return jsonError(400, 'PARAM_ERROR', '请求体JSON格式错误', { location: 'body', value: ctx.body.slice(0, 64) });
    }
    if (!isObject(parsed)) return jsonError(400, 'PARAM_ERROR', '请求体应为JSON对象', { location: 'body' });
    return handler(parsed);
  }

  private certificates(merchant: MerchantKeys): ApiResponse {
    const { platform } = this.config.keys;
    return json(200, {
      data: [{
        serial_no: platform.certificateSerial,
        effective_time: chinaTime(platform.effectiveTime),
        expire_time: chinaTime(platform.expireTime),
        encrypt_certificate: encryptResource(platform.certificatePem, merchant.apiV3Key, 'certificate'),
      }],
    });
  }

  /** Resolves the order owner: direct merchants own their orders, partner orders belong to the sub-merchant. */
  private ownerKey(ownerMchid: string, outTradeNo: string): string {
    return `${ownerMchid}/${outTradeNo}`;
  }

  findOrder(ownerMchid: string, outTradeNo: string): Order | undefined {
    return this.orders.get(this.ownerKey(ownerMchid, outTradeNo));
  }

  findOrderByOutTradeNo(outTradeNo: string): Order | undefined {
    for (const order of this.orders.values()) if (order.out_trade_no === outTradeNo) return order;
    return undefined;
  }

  /** Validates merchant identity fields of a request; returns [ownerMchid] or an error. */
  private checkMerchantFields(merchant: MerchantKeys, mode: 'direct' | 'partner', fields: Json, location: 'body' | 'query'): string | ApiResponse {
    const { identity } = merchant;
    if (mode === 'direct') {
      const mchid = str(fields.mchid);
      if (!mchid) return missingField(location, 'mchid', '直连商户号');
      if (mchid !== identity.mchid) return jsonError(400, 'INVALID_REQUEST', '商户号mchid与请求签名的商户号不一致');
      if (identity.subMchid) return jsonError(403, 'NO_AUTH', '服务商商户号不能调用直连商户接口');
      return mchid;
    }
    const spMchid = str(fields.sp_mchid);
    if (!spMchid) return missingField(location, 'sp_mchid', '服务商户号');
    const subMchid = str(fields.sub_mchid);
    if (!subMchid) return missingField(location, 'sub_mchid', '子商户号');
    if (spMchid !== identity.mchid) return jsonError(400, 'INVALID_REQUEST', '服务商户号sp_mchid与请求签名的商户号不一致');
    if (subMchid !== identity.subMchid) return jsonError(403, 'NO_AUTH', '特约商户与服务商不存在受理关系');
    return subMchid;
  }

  private createOrder(merchant: MerchantKeys, mode: 'direct' | 'partner', kind: string, body: Json): ApiResponse {
    const { identity } = merchant;
    const owner = this.checkMerchantFields(merchant, mode, body, 'body');
    if (typeof owner !== 'string') return owner;
    const appidField = mode === 'direct' ? 'appid' : 'sp_appid';
    const appid = str(body[appidField]);
    if (!appid) return missingField('body', appidField, mode === 'direct' ? '应用ID' : '服务商应用ID');
    if (appid !== identity.appid) return jsonError(400, 'APPID_MCHID_NOT_MATCH', 'AppID和mch_id不匹配');
    const subAppid = mode === 'partner' ? str(body.sub_appid) : undefined;
    if (subAppid !== undefined && subAppid !== identity.subAppid) return jsonError(400, 'APPID_MCHID_NOT_MATCH', 'sub_appid和sub_mchid不匹配');
    const description = str(body.description);
    if (!description) return missingField('body', 'description', '商品描述');
    if (description.length > 127) return invalidField('body', 'description', '商品描述', description);
    const outTradeNo = str(body.out_trade_no);
    if (!outTradeNo) return missingField('body', 'out_trade_no', '商户订单号');
    if (!OUT_TRADE_NO_PATTERN.test(outTradeNo)) return invalidField('body', 'out_trade_no', '商户订单号', outTradeNo);
    const notifyUrl = str(body.notify_url);
    if (!notifyUrl) return missingField('body', 'notify_url', '通知地址');
    if (!/^https?:\/\/[^\s?#]+$/.test(notifyUrl)) return invalidField('body', 'notify_url', '通知地址', notifyUrl);
    if (!isObject(body.amount)) return missingField('body', 'amount', '订单金额');
    const total = body.amount.total;
    if (total === undefined) return missingField('body', 'amount/total', '总金额');
    if (typeof total !== 'number' || !Number.isInteger(total) || total <= 0) return invalidField('body', 'amount/total', '总金额', total);
    const currency = body.amount.currency ?? 'CNY';
    if (currency !== 'CNY') return invalidField('body', 'amount/currency', '货币类型', currency);
    const timeExpire = body.time_expire;
    if (timeExpire !== undefined && (typeof timeExpire !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(timeExpire) || Number.isNaN(Date.parse(timeExpire)))) {
      return invalidField('body', 'time_expire', '交易结束时间', timeExpire);
    }
    const attach = body.attach;
    if (attach !== undefined && (typeof attach !== 'string' || attach.length > 128)) return invalidField('body', 'attach', '附加数据', attach);

    const tradeType: TradeType = TRADE_TYPE_BY_PATH[kind] ?? 'NATIVE';
    const payer: Record<string, string> = {};
    if (tradeType === 'JSAPI') {
      const payerField = isObject(body.payer) ? body.payer : {};
      if (mode === 'direct') {
        const openid = str(payerField.openid);
        if (!openid) return missingField('body', 'payer/openid', '用户标识');
        payer.openid = openid;
      } else {
        const spOpenid = str(payerField.sp_openid);
        const subOpenid = str(payerField.sub_openid);
        if (!spOpenid && !subOpenid) return missingField('body', 'payer/sp_openid', '用户服务标识');
        if (subOpenid && !subAppid) return missingField('body', 'sub_appid', '子商户应用ID');
        if (spOpenid) payer.sp_openid = spOpenid;
        if (subOpenid) payer.sub_openid = subOpenid;
      }
    } else {
      // Non-JSAPI payers are only known once they pay; give them a stable sandbox identity.
      payer[mode === 'direct' ? 'openid' : 'sp_openid'] = `oSandbox${outTradeNo.slice(-8)}`;
    }
    if (tradeType === 'MWEB') {
      const scene = isObject(body.scene_info) ? body.scene_info : undefined;
      if (!scene) return missingField('body', 'scene_info', '场景信息');
      if (!str(scene.payer_client_ip)) return missingField('body', 'scene_info/payer_client_ip', '用户终端IP');
      const h5Info = isObject(scene.h5_info) ? scene.h5_info : undefined;
      if (!h5Info) return missingField('body', 'scene_info/h5_info', 'H5场景信息');
      if (!str(h5Info.type)) return missingField('body', 'scene_info/h5_info/type', '场景类型');
    }

    const fingerprint = `${tradeType}:${canonicalJson(body)}`;
    const existing = this.findOrder(owner, outTradeNo);
    if (existing) {
      if (isPaid(existing)) return jsonError(400, 'ORDERPAID', '该订单已支付');
      if (existing.trade_state === 'CLOSED') return jsonError(400, 'ORDER_CLOSED', '当前订单已关闭，请重新下单');
      if (existing.requestFingerprint !== fingerprint) return jsonError(403, 'OUT_TRADE_NO_USED', '商户订单号重复');
      return json(200, this.prepayAnswer(existing));
    }

    const now = new Date();
    const order: Order = {
      mode,
      signerMchid: identity.mchid,
      appid,
      mchid: identity.mchid,
      ...(mode === 'partner' ? { sub_mchid: owner, ...(subAppid ? { sub_appid: subAppid } : {}) } : {}),
      out_trade_no: outTradeNo,
      transaction_id: `4200${digits(24)}`,
      trade_type: tradeType,
      trade_state: 'NOTPAY',
      description,
      ...(typeof attach === 'string' ? { attach } : {}),
      notify_url: notifyUrl,
      ...(typeof timeExpire === 'string' ? { time_expire: timeExpire } : {}),
      total,
      currency,
      payer,
      requestFingerprint: fingerprint,
      prepay_id: `wx${chinaTime(now).slice(0, 19).replace(/[-T:]/g, '')}${randomBytes(10).toString('hex')}`,
      create_time: chinaTime(now),
      refunds: [],
      notifications: [],
    };
    if (tradeType === 'NATIVE') order.code_url = `weixin://wxpay/bizpayurl?pr=${randomNonce(7)}`;
    if (tradeType === 'MWEB') order.h5_url = `${this.baseUrl}/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=${order.prepay_id}&package=${digits(10)}`;
    this.orders.set(this.ownerKey(owner, outTradeNo), order);
    this.config.log({ msg: 'wechatpay order created', out_trade_no: outTradeNo, trade_type: tradeType, total });
    return json(200, this.prepayAnswer(order));
  }

  /** Registers an order created through APIv2 micropay. */
  addOrder(ownerMchid: string, order: Order): void {
    this.orders.set(this.ownerKey(ownerMchid, order.out_trade_no), order);
  }

  private prepayAnswer(order: Order): Json {
    if (order.trade_type === 'NATIVE') return { code_url: order.code_url };
    if (order.trade_type === 'MWEB') return { h5_url: order.h5_url };
    return { prepay_id: order.prepay_id };
  }

  private queryOrder(ctx: RequestContext, merchant: MerchantKeys, mode: 'direct' | 'partner', by: 'out_trade_no' | 'transaction_id', id: string): ApiResponse {
    const owner = this.checkMerchantFields(merchant, mode, Object.fromEntries(ctx.query), 'query');
    if (typeof owner !== 'string') return owner;
    const order = by === 'out_trade_no'
      ? this.findOrder(owner, id)
      : [...this.orders.values()].find((candidate) => candidate.transaction_id === id && (candidate.sub_mchid ?? candidate.mchid) === owner && candidate.trade_state !== 'NOTPAY' && candidate.trade_state !== 'CLOSED');
    if (!order) return jsonError(404, 'ORDERNOTEXIST', '订单不存在');
    return json(200, transactionResource(order));
  }

  private closeOrder(merchant: MerchantKeys, mode: 'direct' | 'partner', outTradeNo: string, body: Json): ApiResponse {
    const owner = this.checkMerchantFields(merchant, mode, body, 'body');
    if (typeof owner !== 'string') return owner;
    const order = this.findOrder(owner, outTradeNo);
    if (!order) return jsonError(404, 'ORDERNOTEXIST', '订单不存在');
    if (isPaid(order)) return jsonError(400, 'ORDERPAID', '订单已支付');
    if (order.trade_state === 'NOTPAY' || order.trade_state === 'USERPAYING' || order.trade_state === 'PAYERROR') order.trade_state = 'CLOSED';
    return { status: 204 };
  }

  // ---------------------------------------------------------------- refunds

  private createRefund(merchant: MerchantKeys, body: Json): ApiResponse {
    const { identity } = merchant;
    let owner = identity.mchid;
    if (identity.subMchid) {
      const subMchid = str(body.sub_mchid);
      if (!subMchid) return missingField('body', 'sub_mchid', '子商户号');
      if (subMchid !== identity.subMchid) return jsonError(403, 'NO_AUTH', '特约商户与服务商不存在受理关系');
      owner = subMchid;
    }
    const transactionId = str(body.transaction_id);
    const outTradeNo = str(body.out_trade_no);
    if (!transactionId && !outTradeNo) return missingField('body', 'out_trade_no', '商户订单号');
    const outRefundNo = str(body.out_refund_no);
    if (!outRefundNo) return missingField('body', 'out_refund_no', '商户退款单号');
    if (!/^[0-9A-Za-z_\-|*@]{1,64}$/.test(outRefundNo)) return invalidField('body', 'out_refund_no', '商户退款单号', outRefundNo);
    if (!isObject(body.amount)) return missingField('body', 'amount', '金额信息');
    const { refund, total } = body.amount;
    if (refund === undefined) return missingField('body', 'amount/refund', '退款金额');
    if (total === undefined) return missingField('body', 'amount/total', '原订单金额');
    if (typeof refund !== 'number' || !Number.isInteger(refund) || refund <= 0) return invalidField('body', 'amount/refund', '退款金额', refund);
    if (typeof total !== 'number' || !Number.isInteger(total) || total <= 0) return invalidField('body', 'amount/total', '原订单金额', total);
    const currency = body.amount.currency ?? 'CNY';
    if (currency !== 'CNY') return invalidField('body', 'amount/currency', '退款币种', currency);
    const notifyUrl = body.notify_url;
    if (notifyUrl !== undefined && (typeof notifyUrl !== 'string' || !/^https?:\/\/[^\s?#]+$/.test(notifyUrl))) return invalidField('body', 'notify_url', '退款结果回调url', notifyUrl);

    const order = outTradeNo
      ? this.findOrder(owner, outTradeNo)
      : [...this.orders.values()].find((candidate) => candidate.transaction_id === transactionId && (candidate.sub_mchid ?? candidate.mchid) === owner);
    if (!order || (transactionId && order.transaction_id !== transactionId)) return jsonError(404, 'RESOURCE_NOT_EXISTS', '订单不存在');

    const existing = order.refunds.find((candidate) => candidate.out_refund_no === outRefundNo);
    if (existing) return json(200, refundResource(order, existing));
    for (const other of this.orders.values()) {
      if (other !== order && (other.sub_mchid ?? other.mchid) === owner && other.refunds.some((candidate) => candidate.out_refund_no === outRefundNo)) {
        return jsonError(400, 'INVALID_REQUEST', '商户退款单号已被其他订单使用');
      }
    }
    if (!isPaid(order)) return jsonError(400, 'INVALID_REQUEST', '订单未支付，无法退款');
    if (total !== order.total) return jsonError(400, 'INVALID_REQUEST', '订单金额与原订单金额不一致');
    if (refundedTotal(order) + refund > order.total) return jsonError(400, 'INVALID_REQUEST', '申请退款金额超过订单可退金额');

    const record: Refund = {
      refund_id: `5030${digits(25)}`,
      out_refund_no: outRefundNo,
      ...(typeof body.reason === 'string' ? { reason: body.reason } : {}),
      ...(typeof notifyUrl === 'string' ? { notify_url: notifyUrl } : {}),
      refund,
      status: 'PROCESSING',
      create_time: chinaTime(new Date()),
    };
    order.refunds.push(record);
    this.notifier.schedule(this.config.refundDelayMs, () => this.settleRefund(order, record));
    return json(200, refundResource(order, record));
  }

  private settleRefund(order: Order, refund: Refund): void {
    if (refund.status !== 'PROCESSING') return;
    refund.status = 'SUCCESS';
    refund.success_time = chinaTime(new Date());
    order.trade_state = 'REFUND';
    const url = refund.notify_url ?? order.notify_url;
    if (!url) return;
    const tampered = this.faults.tamper_notify_amount ? refund.refund + 1 : undefined;
    this.notify(order, url, 'REFUND.SUCCESS', '退款成功', 'refund', refundNotificationResource(order, refund, tampered));
  }

  private queryRefund(ctx: RequestContext, merchant: MerchantKeys, outRefundNo: string): ApiResponse {
    const { identity } = merchant;
    let owner = identity.mchid;
    if (identity.subMchid) {
      const subMchid = ctx.query.get('sub_mchid');
      if (!subMchid) return missingField('query', 'sub_mchid', '子商户号');
      if (subMchid !== identity.subMchid) return jsonError(403, 'NO_AUTH', '特约商户与服务商不存在受理关系');
      owner = subMchid;
    }
    for (const order of this.orders.values()) {
      if ((order.sub_mchid ?? order.mchid) !== owner) continue;
      const refund = order.refunds.find((candidate) => candidate.out_refund_no === outRefundNo);
      if (refund) return json(200, refundResource(order, refund));
    }
    return jsonError(404, 'RESOURCE_NOT_EXISTS', '退款单不存在');
  }

  // ---------------------------------------------------------------- bills

  private tradeBill(ctx: RequestContext, merchant: MerchantKeys): ApiResponse {
    const billDate = ctx.query.get('bill_date');
    if (!billDate) return missingField('query', 'bill_date', '账单日期');
    if (!/^\d{4}-\d{2}-\d{2}$/.test(billDate) || Number.isNaN(Date.parse(billDate))) return invalidField('query', 'bill_date', '账单日期', billDate);
    const billType = (ctx.query.get('bill_type') ?? 'ALL') as BillType;
    if (!['ALL', 'SUCCESS', 'REFUND'].includes(billType)) return invalidField('query', 'bill_type', '账单类型', billType);
    const tarType = ctx.query.get('tar_type');
    if (tarType !== null && tarType !== 'GZIP') return invalidField('query', 'tar_type', '压缩类型', tarType);
    const todayChina = chinaTime(new Date()).slice(0, 10);
    if (billDate > todayChina) return jsonError(400, 'NO_STATEMENT_EXIST', '账单日期不合法或账单尚未生成');
    const subMchid = ctx.query.get('sub_mchid');
    const { identity } = merchant;
    if (subMchid && subMchid !== identity.subMchid) return jsonError(403, 'NO_AUTH', '特约商户与服务商不存在受理关系');
    const orders = [...this.orders.values()].filter((order) => order.mchid === identity.mchid && (!subMchid || order.sub_mchid === subMchid));
    const content = buildTradeBill(orders, billDate, billType);
    const token = randomNonce(40);
    this.billFiles.set(token, { mchid: identity.mchid, content, gzip: tarType === 'GZIP', expiresAt: Date.now() + BILL_URL_TTL_MS });
    return json(200, { hash_type: 'SHA1', hash_value: sha1Hex(content), download_url: `${this.baseUrl}/v3/billdownload/file?token=${token}` });
  }

  private downloadBill(ctx: RequestContext, merchant: MerchantKeys): ApiResponse {
    const token = ctx.query.get('token');
    const file = token ? this.billFiles.get(token) : undefined;
    if (!file || file.mchid !== merchant.identity.mchid) return jsonError(400, 'INVALID_REQUEST', '下载链接无效');
    if (Date.now() > file.expiresAt) {
      this.billFiles.delete(token!);
      return jsonError(400, 'INVALID_REQUEST', '下载链接已过期，请重新申请');
    }
    return {
      status: 200,
      body: file.gzip ? gzipSync(file.content) : file.content,
      contentType: file.gzip ? 'application/x-gzip' : 'text/plain; charset=utf-8',
      sign: false,
    };
  }

  // ---------------------------------------------------------------- notifications

  /** Builds, signs and dispatches a notification, applying the notify faults. */
  notify(order: Order, url: string, eventType: string, summary: string, originalType: 'transaction' | 'refund', plaintext: Json): NotificationRecord {
    const merchant = this.merchant(order.signerMchid);
    if (!merchant) throw new Error(`no keys for ${order.signerMchid}`);
    const id = randomUUID();
    const body = JSON.stringify({
      id,
      create_time: chinaTime(new Date()),
      resource_type: 'encrypt-resource',
      event_type: eventType,
      summary,
      resource: { original_type: originalType, ...encryptResource(JSON.stringify(plaintext), merchant.apiV3Key, originalType) },
    });
    const record: NotificationRecord = { id, event_type: eventType, url, body, plaintext, attempts: [], acknowledged: false, dropped: false };
    order.notifications.push(record);
    const { notify, notify_delay_ms: delayMs } = this.faults;
    const mchid = order.signerMchid;
    const held = this.heldNotifications.get(order);
    if (held) this.heldNotifications.delete(order);
    switch (notify) {
      case 'lost':
        record.dropped = true;
        break;
      case 'duplicate':
        this.notifier.deliver(mchid, record);
        this.notifier.deliver(mchid, record);
        break;
      case 'delayed':
        this.notifier.deliver(mchid, record, delayMs);
        break;
      case 'out_of_order':
        if (!held) {
          // Hold it until a later notification of the order overtakes it (or a fallback delay passes).
          this.heldNotifications.set(order, { mchid, record });
          this.notifier.schedule(Math.max(delayMs, 2000), () => this.releaseHeld(order, record));
        } else {
          this.notifier.deliver(mchid, record);
        }
        break;
      default:
        this.notifier.deliver(mchid, record);
    }
    // A held earlier notification goes out only after the later one has started.
    if (held) this.notifier.deliver(held.mchid, held.record, 50);
    return record;
  }

  private releaseHeld(order: Order, record: NotificationRecord): void {
    const held = this.heldNotifications.get(order);
    if (held?.record !== record) return;
    this.heldNotifications.delete(order);
    this.notifier.deliver(held.mchid, held.record);
  }

  // ---------------------------------------------------------------- payer actions (control API / payer page)

  payOrder(order: Order, claimedAmount?: number): { ok: true } | { ok: false; error: string } {
    if (isPaid(order)) return { ok: true };
    if (order.trade_state === 'CLOSED' || order.trade_state === 'REVOKED') return { ok: false, error: 'ORDER_CLOSED' };
    if (order.time_expire && Date.parse(order.time_expire) < Date.now()) return { ok: false, error: 'ORDER_EXPIRED' };
    order.trade_state = 'SUCCESS';
    order.success_time = chinaTime(new Date());
    if (order.notify_url) {
      const tampered = this.faults.tamper_notify_amount ? (claimedAmount ?? order.total + 1) : undefined;
      this.notify(order, order.notify_url, 'TRANSACTION.SUCCESS', '支付成功', 'transaction', transactionResource(order, tampered));
    }
    return { ok: true };
  }

  failOrder(order: Order): { ok: true } | { ok: false; error: string } {
    if (isPaid(order)) return { ok: false, error: 'ORDERPAID' };
    // A micropay payer who fails to enter the password ends in PAYERROR; other payers just leave and the order closes.
    // WeChat sends no notification for either.
    if (order.trade_state === 'NOTPAY' || order.trade_state === 'USERPAYING') order.trade_state = order.trade_type === 'MICROPAY' ? 'PAYERROR' : 'CLOSED';
    return { ok: true };
  }

  resendLatest(order: Order): NotificationRecord | undefined {
    const latest = order.notifications.at(-1);
    if (!latest) return undefined;
    latest.acknowledged = false;
    this.notifier.deliver(order.signerMchid, latest);
    return latest;
  }

  /** Sends a WECHATPAY/SIGNTEST/ probe: a notification whose signature must fail verification. */
  async probe(url: string, mchid: string): Promise<number | null> {
    const body = JSON.stringify({
      id: randomUUID(),
      create_time: chinaTime(new Date()),
      resource_type: 'encrypt-resource',
      event_type: 'TRANSACTION.SUCCESS',
      summary: '支付成功',
      resource: { original_type: 'transaction', algorithm: 'AEAD_AES_256_GCM', ciphertext: randomBytes(48).toString('base64'), associated_data: 'transaction', nonce: randomNonce(12) },
    });
    const headers = this.signatureHeaders(mchid, body);
    headers['Wechatpay-Signature'] = `WECHATPAY/SIGNTEST/${randomBytes(256).toString('base64')}`;
    return this.notifier.postOnce(url, body, headers);
  }

  orderView(order: Order): Json {
    return {
      out_trade_no: order.out_trade_no,
      transaction_id: order.transaction_id,
      mode: order.mode,
      mchid: order.mchid,
      ...(order.sub_mchid ? { sub_mchid: order.sub_mchid } : {}),
      trade_type: order.trade_type,
      status: order.trade_state,
      amount_fen: order.total,
      refunded_fen: refundedTotal(order, false),
      notify_url: order.notify_url ?? null,
      create_time: order.create_time,
      success_time: order.success_time ?? null,
      refunds: order.refunds.map((refund) => ({ ...refund })),
      notifications: order.notifications.map(({ id, event_type, url, attempts, acknowledged, dropped, plaintext }) => ({ id, event_type, url, attempts, acknowledged, dropped, plaintext })),
    };
  }

  // ---------------------------------------------------------------- control API

  private handleControl(ctx: RequestContext): ApiResponse {
    const control = (status: number, value: unknown): ApiResponse => ({ status, body: JSON.stringify(value), sign: false });
    const html = (status: number, page: string): ApiResponse => ({ status, body: page, contentType: 'text/html; charset=utf-8', sign: false });
    const { method, path } = ctx;
    let match: RegExpExecArray | null;

    if (path === '/__sim/faults') {
      if (method === 'GET') return control(200, this.faults);
      if (method === 'DELETE') {
        this.faults = defaultFaults();
        return control(200, this.faults);
      }
      if (method === 'PUT') {
        const parsed = parseFaults(safeJson(ctx.body));
        if (typeof parsed === 'string') return control(400, { error: parsed });
        this.faults = parsed;
        return control(200, this.faults);
      }
    }
    if (method === 'GET' && path === '/__sim/orders') return control(200, [...this.orders.values()].map((order) => this.orderView(order)));
    if ((match = /^\/__sim\/orders\/([^/]+)(?:\/(pay|fail|notify))?$/.exec(path))) {
      const order = this.findOrderByOutTradeNo(decodeURIComponent(match[1]));
      const fromForm = (ctx.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
      if (!order) return fromForm ? html(404, resultPage('订单不存在', null)) : control(404, { error: 'ORDERNOTEXIST' });
      const action = match[2];
      if (!action && method === 'GET') return control(200, this.orderView(order));
      if (action && method === 'POST') {
        let outcome: { ok: true } | { ok: false; error: string };
        if (action === 'notify') {
          outcome = this.resendLatest(order) ? { ok: true } : { ok: false, error: 'NO_NOTIFICATION' };
        } else if (action === 'pay') {
          const requested = safeJson(ctx.body);
          const amount = isObject(requested) && typeof requested.amount === 'number' ? requested.amount : undefined;
          outcome = this.payOrder(order, amount);
        } else {
          outcome = this.failOrder(order);
        }
        if (fromForm) return html(outcome.ok ? 200 : 409, resultPage(outcome.ok ? (action === 'pay' ? '支付成功' : '已放弃支付') : outcome.error, order));
        return control(outcome.ok ? 200 : 409, outcome.ok ? this.orderView(order) : { error: outcome.error, order: this.orderView(order) });
      }
    }
    if (method === 'POST' && path === '/__sim/probe') {
      const requested = safeJson(ctx.body);
      const url = isObject(requested) ? str(requested.url) : undefined;
      if (!url) return control(400, { error: 'url is required' });
      const mchid = isObject(requested) && str(requested.mchid) ? (requested.mchid as string) : this.config.keys.merchants[0].identity.mchid;
      // The probe is fire-and-forget for the caller; its outcome is logged.
      void this.probe(url, mchid).then((status) => this.config.log({ msg: 'wechatpay probe sent', url, status }));
      return control(202, { sent: true, url });
    }
    if (method === 'GET' && path === '/__sim/merchants') {
      return control(200, this.config.keys.merchants.map((merchant) => ({ mchid: merchant.identity.mchid, verification_mode: this.verificationModes.get(merchant.identity.mchid) })));
    }
    if ((match = /^\/__sim\/merchants\/([^/]+)\/verification-mode$/.exec(path))) {
      const merchant = this.merchant(decodeURIComponent(match[1]));
      if (!merchant) return control(404, { error: 'unknown mchid' });
      if (method === 'GET') return control(200, { mchid: merchant.identity.mchid, mode: this.verificationModes.get(merchant.identity.mchid) });
      if (method === 'PUT') {
        const requested = safeJson(ctx.body);
        const mode = isObject(requested) ? requested.mode : undefined;
        if (mode !== 'platform_certificate' && mode !== 'public_key') return control(400, { error: 'mode must be platform_certificate or public_key' });
        this.verificationModes.set(merchant.identity.mchid, mode);
        return control(200, { mchid: merchant.identity.mchid, mode });
      }
    }
    // Payer pages: QR content (weixin://wxpay/bizpayurl?pr=…), H5 checkmweb, JSAPI/APP prepay ids, plain order numbers.
    if (method === 'GET') {
      let order: Order | undefined;
      if (path === '/__sim/bizpayurl') order = [...this.orders.values()].find((candidate) => candidate.code_url?.endsWith(`pr=${ctx.query.get('pr')}`));
      else if (path === '/cgi-bin/mmpayweb-bin/checkmweb' || path === '/__sim/prepay') order = [...this.orders.values()].find((candidate) => candidate.prepay_id === ctx.query.get('prepay_id'));
      else if ((match = /^\/__sim\/pay\/([^/]+)$/.exec(path))) order = this.findOrderByOutTradeNo(decodeURIComponent(match[1]));
      else return control(404, { error: 'not found' });
      return order ? html(200, payerPage(order)) : html(404, resultPage('订单不存在', null));
    }
    return control(404, { error: 'not found' });
  }
}

function safeJson(text: string): unknown {
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
