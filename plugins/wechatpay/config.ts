import { z } from '../../core/index.js';

/** Production host of WeChat Pay API v3 (and of the APIv2 `/pay/micropay` endpoint). */
export const WECHATPAY_PRODUCTION_URL = 'https://api.mch.weixin.qq.com';

const pem = z.string().regex(/-----BEGIN [A-Z0-9 ]+-----/, 'expected PEM text');

/**
 * One WeChat Pay merchant account. Key/cert paths are relative to the config file's directory (or absolute);
 * each file-based field has an inline `_pem` alternative for secrets injected by the environment.
 */
export const wechatPayConfigSchema = z
  .object({
    /** `direct`: an ordinary merchant. `service_provider`: a 服务商 acting for sub-merchants (partner endpoints). */
    mode: z.enum(['direct', 'service_provider']).default('direct'),
    /** The merchant id; in service-provider mode the service provider's own id (sp_mchid). */
    mchid: z.string().regex(/^\d{6,32}$/, 'mchid is the numeric merchant id'),
    /** The AppID bound to the merchant (sp_appid in service-provider mode). */
    appid: z.string().min(1),
    /** Default sub-merchant (service-provider mode) when a payment's binding names none. */
    sub_mchid: z.string().regex(/^\d{6,32}$/).optional(),
    /** Default sub-merchant AppID (service-provider mode, optional: only when payers use the sub-merchant's app). */
    sub_appid: z.string().min(1).optional(),
    /** The merchant API private key (apiclient_key.pem, PKCS#8 or PKCS#1). */
    private_key_path: z.string().min(1).optional(),
    private_key_pem: pem.optional(),
    /** The merchant API certificate (apiclient_cert.pem); its serial is used when certificate_serial is absent. */
    certificate_path: z.string().min(1).optional(),
    /** PKCS#12 bundle (apiclient_cert.p12) holding both key and certificate; passphrase defaults to the mchid. */
    pkcs12_path: z.string().min(1).optional(),
    pkcs12_passphrase: z.string().optional(),
    /** Serial number of the merchant API certificate (hex). */
    certificate_serial: z.string().regex(/^[0-9A-Fa-f]{1,64}$/).optional(),
    /** The 32-character APIv3 key (AES-256-GCM key for notifications and platform certificates). */
    api_v3_key: z.string().length(32, 'the APIv3 key is exactly 32 characters'),
    /** The 32-character APIv2 key, needed only for micropay (/pay/micropay is an APIv2 XML API). */
    api_v2_key: z.string().length(32, 'the APIv2 key is exactly 32 characters').optional(),
    micropay_sign_type: z.enum(['MD5', 'HMAC-SHA256']).default('HMAC-SHA256'),
    /**
     * Platform certificates: `fetch` downloads them from GET /v3/certificates when the account is created and again
     * when an unknown Wechatpay-Serial appears; `off` for merchants that only have the WeChat Pay public key.
     */
    platform_certificates: z.enum(['fetch', 'off']).default('fetch'),
    /** The WeChat Pay public key (微信支付公钥) and its id `PUB_KEY_ID_…`; both modes are accepted when both are set. */
    public_key_id: z.string().min(1).optional(),
    public_key_path: z.string().min(1).optional(),
    public_key_pem: pem.optional(),
    base_url: z.string().url().default(WECHATPAY_PRODUCTION_URL),
    /** Per-call timeout; the kernel's account timeout applies when absent. */
    timeout_ms: z.number().int().positive().max(120_000).optional(),
    /** Largest accepted difference between Wechatpay-Timestamp and the local clock. */
    max_clock_skew_seconds: z.number().int().positive().max(3600).default(300),
  })
  .superRefine((c, ctx) => {
    const hasKey = c.private_key_path || c.private_key_pem || c.pkcs12_path;
    if (!hasKey) ctx.addIssue({ code: 'custom', path: ['private_key_path'], message: 'one of private_key_path, private_key_pem or pkcs12_path is required' });
    if (!c.certificate_serial && !c.certificate_path && !c.pkcs12_path) {
      ctx.addIssue({ code: 'custom', path: ['certificate_serial'], message: 'certificate_serial (or certificate_path / pkcs12_path to read it from) is required' });
    }
    const hasPublicKey = Boolean(c.public_key_path || c.public_key_pem);
    if (hasPublicKey !== Boolean(c.public_key_id)) {
      ctx.addIssue({ code: 'custom', path: ['public_key_id'], message: 'public_key_id and public_key_path (or public_key_pem) go together' });
    }
    if (c.public_key_id && !c.public_key_id.startsWith('PUB_KEY_ID_')) {
      ctx.addIssue({ code: 'custom', path: ['public_key_id'], message: 'a WeChat Pay public key id starts with PUB_KEY_ID_' });
    }
    if (c.platform_certificates === 'off' && !hasPublicKey) {
      ctx.addIssue({ code: 'custom', path: ['platform_certificates'], message: 'with platform_certificates off, the WeChat Pay public key (public_key_id + public_key_path) is required' });
    }
    if (c.mode === 'direct' && (c.sub_mchid || c.sub_appid)) {
      ctx.addIssue({ code: 'custom', path: ['sub_mchid'], message: 'sub_mchid / sub_appid are only meaningful with mode: service_provider' });
    }
  });

export type WechatPayConfig = z.output<typeof wechatPayConfigSchema>;
