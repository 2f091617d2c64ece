/**
 * HTTP surface of the UnionPay sandbox: the gateway endpoints (with socket-level faults), the file host,
 * the payer page and the /__sim control API.
 */
import Koa from 'koa';
import { Router } from '@koa/router';
import getRawBody from 'raw-body';
import { defaultFaults, faultSetSchema, faultsApplyTo, takeCountedFault } from '../../../core/index.js';
import { RESP } from './codes.js';
import { refundableAmount, UnionPayGateway, type GatewayResult, type Txn } from './gateway.js';
import { formatAcpResponse, type AcpFields } from './signing.js';

/** Path on this simulator standing in for the separate file host (https://filedownload.95516.com/). */
export const FILE_TRANS_PATH = '/__file/';

export const GATEWAY_PATHS = {
  front: '/gateway/api/frontTransReq.do',
  back: '/gateway/api/backTransReq.do',
  query: '/gateway/api/queryTrans.do',
  file: FILE_TRANS_PATH,
} as const;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

async function readBody(ctx: Koa.Context): Promise<string> {
  return getRawBody(ctx.req, { limit: '1mb', encoding: 'utf-8' });
}

function parseForm(body: string): AcpFields {
  const fields: AcpFields = {};
  for (const [key, value] of new URLSearchParams(body)) fields[key] = value;
  return fields;
}

function sendResult(ctx: Koa.Context, result: GatewayResult): void {
  if (result.type === 'html') {
    ctx.status = result.status ?? 200;
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = result.html;
    return;
  }
  ctx.status = 200;
  ctx.type = 'text/plain; charset=utf-8';
  ctx.body = formatAcpResponse(result.fields);
}

export function txnView(txn: Txn): Record<string, unknown> {
  return {
    orderId: txn.orderId,
    txnTime: txn.txnTime,
    kind: txn.kind,
    entry: txn.entry,
    status: txn.status,
    txnType: txn.txnType,
    txnSubType: txn.txnSubType,
    txnAmt: txn.txnAmt,
    currencyCode: txn.currencyCode,
    queryId: txn.queryId,
    origQryId: txn.origQryId,
    traceNo: txn.traceNo,
    traceTime: txn.traceTime,
    settleDate: txn.settleDate,
    qrCode: txn.qrCode,
    backUrl: txn.backUrl,
    frontUrl: txn.frontUrl,
    createdAt: txn.createdAt.toISOString(),
    completedAt: txn.completedAt?.toISOString(),
    ...(txn.kind === 'consume'
      ? {
          refundableAmt: txn.status === 'success' ? refundableAmount(txn) : 0,
          cancelled: txn.children.some((c) => c.kind === 'cancel' && c.status === 'success'),
          refunds: txn.children.map(txnView),
        }
      : {}),
    notifications: txn.notifications.map((n) => ({
      id: n.id,
      orderId: n.orderId,
      txnType: n.txnType,
      txnAmt: n.fields.txnAmt,
      url: n.url,
      state: n.state,
      attempts: n.attempts,
      ...(n.duplicateOf ? { duplicateOf: n.duplicateOf } : {}),
    })),
  };
}

export function createUnionPaySimulatorApp(gateway: UnionPayGateway): Koa {
  const app = new Koa();
  const router = new Router();

  // Socket-level and response faults on the channel paths (never on /__sim).
  app.use(async (ctx, next) => {
    const faults = gateway.faults;
    if (!faultsApplyTo(faults, ctx.path)) return next();
    if (faults.timeout) {
      // Accept and never answer; close() tears the socket down.
      ctx.respond = false;
      return;
    }
    if (takeCountedFault(faults, 'connection_reset')) {
      ctx.respond = false;
      ctx.req.socket.destroy();
      return;
    }
    if (takeCountedFault(faults, 'http_5xx')) {
      const request = parseForm(await readBody(ctx).catch(() => ''));
      if (faults.latency_ms > 0) await sleep(faults.latency_ms);
      const fields = gateway.sign({
        ...pick(request, ['version', 'encoding', 'signMethod', 'txnType', 'txnSubType', 'bizType', 'accessType', 'merId', 'orderId', 'txnTime']),
        respCode: RESP.TIMEOUT.code,
        respMsg: RESP.TIMEOUT.msg,
      });
      sendResult(ctx, ctx.path === GATEWAY_PATHS.front
        ? { type: 'html', html: `<!doctype html><html><body><p>respCode=${RESP.TIMEOUT.code}</p><p>${RESP.TIMEOUT.msg}</p></body></html>` }
        : { type: 'fields', fields });
      return;
    }
    await next();
    if (takeCountedFault(faults, 'response_lost')) {
      ctx.respond = false;
      ctx.req.socket.destroy();
      return;
    }
    if (faults.latency_ms > 0) await sleep(faults.latency_ms);
  });

  const channel = (handler: (fields: AcpFields) => GatewayResult) => async (ctx: Koa.Context): Promise<void> => {
    let body: string;
    try {
      body = await readBody(ctx);
    } catch {
      ctx.status = 413;
      return;
    }
    sendResult(ctx, handler(parseForm(body)));
  };
  router.post(GATEWAY_PATHS.front, channel((f) => gateway.front(f)));
  router.post(GATEWAY_PATHS.back, channel((f) => gateway.back(f)));
  router.post(GATEWAY_PATHS.query, channel((f) => gateway.query(f)));
  router.post(GATEWAY_PATHS.file, channel((f) => gateway.file(f)));
  router.post('/__file', channel((f) => gateway.file(f)));

  // Payer page (frontTransReq answers with it directly; a QR code's content points here).
  router.get('/__sim/checkout/:queryId', (ctx) => {
    const txn = gateway.findByQueryId(ctx.params.queryId);
    if (!txn || txn.kind !== 'consume') return void (ctx.status = 404);
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = gateway.checkoutPage(txn);
  });
  router.post('/__sim/checkout/:queryId/pay', (ctx) => {
    const txn = gateway.findByQueryId(ctx.params.queryId);
    if (!txn || txn.kind !== 'consume') return void (ctx.status = 404);
    const fields = gateway.pay(txn);
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = gateway.frontNotificationPage(txn, fields);
  });
  router.post('/__sim/checkout/:queryId/fail', (ctx) => {
    const txn = gateway.findByQueryId(ctx.params.queryId);
    if (!txn || txn.kind !== 'consume') return void (ctx.status = 404);
    gateway.fail(txn);
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = gateway.frontNotificationPage(txn, null);
  });

  // Control API.
  const readJson = async (ctx: Koa.Context): Promise<unknown> => {
    const text = await readBody(ctx);
    return text.trim() === '' ? {} : JSON.parse(text);
  };
  router.get('/__sim/orders', (ctx) => {
    ctx.body = gateway.listTxns().filter((t) => t.kind === 'consume').map(txnView);
  });
  router.get('/__sim/orders/:orderId', (ctx) => {
    const txn = gateway.findByOrderId(ctx.params.orderId);
    if (!txn) return void notFound(ctx);
    ctx.body = txnView(txn);
  });
  router.post('/__sim/orders/:orderId/pay', async (ctx) => {
    const txn = gateway.findByOrderId(ctx.params.orderId);
    if (!txn || txn.kind !== 'consume') return void notFound(ctx);
    let amount: number | undefined;
    try {
      const body = (await readJson(ctx)) as { amount?: unknown };
      if (typeof body.amount === 'number' && Number.isInteger(body.amount)) amount = body.amount;
    } catch {
      ctx.status = 400;
      ctx.body = { error: 'invalid JSON body' };
      return;
    }
    if (txn.status !== 'pending' && txn.status !== 'success') {
      ctx.status = 409;
      ctx.body = { error: `order is ${txn.status}`, order: txnView(txn) };
      return;
    }
    gateway.pay(txn, amount);
    ctx.body = txnView(txn);
  });
  router.post('/__sim/orders/:orderId/fail', (ctx) => {
    const txn = gateway.findByOrderId(ctx.params.orderId);
    if (!txn || txn.kind !== 'consume') return void notFound(ctx);
    if (txn.status !== 'pending' && txn.status !== 'failed') {
      ctx.status = 409;
      ctx.body = { error: `order is ${txn.status}`, order: txnView(txn) };
      return;
    }
    gateway.fail(txn);
    ctx.body = txnView(txn);
  });
  router.post('/__sim/orders/:orderId/notify', (ctx) => {
    const txn = gateway.findByOrderId(ctx.params.orderId);
    if (!txn) return void notFound(ctx);
    const family = txn.kind === 'consume' ? txn : (txn.origQryId && gateway.findByQueryId(txn.origQryId)) || txn;
    const record = gateway.resendLatest(family);
    if (!record) {
      ctx.status = 409;
      ctx.body = { error: 'no notification to resend' };
      return;
    }
    ctx.body = txnView(family);
  });
  router.get('/__sim/faults', (ctx) => {
    ctx.body = gateway.faults;
  });
  router.put('/__sim/faults', async (ctx) => {
    let parsed;
    try {
      parsed = faultSetSchema.safeParse(await readJson(ctx));
    } catch {
      ctx.status = 400;
      ctx.body = { error: 'invalid JSON body' };
      return;
    }
    if (!parsed.success) {
      ctx.status = 400;
      ctx.body = { error: 'invalid fault set', issues: parsed.error.issues };
      return;
    }
    gateway.faults = parsed.data;
    ctx.body = gateway.faults;
  });
  router.delete('/__sim/faults', (ctx) => {
    gateway.faults = defaultFaults();
    ctx.body = gateway.faults;
  });

  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

function notFound(ctx: Koa.Context): void {
  ctx.status = 404;
  ctx.body = { error: 'no such order' };
}

function pick(fields: AcpFields, keys: string[]): AcpFields {
  const out: AcpFields = {};
  for (const key of keys) if (fields[key]) out[key] = fields[key];
  return out;
}
