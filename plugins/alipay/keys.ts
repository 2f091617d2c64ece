import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';

/** Key material parsed once per account; the per-request path only uses these KeyObjects. */
export interface AlipayKeys {
  appPrivateKey: KeyObject;
  alipayPublicKey: KeyObject;
}

const BARE_BASE64 = /^[A-Za-z0-9+/=\s]+$/;

/** A config value is inline material when it is a PEM block or a long bare base64 body; otherwise a path. */
async function material(value: string, configDir: string): Promise<string> {
  const trimmed = value.trim();
  if (trimmed.includes('-----BEGIN ')) return trimmed;
  if (trimmed.length > 200 && BARE_BASE64.test(trimmed) && !trimmed.includes('.')) return trimmed;
  const path = isAbsolute(trimmed) ? trimmed : resolve(configDir, trimmed);
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    throw new Error(`cannot read key file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function parsePrivateKey(text: string): KeyObject {
  if (text.includes('-----BEGIN ')) {
    const key = createPrivateKey({ key: text, format: 'pem' });
    if (key.asymmetricKeyType !== 'rsa') throw new Error(`private_key is ${key.asymmetricKeyType}, RSA2 needs an RSA key`);
    return key;
  }
  const der = Buffer.from(text.replace(/\s+/g, ''), 'base64');
  for (const type of ['pkcs8', 'pkcs1'] as const) {
    try {
      return createPrivateKey({ key: der, format: 'der', type });
    } catch {
      // try the next encoding
    }
  }
  throw new Error('private_key is neither a PEM block nor a base64 PKCS#8/PKCS#1 RSA key');
}

export function parsePublicKey(text: string): KeyObject {
  if (text.includes('-----BEGIN ')) return createPublicKey({ key: text, format: 'pem' });
  const der = Buffer.from(text.replace(/\s+/g, ''), 'base64');
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      return createPublicKey({ key: der, format: 'der', type });
    } catch {
      // try the next encoding
    }
  }
  throw new Error('alipay_public_key is neither a PEM block nor a base64 SPKI/PKCS#1 RSA key');
}

export async function loadKeys(cfg: { private_key: string; alipay_public_key: string }, configDir: string): Promise<AlipayKeys> {
  const appPrivateKey = parsePrivateKey(await material(cfg.private_key, configDir));
  const alipayPublicKey = parsePublicKey(await material(cfg.alipay_public_key, configDir));
  if (alipayPublicKey.asymmetricKeyType !== 'rsa') throw new Error('alipay_public_key is not an RSA key');
  return { appPrivateKey, alipayPublicKey };
}
