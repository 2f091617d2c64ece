import { Router } from '@koa/router';
import { timingSafeEqual } from 'node:crypto';
import { ApiError } from '../../errors.js';
import { appToApi, bindingToApi, merchantToApi } from '../../payments/present.js';
import { verifyLedger } from '../../ledger/verify.js';
import { jsonBody } from '../middleware/body.js';
import { bindingSchema, createAppSchema, createMerchantSchema, explainQuerySchema, parseInput, reviewSchema } from '../schemas.js';
import type { CorbelState } from '../state.js';
import type { HttpServices } from '../services.js';
import type { MerchantAction } from '../../merchants/service.js';
import { configStatus } from '../../kernel/status.js';
import { unservedAccounts } from '../../kernel/snapshot.js';
import { checkExplainRequest, explainInput, explainRoute } from '../../routing/explain.js';

function tokenMatches(provided: string, expected: string): boolean {
  const a = Buffer.from(provided);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The operator's API, behind the admin bearer token. */
export function adminRouter(s: HttpServices): Router<CorbelState> {
  const router = new Router<CorbelState>({ prefix: '/admin' });

  router.use(async (ctx, next) => {
    const expected = s.adminToken();
    if (!expected) throw new ApiError('admin_unauthorized', 'the admin API is disabled: set admin.token or CORBEL_ADMIN_TOKEN');
    const header = ctx.get('authorization');
    if (!header.startsWith('Bearer ') || !tokenMatches(header.slice(7), expected)) throw new ApiError('admin_unauthorized', 'a valid admin bearer token is required');
    await next();
  });

  router.post('/merchants', async (ctx) => {
    ctx.status = 201;
    ctx.body = merchantToApi(await s.merchants.create(parseInput(createMerchantSchema, jsonBody(ctx))));
  });

  router.get('/merchants', async (ctx) => {
    const status = typeof ctx.query.status === 'string' ? ctx.query.status : undefined;
    const statuses = ['pending_review', 'active', 'rejected', 'suspended'];
    if (status !== undefined && !statuses.includes(status)) throw new ApiError('invalid_request', `status: one of ${statuses.join(', ')}`, 'status');
    ctx.body = { data: (await s.merchants.list(status as never)).map(merchantToApi) };
  });

  router.get('/merchants/:id', async (ctx) => {
    ctx.body = merchantToApi(await s.merchants.get(ctx.params.id!));
  });

  for (const action of ['approve', 'reject', 'suspend'] as MerchantAction[]) {
    router.post(`/merchants/:id/${action}`, async (ctx) => {
      const { reason } = parseInput(reviewSchema, jsonBody(ctx));
      ctx.body = merchantToApi(await s.merchants.review(ctx.params.id!, action, reason));
    });
  }

  router.post('/merchants/:id/apps', async (ctx) => {
    const created = await s.merchants.createApp(ctx.params.id!, parseInput(createAppSchema, jsonBody(ctx)));
    ctx.status = 201;
    ctx.body = { ...appToApi(created.app), ...(created.secret ? { secret: created.secret } : {}), ...(created.private_key ? { private_key: created.private_key } : {}) };
  });

  router.get('/merchants/:id/apps', async (ctx) => {
    ctx.body = { data: (await s.merchants.listApps(ctx.params.id!)).map(appToApi) };
  });

  router.put('/merchants/:id/channel-accounts/:account', async (ctx) => {
    const input = parseInput(bindingSchema, jsonBody(ctx));
    const known = new Set(ctx.state.snapshot.accounts.keys());
    ctx.body = bindingToApi(await s.merchants.bind(ctx.params.id!, ctx.params.account!, input, known));
  });

  router.delete('/merchants/:id/channel-accounts/:account', async (ctx) => {
    await s.merchants.unbind(ctx.params.id!, ctx.params.account!);
    ctx.status = 204;
  });

  router.get('/merchants/:id/channel-accounts', async (ctx) => {
    ctx.body = { data: (await s.merchants.listBindings(ctx.params.id!)).map(bindingToApi) };
  });

  router.get('/config', async (ctx) => {
    ctx.body = await configStatus(s.runtime);
  });

  router.post('/config/reload', async (ctx) => {
    const result = await s.runtime.reload('admin API');
    if (!result.ok) throw new ApiError('config_invalid', 'the new config was rejected; the running config keeps serving', undefined, { problems: result.problems });
    ctx.body = { ok: true, version: result.version, warnings: result.warnings };
  });

  router.get('/webhooks/:id', async (ctx) => {
    const event = await s.store.webhooks.get(s.store.reads, ctx.params.id!);
    if (!event) throw new ApiError('event_not_found', `no event ${ctx.params.id}`, 'id');
    ctx.body = { id: event.id, type: event.type, status: event.status, url: event.url, attempts: await s.store.webhooks.attempts(s.store.reads, event.id), payload: JSON.parse(event.payload) };
  });

  router.post('/webhooks/:id/redeliver', async (ctx) => {
    if (!(await s.webhooks.redeliver(ctx.params.id!))) throw new ApiError('event_not_found', `no event ${ctx.params.id} with a notify URL`, 'id');
    ctx.body = { ok: true };
  });

  router.get('/routing', async (ctx) => {
    const now = Date.now();
    const routing = ctx.state.snapshot.routing;
    ctx.body = {
      rules: routing.config.rules.map((r, i) => ({ index: i, name: r.name, strategy: r.strategy, targets: r.targets })),
      accounts: routing.accounts.map((a) => {
        a.state.usage.roll(routing.day(now));
        return {
          account: a.name, available: a.available, breaker: { state: a.state.breaker.stateAt(now), cause: a.state.breaker.cause, reason: a.state.breaker.reason || null, opened_at: a.state.breaker.openedAt ? new Date(a.state.breaker.openedAt).toISOString() : null },
          usage_today: { amount: a.state.usage.amount, count: a.state.usage.count }, limits: a.limits,
        };
      }),
    };
  });

  router.get('/routing/explain', async (ctx) => {
    const { routing, config, accounts } = ctx.state.snapshot;
    const q = parseInput(explainQuerySchema, ctx.query);
    const unserved = unservedAccounts(accounts);
    checkExplainRequest(routing, config.api, q, unserved);
    const merchant = q.merchant ? await s.store.merchants.get(s.store.reads, q.merchant) : undefined;
    const bindings = merchant ? await s.store.merchants.listBindings(s.store.reads, merchant.id) : [];
    ctx.body = explainRoute(routing, explainInput(q, merchant, bindings.map((b) => b.account)), {
      merchantFound: !q.merchant || merchant !== undefined, unserved: new Map(unserved.map((a) => [a.name, a])),
    });
  });

  router.get('/channels/:account/statement', async (ctx) => {
    const date = typeof ctx.query.date === 'string' ? ctx.query.date : '';
    if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new ApiError('invalid_request', 'date: required, YYYY-MM-DD', 'date');
    const entry = ctx.state.snapshot.account(ctx.params.account!);
    if (!entry?.instance) throw new ApiError('not_found', `no serving channel account ${ctx.params.account}`, 'account');
    if (!entry.instance.downloadStatement) throw new ApiError('invalid_request', `channel account ${entry.name} has no statement download`, 'account');
    const lines = await entry.instance.downloadStatement(date);
    ctx.body = { account: entry.name, date, count: lines.length, lines: lines.map((l) => ({ ...l, occurredAt: l.occurredAt.toISOString() })) };
  });

  router.get('/ledger/verify', async (ctx) => {
    ctx.body = await verifyLedger(s.store);
  });

  router.get('/alerts', async (ctx) => {
    ctx.body = { data: await s.store.audit.listAlerts(s.store.reads) };
  });

  return router;
}
