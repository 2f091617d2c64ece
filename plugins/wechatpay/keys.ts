/**
 * Key material, parsed once when the account is created: the merchant's API key and certificate serial,
 * the APIv3 key, the optional WeChat Pay public key, and the platform-certificate store.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { createPrivateKey, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import type { WechatPayConfig } from './config.js';

export interface MerchantKeys {
  privateKey: KeyObject;
  /** Uppercase hex serial of the merchant API certificate. */
  serialNo: string;
  /** Not-after of the merchant certificate when known. */
  certificateExpiresAt?: Date;
  apiV3Key: KeyObject;
  publicKey?: { id: string; key: KeyObject };
}

async function readText(configDir: string, path: string): Promise<string> {
  return readFile(isAbsolute(path) ? path : resolve(configDir, path), 'utf8');
}

function certificateInfo(pem: string): { serialNo: string; expiresAt: Date } {
  const cert = forge.pki.certificateFromPem(pem);
  return { serialNo: cert.serialNumber.toUpperCase(), expiresAt: cert.validity.notAfter };
}

function fromPkcs12(der: Buffer, passphrase: string): { keyPem: string; certPem: string } {
  const p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary'))), passphrase);
  const keyBag = p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag! })[forge.pki.oids.pkcs8ShroudedKeyBag!]?.[0]
    ?? p12.getBags({ bagType: forge.pki.oids.keyBag! })[forge.pki.oids.keyBag!]?.[0];
  const certBag = p12.getBags({ bagType: forge.pki.oids.certBag! })[forge.pki.oids.certBag!]?.[0];
  if (!keyBag?.key || !certBag?.cert) throw new Error('the PKCS#12 file holds no private key and certificate');
  return { keyPem: forge.pki.privateKeyToPem(keyBag.key), certPem: forge.pki.certificateToPem(certBag.cert) };
}

export async function loadMerchantKeys(config: WechatPayConfig, configDir: string): Promise<MerchantKeys> {
  let keyPem = config.private_key_pem ?? (config.private_key_path ? await readText(configDir, config.private_key_path) : undefined);
  let certPem = config.certificate_path ? await readText(configDir, config.certificate_path) : undefined;
  if (config.pkcs12_path && (!keyPem || !certPem)) {
    const path = config.pkcs12_path;
    const bundle = fromPkcs12(await readFile(isAbsolute(path) ? path : resolve(configDir, path)), config.pkcs12_passphrase ?? config.mchid);
    keyPem ??= bundle.keyPem;
    certPem ??= bundle.certPem;
  }
  if (!keyPem) throw new Error('no merchant private key configured');
  const privateKey = createPrivateKey(keyPem);
  const cert = certPem ? certificateInfo(certPem) : undefined;
  const serialNo = (config.certificate_serial ?? cert?.serialNo ?? '').toUpperCase();
  if (!serialNo) throw new Error('the merchant certificate serial is unknown');
  if (config.certificate_serial && cert && cert.serialNo.replace(/^0+/, '') !== serialNo.replace(/^0+/, '')) {
    throw new Error(`certificate_serial ${serialNo} does not match the certificate's serial ${cert.serialNo}`);
  }
  const keys: MerchantKeys = { privateKey, serialNo, apiV3Key: createSecretKey(Buffer.from(config.api_v3_key, 'utf8')) };
  if (cert) keys.certificateExpiresAt = cert.expiresAt;
  const publicPem = config.public_key_pem ?? (config.public_key_path ? await readText(configDir, config.public_key_path) : undefined);
  if (publicPem && config.public_key_id) keys.publicKey = { id: config.public_key_id, key: createPublicKey(publicPem) };
  return keys;
}

export interface PlatformCertificate {
  serialNo: string;
  key: KeyObject;
  expiresAt: Date;
}

/** Parses a decrypted platform certificate (PEM) into its serial, public key and expiry. */
export function parsePlatformCertificate(pem: string): PlatformCertificate {
  const info = certificateInfo(pem);
  return { serialNo: info.serialNo, key: createPublicKey(pem), expiresAt: info.expiresAt };
}
