/**
 * Alipay's side of the OpenAPI: common-parameter checks, signature verification, the trade methods and the
 * state changes behind them. HTTP framing lives in index.ts.
 */
import type { KeyObject } from 'node:crypto';
import type { FaultSet } from '../../../core/index.js';
import type { AlipayAppAuthGrant } from './keys.js';
import { buildNotificationParams, type NotificationEvent, type Notifier } from './notifier.js';
import {
  buildSignContent, formatChinaDate, formatChinaTime, formatFenAsYuan, parseChinaTime, parseYuanToFen,
  REQUEST_SIGN_EXCLUDED, responseKeyFor, verifyRsa2, type ParamMap,
} from './signing.js';
import {
  type Trade, type TradeOrigin, TradeStore, isPaid, newBuyer, newToken, newTradeNo, refundedFen,
} from './state.js';
import { buildTradeBill, type TradeBill } from './bill.js';

export type ResponseBody = Record<string, unknown>;

export const SUPPORTED_METHODS = [
  'alipay.trade.precreate', 'alipay.trade.page.pay', 'alipay.trade.wap.pay', 'alipay.trade.app.pay',
  'alipay.trade.pay', 'alipay.trade.create', 'alipay.trade.query', 'alipay.trade.close', 'alipay.trade.cancel',
  'alipay.trade.refund', 'alipay.trade.fastpay.refund.query', 'alipay.data.dataservice.bill.downloadurl.query',
] as const;
export type SupportedMethod = (typeof SUPPORTED_METHODS)[number];

/** Methods the payer's browser (or app) submits; they show the cashier instead of answering JSON. */
export const BROWSER_METHODS: readonly string[] = ['alipay.trade.page.pay', 'alipay.trade.wap.pay', 'alipay.trade.app.pay'];

/** Distinguishes a trade from an error response body (both are plain objects). */
export function isTrade(value: Trade | ResponseBody): value is Trade {
  return Array.isArray((value as Trade).refunds) && typeof (value as Trade).simId === 'string';
}

export function ok(fields: ResponseBody = {}): ResponseBody {
  return { code: '10000', msg: 'Success', ...fields };
}

export function bizError(subCode: string, subMsg: string, fields: ResponseBody = {}): ResponseBody {
  return { code: '40004', msg: 'Business Failed', sub_code: subCode, sub_msg: subMsg, ...fields };
}

function missing(subCode: string, subMsg: string): ResponseBody {
  return { code: '40001', msg: 'Missing Required Arguments', sub_code: subCode, sub_msg: subMsg };
}

function invalid(subCode: string, subMsg: string): ResponseBody {
  return { code: '40002', msg: 'Invalid Arguments', sub_code: subCode, sub_msg: subMsg };
}

/** The real answer to a system failure: HTTP 200 with code 20000 (fault `http_5xx`). */
export function systemError(): ResponseBody {
  return { code: '20000', msg: 'Service Currently Unavailable', sub_code: 'isp.unknow-error', sub_msg: '系统繁忙' };
}

const TRADE_NOT_EXIST = () => bizError('ACQ.TRADE_NOT_EXIST', '交易不存在');
const INVALID_PARAMETER = (detail?: string) => bizError('ACQ.INVALID_PARAMETER', detail ? `参数无效：${detail}` : '参数无效');

export interface Caller {
  appId: string;
  /** The app the trade is made for (the sub-merchant's app in ISV mode). */
  authAppId: string;
  sellerId: string;
}

export type Authentication =
  | { ok: true; method: string; caller: Caller; biz: Record<string, unknown>; params: ParamMap }
  | { ok: false; responseKey: string; body: ResponseBody; signed: boolean };

export interface ChannelConfig {
  appId: string;
  sellerId: string;
  appPublicKey: KeyObject;
  alipayPrivateKey: KeyObject;
  grants: AlipayAppAuthGrant[];
  baseUrl: () => string;
  faults: () => FaultSet;
  notifier: Notifier;
  /** Delay after which an `alipay.trade.pay` waiting for the user (auth_code 27...) settles by itself. */
  userPayingSettleMs: number;
  schedule: (delayMs: number, run: () => void) => void;
  log: (line: Record<string, unknown>) => void;
}

export interface IssuedBill {
  bill: TradeBill;
  expiresAt: number;
}

export class AlipayChannel {
  readonly store = new TradeStore();
  readonly bills = new Map<string, IssuedBill>();

  constructor(private readonly config: ChannelConfig) {}

  // ---------- common parameters and signature ----------

  authenticate(params: ParamMap): Authentication {
    const method = params.method;
    const known = params.app_id === this.config.appId;
    const fail = (responseKey: string, body: ResponseBody, signed = known): Authentication =>
      ({ ok: false, responseKey, body, signed });
    if (!method) return fail('error_response', missing('isv.missing-method', '缺少方法名参数'));
    if (!params.app_id) return fail('error_response', missing('isv.missing-app-id', '缺少appId参数'));
    if (!known) return fail(responseKeyFor(method), invalid('isv.invalid-app-id', '无效的AppID参数'), false);
    if (!(SUPPORTED_METHODS as readonly string[]).includes(method)) {
      return fail('error_response', invalid('isv.invalid-method', '不存在的方法名'));
    }
    const key = responseKeyFor(method);
    if (params.charset && !/^utf-?8$/i.test(params.charset)) return fail(key, invalid('isv.invalid-charset', '字符集错误'));
    if (params.format && params.format.toUpperCase() !== 'JSON') return fail(key, invalid('isv.invalid-format', '无效的数据格式'));
    if (!params.sign_type) return fail(key, missing('isv.missing-signature-type', '缺少签名类型参数'));
    if (params.sign_type !== 'RSA2') return fail(key, invalid('isv.invalid-signature-type', '无效的签名类型'));
    if (!params.sign) return fail(key, missing('isv.missing-signature', '缺少签名参数'));
    if (!params.timestamp) return fail(key, missing('isv.missing-timestamp', '缺少时间戳参数'));
    if (!parseChinaTime(params.timestamp)) return fail(key, invalid('isv.invalid-timestamp', '非法的时间戳参数'));
    if (!params.version) return fail(key, missing('isv.missing-version', '缺少版本参数'));

    const content = buildSignContent(params, REQUEST_SIGN_EXCLUDED);
    if (!verifyRsa2(content, params.sign, this.config.appPublicKey)) {
      // The real gateway echoes the string it verified, HTML-escaped.
      const echoed = content.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
      return fail(key, invalid('isv.invalid-signature',
        `验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：${echoed}`));
    }

    let caller: Caller = { appId: this.config.appId, authAppId: this.config.appId, sellerId: this.config.sellerId };
    if (params.app_auth_token) {
      const grant = this.config.grants.find((g) => g.appAuthToken === params.app_auth_token);
      if (!grant) {
        return fail(key, { code: '20001', msg: 'Insufficient Token Permissions', sub_code: 'aop.invalid-app-auth-token', sub_msg: '无效的应用授权令牌' });
      }
      caller = { appId: this.config.appId, authAppId: grant.authAppId, sellerId: grant.sellerId };
    }

    let biz: Record<string, unknown> = {};
    if (params.biz_content) {
      try {
        const parsed: unknown = JSON.parse(params.biz_content);
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
        biz = parsed as Record<string, unknown>;
      } catch {
        return fail(key, invalid('isv.invalid-parameter', '参数无效'));
      }
    }
    return { ok: true, method, caller, biz, params };
  }

  // ---------- server-to-server methods ----------

  execute(method: string, caller: Caller, biz: Record<string, unknown>, params: ParamMap): ResponseBody {
    switch (method as SupportedMethod) {
      case 'alipay.trade.precreate': return this.precreate(caller, biz, params);
      case 'alipay.trade.pay': return this.barcodePay(caller, biz, params);
      case 'alipay.trade.create': return this.create(caller, biz, params);
      case 'alipay.trade.query': return this.query(caller, biz);
      case 'alipay.trade.close': return this.close(caller, biz);
      case 'alipay.trade.cancel': return this.cancel(caller, biz);
      case 'alipay.trade.refund': return this.refund(caller, biz);
      case 'alipay.trade.fastpay.refund.query': return this.refundQuery(caller, biz);
      case 'alipay.data.dataservice.bill.downloadurl.query': return this.billDownloadUrl(caller, biz);
      default:
        // page/wap/app pay are not answered with JSON; index.ts routes them to the cashier.
        return invalid('isv.invalid-method', '不存在的方法名');
    }
  }

  /** Validates the order fields shared by all ways of creating a trade. */
  private orderFields(biz: Record<string, unknown>):
    { error: ResponseBody } | { error: null; outTradeNo: string; totalFen: number; subject: string } {
    const fail = (error: ResponseBody) => ({ error });
    const outTradeNo = typeof biz.out_trade_no === 'string' ? biz.out_trade_no.trim() : '';
    if (!outTradeNo || outTradeNo.length > 64) return fail(INVALID_PARAMETER('out_trade_no'));
    if (biz.total_amount === undefined) return fail(INVALID_PARAMETER('total_amount'));
    const totalFen = parseYuanToFen(biz.total_amount);
    if (totalFen === null) return fail(INVALID_PARAMETER('订单总金额格式错误'));
    if (totalFen < 1 || totalFen > 100_000_000_00) return fail(bizError('ACQ.TOTAL_FEE_EXCEED', '订单金额超过限额'));
    const subject = typeof biz.subject === 'string' ? biz.subject : '';
    if (!subject) return fail(INVALID_PARAMETER('subject'));
    return { error: null, outTradeNo, totalFen, subject };
  }

  /**
   * Finds or creates the trade for an order request. Re-submitting the same out_trade_no with the same
   * amount and subject is allowed while unpaid; different parameters are ACQ.CONTEXT_INCONSISTENT.
   */
  openTrade(caller: Caller, biz: Record<string, unknown>, params: ParamMap, origin: TradeOrigin, productCode: string): Trade | ResponseBody {
    const fields = this.orderFields(biz);
    if (fields.error) return fields.error;
    const fingerprint = `${fields.totalFen}|${fields.subject}`;
    const existing = this.store.get(caller.sellerId, fields.outTradeNo);
    if (existing) {
      if (existing.status === 'TRADE_SUCCESS' || existing.status === 'TRADE_FINISHED') return bizError('ACQ.TRADE_HAS_SUCCESS', '交易已被支付');
      if (existing.status === 'TRADE_CLOSED') return bizError('ACQ.TRADE_HAS_CLOSE', '交易已经关闭');
      if (existing.fingerprint !== fingerprint) return bizError('ACQ.CONTEXT_INCONSISTENT', '交易信息被篡改');
      if (params.notify_url) existing.notifyUrl = params.notify_url;
      if (params.return_url) existing.returnUrl = params.return_url;
      return existing;
    }
    const trade: Trade = {
      simId: newToken(),
      appId: caller.appId,
      authAppId: caller.authAppId,
      sellerId: caller.sellerId,
      outTradeNo: fields.outTradeNo,
      origin,
      productCode,
      subject: fields.subject,
      body: typeof biz.body === 'string' ? biz.body : undefined,
      totalFen: fields.totalFen,
      passbackParams: typeof biz.passback_params === 'string' ? biz.passback_params : undefined,
      fingerprint,
      exists: origin !== 'precreate',
      status: 'WAIT_BUYER_PAY',
      notifyUrl: params.notify_url || undefined,
      returnUrl: params.return_url || undefined,
      gmtCreate: new Date(),
      refunds: [],
      notifications: [],
    };
    if (trade.exists) trade.tradeNo = newTradeNo(trade.gmtCreate);
    this.store.add(trade);
    this.config.log({ event: 'trade_created', out_trade_no: trade.outTradeNo, origin, total_fen: trade.totalFen });
    return trade;
  }

  private precreate(caller: Caller, biz: Record<string, unknown>, params: ParamMap): ResponseBody {
    const trade = this.openTrade(caller, biz, params, 'precreate', 'FACE_TO_FACE_PAYMENT');
    if (!isTrade(trade)) return trade;
    trade.qrToken ??= newToken();
    return ok({ out_trade_no: trade.outTradeNo, qr_code: `${this.config.baseUrl()}/__sim/qr/${trade.qrToken}` });
  }

  private create(caller: Caller, biz: Record<string, unknown>, params: ParamMap): ResponseBody {
    const trade = this.openTrade(caller, biz, params, 'create', String(biz.product_code ?? 'FACE_TO_FACE_PAYMENT'));
    if (!isTrade(trade)) return trade;
    return ok({ out_trade_no: trade.outTradeNo, trade_no: trade.tradeNo });
  }

  private paymentFields(trade: Trade): ResponseBody {
    const paid = formatFenAsYuan(trade.totalFen);
    return {
      trade_no: trade.tradeNo,
      out_trade_no: trade.outTradeNo,
      buyer_logon_id: trade.buyerLogonId,
      total_amount: formatFenAsYuan(trade.totalFen),
      receipt_amount: paid,
      buyer_pay_amount: paid,
      point_amount: '0.00',
      invoice_amount: paid,
      gmt_payment: trade.gmtPayment ? formatChinaTime(trade.gmtPayment) : undefined,
      fund_bill_list: [{ fund_channel: 'ALIPAYACCOUNT', amount: paid }],
      buyer_user_id: trade.buyerId,
    };
  }

  /**
   * Bar-code payment. Test auth codes: "28..." pays at once, "27..." waits for the payer (10003) and settles
   * after userPayingSettleMs (or via the control API), "25..." (and anything else) is an invalid code.
   */
  private barcodePay(caller: Caller, biz: Record<string, unknown>, params: ParamMap): ResponseBody {
    const scene = biz.scene ?? 'bar_code';
    if (scene !== 'bar_code' && scene !== 'wave_code') return INVALID_PARAMETER('scene');
    const authCode = typeof biz.auth_code === 'string' ? biz.auth_code : '';
    if (!authCode) return INVALID_PARAMETER('auth_code');
    if (!/^(28|27)\d{14,22}$/.test(authCode)) {
      return bizError('ACQ.PAYMENT_AUTH_CODE_INVALID', '支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款，如再次收款失败，请联系管理员处理。[SOUNDWAVE_PARSER_FAIL]');
    }
    const trade = this.openTrade(caller, biz, params, 'barcode', 'FACE_TO_FACE_PAYMENT');
    if (!isTrade(trade)) return trade;
    if (authCode.startsWith('28')) {
      this.pay(trade);
      return ok(this.paymentFields(trade));
    }
    Object.assign(trade, newBuyer());
    this.config.schedule(this.config.userPayingSettleMs, () => {
      if (trade.status === 'WAIT_BUYER_PAY') this.pay(trade);
    });
    return {
      code: '10003', msg: ' order success pay inprocess',
      trade_no: trade.tradeNo, out_trade_no: trade.outTradeNo, buyer_logon_id: trade.buyerLogonId,
      total_amount: formatFenAsYuan(trade.totalFen), receipt_amount: '0.00', buyer_pay_amount: '0.00',
      invoice_amount: '0.00', buyer_user_id: trade.buyerId,
    };
  }

  private findTrade(caller: Caller, biz: Record<string, unknown>): Trade | ResponseBody {
    const tradeNo = typeof biz.trade_no === 'string' ? biz.trade_no : '';
    const outTradeNo = typeof biz.out_trade_no === 'string' ? biz.out_trade_no : '';
    if (!tradeNo && !outTradeNo) return INVALID_PARAMETER('out_trade_no和trade_no不能同时为空');
    // trade_no takes precedence when both are given.
    const trade = tradeNo ? this.store.byTradeNo(caller.sellerId, tradeNo) : this.store.get(caller.sellerId, outTradeNo);
    if (!trade || !trade.exists) return TRADE_NOT_EXIST();
    return trade;
  }

  private query(caller: Caller, biz: Record<string, unknown>): ResponseBody {
    const trade = this.findTrade(caller, biz);
    if (!isTrade(trade)) return trade;
    const paid = isPaid(trade) ? formatFenAsYuan(trade.totalFen) : '0.00';
    return ok({
      trade_no: trade.tradeNo,
      out_trade_no: trade.outTradeNo,
      buyer_logon_id: trade.buyerLogonId,
      trade_status: trade.status,
      total_amount: formatFenAsYuan(trade.totalFen),
      buyer_pay_amount: paid,
      point_amount: '0.00',
      invoice_amount: paid,
      receipt_amount: paid,
      send_pay_date: trade.gmtPayment ? formatChinaTime(trade.gmtPayment) : undefined,
      fund_bill_list: isPaid(trade) ? [{ fund_channel: 'ALIPAYACCOUNT', amount: paid }] : undefined,
      buyer_user_id: trade.buyerId,
      subject: trade.subject,
    });
  }

  private close(caller: Caller, biz: Record<string, unknown>): ResponseBody {
    const trade = this.findTrade(caller, biz);
    if (!isTrade(trade)) return trade;
    if (trade.status !== 'WAIT_BUYER_PAY') return bizError('ACQ.TRADE_STATUS_ERROR', '交易状态不合法');
    this.closeUnpaid(trade);
    return ok({ trade_no: trade.tradeNo, out_trade_no: trade.outTradeNo });
  }

  /** Cancel (reverse): closes an unpaid trade, fully refunds a paid one. */
  private cancel(caller: Caller, biz: Record<string, unknown>): ResponseBody {
    const trade = this.findTrade(caller, biz);
    if (!isTrade(trade)) return trade;
    if (trade.status === 'WAIT_BUYER_PAY') {
      this.closeUnpaid(trade);
      return ok({ trade_no: trade.tradeNo, out_trade_no: trade.outTradeNo, retry_flag: 'N', action: 'close' });
    }
    if (trade.status === 'TRADE_FINISHED') return bizError('ACQ.TRADE_HAS_FINISHED', '交易已经完结');
    if (trade.status === 'TRADE_CLOSED') {
      return ok({ trade_no: trade.tradeNo, out_trade_no: trade.outTradeNo, retry_flag: 'N', action: refundedFen(trade) > 0 ? 'refund' : 'close' });
    }
    if (refundedFen(trade) > 0) return bizError('ACQ.REASON_TRADE_REFUND_FEE_ERR', '退款金额无效');
    this.applyRefund(trade, trade.outTradeNo, trade.totalFen, 'cancel');
    return ok({ trade_no: trade.tradeNo, out_trade_no: trade.outTradeNo, retry_flag: 'N', action: 'refund',
      gmt_refund_pay: formatChinaTime(new Date()) });
  }

  private refund(caller: Caller, biz: Record<string, unknown>): ResponseBody {
    const trade = this.findTrade(caller, biz);
    if (!isTrade(trade)) return trade;
    const refundFen = parseYuanToFen(biz.refund_amount);
    if (refundFen === null) return INVALID_PARAMETER('refund_amount');
    if (refundFen <= 0) return bizError('ACQ.REASON_TRADE_REFUND_FEE_ERR', '退款金额无效');
    const explicitRequestNo = typeof biz.out_request_no === 'string' && biz.out_request_no !== '';
    // Without out_request_no the refund is identified by the trade itself (a full refund).
    const outRequestNo = explicitRequestNo ? String(biz.out_request_no) : trade.outTradeNo;
    const idFields = { trade_no: trade.tradeNo, out_trade_no: trade.outTradeNo };

    const previous = trade.refunds.find((r) => r.outRequestNo === outRequestNo);
    if (previous) {
      if (previous.refundFen !== refundFen) return bizError('ACQ.DISCORDANT_REPEAT_REQUEST', '不一致的请求', idFields);
      // Same request again: answered as success without moving money.
      return ok({ ...idFields, buyer_logon_id: trade.buyerLogonId, buyer_user_id: trade.buyerId, fund_change: 'N',
        refund_fee: formatFenAsYuan(refundedFen(trade)), gmt_refund_pay: formatChinaTime(previous.gmtRefund) });
    }
    if (trade.status === 'WAIT_BUYER_PAY') return bizError('ACQ.TRADE_STATUS_ERROR', '交易状态不合法', idFields);
    if (trade.status === 'TRADE_FINISHED') return bizError('ACQ.TRADE_HAS_FINISHED', '交易已完结', idFields);
    if (trade.status === 'TRADE_CLOSED') return bizError('ACQ.TRADE_HAS_CLOSE', '交易已经关闭', idFields);
    const zero = { refund_fee: '0.00', send_back_fee: '0.00' };
    if (!explicitRequestNo && refundFen !== trade.totalFen) {
      return bizError('ACQ.REFUND_AMT_NOT_EQUAL_TOTAL', '撤销或退款金额与订单金额不一致', { ...idFields, ...zero });
    }
    if (refundFen > trade.totalFen - refundedFen(trade)) {
      return bizError('ACQ.REFUND_AMT_NOT_EQUAL_TOTAL', '退款金额超限', { ...idFields, ...zero });
    }
    const record = this.applyRefund(trade, outRequestNo, refundFen, typeof biz.refund_reason === 'string' ? biz.refund_reason : undefined);
    return ok({ ...idFields, buyer_logon_id: trade.buyerLogonId, buyer_user_id: trade.buyerId, fund_change: 'Y',
      refund_fee: formatFenAsYuan(refundedFen(trade)), gmt_refund_pay: formatChinaTime(record.gmtRefund) });
  }

  private refundQuery(caller: Caller, biz: Record<string, unknown>): ResponseBody {
    const outRequestNo = typeof biz.out_request_no === 'string' ? biz.out_request_no : '';
    if (!outRequestNo) return INVALID_PARAMETER('out_request_no');
    const trade = this.findTrade(caller, biz);
    if (!isTrade(trade)) return trade;
    const refund = trade.refunds.find((r) => r.outRequestNo === outRequestNo);
    // An unknown refund is still code 10000, just without refund data: callers must check refund_status.
    if (!refund) return ok({ trade_no: trade.tradeNo, out_trade_no: trade.outTradeNo, out_request_no: outRequestNo });
    const options = Array.isArray(biz.query_options) ? biz.query_options : [];
    return ok({
      trade_no: trade.tradeNo,
      out_trade_no: trade.outTradeNo,
      out_request_no: outRequestNo,
      total_amount: formatFenAsYuan(trade.totalFen),
      refund_amount: formatFenAsYuan(refund.refundFen),
      refund_status: 'REFUND_SUCCESS',
      refund_reason: refund.reason,
      gmt_refund_pay: options.includes('gmt_refund_pay') ? formatChinaTime(refund.gmtRefund) : undefined,
    });
  }

  private billDownloadUrl(caller: Caller, biz: Record<string, unknown>): ResponseBody {
    const billType = biz.bill_type;
    const billDate = typeof biz.bill_date === 'string' ? biz.bill_date : '';
    if (billType !== 'trade' && billType !== 'signcustomer') return invalid('isv.invalid-parameter', '参数无效');
    if (billType !== 'trade') return bizError('isp.bill_not_exist', '账单不存在');
    if (!/^\d{4}-\d{2}-\d{2}$/.test(billDate) || Number.isNaN(Date.parse(`${billDate}T00:00:00Z`))) {
      return invalid('isv.invalid-parameter', '参数无效');
    }
    const now = new Date();
    // Deviation: real bills exist from the next day on; the sandbox also serves today's (partial) bill.
    if (billDate > formatChinaDate(now)) return bizError('isp.bill_not_exist', '账单不存在');
    const bill = buildTradeBill(this.store.all(), caller.sellerId, billDate, now);
    const fileId = newToken();
    this.bills.set(fileId, { bill, expiresAt: now.getTime() + 30_000 });
    const query = new URLSearchParams({
      bizType: 'trade', userId: caller.sellerId, fileType: 'csv.zip', bizDates: billDate.replace(/-/g, ''),
      downloadFileName: bill.zipName, fileId,
    });
    return ok({ bill_download_url: `${this.config.baseUrl()}/downloadBillFile.resource?${query.toString()}` });
  }

  // ---------- state changes (also used by the payer page and the control API) ----------

  private notify(trade: Trade, event: NotificationEvent): void {
    const faults = this.config.faults();
    const params = buildNotificationParams(trade, event, faults, this.config.alipayPrivateKey, new Date());
    this.config.notifier.dispatch(trade, params, event.kind, faults);
  }

  /** The precreate QR code was scanned: the trade now exists at Alipay. */
  markScanned(trade: Trade): void {
    if (trade.exists) return;
    trade.exists = true;
    trade.tradeNo = newTradeNo(new Date());
  }

  /** The payer pays. Returns an error text when the trade cannot be paid. */
  pay(trade: Trade, tamperedFen?: number): string | null {
    if (trade.status === 'TRADE_CLOSED') return 'trade is closed';
    if (isPaid(trade)) return null;
    this.markScanned(trade);
    if (!trade.buyerId) Object.assign(trade, newBuyer());
    trade.gmtPayment = new Date();
    trade.status = 'TRADE_SUCCESS';
    this.config.log({ event: 'trade_paid', out_trade_no: trade.outTradeNo, trade_no: trade.tradeNo });
    this.notify(trade, { kind: 'payment', tamperedFen });
    return null;
  }

  /** The payer gives up / the trade times out: closed, with a TRADE_CLOSED notification if it existed. */
  fail(trade: Trade): string | null {
    if (isPaid(trade)) return 'trade is already paid';
    if (trade.status === 'TRADE_CLOSED') return null;
    this.closeUnpaid(trade);
    return null;
  }

  private closeUnpaid(trade: Trade): void {
    trade.status = 'TRADE_CLOSED';
    trade.gmtClose = new Date();
    // An unscanned precreate never existed at Alipay, so nobody is told about it.
    if (trade.exists) this.notify(trade, { kind: 'close' });
  }

  private applyRefund(trade: Trade, outRequestNo: string, refundFen: number, reason?: string) {
    const record = { outRequestNo, refundFen, reason, gmtRefund: new Date() };
    trade.refunds.push(record);
    const full = refundedFen(trade) >= trade.totalFen;
    if (full) {
      // Fully refunded trades become TRADE_CLOSED; partial refunds keep TRADE_SUCCESS.
      trade.status = 'TRADE_CLOSED';
      trade.gmtClose = record.gmtRefund;
    }
    this.notify(trade, { kind: full ? 'close' : 'refund', outRequestNo, gmtRefund: record.gmtRefund });
    return record;
  }

  /** Parameters Alipay appends to return_url after a page/wap payment (signed like notifications). */
  returnParams(trade: Trade): ParamMap {
    const method = trade.origin === 'wap' ? 'alipay.trade.wap.pay.return' : 'alipay.trade.page.pay.return';
    return {
      charset: 'utf-8',
      out_trade_no: trade.outTradeNo,
      method,
      total_amount: formatFenAsYuan(trade.totalFen),
      trade_no: trade.tradeNo ?? '',
      auth_app_id: trade.authAppId,
      version: '1.0',
      app_id: trade.appId,
      sign_type: 'RSA2',
      seller_id: trade.sellerId,
      timestamp: formatChinaTime(new Date()),
    };
  }
}
