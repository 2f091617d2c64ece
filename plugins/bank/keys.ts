// Key material, read and parsed once when the account is created. The per-request path then only uses the
// resulting node:crypto KeyObjects: no file I/O and no PEM parsing while a payment is in flight.
//
// A bank that ships its keys differently (a PKCS#12 bundle with a password, a certificate whose serial number
// must be sent along) changes this file only: parse with node-forge here, hand KeyObjects to the rest.
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';

export interface BankKeys {
  /** Signs our requests. */
  merchantPrivateKey: KeyObject;
  /** Verifies the bank's responses, notifications and statements. */
  bankPublicKey: KeyObject;
}

/** Inline PEM or a path relative to the config folder (see config.ts). Returns the PEM text. */
async function readPem(source: string, configDir: string, what: string): Promise<string> {
  if (source.includes('-----BEGIN')) return source;
  const path = isAbsolute(source) ? source : resolve(configDir, source);
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    // Name the field and the resolved path: "ENOENT" alone does not tell the operator which key is missing.
    throw new Error(`${what}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export async function loadBankKeys(config: { merchant_private_key: string; bank_public_key: string }, configDir: string): Promise<BankKeys> {
  const [privatePem, publicPem] = await Promise.all([
    readPem(config.merchant_private_key, configDir, 'merchant_private_key'),
    readPem(config.bank_public_key, configDir, 'bank_public_key'),
  ]);
  const merchantPrivateKey = parseKey('merchant_private_key', () => createPrivateKey(privatePem));
  // createPublicKey also accepts an X.509 certificate PEM, which is how some banks publish their key.
  const bankPublicKey = parseKey('bank_public_key', () => createPublicKey(publicPem));
  return { merchantPrivateKey, bankPublicKey };
}

function parseKey(field: string, parse: () => KeyObject): KeyObject {
  let key: KeyObject;
  try {
    key = parse();
  } catch (err) {
    throw new Error(`${field}: not a usable PEM key (${(err as Error).message})`);
  }
  // The protocol is RSA-only; an EC key would load fine here and then fail on every single request.
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`${field}: expected an RSA key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  return key;
}
