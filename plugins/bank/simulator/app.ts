// HTTP surface of the simulator: the signed merchant API (/api/v1), the payer page (/payer) and the sandbox
// control API (/__sim). All state lives in Bank; this file authenticates, applies faults and signs responses.
import type { KeyObject } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import Koa from 'koa';
import Router from '@koa/router';
import getRawBody from 'raw-body';
import { z } from 'zod';
import { defaultFaults, faultSetSchema, faultsApplyTo, takeCountedFault, type FaultSet } from '../../../core/index.js';
import { Bank, BankError } from './bank.js';
import {
  PAYMENT_FAILURE_CODES,
  REFUND_FAILURE_CODES,
  businessDate,
  closePaymentRequest,
  createPaymentRequest,
  createRefundRequest,
  isCalendarDate,
  isMerchantNo,
  parseBody,
  type Payment,
} from './model.js';
import type { Notifier } from './notifier.js';
import {
  NONCE_PATTERN,
  SIGNATURE_HEADERS,
  TIMESTAMP_PATTERN,
  corruptSignature,
  newNonce,
  signBase64,
  unixSeconds,
  verifyBase64,
} from './signing.js';

export const API_PREFIX = '/api/v1/';
const MAX_BODY_BYTES = 64 * 1024;
const TIMESTAMP_WINDOW_SECONDS = 300;
const NONCE_MEMORY_MS = 600_000;

/** Mutable sandbox state shared by the app and the ledger. */
export interface FaultState {
  faults: FaultSet;
}

export interface BankSimulatorAppDeps {
  bank: Bank;
  notifier: Notifier;
  faultState: FaultState;
  merchantId: string;
  merchantPublicKey: KeyObject;
  bankPrivateKey: KeyObject;
  /** Aborted by close(): cuts short latency sleeps. */
  shutdown: AbortSignal;
  log: (line: Record<string, unknown>) => void;
}

interface ApiResponse {
  status: number;
  body: Buffer;
  contentType: string;
}

function json(status: number, value: unknown): ApiResponse {
  return { status, body: Buffer.from(JSON.stringify(value), 'utf8'), contentType: 'application/json; charset=utf-8' };
}

function errorResponse(error: BankError): ApiResponse {
  return json(error.status, { code: error.code, message: error.message });
}

type RouteHandler = (params: string[], body: Buffer) => ApiResponse;
interface ApiRoute {
  method: 'GET' | 'POST';
  pattern: RegExp;
  handler: RouteHandler;
}

/** Nonces accepted in the last NONCE_MEMORY_MS, with the time each may be forgotten. */
class NonceMemory {
  private readonly seen = new Map<string, number>();
  private nextSweepMs = 0;

  /** Records the nonce; false if it was already used. */
  remember(nonce: string, nowMs: number): boolean {
    if (nowMs >= this.nextSweepMs) {
      for (const [key, forgetAtMs] of this.seen) if (forgetAtMs <= nowMs) this.seen.delete(key);
      this.nextSweepMs = nowMs + 60_000;
    }
    const forgetAt = this.seen.get(nonce);
    if (forgetAt !== undefined && forgetAt > nowMs) return false;
    this.seen.set(nonce, nowMs + NONCE_MEMORY_MS);
    return true;
  }
}

export function createBankSimulatorApp(deps: BankSimulatorAppDeps): Koa {
  const { bank, faultState } = deps;
  const nonces = new NonceMemory();

  // ---- Merchant API ---------------------------------------------------------------------------------------------

  const paymentJson = (payment: Payment): ApiResponse => json(200, bank.paymentView(payment));
  const pathParam = (value: string, name: string): string => {
    if (!isMerchantNo(value)) throw new BankError(400, 'INVALID_REQUEST', `${name}: must be 6-32 characters of [A-Za-z0-9_-]`);
    return value;
  };
  const parsed = <T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, body: Buffer): T => {
    const result = parseBody(schema, body);
    if (!result.ok) throw new BankError(400, 'INVALID_REQUEST', result.message);
    return result.value;
  };

  const routes: ApiRoute[] = [
    {
      method: 'POST',
      pattern: /^\/api\/v1\/payments$/,
      handler: (_, body) => paymentJson(bank.createPayment(parsed(createPaymentRequest, body))),
    },
    {
      method: 'GET',
      pattern: /^\/api\/v1\/payments\/([^/]+)$/,
      handler: ([outTradeNo]) => paymentJson(bank.requirePayment(pathParam(outTradeNo, 'out_trade_no'))),
    },
    {
      method: 'POST',
      pattern: /^\/api\/v1\/payments\/([^/]+)\/close$/,
      handler: ([outTradeNo], body) => {
        pathParam(outTradeNo, 'out_trade_no');
        parsed(closePaymentRequest, body);
        return paymentJson(bank.closePayment(outTradeNo));
      },
    },
    {
      method: 'POST',
      pattern: /^\/api\/v1\/refunds$/,
      handler: (_, body) => json(200, bank.refundView(bank.createRefund(parsed(createRefundRequest, body)))),
    },
    {
      method: 'GET',
      pattern: /^\/api\/v1\/refunds\/([^/]+)$/,
      handler: ([outRefundNo]) => json(200, bank.refundView(bank.requireRefund(pathParam(outRefundNo, 'out_refund_no')))),
    },
    {
      method: 'GET',
      pattern: /^\/api\/v1\/statements\/([^/]+)$/,
      handler: ([date]) => {
        if (!isCalendarDate(date)) throw new BankError(400, 'INVALID_REQUEST', 'date: must be a calendar date YYYY-MM-DD');
        if (date > businessDate(Date.now())) throw new BankError(404, 'STATEMENT_NOT_READY', `no statement for ${date} yet`);
        return { status: 200, body: Buffer.from(bank.statement(date), 'utf8'), contentType: 'text/csv; charset=utf-8' };
      },
    },
  ];

  /** PROTOCOL.md 3.2, checks in the documented order. */
  function authenticate(ctx: Koa.Context, body: Buffer): void {
    const merchantId = ctx.get(SIGNATURE_HEADERS.merchant);
    const timestamp = ctx.get(SIGNATURE_HEADERS.timestamp);
    const nonce = ctx.get(SIGNATURE_HEADERS.nonce);
    const signature = ctx.get(SIGNATURE_HEADERS.signature);
    if (!merchantId || !TIMESTAMP_PATTERN.test(timestamp) || !NONCE_PATTERN.test(nonce) || !signature) {
      throw new BankError(401, 'AUTH_HEADER_MISSING', 'X-Bank-Merchant, X-Bank-Timestamp, X-Bank-Nonce and X-Bank-Signature are required and must be well formed');
    }
    if (merchantId !== deps.merchantId) throw new BankError(401, 'MERCHANT_NOT_FOUND', `unknown merchant ${merchantId}`);
    const nowMs = Date.now();
    if (Math.abs(nowMs / 1000 - Number(timestamp)) > TIMESTAMP_WINDOW_SECONDS) {
      throw new BankError(401, 'TIMESTAMP_EXPIRED', `timestamp must be within ${TIMESTAMP_WINDOW_SECONDS} s of ${unixSeconds(nowMs)}`);
    }
    const message = { line1: ctx.method, line2: ctx.req.url ?? '', merchantId, timestamp, nonce, body };
    if (!verifyBase64(message, signature, deps.merchantPublicKey)) {
      throw new BankError(401, 'SIGNATURE_INVALID', 'signature does not verify with the merchant public key');
    }
    if (!nonces.remember(nonce, nowMs)) throw new BankError(401, 'NONCE_REUSED', 'nonce already used');
  }

  /** Writes a response signed with the bank key (PROTOCOL.md 3.1, response row), echoing the request's nonce. */
  function sendSigned(ctx: Koa.Context, response: ApiResponse, applyFaults: boolean): void {
    const requestMerchant = ctx.get(SIGNATURE_HEADERS.merchant);
    const requestNonce = ctx.get(SIGNATURE_HEADERS.nonce);
    const merchantId = /^[A-Za-z0-9]{1,32}$/.test(requestMerchant) ? requestMerchant : '';
    const nonce = NONCE_PATTERN.test(requestNonce) ? requestNonce : newNonce();
    const timestamp = unixSeconds();
    let signature = signBase64(
      { line1: String(response.status), line2: ctx.req.url ?? '', merchantId, timestamp, nonce, body: response.body },
      deps.bankPrivateKey,
    );
    if (applyFaults && faultState.faults.corrupt_signature) signature = corruptSignature(signature);
    ctx.status = response.status;
    ctx.body = response.body;
    ctx.set('Content-Type', response.contentType);
    ctx.set('X-Bank-Merchant', merchantId);
    ctx.set('X-Bank-Timestamp', timestamp);
    ctx.set('X-Bank-Nonce', nonce);
    ctx.set('X-Bank-Signature', signature);
  }

  function dropConnection(ctx: Koa.Context): void {
    ctx.respond = false;
    ctx.req.socket.destroy();
  }

  async function handleApi(ctx: Koa.Context): Promise<void> {
    const faults = faultState.faults;
    const applyFaults = faultsApplyTo(faults, ctx.path);
    if (applyFaults) {
      if (takeCountedFault(faults, 'connection_reset')) return dropConnection(ctx);
      if (faults.timeout) {
        // Never answer; the socket stays open until the client gives up or close() destroys it.
        ctx.respond = false;
        deps.log({ event: 'fault.timeout', path: ctx.path });
        return;
      }
      if (faults.latency_ms > 0) await sleep(faults.latency_ms, undefined, { signal: deps.shutdown }).catch(() => undefined);
      if (takeCountedFault(faults, 'http_5xx')) {
        return sendSigned(ctx, errorResponse(new BankError(500, 'SYSTEM_ERROR', 'system busy, please retry')), applyFaults);
      }
    }
    let body: Buffer;
    try {
      body = await getRawBody(ctx.req, { limit: MAX_BODY_BYTES });
    } catch {
      return sendSigned(ctx, errorResponse(new BankError(400, 'INVALID_REQUEST', `body unreadable or larger than ${MAX_BODY_BYTES} bytes`)), applyFaults);
    }
    let response: ApiResponse;
    try {
      const route = routes.map((candidate) => ({ candidate, match: candidate.pattern.exec(ctx.path) })).find(({ candidate, match }) => match && candidate.method === ctx.method);
      if (!route?.match) throw new BankError(404, 'NOT_FOUND', `no API ${ctx.method} ${ctx.path}`);
      authenticate(ctx, body);
      response = route.candidate.handler(route.match.slice(1), body);
    } catch (error) {
      if (!(error instanceof BankError)) {
        deps.log({ event: 'api.bug', path: ctx.path, error: String(error) });
        error = new BankError(500, 'SYSTEM_ERROR', 'internal error');
      }
      response = errorResponse(error as BankError);
    }
    deps.log({ event: 'api', method: ctx.method, path: ctx.path, status: response.status });
    if (applyFaults && takeCountedFault(faults, 'response_lost')) return dropConnection(ctx);
    sendSigned(ctx, response, applyFaults);
  }

  // ---- Payer page -----------------------------------------------------------------------------------------------

  const payer = new Router({ prefix: '/payer' });
  payer.get('/:bankTradeNo', (ctx) => {
    const payment = bank.findPaymentByBankNo(ctx.params.bankTradeNo);
    ctx.type = 'text/html; charset=utf-8';
    if (!payment) {
      ctx.status = 404;
      ctx.body = page('Payment not found', '<p>No such payment.</p>');
      return;
    }
    ctx.body = payerPage(payment);
  });
  payer.post('/:bankTradeNo/:action', async (ctx) => {
    const payment = bank.findPaymentByBankNo(ctx.params.bankTradeNo);
    const form = new URLSearchParams((await getRawBody(ctx.req, { limit: MAX_BODY_BYTES })).toString('utf8'));
    ctx.type = 'text/html; charset=utf-8';
    if (!payment || (ctx.params.action !== 'pay' && ctx.params.action !== 'fail')) {
      ctx.status = 404;
      ctx.body = page('Not found', '<p>No such payment.</p>');
      return;
    }
    try {
      if (ctx.params.action === 'pay') bank.pay(payment);
      else bank.fail(payment, paymentFailureCode.parse(form.get('failure_code') ?? undefined));
    } catch (error) {
      ctx.status = 409;
      ctx.body = page('Cannot proceed', `<p>${escapeHtml(error instanceof Error ? error.message : String(error))}</p>`);
      return;
    }
    if (payment.request.return_url) {
      ctx.status = 303;
      ctx.redirect(payment.request.return_url);
      return;
    }
    ctx.body = page('Payment ' + payment.status, `<p>Payment ${escapeHtml(payment.request.out_trade_no)}: <b>${payment.status}</b>.</p>`);
  });

  // ---- Sandbox control API --------------------------------------------------------------------------------------

  const control = new Router({ prefix: '/__sim' });
  const orderView = (payment: Payment) => ({
    ...bank.paymentView(payment),
    refunds: bank.refundsOf(payment).map((refund) => bank.refundView(refund)),
    notifications: bank.notificationsOf(payment.request.out_trade_no).map(({ body, ...record }) => ({ ...record, payload: JSON.parse(body) as unknown })),
  });
  const requireOrder = (outTradeNo: string): Payment => {
    const payment = bank.findPayment(outTradeNo);
    if (!payment) throw new BankError(404, 'ORDER_NOT_FOUND', `no payment with out_trade_no ${outTradeNo}`);
    return payment;
  };
  const controlBody = async <T>(ctx: Koa.Context, schema: z.ZodType<T, z.ZodTypeDef, unknown>): Promise<T> => {
    const raw = await getRawBody(ctx.req, { limit: MAX_BODY_BYTES });
    const result = parseBody(schema, raw.length === 0 ? Buffer.from('{}') : raw);
    if (!result.ok) throw new BankError(400, 'INVALID_REQUEST', result.message);
    return result.value;
  };

  control.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (!(error instanceof BankError)) throw error;
      ctx.status = error.status;
      ctx.body = { code: error.code, message: error.message };
    }
  });
  control.get('/orders', (ctx) => {
    ctx.body = bank.allPayments().map(orderView);
  });
  control.get('/orders/:outTradeNo', (ctx) => {
    ctx.body = orderView(requireOrder(ctx.params.outTradeNo));
  });
  control.post('/orders/:outTradeNo/pay', async (ctx) => {
    const { amount } = await controlBody(ctx, z.object({ amount: z.number().int().optional() }));
    ctx.body = orderView(bank.pay(requireOrder(ctx.params.outTradeNo), amount));
  });
  control.post('/orders/:outTradeNo/fail', async (ctx) => {
    const body = await controlBody(ctx, z.object({ failure_code: paymentFailureCode, failure_message: z.string().optional() }));
    ctx.body = orderView(bank.fail(requireOrder(ctx.params.outTradeNo), body.failure_code, body.failure_message));
  });
  control.post('/orders/:outTradeNo/notify', async (ctx) => {
    const payment = requireOrder(ctx.params.outTradeNo);
    const latest = bank.notificationsOf(payment.request.out_trade_no).at(-1);
    if (!latest) throw new BankError(409, 'NO_NOTIFICATION', 'the order has no notification yet');
    await deps.notifier.resend(latest);
    ctx.body = orderView(payment);
  });
  control.post('/refunds/:outRefundNo/succeed', (ctx) => {
    ctx.body = bank.refundView(bank.settleRefund(ctx.params.outRefundNo, 'SUCCESS'));
  });
  control.post('/refunds/:outRefundNo/fail', async (ctx) => {
    const body = await controlBody(ctx, z.object({ failure_code: z.enum(REFUND_FAILURE_CODES).default('REFUND_REJECTED'), failure_message: z.string().default('the refund was rejected') }));
    ctx.body = bank.refundView(bank.settleRefund(ctx.params.outRefundNo, { code: body.failure_code, message: body.failure_message }));
  });
  control.get('/faults', (ctx) => {
    ctx.body = faultState.faults;
  });
  control.put('/faults', async (ctx) => {
    faultState.faults = await controlBody(ctx, faultSetSchema);
    deps.log({ event: 'faults.set', faults: faultState.faults });
    ctx.body = faultState.faults;
  });
  control.delete('/faults', (ctx) => {
    faultState.faults = defaultFaults();
    ctx.body = faultState.faults;
  });

  const app = new Koa();
  app.use(async (ctx, next) => {
    if (ctx.path.startsWith(API_PREFIX)) return handleApi(ctx);
    await next();
  });
  app.use(payer.routes());
  app.use(control.routes());
  app.use(control.allowedMethods());
  return app;
}

const paymentFailureCode = z.enum(PAYMENT_FAILURE_CODES).optional();

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function page(title: string, content: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1>${content}</body></html>`;
}

function payerPage(payment: Payment): string {
  const req = payment.request;
  const summary = `<p>${escapeHtml(req.subject)}</p><p>Amount: CNY ${(req.amount / 100).toFixed(2)}</p><p>Order ${escapeHtml(req.out_trade_no)} · ${payment.status}</p>`;
  if (payment.status !== 'PROCESSING') return page('Sandbox bank payment', summary);
  const action = `/payer/${encodeURIComponent(payment.bankTradeNo)}`;
  const options = PAYMENT_FAILURE_CODES.map((code) => `<option>${code}</option>`).join('');
  return page(
    'Sandbox bank payment',
    `${summary}<form method="post" action="${action}/pay"><button>Pay</button></form>` +
      `<form method="post" action="${action}/fail"><select name="failure_code">${options}</select><button>Fail</button></form>`,
  );
}
