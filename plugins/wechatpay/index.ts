/** WeChat Pay API v3 channel plugin (direct merchants and service providers), with APIv2 micropay. */
import { ChannelError, z, type ChannelAccountContext, type ChannelPlugin, type RunningChannelSimulator } from '../../core/index.js';
import { WechatPayAccount } from './account.js';
import { wechatPayConfigSchema, type WechatPayConfig } from './config.js';
import { loadMerchantKeys } from './keys.js';
import { PAY_METHODS } from './transformers.js';

async function createAccount(config: WechatPayConfig, ctx: ChannelAccountContext): Promise<WechatPayAccount> {
  const keys = await loadMerchantKeys(config, ctx.configDir);
  const account = new WechatPayAccount(config, keys, ctx);
  if (config.platform_certificates === 'fetch') {
    try {
      await account.refreshPlatformCertificates();
    } catch (err) {
      // Unreachable now is not misconfigured: with the channel down at boot, the first answer's unknown serial
      // triggers the download again. Bad keys or a forged answer stop the account here.
      const transient = err instanceof ChannelError && (err.code === 'timeout' || err.code === 'channel_unavailable');
      if (!transient) throw err;
      ctx.logger.warn({ account: ctx.accountName, error: (err as Error).message }, 'WeChat Pay platform certificates not loaded yet; will retry on demand');
    }
  }
  return account;
}

// ---------------------------------------------------------------- sandbox binding

const merchantCredentials = z.object({
  mchid: z.string(),
  appid: z.string(),
  merchantPrivateKeyPath: z.string(),
  merchantCertificatePath: z.string().optional(),
  merchantCertificateSerial: z.string(),
  apiV3Key: z.string(),
  apiV2Key: z.string().optional(),
  wechatpayPublicKeyId: z.string().optional(),
});

const sandboxCredentials = z.object({
  baseUrl: z.string(),
  direct: merchantCredentials,
  serviceProvider: merchantCredentials.extend({ subMchid: z.string(), subAppid: z.string().optional() }),
  wechatpayPublicKey: z.object({ path: z.string() }),
});

/**
 * variant: `direct` (default) | `service_provider`, optionally joined with `+public_key` (verify with the WeChat Pay
 * public key only, no /v3/certificates) or `+migration` (platform certificates and public key both accepted).
 * `public_key` / `migration` alone mean the direct merchant.
 */
function accountConfig(credentials: unknown, variant: string | undefined): WechatPayConfig {
  const creds = sandboxCredentials.parse(credentials);
  const parts = new Set((variant ?? 'direct').split('+').map((p) => p.trim()).filter(Boolean));
  const sp = parts.has('service_provider');
  const m = sp ? creds.serviceProvider : creds.direct;
  const input: Record<string, unknown> = {
    mode: sp ? 'service_provider' : 'direct',
    mchid: m.mchid,
    appid: m.appid,
    private_key_path: m.merchantPrivateKeyPath,
    certificate_path: m.merchantCertificatePath,
    certificate_serial: m.merchantCertificateSerial,
    api_v3_key: m.apiV3Key,
    api_v2_key: m.apiV2Key,
    base_url: creds.baseUrl,
    platform_certificates: parts.has('public_key') ? 'off' : 'fetch',
  };
  if (sp) input.sub_mchid = creds.serviceProvider.subMchid;
  if ((parts.has('public_key') || parts.has('migration')) && m.wechatpayPublicKeyId) {
    input.public_key_id = m.wechatpayPublicKeyId;
    input.public_key_path = creds.wechatpayPublicKey.path;
  }
  return wechatPayConfigSchema.parse(input);
}

const plugin: ChannelPlugin<WechatPayConfig> = {
  manifest: {
    name: 'wechatpay',
    version: '0.1.0',
    kind: 'channel',
    contract: '1',
    description: 'WeChat Pay API v3 (direct and service provider), micropay via APIv2',
    payMethods: PAY_METHODS,
    payerFields: { 'wechat.jsapi': ['openid'], 'wechat.h5': ['client_ip'], 'wechat.micropay': ['auth_code', 'client_ip'] },
    configSchema: wechatPayConfigSchema,
  },
  createAccount,
  sandbox: {
    async startSimulator(opts): Promise<RunningChannelSimulator> {
      const sim = (await import('./simulator/index.js')) as unknown as { startWechatPaySimulator(o: typeof opts): Promise<RunningChannelSimulator> };
      return sim.startWechatPaySimulator(opts);
    },
    accountConfig,
  },
};

export default plugin;
