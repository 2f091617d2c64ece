/**
 * The simulated UnionPay online gateway: transactions, request handling per endpoint, notifications, statements.
 * HTTP plumbing (Koa, faults on sockets) lives in app.ts; this module turns parsed request fields into
 * response fields or HTML.
 */
import { randomInt } from 'node:crypto';
import { defaultFaults, type FaultSet } from '../../../core/index.js';
import { RESP, withDetail } from './codes.js';
import type { UnionPayKeyMaterial } from './keys.js';
import { Notifier, type NotificationRecord } from './notifier.js';
import { corruptSignature, signFields, verifyFields, type AcpFields } from './signing.js';
import { buildStatementFile, type StatementEntry } from './statement.js';
import { formatTraceTime, formatTxnTime, resolveSettleDate, settleDateOf } from './time.js';
import { checkFields, RULES, type RespError } from './validation.js';

export type TxnKind = 'consume' | 'refund' | 'cancel';
/** pending: waiting for the payer; processing: refund/cancel accepted, result not yet known. */
export type TxnStatus = 'pending' | 'processing' | 'success' | 'failed';

export interface Txn {
  kind: TxnKind;
  /** How a consume was started: the browser form (frontTransReq, txnSubType 01) or a QR code (txnSubType 07). */
  entry: 'front' | 'qr' | 'back';
  merId: string;
  orderId: string;
  txnTime: string;
  txnType: string;
  txnSubType: string;
  bizType: string;
  channelType: string;
  accessType: string;
  currencyCode: string;
  txnAmt: number;
  backUrl?: string;
  frontUrl?: string;
  reqReserved?: string;
  queryId: string;
  status: TxnStatus;
  createdAt: Date;
  completedAt?: Date;
  traceNo?: string;
  traceTime?: string;
  /** yyyyMMdd clearing date. */
  settleDate?: string;
  accNo?: string;
  qrCode?: string;
  /** refund / cancel: the consume they refer to. */
  origQryId?: string;
  /** consume: its refunds and cancels, in order. */
  children: Txn[];
  notifications: NotificationRecord[];
}

export type GatewayResult =
  | { type: 'fields'; fields: AcpFields }
  | { type: 'html'; html: string; status?: number };

export interface GatewayConfig {
  keys: UnionPayKeyMaterial;
  merId: string;
  baseUrl: () => string;
  retryDelaysMs: number[];
  log: (line: Record<string, unknown>) => void;
}

/** The sandbox payer's card (UnionPay's published test debit card), masked as in notifications. */
const PAYER_ACC_NO_MASKED = '621626*********0018';
/** Refunds and cancels are asynchronous: accepted at once, completed (and notified) after this delay. */
const ASYNC_COMPLETION_DELAY_MS = 200;
const NOTIFY_RESP_MSG = 'Success!';

const ECHO_FIELDS = [
  'version', 'encoding', 'signMethod', 'txnType', 'txnSubType', 'bizType', 'accessType', 'merId', 'orderId', 'txnTime',
  'reqReserved',
] as const;

const txnKey = (orderId: string, txnTime: string): string => `${orderId}|${txnTime}`;

export class UnionPayGateway {
  faults: FaultSet = defaultFaults();
  readonly notifier: Notifier;
  private readonly txns = new Map<string, Txn>();
  private readonly byQueryId = new Map<string, Txn>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private queryIdCounter = randomInt(0, 500_000_000);
  private traceCounter = randomInt(100_000, 900_000);

  constructor(private readonly cfg: GatewayConfig) {
    this.notifier = new Notifier({ retryDelaysMs: cfg.retryDelaysMs, faults: () => this.faults, log: cfg.log });
  }

  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.notifier.close();
  }

  // ---- signing --------------------------------------------------------------------------------------------

  /** Adds signPubKeyCert and the signature (a wrong one under `corrupt_signature`). */
  sign(fields: AcpFields): AcpFields {
    const out: AcpFields = {};
    for (const [key, value] of Object.entries(fields)) if (value !== undefined && value !== '') out[key] = value;
    out.signPubKeyCert = this.cfg.keys.unionPaySignCertPem;
    delete out.signature;
    out.signature = this.faults.corrupt_signature
      ? corruptSignature(out, this.cfg.keys.unionPaySignKey)
      : signFields(out, this.cfg.keys.unionPaySignKey);
    return out;
  }

  private echo(request: AcpFields): AcpFields {
    const out: AcpFields = {};
    for (const key of ECHO_FIELDS) if (request[key]) out[key] = request[key];
    return out;
  }

  private errorFields(request: AcpFields, error: RespError): AcpFields {
    return this.sign({ ...this.echo(request), respCode: error.code, respMsg: error.msg });
  }

  /**
   * Checks the signing envelope (fields, certId, signature) and the merchant. Order follows the gateway: the
   * envelope must parse before the signature is checked, and only a verified request reaches business checks.
   */
  private authenticate(request: AcpFields): RespError | null {
    const envelope = checkFields(request, [
      RULES.version, RULES.encoding, RULES.signMethod, RULES.certId, RULES.signature, RULES.merId,
    ]);
    if (envelope) return envelope;
    if (request.certId !== this.cfg.keys.merchantCertId) return withDetail(RESP.BAD_SIGNATURE, 'certId');
    if (!verifyFields(request, this.cfg.keys.merchantPublicKey)) return { code: RESP.BAD_SIGNATURE.code, msg: RESP.BAD_SIGNATURE.msg };
    if (request.merId !== this.cfg.merId) return withDetail(RESP.BAD_MERCHANT, 'merId');
    return null;
  }

  // ---- endpoints ------------------------------------------------------------------------------------------

  /** POST /gateway/api/frontTransReq.do — the browser form; consume (01/01) shows the payer page. */
  front(request: AcpFields): GatewayResult {
    const error =
      this.authenticate(request) ??
      checkFields(request, [RULES.txnType, RULES.txnSubType, RULES.accessType]) ??
      (request.txnType === '01' && request.txnSubType === '01' ? null : withDetail(RESP.NO_PERMISSION, 'txnType/txnSubType')) ??
      this.checkConsume(request);
    if (error) return { type: 'html', html: errorPage(error), status: 200 };
    const txn = this.createTxn(request, 'consume', 'front');
    return { type: 'html', html: this.checkoutPage(txn) };
  }

  /** POST /gateway/api/backTransReq.do — QR consume (01/07), refund (04), cancel (31). */
  back(request: AcpFields): GatewayResult {
    const error = this.authenticate(request) ?? checkFields(request, [RULES.txnType, RULES.txnSubType, RULES.accessType]);
    if (error) return { type: 'fields', fields: this.errorFields(request, error) };
    const { txnType, txnSubType } = request;
    if (txnType === '01' && txnSubType === '07') return this.qrConsume(request);
    if (txnType === '04' && txnSubType === '00') return this.refundOrCancel(request, 'refund');
    if (txnType === '31' && txnSubType === '00') return this.refundOrCancel(request, 'cancel');
    return { type: 'fields', fields: this.errorFields(request, withDetail(RESP.NO_PERMISSION, 'txnType/txnSubType')) };
  }

  /** POST /gateway/api/queryTrans.do — txnType 00: respCode is about the query, origRespCode about the transaction. */
  query(request: AcpFields): GatewayResult {
    const error =
      this.authenticate(request) ??
      checkFields(request, [RULES.txnType, RULES.txnSubType, RULES.accessType, RULES.knownBizType, RULES.txnTime]) ??
      (request.txnType === '00' && request.txnSubType === '00' ? null : withDetail(RESP.NO_PERMISSION, 'txnType/txnSubType')) ??
      (request.queryId ? null : checkFields(request, [RULES.orderId]));
    if (error) return { type: 'fields', fields: this.errorFields(request, error) };
    const txn = request.queryId
      ? this.byQueryId.get(request.queryId)
      : this.txns.get(txnKey(request.orderId, request.txnTime));
    // An unpaid browser order has not reached UnionPay's transaction log yet: "查无此交易".
    if (!txn || txn.merId !== request.merId || (txn.entry === 'front' && txn.status === 'pending')) {
      return { type: 'fields', fields: this.errorFields(request, RESP.NOT_FOUND) };
    }
    const orig = origResult(txn);
    const fields: AcpFields = {
      ...this.echo(request),
      orderId: txn.orderId,
      txnTime: txn.txnTime,
      txnType: txn.txnType,
      txnSubType: txn.txnSubType,
      bizType: txn.bizType,
      respCode: RESP.SUCCESS.code,
      respMsg: RESP.SUCCESS.msg,
      origRespCode: orig.code,
      origRespMsg: orig.msg,
      queryId: txn.queryId,
      txnAmt: String(txn.txnAmt),
      currencyCode: txn.currencyCode,
      ...(txn.origQryId ? { origQryId: txn.origQryId } : {}),
      ...(txn.reqReserved ? { reqReserved: txn.reqReserved } : {}),
    };
    if (txn.status === 'success') Object.assign(fields, this.settlementFields(txn, txn.txnAmt));
    return { type: 'fields', fields: this.sign(fields) };
  }

  /** The file host (filedownload.95516.com `/`): txnType 76 merchant reconciliation file. */
  file(request: AcpFields): GatewayResult {
    const error =
      this.authenticate(request) ??
      checkFields(request, [
        RULES.txnType, RULES.txnSubType, RULES.fileBizType, RULES.accessType, RULES.txnTime, RULES.fileType, RULES.settleDate,
      ]) ??
      (request.txnType === '76' && request.txnSubType === '01' ? null : withDetail(RESP.NO_PERMISSION, 'txnType/txnSubType'));
    if (error) return { type: 'fields', fields: this.errorFields(request, error) };
    const base = { ...this.echo(request), settleDate: request.settleDate, fileType: request.fileType };
    const settleDate = resolveSettleDate(request.settleDate, new Date());
    const entries = settleDate ? this.statementEntries(request.merId, settleDate) : [];
    if (!settleDate || entries.length === 0) {
      return { type: 'fields', fields: this.sign({ ...base, respCode: RESP.FILE_NOT_FOUND.code, respMsg: RESP.FILE_NOT_FOUND.msg }) };
    }
    const file = buildStatementFile(request.merId, settleDate, entries);
    return {
      type: 'fields',
      fields: this.sign({
        ...base, respCode: RESP.SUCCESS.code, respMsg: RESP.SUCCESS.msg, fileName: file.fileName, fileContent: file.fileContent,
      }),
    };
  }

  // ---- business -------------------------------------------------------------------------------------------

  private checkConsume(request: AcpFields): RespError | null {
    return (
      checkFields(request, [
        RULES.consumeBizType, RULES.channelType, RULES.orderId, RULES.txnTime, RULES.txnAmt, RULES.currencyCode,
        RULES.backUrl, RULES.frontUrl,
      ]) ?? this.checkDuplicate(request)
    );
  }

  private checkDuplicate(request: AcpFields): RespError | null {
    return this.txns.has(txnKey(request.orderId, request.txnTime)) ? RESP.DUPLICATE : null;
  }

  private createTxn(request: AcpFields, kind: TxnKind, entry: Txn['entry']): Txn {
    const txn: Txn = {
      kind,
      entry,
      merId: request.merId,
      orderId: request.orderId,
      txnTime: request.txnTime,
      txnType: request.txnType,
      txnSubType: request.txnSubType,
      bizType: request.bizType,
      channelType: request.channelType,
      accessType: request.accessType,
      currencyCode: request.currencyCode || '156',
      txnAmt: Number(request.txnAmt),
      backUrl: request.backUrl,
      frontUrl: request.frontUrl || undefined,
      reqReserved: request.reqReserved || undefined,
      queryId: this.newQueryId(),
      status: kind === 'consume' ? 'pending' : 'processing',
      createdAt: new Date(),
      origQryId: request.origQryId || undefined,
      children: [],
      notifications: [],
    };
    this.txns.set(txnKey(txn.orderId, txn.txnTime), txn);
    this.byQueryId.set(txn.queryId, txn);
    this.cfg.log({ event: 'txn_created', kind, orderId: txn.orderId, txnTime: txn.txnTime, txnAmt: txn.txnAmt });
    return txn;
  }

  private qrConsume(request: AcpFields): GatewayResult {
    const error = this.checkConsume(request);
    if (error) return { type: 'fields', fields: this.errorFields(request, error) };
    const txn = this.createTxn(request, 'consume', 'qr');
    txn.qrCode = `${this.cfg.baseUrl()}/__sim/checkout/${txn.queryId}`;
    return {
      type: 'fields',
      fields: this.sign({ ...this.echo(request), respCode: RESP.SUCCESS.code, respMsg: RESP.SUCCESS.msg, qrCode: txn.qrCode }),
    };
  }

  private refundOrCancel(request: AcpFields, kind: 'refund' | 'cancel'): GatewayResult {
    const error =
      checkFields(request, [
        RULES.knownBizType, RULES.channelType, RULES.orderId, RULES.txnTime, RULES.txnAmt, RULES.optionalCurrencyCode,
        RULES.backUrl, RULES.origQryId,
      ]) ??
      this.checkDuplicate(request) ??
      this.checkRefundable(request, kind);
    if (error) return { type: 'fields', fields: this.errorFields(request, error) };
    const consume = this.byQueryId.get(request.origQryId)!;
    const txn = this.createTxn(request, kind, 'back');
    consume.children.push(txn);
    this.after(ASYNC_COMPLETION_DELAY_MS, () => this.completeAsync(txn, consume));
    return {
      type: 'fields',
      fields: this.sign({
        ...this.echo(request),
        respCode: RESP.SUCCESS.code,
        respMsg: RESP.SUCCESS.msg,
        queryId: txn.queryId,
        origQryId: consume.queryId,
        txnAmt: String(txn.txnAmt),
      }),
    };
  }

  private checkRefundable(request: AcpFields, kind: 'refund' | 'cancel'): RespError | null {
    const consume = this.byQueryId.get(request.origQryId);
    if (!consume || consume.kind !== 'consume' || consume.merId !== request.merId || consume.status !== 'success') {
      return withDetail(RESP.ORIG_INVALID, 'origQryId');
    }
    if (consume.children.some((child) => child.kind === 'cancel' && child.status !== 'failed')) {
      return withDetail(RESP.ORIG_INVALID, '原交易已撤销');
    }
    const amount = Number(request.txnAmt);
    if (kind === 'cancel') {
      // A cancel (消费撤销) reverses the whole consume on its clearing day only.
      if (consume.settleDate !== settleDateOf(new Date())) return withDetail(RESP.ORIG_INVALID, '非当日交易');
      if (consume.children.length > 0) return withDetail(RESP.ORIG_INVALID, '原交易已退货');
      if (amount !== consume.txnAmt) return withDetail(RESP.ORIG_MISMATCH, 'txnAmt');
      return null;
    }
    if (amount > refundableAmount(consume)) return withDetail(RESP.AMOUNT_EXCEEDED, 'txnAmt');
    return null;
  }

  private completeAsync(txn: Txn, consume: Txn): void {
    this.markSuccess(txn);
    const fields = this.sign({
      accessType: txn.accessType,
      bizType: txn.bizType,
      currencyCode: txn.currencyCode,
      encoding: 'utf-8',
      merId: txn.merId,
      orderId: txn.orderId,
      origQryId: consume.queryId,
      queryId: txn.queryId,
      respCode: RESP.SUCCESS.code,
      respMsg: NOTIFY_RESP_MSG,
      signMethod: '01',
      txnAmt: String(txn.txnAmt),
      txnSubType: txn.txnSubType,
      txnTime: txn.txnTime,
      txnType: txn.txnType,
      version: '5.1.0',
      ...this.settlementFields(txn, txn.txnAmt),
      ...(txn.reqReserved ? { reqReserved: txn.reqReserved } : {}),
    });
    this.sendNotification(consume, txn, fields);
  }

  private markSuccess(txn: Txn): void {
    const now = new Date();
    txn.status = 'success';
    txn.completedAt = now;
    this.traceCounter = this.traceCounter >= 999_999 ? 100_000 : this.traceCounter + 1;
    txn.traceNo = String(this.traceCounter);
    txn.traceTime = formatTraceTime(now);
    txn.settleDate = settleDateOf(now);
    txn.accNo = PAYER_ACC_NO_MASKED;
  }

  private settlementFields(txn: Txn, amount: number): AcpFields {
    return {
      settleAmt: String(amount),
      settleCurrencyCode: '156',
      settleDate: (txn.settleDate ?? '').slice(4),
      traceNo: txn.traceNo ?? '',
      traceTime: txn.traceTime ?? '',
      ...(txn.kind === 'consume' ? { accNo: txn.accNo ?? '', payCardType: '01', payType: '0001' } : {}),
    };
  }

  private sendNotification(family: Txn, txn: Txn, fields: AcpFields): void {
    if (!txn.backUrl) return;
    const records = this.notifier.notify(txnKey(family.orderId, family.txnTime), txn.orderId, txn.backUrl, fields);
    txn.notifications.push(...records);
  }

  /** The payer pays (control API or payer page). Returns the notification fields (also used for the front post). */
  pay(txn: Txn, tamperedAmount?: number): AcpFields | null {
    if (txn.kind !== 'consume' || txn.status !== 'pending') return null;
    this.markSuccess(txn);
    const amount = this.faults.tamper_notify_amount ? (tamperedAmount ?? txn.txnAmt + 1) : txn.txnAmt;
    const fields = this.sign({
      accessType: txn.accessType,
      bizType: txn.bizType,
      currencyCode: txn.currencyCode,
      encoding: 'utf-8',
      merId: txn.merId,
      orderId: txn.orderId,
      queryId: txn.queryId,
      respCode: RESP.SUCCESS.code,
      respMsg: NOTIFY_RESP_MSG,
      signMethod: '01',
      txnAmt: String(amount),
      txnSubType: txn.txnSubType,
      txnTime: txn.txnTime,
      txnType: txn.txnType,
      version: '5.1.0',
      ...this.settlementFields(txn, amount),
      ...(txn.reqReserved ? { reqReserved: txn.reqReserved } : {}),
    });
    this.sendNotification(txn, txn, fields);
    return fields;
  }

  /** The payment fails / the payer gives up. UnionPay sends no back notification for a failed payment. */
  fail(txn: Txn): boolean {
    if (txn.kind !== 'consume' || txn.status !== 'pending') return false;
    txn.status = 'failed';
    txn.completedAt = new Date();
    return true;
  }

  /** Resends the latest notification of the order family (the consume and its refunds). */
  resendLatest(txn: Txn): NotificationRecord | null {
    const all = [txn, ...txn.children].flatMap((t) => t.notifications.map((n) => ({ owner: t, n })));
    if (all.length === 0) return null;
    const latest = all.reduce((a, b) => (b.n.id > a.n.id ? b : a));
    const record = this.notifier.resend(latest.n);
    latest.owner.notifications.push(record);
    return record;
  }

  // ---- lookups & views ------------------------------------------------------------------------------------

  /** The most recent transaction with this merchant orderId (control API key). */
  findByOrderId(orderId: string): Txn | undefined {
    let found: Txn | undefined;
    for (const txn of this.txns.values()) if (txn.orderId === orderId) found = txn;
    return found;
  }

  findByQueryId(queryId: string): Txn | undefined {
    return this.byQueryId.get(queryId);
  }

  listTxns(): Txn[] {
    return [...this.txns.values()];
  }

  private statementEntries(merId: string, settleDate: string): StatementEntry[] {
    const entries: Array<{ at: number; entry: StatementEntry }> = [];
    for (const txn of this.txns.values()) {
      if (txn.merId !== merId || txn.status !== 'success' || txn.settleDate !== settleDate) continue;
      const orig = txn.origQryId ? this.byQueryId.get(txn.origQryId) : undefined;
      entries.push({
        at: txn.completedAt?.getTime() ?? 0,
        entry: {
          transactionCode: txn.kind === 'consume' ? 'S22' : txn.kind === 'refund' ? 'S30' : 'S31',
          traceNo: txn.traceNo ?? '',
          traceTime: txn.traceTime ?? '',
          accNo: orig?.accNo ?? txn.accNo ?? '',
          txnAmt: txn.txnAmt,
          channelType: txn.channelType,
          queryId: txn.queryId,
          orderId: txn.orderId,
          origTraceNo: orig?.traceNo,
          origTraceTime: orig?.traceTime,
          txnType: txn.txnType,
          txnSubType: txn.txnSubType,
          bizType: txn.bizType,
          origQryId: txn.origQryId,
          merId: txn.merId,
          origOrderId: orig?.orderId,
        },
      });
    }
    return entries.sort((a, b) => a.at - b.at).map((e) => e.entry);
  }

  // ---- payer page -----------------------------------------------------------------------------------------

  checkoutPage(txn: Txn): string {
    const action = `/__sim/checkout/${encodeURIComponent(txn.queryId)}`;
    const yuan = (txn.txnAmt / 100).toFixed(2);
    const state = txn.status === 'pending' ? '' : `<p>状态 / status: <b>${escapeHtml(txn.status)}</b></p>`;
    return `<!doctype html><html><head><meta charset="utf-8"><title>银联在线支付 (sandbox)</title></head><body>
<h1>银联在线支付 UnionPay sandbox</h1>
<p>商户 merId: ${escapeHtml(txn.merId)}</p>
<p>订单号 orderId: <span id="orderId">${escapeHtml(txn.orderId)}</span></p>
<p>金额 amount: ¥<span id="amount">${yuan}</span></p>${state}
<form method="post" action="${action}/pay"><button type="submit" id="pay">Pay</button></form>
<form method="post" action="${action}/fail"><button type="submit" id="fail">Fail</button></form>
</body></html>`;
  }

  /** After Pay on the payer page: auto-post the front notification to frontUrl, as the real page does. */
  frontNotificationPage(txn: Txn, fields: AcpFields | null): string {
    if (!txn.frontUrl || !fields) {
      return `<!doctype html><html><head><meta charset="utf-8"><title>支付结果</title></head><body><p id="result">${escapeHtml(txn.status)}</p></body></html>`;
    }
    const inputs = Object.entries(fields)
      .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`)
      .join('\n');
    return `<!doctype html><html><head><meta charset="utf-8"><title>支付成功</title></head>
<body onload="document.forms[0].submit()"><form id="frontNotify" method="post" action="${escapeHtml(txn.frontUrl)}">
${inputs}
<noscript><button type="submit">返回商户 / return to merchant</button></noscript></form></body></html>`;
  }

  private after(delayMs: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, delayMs);
    this.timers.add(timer);
  }

  private newQueryId(): string {
    this.queryIdCounter = (this.queryIdCounter + 1) % 1_000_000_000;
    // 21 digits: yyMMddHHmmss (Beijing) + a 9-digit sequence.
    return formatTxnTime(new Date()).slice(2) + String(this.queryIdCounter).padStart(9, '0');
  }
}

export function refundableAmount(consume: Txn): number {
  const refunded = consume.children
    .filter((child) => child.kind === 'refund' && child.status !== 'failed')
    .reduce((sum, child) => sum + child.txnAmt, 0);
  return consume.txnAmt - refunded;
}

/** origRespCode of a transaction as the query reports it. */
function origResult(txn: Txn): { code: string; msg: string } {
  switch (txn.status) {
    case 'success':
      return RESP.SUCCESS;
    case 'failed':
      return RESP.FAILED;
    default:
      return RESP.ACCEPTED;
  }
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);
}

function errorPage(error: RespError): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>交易失败</title></head><body>
<h1>交易失败</h1><p>respCode=<span id="respCode">${escapeHtml(error.code)}</span></p>
<p>respMsg=<span id="respMsg">${escapeHtml(error.msg)}</span></p></body></html>`;
}
