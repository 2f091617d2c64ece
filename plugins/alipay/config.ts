import { z } from '../../core/index.js';

export const DEFAULT_GATEWAY_URL = 'https://openapi.alipay.com/gateway.do';

/**
 * One Alipay OpenAPI application (public-key mode, RSA2).
 * Key fields take either a path (relative to the config file's directory) or the key inline:
 * a PEM block, or the bare base64 body that Alipay's key tool prints.
 */
export const alipayConfigSchema = z
  .object({
    app_id: z.string().regex(/^\d{16}$/, 'an Alipay app_id is 16 digits'),
    /** The application private key: PKCS#1 ("RSA PRIVATE KEY") or PKCS#8 ("PRIVATE KEY"). */
    private_key: z.string().min(1),
    /** Alipay's public key (支付宝公钥) for the application, to verify responses and notifications. */
    alipay_public_key: z.string().min(1),
    gateway_url: z.string().url().default(DEFAULT_GATEWAY_URL),
    /** The seller's 2088… user id; when set, it is sent on orders and checked on notifications. */
    seller_id: z.string().regex(/^2088\d{12}$/, 'a seller_id is 16 digits starting with 2088').optional(),
    /** ISV mode: the merchant's app_auth_token; a binding's params.app_auth_token overrides it per payment. */
    app_auth_token: z.string().min(1).optional(),
    /** Timeout for the statement file download, which can be large. */
    statement_timeout_ms: z.number().int().positive().default(30_000),
  })
  .strict();

export type AlipayConfig = z.infer<typeof alipayConfigSchema>;
