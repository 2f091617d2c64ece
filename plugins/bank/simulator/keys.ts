// Sandbox key material: generated on first run under `${dataDir}/simulators/bank/`, reused afterwards.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomInt, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/** What a merchant obtains from the bank's portal to configure a gateway (PROTOCOL.md section 2). */
export interface BankSandboxCredentials {
  channel: 'bank';
  /** Base URL of the bank API, no trailing slash. */
  baseUrl: string;
  /** 12-digit merchant number, sent as X-Bank-Merchant. */
  merchantId: string;
  /** Absolute path of the merchant's RSA-2048 private key (PKCS#8 PEM); signs requests. */
  merchantPrivateKeyPath: string;
  merchantPrivateKeyPem: string;
  /** Absolute path of the merchant's public key (SPKI PEM), as registered with the bank. */
  merchantPublicKeyPath: string;
  /** Absolute path of the bank's public key (SPKI PEM); verifies responses, notifications and statements. */
  bankPublicKeyPath: string;
  bankPublicKeyPem: string;
}

export interface BankKeyMaterial {
  merchantId: string;
  merchantPublicKey: KeyObject;
  bankPrivateKey: KeyObject;
  files: {
    dir: string;
    merchantPrivateKeyPath: string;
    merchantPublicKeyPath: string;
    bankPrivateKeyPath: string;
    bankPublicKeyPath: string;
    merchantIdPath: string;
    credentialsPath: string;
  };
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function loadOrCreateKeyPair(privatePath: string, publicPath: string): Promise<{ privatePem: string; publicPem: string }> {
  const existingPrivate = await readIfExists(privatePath);
  if (existingPrivate !== undefined) {
    const publicPem = createPublicKey(existingPrivate).export({ type: 'spki', format: 'pem' }).toString();
    if ((await readIfExists(publicPath)) !== publicPem) await writeFile(publicPath, publicPem);
    return { privatePem: existingPrivate, publicPem };
  }
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  await writeFile(privatePath, privatePem, { mode: 0o600 });
  await writeFile(publicPath, publicPem);
  return { privatePem, publicPem };
}

export async function loadKeyMaterial(dataDir: string): Promise<BankKeyMaterial & { merchantPrivateKeyPem: string; bankPublicKeyPem: string }> {
  const dir = resolve(dataDir, 'simulators', 'bank');
  await mkdir(dir, { recursive: true });
  const files = {
    dir,
    merchantPrivateKeyPath: join(dir, 'merchant_private_key.pem'),
    merchantPublicKeyPath: join(dir, 'merchant_public_key.pem'),
    bankPrivateKeyPath: join(dir, 'bank_private_key.pem'),
    bankPublicKeyPath: join(dir, 'bank_public_key.pem'),
    merchantIdPath: join(dir, 'merchant_id'),
    credentialsPath: join(dir, 'credentials.json'),
  };
  const merchant = await loadOrCreateKeyPair(files.merchantPrivateKeyPath, files.merchantPublicKeyPath);
  const bank = await loadOrCreateKeyPair(files.bankPrivateKeyPath, files.bankPublicKeyPath);
  let merchantId = (await readIfExists(files.merchantIdPath))?.trim();
  if (!merchantId || !/^\d{12}$/.test(merchantId)) {
    merchantId = `88${String(randomInt(0, 10_000_000_000)).padStart(10, '0')}`;
    await writeFile(files.merchantIdPath, `${merchantId}\n`);
  }
  return {
    merchantId,
    merchantPublicKey: createPublicKey(merchant.publicPem),
    bankPrivateKey: createPrivateKey(bank.privatePem),
    merchantPrivateKeyPem: merchant.privatePem,
    bankPublicKeyPem: bank.publicPem,
    files,
  };
}

export async function writeCredentials(material: BankKeyMaterial & { merchantPrivateKeyPem: string; bankPublicKeyPem: string }, baseUrl: string): Promise<BankSandboxCredentials> {
  const credentials: BankSandboxCredentials = {
    channel: 'bank',
    baseUrl,
    merchantId: material.merchantId,
    merchantPrivateKeyPath: material.files.merchantPrivateKeyPath,
    merchantPrivateKeyPem: material.merchantPrivateKeyPem,
    merchantPublicKeyPath: material.files.merchantPublicKeyPath,
    bankPublicKeyPath: material.files.bankPublicKeyPath,
    bankPublicKeyPem: material.bankPublicKeyPem,
  };
  await writeFile(material.files.credentialsPath, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  return credentials;
}
