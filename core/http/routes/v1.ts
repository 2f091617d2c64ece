import { Router } from '@koa/router';
import { ApiError } from '../../errors.js';
import { paymentToApi, refundToApi } from '../../payments/present.js';
import { jsonBody } from '../middleware/body.js';
import { presign } from '../middleware/sign-response.js';
import type { PaymentRecord } from '../../payments/types.js';
import { merchantAuth } from '../middleware/merchant-auth.js';
import { idempotency } from '../middleware/idempotency.js';
import { createPaymentSchema, createRefundSchema, parseInput } from '../schemas.js';
import type { CorbelContext, CorbelState } from '../state.js';
import type { HttpServices } from '../services.js';

/** The signed merchant API. */
export function v1Router(s: HttpServices): Router<CorbelState> {
  const router = new Router<CorbelState>({ prefix: '/v1' });
  const caller = (ctx: CorbelContext) => ctx.state.caller!;

  router.get('/gateway/keys', (ctx) => {
    ctx.body = { keys: [{ id: s.signer.keyId, algorithm: 'RSA-SHA256', public_key: s.signer.publicKeyPem }] };
  });

  router.use(merchantAuth(s.callers, s.nonces));
  router.use(idempotency(s.store));

  router.post('/payments', async (ctx) => {
    const input = parseInput(createPaymentSchema, jsonBody(ctx));
    let guess: { payment: PaymentRecord; body: string } | undefined;
    const payment = await s.payments.create(ctx.state.snapshot, caller(ctx), input, (answer) => {
      guess = { payment: answer, body: presign(ctx, s.signer, paymentToApi(answer)) };
    });
    ctx.status = 201;
    ctx.body = payment === guess?.payment ? guess.body : paymentToApi(payment);
  });

  router.get('/payments', async (ctx) => {
    const outTradeNo = ctx.query.out_trade_no;
    if (typeof outTradeNo !== 'string' || outTradeNo === '') throw new ApiError('invalid_request', 'out_trade_no: required', 'out_trade_no');
    const payment = await s.payments.getByOutTradeNo(caller(ctx), outTradeNo);
    ctx.body = paymentToApi(await s.payments.refreshIfStale(ctx.state.snapshot, payment, ctx.state.requestId));
  });

  router.get('/payments/:id', async (ctx) => {
    const payment = await s.payments.get(caller(ctx), ctx.params.id!);
    ctx.body = paymentToApi(await s.payments.refreshIfStale(ctx.state.snapshot, payment, ctx.state.requestId));
  });

  router.post('/payments/:id/close', async (ctx) => {
    ctx.body = paymentToApi(await s.payments.close(ctx.state.snapshot, caller(ctx), ctx.params.id!));
  });

  router.post('/payments/:id/refunds', async (ctx) => {
    const input = parseInput(createRefundSchema, jsonBody(ctx));
    const refund = await s.payments.createRefund(ctx.state.snapshot, caller(ctx), ctx.params.id!, input);
    ctx.status = 201;
    ctx.body = refundToApi(refund);
  });

  router.get('/payments/:id/refunds', async (ctx) => {
    const payment = await s.payments.get(caller(ctx), ctx.params.id!);
    ctx.body = { data: (await s.store.payments.listRefunds(s.store.reads, payment.id)).map(refundToApi) };
  });

  router.get('/refunds/:id', async (ctx) => {
    ctx.body = refundToApi(await s.payments.getRefund(caller(ctx), ctx.params.id!));
  });

  // Payer actions for sandbox accounts: the simulator settles the order and sends its real notification.
  for (const outcome of ['pay', 'fail'] as const) {
    router.post(`/sandbox/payments/:id/${outcome}`, async (ctx) => {
      ctx.body = paymentToApi(await s.payments.simulatePayer(ctx.state.snapshot, caller(ctx), ctx.params.id!, outcome));
    });
  }

  // Capability routes: /v1/<capability>/<path>, dispatched to the capability of the snapshot the request runs on.
  router.all('/:capability/*rest', async (ctx) => {
    const cap = ctx.state.snapshot.capabilities.find((c) => c.name === ctx.params.capability && c.instance);
    const rest = (ctx.params as Record<string, string | string[] | undefined>).rest;
    const path = '/' + (Array.isArray(rest) ? rest.join('/') : rest ?? '');
    const route = cap?.instance?.routes?.find((r) => r.method === ctx.method && matchPath(r.path, path) !== null);
    if (!cap || !route) throw new ApiError('not_found', `no route ${ctx.method} ${ctx.path}`);
    const result = await route.handle({ merchantId: caller(ctx).merchant.id, appId: caller(ctx).app.id, params: matchPath(route.path, path)!, body: ctx.method === 'GET' ? undefined : jsonBody(ctx) });
    ctx.status = result.status;
    ctx.body = result.body as object;
  });

  return router;
}

/** `/orders/:id` against `/orders/abc` → {id:"abc"}; null when it does not match. */
function matchPath(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split('/').filter(Boolean);
  const a = path.split('/').filter(Boolean);
  if (p.length !== a.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i]!.startsWith(':')) params[p[i]!.slice(1)] = decodeURIComponent(a[i]!);
    else if (p[i] !== a[i]) return null;
  }
  return params;
}
