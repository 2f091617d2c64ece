/**
 * Sandbox identities and key material, generated once into `${dataDir}/simulators/alipay/` and reused.
 * RSA-2048 pairs come from node:crypto (much faster than forge); public-key mode needs no certificates.
 */
import { generateKeyPairSync, createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile, access } from 'node:fs/promises';
import path from 'node:path';

export const SANDBOX_APP_ID = '2021000000000001';
export const SANDBOX_SELLER_ID = '2088000000000001';
export const SANDBOX_SUB_MERCHANT_SELLER_ID = '2088000000000002';
export const SANDBOX_SUB_MERCHANT_APP_ID = '2021000000000002';

export interface AlipayAppAuthGrant {
  /** `app_auth_token` an ISV passes to act for the sub-merchant. */
  appAuthToken: string;
  /** The sub-merchant's seller (partner) id that trades made with this token belong to. */
  sellerId: string;
  /** The sub-merchant's own app id, echoed as `auth_app_id` in notifications. */
  authAppId: string;
}

export interface AlipaySandboxCredentials {
  channel: 'alipay';
  /** Simulator base URL. */
  baseUrl: string;
  /** OpenAPI gateway: `${baseUrl}/gateway.do` (what `alipay-sdk` calls `gateway`). */
  gatewayUrl: string;
  appId: string;
  /** Merchant partner id (2088...), the `seller_id` of direct trades. */
  sellerId: string;
  signType: 'RSA2';
  charset: 'utf-8';
  /** The merchant's application private key, PKCS#1 PEM ("RSA PRIVATE KEY"; alipay-sdk's default keyType). */
  appPrivateKeyPath: string;
  /** Same key as PKCS#8 PEM ("PRIVATE KEY"; alipay-sdk keyType 'PKCS8'). */
  appPrivateKeyPkcs8Path: string;
  /** The application public key the merchant "uploaded" to the platform. */
  appPublicKeyPath: string;
  /** Alipay platform public key (SPKI PEM) for verifying responses and notifications. */
  alipayPublicKeyPath: string;
  /** Inline copies for convenience. */
  appPrivateKeyPem: string;
  alipayPublicKeyPem: string;
  /** ISV mode: tokens granted by sub-merchants. */
  appAuthGrants: AlipayAppAuthGrant[];
}

export interface AlipayKeyMaterial {
  appPrivateKey: KeyObject;
  appPublicKey: KeyObject;
  alipayPrivateKey: KeyObject;
  alipayPublicKey: KeyObject;
  appPrivateKeyPkcs1Pem: string;
  alipayPublicKeyPem: string;
  files: {
    appPrivateKeyPath: string;
    appPrivateKeyPkcs8Path: string;
    appPublicKeyPath: string;
    alipayPublicKeyPath: string;
  };
  appAuthToken: string;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

export async function loadOrCreateKeyMaterial(dir: string): Promise<AlipayKeyMaterial> {
  await mkdir(dir, { recursive: true });
  const files = {
    appPrivateKeyPath: path.join(dir, 'app_private_key.pem'),
    appPrivateKeyPkcs8Path: path.join(dir, 'app_private_key_pkcs8.pem'),
    appPublicKeyPath: path.join(dir, 'app_public_key.pem'),
    alipayPublicKeyPath: path.join(dir, 'alipay_public_key.pem'),
  };
  // The platform private key stays on the "Alipay side": never listed in the credentials.
  const alipayPrivateKeyPath = path.join(dir, 'alipay_private_key.pem');
  const tokenPath = path.join(dir, 'app_auth_token.txt');

  const all = [...Object.values(files), alipayPrivateKeyPath, tokenPath];
  const present = await Promise.all(all.map(exists));
  if (present.some((p) => !p)) {
    const app = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const platform = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(files.appPrivateKeyPath, app.privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
    await writeFile(files.appPrivateKeyPkcs8Path, app.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(files.appPublicKeyPath, app.publicKey.export({ type: 'spki', format: 'pem' }));
    await writeFile(alipayPrivateKeyPath, platform.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(files.alipayPublicKeyPath, platform.publicKey.export({ type: 'spki', format: 'pem' }));
    // Real tokens look like "202511BB<32 hex>"; the exact shape is opaque to merchants.
    await writeFile(tokenPath, `202511BB${randomBytes(16).toString('hex')}`);
  }

  const appPrivateKeyPkcs1Pem = await readFile(files.appPrivateKeyPath, 'utf8');
  const alipayPublicKeyPem = await readFile(files.alipayPublicKeyPath, 'utf8');
  return {
    appPrivateKey: createPrivateKey(appPrivateKeyPkcs1Pem),
    appPublicKey: createPublicKey(await readFile(files.appPublicKeyPath, 'utf8')),
    alipayPrivateKey: createPrivateKey(await readFile(alipayPrivateKeyPath, 'utf8')),
    alipayPublicKey: createPublicKey(alipayPublicKeyPem),
    appPrivateKeyPkcs1Pem,
    alipayPublicKeyPem,
    files,
    appAuthToken: (await readFile(tokenPath, 'utf8')).trim(),
  };
}

export function buildCredentials(baseUrl: string, keys: AlipayKeyMaterial): AlipaySandboxCredentials {
  return {
    channel: 'alipay',
    baseUrl,
    gatewayUrl: `${baseUrl}/gateway.do`,
    appId: SANDBOX_APP_ID,
    sellerId: SANDBOX_SELLER_ID,
    signType: 'RSA2',
    charset: 'utf-8',
    ...keys.files,
    appPrivateKeyPem: keys.appPrivateKeyPkcs1Pem,
    alipayPublicKeyPem: keys.alipayPublicKeyPem,
    appAuthGrants: [
      { appAuthToken: keys.appAuthToken, sellerId: SANDBOX_SUB_MERCHANT_SELLER_ID, authAppId: SANDBOX_SUB_MERCHANT_APP_ID },
    ],
  };
}
