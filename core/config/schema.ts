import { z } from 'zod';

const positiveInt = z.number().int().positive();

/** A whole number in [min, max], with one message for every way of missing it. */
function wholeNumber(min: number, max: number, what: string) {
  const message = `must be a whole number from ${min} to ${max} (${what})`;
  return z.number({ invalid_type_error: message }).int(message).min(min, message).max(max, message);
}

/** Defaults are the executor's values from before the pool was configurable (undici's own keep-alive defaults). */
export const poolSchema = z
  .object({
    /** At most this many connections to each origin; calls beyond them queue. */
    connections: wholeNumber(1, 1024, 'connections to each channel origin').default(64),
    /** An idle connection is closed after this long, when the channel's answer carries no Keep-Alive hint. */
    keep_alive_ms: wholeNumber(1, 600_000, 'how long an idle connection is kept').default(4_000),
    /** A channel's `Keep-Alive: timeout=N` hint (less 2 s) is followed up to this long. */
    keep_alive_max_ms: wholeNumber(1, 3_600_000, "the longest a channel's Keep-Alive hint may keep an idle connection").default(600_000),
  })
  .strict()
  .superRefine((pool, ctx) => {
    if (pool.keep_alive_max_ms < pool.keep_alive_ms) {
      ctx.addIssue({ code: 'custom', path: ['keep_alive_max_ms'], message: `must be at least keep_alive_ms (${pool.keep_alive_ms})` });
    }
  })
  .default({});

export const channelAccountSchema = z
  .object({
    plugin: z.string().min(1),
    enabled: z.boolean().default(true),
    /** Sandbox accounts accept payer actions from /v1/sandbox. */
    sandbox: z.boolean().default(false),
    /** Service-provider accounts: only merchants bound to the account (with a sub-merchant id) may use it. */
    requires_binding: z.boolean().default(false),
    /** Restricts the pay methods this account serves to a subset of its plugin's. */
    pay_methods: z.array(z.string()).optional(),
    timeout_ms: positiveInt.default(10_000),
    /** The account's keep-alive connection pool to each channel origin (read once, when its executor is built). */
    pool: poolSchema,
    /**
     * Sandbox only: take the account's credentials from the plugin's in-process simulator
     * (true, or the name of one of the simulator's identities); `config` then overrides single fields.
     */
    simulator: z.union([z.boolean(), z.string().min(1)]).optional(),
    /** What the channel charges, per pay method or `default`: fixed minor units plus basis points (for lowest_cost routing). */
    fees: z.record(z.object({ fixed: z.number().int().min(0).default(0), rate_bps: z.number().min(0).max(10_000).default(0) }).strict()).default({}),
    /** Per-day caps, in the routing time zone. */
    limits: z.object({ daily_amount: positiveInt.optional(), daily_count: positiveInt.optional() }).strict().default({}),
    breaker: z
      .object({
        /** Opens when at least min_requests calls in the window failed at this rate or more. */
        error_rate: z.number().gt(0).max(1).default(0.5),
        min_requests: positiveInt.default(20),
        open_s: positiveInt.default(30),
        half_open_probes: positiveInt.default(3),
      })
      .strict()
      .default({}),
    config: z.record(z.unknown()).default({}),
  })
  .strict();

/** A name or a non-empty list of names; `expected` says what one is, in the message of every way it can be wrong. */
function oneOrMany(expected: string, each: z.ZodType<string> = z.string()) {
  const message = `expected ${expected}, or a non-empty list of them`;
  const one = each.refine((v) => v !== '', { message });
  return z.union([one, z.array(one).min(1, message)], { errorMap: (issue, ctx) => ({ message: issue.code === 'invalid_union' || issue.code === 'invalid_type' ? message : ctx.defaultError }) });
}

/** A pay method name, or a prefix ending in `*`: a `*` anywhere else would be matched literally, so never. */
const payMethodPattern = z.string().refine((v) => !v.slice(0, -1).includes('*'), { message: 'a * may only end a pay method pattern (a prefix such as wechat.*)' });
const STRATEGIES = ['priority', 'weighted', 'lowest_cost', 'success_rate'] as const;
const isoDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be YYYY-MM-DD');

export const routingTargetSchema = z.union([
  z.string().min(1, 'expected a channel account name'),
  z.object({ account: z.string().min(1), weight: z.number().int().min(0).default(1) }).strict(),
], { errorMap: (issue, ctx) => ({ message: issue.code === 'invalid_union' ? 'expected a channel account name, or { account, weight }' : ctx.defaultError }) });

export const routingRuleSchema = z
  .object({
    name: z.string().min(1, 'a rule needs a non-empty name'),
    match: z
      .object({
        /** Exact names or prefixes ending in `*`: `wechat.*`. */
        pay_method: oneOrMany('a pay method such as wechat.native or a prefix ending in * such as wechat.*', payMethodPattern).optional(),
        currency: oneOrMany('a currency code such as CNY').optional(),
        amount_min: z.number().int().nonnegative().optional(),
        amount_max: z.number().int().positive().optional(),
        merchant: oneOrMany('a merchant id').optional(),
        app: oneOrMany('an app id').optional(),
        merchant_tag: oneOrMany('a merchant tag').optional(),
        merchant_group: oneOrMany('a group name from routing.groups').optional(),
        /** Regions from routing.regions, matched on the payer's client IP when it is known. */
        payer_region: oneOrMany('a region name from routing.regions').optional(),
        /** Hours of the day in the routing time zone, [from, to); from > to wraps past midnight. */
        hours: z.object({ from: z.number().int().min(0).max(23), to: z.number().int().min(1).max(24) }).strict().optional(),
        /** Inclusive dates in the routing time zone. */
        dates: z.object({ from: isoDate, to: isoDate }).strict().optional(),
        /** Metadata keys and the value each must have; "*" means present with any value. */
        metadata: z.record(z.string()).optional(),
      })
      .strict()
      .default({}),
    strategy: z.enum(STRATEGIES, {
      errorMap: (issue, ctx) => ({
        message: issue.code === 'invalid_enum_value' || issue.code === 'invalid_type'
          ? `${JSON.stringify(ctx.data)} is not a strategy: expected one of ${STRATEGIES.join(', ')}`
          : ctx.defaultError,
      }),
    }).default('priority'),
    targets: z.array(routingTargetSchema).min(1, 'expected at least one target account'),
    /** success_rate: share of decisions that explore another account, so a recovered one is found again. */
    exploration: z.number().min(0).max(0.5).default(0.05),
  })
  .strict();

/** `a.b.c.d/n` with every octet 0–255 and a prefix of at most 32: a bare digit-count pattern let 999.1.1.1/40 through. */
function isIpv4Cidr(value: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  return m !== null && m.slice(1, 5).every((octet) => Number(octet) <= 255) && Number(m[5]) <= 32;
}

const ipv4Cidr = z.string().refine(isIpv4Cidr, (value) => ({ message: `${value} is not an IPv4 CIDR block (four octets 0-255, a prefix /0 to /32)` }));

export const routingSchema = z
  .object({
    /** Offset of the routing time zone from UTC, for hours and dates (China: 480). */
    utc_offset_minutes: z.number().int().min(-720).max(840).default(480),
    /** Sliding window for success rates and circuit breakers. */
    window_s: positiveInt.default(60),
    groups: z.record(z.array(z.string().min(1))).default({}),
    /** Region name → IPv4 CIDR blocks. */
    regions: z.record(z.array(ipv4Cidr)).default({}),
    /** Merchant id → the only accounts it may be routed to. */
    pins: z.record(z.array(z.string().min(1)).min(1)).default({}),
    rules: z.array(routingRuleSchema).default([]),
  })
  .strict();

export const configSchema = z
  .object({
    mode: z.enum(['sandbox', 'live']).default('sandbox'),
    data_dir: z.string().default('./data'),
    server: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        /** Base URL the channels and merchants reach the gateway at (notify URLs are built from it). */
        public_url: z.string().url().optional(),
        body_limit_bytes: positiveInt.default(65_536),
        shutdown_grace_ms: positiveInt.default(10_000),
      })
      .strict()
      .default({}),
    store: z
      .object({
        driver: z.literal('sqlite').default('sqlite'),
        /** Relative to data_dir. */
        path: z.string().default('corbel.db'),
      })
      .strict()
      .default({}),
    admin: z
      .object({
        token: z.string().min(16, 'must be at least 16 characters').optional(),
      })
      .strict()
      .default({}),
    api: z
      .object({
        max_amount: positiveInt.default(100_000_000),
        timestamp_tolerance_s: positiveInt.default(300),
        currencies: z.array(z.string().regex(/^[A-Z]{3}$/)).default(['CNY']),
        /** A pending payment older than this is re-queried at the channel on GET. */
        stale_after_s: positiveInt.default(10),
        default_expires_in_s: positiveInt.default(900),
      })
      .strict()
      .default({}),
    fees: z
      .object({
        default_rate_bps: z.number().int().min(0).max(10_000).default(60),
      })
      .strict()
      .default({}),
    webhooks: z
      .object({
        timeout_ms: positiveInt.default(5_000),
        /** Delay before each retry, in seconds; the last one repeats until max_attempts. */
        retry_schedule_s: z.array(positiveInt).min(1).default([15, 60, 300, 900, 1800, 3600, 10_800, 21_600, 43_200, 86_400]),
        max_attempts: positiveInt.default(16),
        poll_interval_ms: positiveInt.default(500),
        concurrency: positiveInt.default(8),
        /**
         * Deliver to loopback, private and link-local addresses. Off by default in live mode, so a merchant's
         * notify URL cannot make the gateway call services on its own network; the sandbox allows it.
         */
        allow_private_targets: z.boolean().optional(),
      })
      .strict()
      .default({}),
    poller: z
      .object({
        enabled: z.boolean().default(true),
        interval_ms: positiveInt.default(1_000),
        /** Backoff between channel queries of one pending payment, in seconds. */
        backoff_s: z.array(positiveInt).min(1).default([5, 10, 30, 60, 120, 300]),
      })
      .strict()
      .default({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .default({}),
    /** Where to load a plugin from when it is not a folder under plugins/: name → npm package or path. */
    plugins: z.record(z.string()).default({}),
    simulators: z
      .object({
        /** Start the channel simulators in-process and point the sandbox accounts at them. */
        enabled: z.boolean().default(false),
      })
      .strict()
      .default({}),
    channels: z.record(channelAccountSchema).default({}),
    routing: routingSchema.default({}),
    capabilities: z
      .record(
        z
          .object({
            enabled: z.boolean().default(true),
            plugin: z.string().optional(),
            config: z.record(z.unknown()).default({}),
          })
          .strict(),
      )
      .default({}),
  })
  .strict();

export type CorbelConfig = z.infer<typeof configSchema>;
export type ChannelAccountConfig = z.infer<typeof channelAccountSchema>;
export type RoutingRuleConfig = z.infer<typeof routingRuleSchema>;
export type RoutingConfig = z.infer<typeof routingSchema>;
