import { z } from '../../core/index.js';

/** Production endpoints of the UnionPay online gateway (全渠道, ACP 5.1.0). */
export const PRODUCTION_URLS = {
  front_trans_url: 'https://gateway.95516.com/gateway/api/frontTransReq.do',
  back_trans_url: 'https://gateway.95516.com/gateway/api/backTransReq.do',
  query_url: 'https://gateway.95516.com/gateway/api/queryTrans.do',
  file_trans_url: 'https://filedownload.95516.com/',
} as const;

/**
 * A PEM certificate given inline, or a path to a PEM/DER file (relative paths resolve against ctx.configDir).
 * Inline PEM is recognised by its `-----BEGIN` header.
 */
const certSource = z.string().min(1);

export const unionPayConfigSchema = z
  .object({
    /** 商户号 (15 digits). */
    mer_id: z.string().regex(/^[0-9A-Za-z]{15}$/, 'mer_id is the 15-character UnionPay merchant number'),
    /** PKCS#12 (.pfx) with the merchant signing key and certificate (acpsdk signCert.path). */
    sign_cert_pfx: z.string().min(1),
    /** Password of the .pfx (acpsdk signCert.pwd). */
    sign_cert_password: z.string(),
    /** UnionPay root CA (acpsdk rootCert.path): path or inline PEM. */
    root_cert: certSource,
    /** UnionPay intermediate CA (acpsdk middleCert.path): path or inline PEM. */
    middle_cert: certSource,
    front_trans_url: z.string().url().default(PRODUCTION_URLS.front_trans_url),
    back_trans_url: z.string().url().default(PRODUCTION_URLS.back_trans_url),
    query_url: z.string().url().default(PRODUCTION_URLS.query_url),
    file_trans_url: z.string().url().default(PRODUCTION_URLS.file_trans_url),
    /**
     * Optional upper bound on how long an order stays payable at UnionPay, in seconds after txnTime. The payTimeout sent
     * is the earlier of the payment's expiresAt and txnTime + pay_timeout_s.
     */
    pay_timeout_s: z.number().int().positive().max(7 * 24 * 3600).optional(),
    /** The statement download can be large: its own timeout (other calls use the account's `timeout_ms`). */
    statement_timeout_ms: z.number().int().positive().max(300_000).default(60_000),
  })
  .strict();

export type UnionPayConfig = z.output<typeof unionPayConfigSchema>;
export type UnionPayConfigInput = z.input<typeof unionPayConfigSchema>;
