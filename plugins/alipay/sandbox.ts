/** The only place the plugin reads the simulator's output: its credentials object → this plugin's config. */
import type { AlipayConfig } from './config.js';

interface SimulatorCredentials {
  appId: string;
  sellerId?: string;
  gatewayUrl: string;
  appPrivateKeyPath?: string;
  appPrivateKeyPem?: string;
  alipayPublicKeyPath?: string;
  alipayPublicKeyPem?: string;
  appAuthGrants?: Array<{ appAuthToken: string; sellerId?: string; authAppId?: string }>;
}

function isCredentials(c: unknown): c is SimulatorCredentials {
  const o = c as Record<string, unknown> | null;
  return !!o && typeof o.appId === 'string' && typeof o.gatewayUrl === 'string';
}

/** variant: undefined/'direct' → the app itself; 'isv' → the app acting for the first authorising merchant. */
export function accountConfig(credentials: unknown, variant: string | undefined): AlipayConfig {
  if (!isCredentials(credentials)) throw new Error('alipay sandbox: unexpected simulator credentials');
  const c = credentials;
  const privateKey = c.appPrivateKeyPem ?? c.appPrivateKeyPath;
  const publicKey = c.alipayPublicKeyPem ?? c.alipayPublicKeyPath;
  if (!privateKey || !publicKey) throw new Error('alipay sandbox: credentials lack the app private key or the Alipay public key');
  const base: AlipayConfig = {
    app_id: c.appId,
    private_key: privateKey,
    alipay_public_key: publicKey,
    gateway_url: c.gatewayUrl,
    statement_timeout_ms: 30_000,
  };
  if (variant === undefined || variant === 'direct' || variant === 'default') {
    if (c.sellerId) base.seller_id = c.sellerId;
    return base;
  }
  if (variant === 'isv' || variant === 'service_provider') {
    const grant = c.appAuthGrants?.[0];
    if (!grant) throw new Error('alipay sandbox: the simulator issued no app_auth_token grant');
    return { ...base, app_auth_token: grant.appAuthToken };
  }
  throw new Error(`alipay sandbox: unknown variant ${variant} (direct | isv)`);
}
