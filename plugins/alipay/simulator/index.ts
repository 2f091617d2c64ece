/**
 * Alipay OpenAPI simulator: speaks the real gateway.do protocol (RSA2 public-key mode) so that the unchanged
 * `alipay-sdk` and the Corbel gateway plugin can be tested without reaching Alipay.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import Koa from 'koa';
import Router from '@koa/router';
import getRawBody from 'raw-body';
import { defaultFaults, faultsApplyTo, parseFaults, takeCountedFault, type FaultSet } from '../../../core/index.js';
import {
  AlipayChannel, BROWSER_METHODS, bizError, isTrade, systemError, type ResponseBody,
} from './channel.js';
import { buildCredentials, loadOrCreateKeyMaterial, type AlipaySandboxCredentials, type AlipayKeyMaterial } from './keys.js';
import { Notifier } from './notifier.js';
import { renderErrorPage, renderPayerPage, renderResultPage } from './pages.js';
import {
  buildSignContent, buildSignedResponse, corruptSignature, NOTIFY_SIGN_EXCLUDED, responseKeyFor, signRsa2, type ParamMap,
} from './signing.js';
import { tradeView, type Trade } from './state.js';
import type { SimulatorBaseOptions } from '../../../core/index.js';

export type { AlipaySandboxCredentials, AlipayAppAuthGrant } from './keys.js';
export type { FaultSet } from '../../../core/index.js';
export { buildSignContent, REQUEST_SIGN_EXCLUDED, NOTIFY_SIGN_EXCLUDED } from './signing.js';

/** notifyRetryDelaysMs defaults to Alipay's real 4m,10m,10m,1h,2h,6h,15h compressed 240x. */
export interface SimulatorOptions extends SimulatorBaseOptions {
  /** Extra (Alipay-specific): how long an `alipay.trade.pay` with a "27..." auth code waits for the payer. Default 5000. */
  userPayingSettleMs?: number;
}

export interface RunningSimulator {
  channel: 'alipay';
  url: string;
  credentials: AlipaySandboxCredentials;
  close(): Promise<void>;
}

export const DEFAULT_NOTIFY_RETRY_DELAYS_MS = [1_000, 2_500, 2_500, 15_000, 30_000, 90_000, 225_000];

interface AppRuntime {
  app: Koa;
  channel: AlipayChannel;
  setBaseUrl(url: string): void;
  /** Cancels timers and frees held sockets. */
  shutdown(): void;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function formToParams(text: string): ParamMap {
  const out: ParamMap = {};
  for (const [key, value] of new URLSearchParams(text)) out[key] = value;
  return out;
}

async function readBody(ctx: Koa.Context): Promise<string> {
  if (ctx.method === 'GET' || ctx.method === 'HEAD') return '';
  return getRawBody(ctx.req, { limit: '1mb', encoding: 'utf8' });
}

/** Builds the Koa app around a channel; `startAlipaySimulator` adds key material, listening and credentials. */
export function createAlipaySimulatorApp(
  keys: AlipayKeyMaterial,
  opts: Pick<SimulatorOptions, 'notifyRetryDelaysMs' | 'log' | 'userPayingSettleMs'> & { credentials: () => AlipaySandboxCredentials },
): AppRuntime {
  const log = opts.log ?? (() => {});
  let baseUrl = '';
  let faults: FaultSet = defaultFaults();
  const heldSockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const notifier = new Notifier(opts.notifyRetryDelaysMs ?? DEFAULT_NOTIFY_RETRY_DELAYS_MS, log);
  const channel = new AlipayChannel({
    appId: opts.credentials().appId,
    sellerId: opts.credentials().sellerId,
    appPublicKey: keys.appPublicKey,
    alipayPrivateKey: keys.alipayPrivateKey,
    grants: opts.credentials().appAuthGrants,
    baseUrl: () => baseUrl,
    faults: () => faults,
    notifier,
    userPayingSettleMs: opts.userPayingSettleMs ?? 5_000,
    schedule: (delayMs, run) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        run();
      }, delayMs);
      timers.add(timer);
    },
    log,
  });

  const signedJson = (responseKey: string, body: ResponseBody, signed = true): string =>
    buildSignedResponse(responseKey, body, signed ? keys.alipayPrivateKey : null, faults.corrupt_signature);

  const app = new Koa();
  const router = new Router();

  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      // Bad input must never crash the simulator; answer like the gateway's own failure.
      log({ event: 'internal_error', path: ctx.path, error: err instanceof Error ? err.message : String(err) });
      if (!ctx.headerSent && ctx.respond !== false) {
        ctx.status = 200;
        ctx.type = 'text/html;charset=utf-8';
        ctx.body = signedJson('error_response', systemError());
      }
    }
  });

  /**
   * Applies the API fault set to one channel call. Returns 'handled' if the fault answered (or swallowed) the call,
   * 'lose' if the call must be processed but its response dropped.
   */
  async function applyFaults(ctx: Koa.Context, systemErrorBody: () => void): Promise<'proceed' | 'handled' | 'lose'> {
    if (!faultsApplyTo(faults, ctx.path)) return 'proceed';
    if (faults.latency_ms > 0) await sleep(faults.latency_ms);
    if (faults.timeout) {
      // Never answer; the socket is freed when the client gives up or the simulator closes.
      ctx.respond = false;
      heldSockets.add(ctx.req.socket);
      ctx.req.socket.once('close', () => heldSockets.delete(ctx.req.socket));
      return 'handled';
    }
    if (takeCountedFault(faults, 'connection_reset')) {
      ctx.respond = false;
      ctx.req.socket.destroy();
      return 'handled';
    }
    if (takeCountedFault(faults, 'http_5xx')) {
      systemErrorBody();
      return 'handled';
    }
    if (takeCountedFault(faults, 'response_lost')) return 'lose';
    return 'proceed';
  }

  function loseResponse(ctx: Koa.Context): void {
    ctx.respond = false;
    ctx.req.socket.destroy();
  }

  // ---------- the OpenAPI gateway ----------

  router.all('/gateway.do', async (ctx) => {
    const query = formToParams(ctx.querystring);
    const body = ctx.method === 'POST' ? formToParams(await readBody(ctx)) : {};
    // alipay-sdk puts the common parameters in the query string and biz_content in the form body.
    const params: ParamMap = { ...query, ...body };
    const method = params.method ?? '';
    const isBrowser = BROWSER_METHODS.includes(method);
    ctx.type = 'text/html;charset=utf-8';

    const fault = await applyFaults(ctx, () => {
      ctx.body = isBrowser ? renderErrorPage('SYSTEM_ERROR', '系统繁忙') : signedJson(method ? responseKeyFor(method) : 'error_response', systemError());
    });
    if (fault === 'handled') return;

    const auth = channel.authenticate(params);
    if (isBrowser) {
      if (!auth.ok) {
        ctx.body = renderErrorPage(String(auth.body.sub_code), String(auth.body.sub_msg));
      } else {
        ctx.body = openCashier(auth.method, auth.caller, auth.biz, auth.params);
      }
    } else if (!auth.ok) {
      ctx.body = signedJson(auth.responseKey, auth.body, auth.signed);
    } else {
      const result = channel.execute(auth.method, auth.caller, auth.biz, auth.params);
      ctx.body = signedJson(responseKeyFor(auth.method), result);
      log({ event: 'api', method: auth.method, code: result.code, sub_code: result.sub_code });
    }
    if (fault === 'lose') loseResponse(ctx);
  });

  function openCashier(method: string, caller: Parameters<AlipayChannel['openTrade']>[0], biz: Record<string, unknown>, params: ParamMap): string {
    const expected: Record<string, [Trade['origin'], string]> = {
      'alipay.trade.page.pay': ['page', 'FAST_INSTANT_TRADE_PAY'],
      'alipay.trade.wap.pay': ['wap', 'QUICK_WAP_WAY'],
      'alipay.trade.app.pay': ['app', 'QUICK_MSECURITY_PAY'],
    };
    const [origin, productCode] = expected[method]!;
    if (biz.product_code !== undefined && biz.product_code !== productCode) {
      return renderErrorPage('ACQ.INVALID_PARAMETER', `参数无效：product_code 应为 ${productCode}`);
    }
    const trade = channel.openTrade(caller, biz, params, origin, productCode);
    if (!isTrade(trade)) return renderErrorPage(String(trade.sub_code), String(trade.sub_msg));
    return renderPayerPage(trade);
  }

  router.get('/downloadBillFile.resource', async (ctx) => {
    const fault = await applyFaults(ctx, () => {
      ctx.status = 500;
      ctx.body = 'system error';
    });
    if (fault === 'handled') return;
    const fileId = String(ctx.query.fileId ?? '');
    const issued = channel.bills.get(fileId);
    if (!issued || issued.expiresAt < Date.now()) {
      channel.bills.delete(fileId);
      ctx.status = 404;
      ctx.type = 'text/plain';
      ctx.body = 'bill download url expired or invalid';
    } else {
      ctx.type = 'application/zip';
      ctx.set('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(issued.bill.zipName)}`);
      ctx.body = Buffer.from(issued.bill.zip);
    }
    if (fault === 'lose') loseResponse(ctx);
  });

  // ---------- payer pages ----------

  router.get('/__sim/qr/:token', (ctx) => {
    const trade = channel.store.byQrToken(ctx.params.token!);
    ctx.type = 'text/html;charset=utf-8';
    if (!trade) {
      ctx.status = 404;
      ctx.body = renderErrorPage('QR_CODE_INVALID', '二维码无效');
      return;
    }
    // Scanning the code is what creates the trade at Alipay.
    if (trade.status === 'WAIT_BUYER_PAY') channel.markScanned(trade);
    ctx.body = renderPayerPage(trade);
  });

  /** App payments: the order string from `sdkExecute('alipay.trade.app.pay', ...)` as the query string. */
  router.get('/__sim/app', (ctx) => {
    ctx.type = 'text/html;charset=utf-8';
    const params = formToParams(ctx.querystring);
    if (params.method !== 'alipay.trade.app.pay') {
      ctx.body = renderErrorPage('isv.invalid-method', '不存在的方法名');
      return;
    }
    const auth = channel.authenticate(params);
    ctx.body = auth.ok
      ? openCashier(auth.method, auth.caller, auth.biz, auth.params)
      : renderErrorPage(String(auth.body.sub_code), String(auth.body.sub_msg));
  });

  router.get('/__sim/pay/:simId', (ctx) => {
    const trade = channel.store.bySim(ctx.params.simId!);
    ctx.type = 'text/html;charset=utf-8';
    if (!trade) {
      ctx.status = 404;
      ctx.body = renderErrorPage('TRADE_NOT_EXIST', '交易不存在');
      return;
    }
    ctx.body = renderPayerPage(trade);
  });

  router.post('/__sim/pay/:simId/:action', async (ctx) => {
    await readBody(ctx);
    const trade = channel.store.bySim(ctx.params.simId!);
    const action = ctx.params.action;
    ctx.type = 'text/html;charset=utf-8';
    if (!trade || (action !== 'pay' && action !== 'fail')) {
      ctx.status = 404;
      ctx.body = renderErrorPage('TRADE_NOT_EXIST', '交易不存在');
      return;
    }
    const error = action === 'pay' ? channel.pay(trade) : channel.fail(trade);
    if (error) {
      ctx.status = 409;
      ctx.body = renderResultPage(trade, error);
      return;
    }
    if (action === 'pay' && trade.returnUrl && (trade.origin === 'page' || trade.origin === 'wap')) {
      ctx.redirect(returnUrlFor(trade));
      return;
    }
    ctx.body = renderResultPage(trade, action === 'pay' ? '支付成功 / Paid' : '交易关闭 / Closed');
  });

  function returnUrlFor(trade: Trade): string {
    const params = channel.returnParams(trade);
    let sign = signRsa2(buildSignContent(params, NOTIFY_SIGN_EXCLUDED), keys.alipayPrivateKey);
    if (faults.corrupt_signature) sign = corruptSignature(sign);
    const url = new URL(trade.returnUrl!);
    for (const [k, v] of Object.entries({ ...params, sign })) if (v !== '') url.searchParams.set(k, v);
    return url.toString();
  }

  // ---------- control API ----------

  async function readJson(ctx: Koa.Context): Promise<unknown> {
    const text = await readBody(ctx);
    if (!text.trim()) return {};
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  }

  function findOrder(ctx: Koa.Context): Trade | undefined {
    const trade = channel.store.byOutTradeNo(String(ctx.params.out_trade_no));
    if (!trade) {
      ctx.status = 404;
      ctx.body = { error: 'ORDER_NOT_FOUND', message: `no order with out_trade_no ${String(ctx.params.out_trade_no)}` };
    }
    return trade;
  }

  router.get('/__sim/orders', (ctx) => {
    ctx.body = { orders: channel.store.all().map(tradeView) };
  });

  router.get('/__sim/orders/:out_trade_no', (ctx) => {
    const trade = findOrder(ctx);
    if (trade) ctx.body = tradeView(trade);
  });

  router.post('/__sim/orders/:out_trade_no/pay', async (ctx) => {
    const body = await readJson(ctx);
    const trade = findOrder(ctx);
    if (!trade) return;
    const amount = typeof body === 'object' && body !== null ? (body as { amount?: unknown }).amount : undefined;
    const tampered = typeof amount === 'number' && Number.isInteger(amount) ? amount : undefined;
    const error = channel.pay(trade, tampered);
    if (error) {
      ctx.status = 409;
      ctx.body = { error: 'ORDER_NOT_PAYABLE', message: error, order: tradeView(trade) };
      return;
    }
    ctx.body = tradeView(trade);
  });

  router.post('/__sim/orders/:out_trade_no/fail', async (ctx) => {
    await readBody(ctx);
    const trade = findOrder(ctx);
    if (!trade) return;
    const error = channel.fail(trade);
    if (error) {
      ctx.status = 409;
      ctx.body = { error: 'ORDER_NOT_FAILABLE', message: error, order: tradeView(trade) };
      return;
    }
    ctx.body = tradeView(trade);
  });

  router.post('/__sim/orders/:out_trade_no/notify', async (ctx) => {
    await readBody(ctx);
    const trade = findOrder(ctx);
    if (!trade) return;
    const latest = trade.notifications[trade.notifications.length - 1];
    if (!latest) {
      ctx.status = 409;
      ctx.body = { error: 'NO_NOTIFICATION', message: 'the order has no notification to resend' };
      return;
    }
    await notifier.resend(latest);
    ctx.body = tradeView(trade);
  });

  router.get('/__sim/faults', (ctx) => {
    ctx.body = faults;
  });

  router.put('/__sim/faults', async (ctx) => {
    const parsed = parseFaults(await readJson(ctx));
    if (typeof parsed === 'string') {
      ctx.status = 400;
      ctx.body = { error: 'INVALID_FAULTS', message: parsed };
      return;
    }
    faults = parsed;
    log({ event: 'faults_set', faults });
    ctx.body = faults;
  });

  router.delete('/__sim/faults', (ctx) => {
    faults = defaultFaults();
    ctx.body = faults;
  });

  router.get('/__sim/credentials', (ctx) => {
    ctx.body = opts.credentials();
  });

  app.use(router.routes());
  app.use(router.allowedMethods());

  return {
    app,
    channel,
    setBaseUrl: (url) => {
      baseUrl = url;
    },
    shutdown: () => {
      notifier.close();
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const socket of heldSockets) socket.destroy();
      heldSockets.clear();
    },
  };
}

export async function startAlipaySimulator(opts: SimulatorOptions): Promise<RunningSimulator> {
  const dir = path.join(opts.dataDir, 'simulators', 'alipay');
  const keys = await loadOrCreateKeyMaterial(dir);
  let credentials: AlipaySandboxCredentials = buildCredentials('', keys);
  const runtime = createAlipaySimulatorApp(keys, { ...opts, credentials: () => credentials });
  const server = http.createServer(runtime.app.callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('simulator did not bind a TCP port');
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  runtime.setBaseUrl(url);
  credentials = buildCredentials(url, keys);
  await writeFile(path.join(dir, 'credentials.json'), `${JSON.stringify(credentials, null, 2)}\n`);
  opts.log?.({ event: 'simulator_started', channel: 'alipay', url });

  let closing: Promise<void> | null = null;
  return {
    channel: 'alipay',
    url,
    credentials,
    close() {
      closing ??= new Promise<void>((resolve) => {
        runtime.shutdown();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

export { bizError };
