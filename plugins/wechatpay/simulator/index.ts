// WeChat Pay API v3 simulator (plus the APIv2 micropay endpoint). See README.md next to this file.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIRECT_MERCHANT, SERVICE_PROVIDER, loadOrCreateKeyMaterial, type KeyMaterial, type MerchantKeys } from './keys.js';
import { WechatPaySimulator, type VerificationMode } from './server.js';
import type { SimulatorBaseOptions } from '../../../core/index.js';

export type { VerificationMode } from './server.js';
export type { FaultSet } from '../../../core/index.js';

/** notifyRetryDelaysMs defaults to a compressed copy of WeChat's 15s/15s/30s/3m/10m/… schedule. */
export interface SimulatorOptions extends SimulatorBaseOptions {
  /** Initial verification mode of every merchant (default platform_certificate); changeable via the control API. */
  verificationMode?: VerificationMode;
  /** How long refunds stay PROCESSING before SUCCESS (default 200 ms). */
  refundDelayMs?: number;
}

/** What one merchant downloads from the (simulated) merchant portal. */
export interface WechatPayMerchantCredentials {
  mchid: string;
  appid: string;
  /** Absolute path of apiclient_key.pem (PKCS#8). */
  merchantPrivateKeyPath: string;
  merchantPrivateKeyPem: string;
  /** Absolute path of apiclient_cert.pem and apiclient_cert.p12 (passphrase = mchid). */
  merchantCertificatePath: string;
  merchantPkcs12Path: string;
  /** Merchant API certificate serial, uppercase hex as the portal shows it: the Authorization serial_no. */
  merchantCertificateSerial: string;
  /** APIv3 key (32 ASCII chars): AES-256-GCM key of notifications and /v3/certificates. */
  apiV3Key: string;
  /** APIv2 key (32 chars): MD5 / HMAC-SHA256 key of /pay/micropay. */
  apiV2Key: string;
  /** The WeChat Pay public key id as shown to this merchant; Wechatpay-Serial in public-key mode. */
  wechatpayPublicKeyId: string;
  /** Initial response/notification verification mode for this merchant. */
  verificationMode: VerificationMode;
}

export interface WechatPaySandboxCredentials {
  channel: 'wechatpay';
  baseUrl: string;
  /** Ordinary (direct) merchant. */
  direct: WechatPayMerchantCredentials;
  /** Service provider; its requests use sp_mchid/sp_appid and name the sub-merchant. */
  serviceProvider: WechatPayMerchantCredentials & { subMchid: string; subAppid: string };
  /** WeChat Pay platform certificate (platform_certificate mode; also served by GET /v3/certificates). */
  platformCertificate: { serialNo: string; path: string; pem: string };
  /** WeChat Pay public key (public_key mode); one key, each merchant sees it under its own id. */
  wechatpayPublicKey: { path: string; pem: string };
}

export interface RunningSimulator {
  channel: 'wechatpay';
  url: string;
  credentials: WechatPaySandboxCredentials;
  close(): Promise<void>;
}

/** WeChat retries at 15s, 15s, 30s, 3m, 10m, …; the sandbox keeps the rhythm but shrinks it. */
export const DEFAULT_NOTIFY_RETRY_DELAYS_MS = [1000, 2000, 5000, 10000, 30000];

function merchantCredentials(merchant: MerchantKeys, mode: VerificationMode): WechatPayMerchantCredentials {
  return {
    mchid: merchant.identity.mchid,
    appid: merchant.identity.appid,
    merchantPrivateKeyPath: merchant.privateKeyPath,
    merchantPrivateKeyPem: merchant.privateKeyPem,
    merchantCertificatePath: merchant.certificatePath,
    merchantPkcs12Path: merchant.pkcs12Path,
    merchantCertificateSerial: merchant.certificateSerial,
    apiV3Key: merchant.apiV3Key,
    apiV2Key: merchant.apiV2Key,
    wechatpayPublicKeyId: merchant.wechatpayPublicKeyId,
    verificationMode: mode,
  };
}

export function buildCredentials(keys: KeyMaterial, baseUrl: string, mode: VerificationMode): WechatPaySandboxCredentials {
  const direct = keys.merchants.find((merchant) => merchant.identity.mchid === DIRECT_MERCHANT.mchid)!;
  const sp = keys.merchants.find((merchant) => merchant.identity.mchid === SERVICE_PROVIDER.mchid)!;
  return {
    channel: 'wechatpay',
    baseUrl,
    direct: merchantCredentials(direct, mode),
    serviceProvider: { ...merchantCredentials(sp, mode), subMchid: SERVICE_PROVIDER.subMchid!, subAppid: SERVICE_PROVIDER.subAppid! },
    platformCertificate: { serialNo: keys.platform.certificateSerial, path: keys.platform.certificatePath, pem: keys.platform.certificatePem },
    wechatpayPublicKey: { path: keys.platform.publicKeyPath, pem: keys.platform.publicKeyPem },
  };
}

/** Builds the simulator without listening (tests may drive `listen` themselves). */
export function createWechatPaySimulatorApp(opts: SimulatorOptions): WechatPaySimulator {
  const keys = loadOrCreateKeyMaterial(opts.dataDir);
  return new WechatPaySimulator({
    keys,
    retryDelaysMs: opts.notifyRetryDelaysMs ?? DEFAULT_NOTIFY_RETRY_DELAYS_MS,
    refundDelayMs: opts.refundDelayMs ?? 200,
    verificationMode: opts.verificationMode ?? 'platform_certificate',
    log: opts.log ?? (() => undefined),
  });
}

export async function startWechatPaySimulator(opts: SimulatorOptions): Promise<RunningSimulator> {
  const simulator = createWechatPaySimulatorApp(opts);
  const keys = simulator.keyMaterial;
  const url = await simulator.listen(opts.host ?? '127.0.0.1', opts.port ?? 0);
  const credentials = buildCredentials(keys, url, opts.verificationMode ?? 'platform_certificate');
  writeFileSync(join(keys.dir, 'credentials.json'), JSON.stringify(credentials, null, 2), { mode: 0o600 });
  opts.log?.({ msg: 'wechatpay simulator listening', url });
  return { channel: 'wechatpay', url, credentials, close: () => simulator.close() };
}
