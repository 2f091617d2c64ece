import { isIP } from 'node:net';
import { z, type ZodType, type ZodTypeDef } from 'zod';
import { ApiError } from '../errors.js';

const outNo = z.string().min(1).max(64).regex(/^[A-Za-z0-9_\-.:]+$/, 'letters, digits and _ - . : only');
/**
 * An IPv4 or IPv6 address as node:net reads one. zod's `ip()` refuses some valid IPv6 spellings, among them IPv4-mapped
 * ones a payer_region rule reads: `0:0:0:0:0:ffff:10.0.0.1` (six groups, then a dotted quad) and `0::ffff:10.0.0.1`.
 * A zone id (`%eth0`) names an interface of the payer's own host: it is refused, since the address goes on to the
 * channel (WeChat's payer_client_ip) as the payer's public address.
 */
const isIpAddress = (v: string) => isIP(v) !== 0 && !v.includes('%');
const url = z.string().url().max(1024).refine((u) => /^https?:\/\//.test(u), 'must be an http(s) URL');
/** Minor units: a positive safe integer. A string, a fraction or a negative is rejected, never rounded. */
const minorUnits = z.number({ invalid_type_error: 'must be an integer number of minor units (fen)' }).int('must be an integer number of minor units (fen)').positive('must be greater than 0').max(Number.MAX_SAFE_INTEGER);

export const createPaymentSchema = z
  .object({
    out_trade_no: outNo,
    amount: minorUnits,
    currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as CNY').default('CNY'),
    pay_method: z.string().min(1).max(64),
    subject: z.string().min(1).max(128).optional(),
    notify_url: url.optional(),
    return_url: url.optional(),
    expires_in: z.number().int().min(60).max(7 * 86_400).optional(),
    payer: z
      .object({
        openid: z.string().min(1).max(128).optional(),
        auth_code: z.string().regex(/^\d{10,32}$/, 'must be the digits of the payer\'s code').optional(),
        client_ip: z.string().refine(isIpAddress, 'Invalid ip').optional(),
      })
      .strict()
      .optional(),
    metadata: z.record(z.string().max(500)).refine((m) => Object.keys(m).length <= 50, 'at most 50 keys').optional(),
  })
  .strict();

export const createRefundSchema = z
  .object({
    out_refund_no: outNo,
    amount: minorUnits,
    reason: z.string().max(256).optional(),
  })
  .strict();

export const createMerchantSchema = z
  .object({
    name: z.string().min(1).max(128),
    tags: z.array(z.string().min(1).max(64)).max(32).optional(),
    fee_rate_bps: z.number().int().min(0).max(10_000).optional(),
  })
  .strict();

export const reviewSchema = z.object({ reason: z.string().max(512).optional() }).strict();

export const createAppSchema = z
  .object({
    auth_type: z.enum(['hmac', 'rsa']),
    public_key: z.string().max(8_192).optional(),
    notify_url: url.optional(),
  })
  .strict();

export const bindingSchema = z
  .object({
    sub_merchant_id: z.string().min(1).max(64).optional(),
    params: z.record(z.string().max(256)).optional(),
  })
  .strict();

/** A query parameter given once: `?a=1&a=2` reaches the route as an array, which is refused rather than guessed at. */
const singleValue = () => z.string({ invalid_type_error: 'give it once, as a single value' });

/**
 * `key=value` pairs, split at the first '=' so a value may hold '=' itself. Later pairs win. The result has no
 * prototype, so a key such as `toString` is only present when given.
 */
export function metadataFromPairs(pairs: readonly string[]): { metadata: Record<string, string> } | { bad: string } {
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) return { bad: pair };
    metadata[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { metadata };
}

/**
 * GET /admin/routing/explain (and `corbel route explain`): a payment as the routing sees it. Shape only; whether the
 * pay method and currency are served depends on the running config (checkExplainRequest).
 */
export const explainQuerySchema = z
  .object({
    pay_method: singleValue().min(1, 'required'),
    amount: singleValue()
      .regex(/^\d+$/, 'must be a positive integer of minor units (fen), digits only')
      .transform(Number)
      .refine(Number.isSafeInteger, 'too large')
      // As the payment API: a payment of 0 is refused there, so there is nothing to explain.
      .refine((n) => n > 0, 'must be greater than 0'),
    currency: singleValue().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as CNY').default('CNY'),
    merchant: singleValue().min(1).optional(),
    app: singleValue().min(1).optional(),
    // As the payment API: any IP; payer_region rules read IPv4 (and IPv4-mapped IPv6) addresses.
    client_ip: singleValue().refine(isIpAddress, 'must be an IP address').optional(),
    /** Repeated: `metadata=campaign=double11&metadata=vip=yes`. */
    metadata: z
      .union([z.string(), z.array(z.string())])
      .optional()
      .transform((value, ctx) => {
        const parsed = metadataFromPairs(value === undefined ? [] : [value].flat());
        if ('metadata' in parsed) return parsed.metadata;
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${JSON.stringify(parsed.bad)} is not key=value` });
        return z.NEVER;
      }),
  })
  .strict();

export type ExplainQuery = z.infer<typeof explainQuerySchema>;

/** Validates input, turning the first problem into a 400 that names the field. */
export function parseInput<T>(schema: ZodType<T, ZodTypeDef, unknown>, input: unknown): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const param = issue.path.join('.') || undefined;
  let message = issue.message;
  if (issue.code === 'invalid_type' && issue.received === 'undefined') message = 'required';
  else if (issue.code === 'unrecognized_keys') message = `unknown field(s): ${issue.keys.join(', ')}`;
  throw new ApiError('invalid_request', param ? `${param}: ${message}` : message, issue.code === 'unrecognized_keys' ? issue.keys[0] : param);
}
