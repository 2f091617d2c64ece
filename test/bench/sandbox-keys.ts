// The channels' sandbox key material, as the simulators issue it: each simulator is started once in-process on a
// temporary data dir, its credentials are read, and it is closed again.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startWechatPaySimulator } from '../../plugins/wechatpay/simulator/index.js';
import { startAlipaySimulator } from '../../plugins/alipay/simulator/index.js';
import { startUnionPaySimulator } from '../../plugins/unionpay/simulator/index.js';
import { startBankSimulator } from '../../plugins/bank/simulator/index.js';
import type { ChannelName } from './channel-wire.js';

export interface ChannelKeyMaterial {
  channel: ChannelName;
  /** The merchant's signing key as a PEM file holds it (absent when it only ships inside a PKCS#12). */
  privateKeyPem?: string;
  /** The matching public key: SPKI PEM or the merchant certificate PEM. */
  publicKeyPem: string;
  /** The merchant's PKCS#12 bundle, when the channel issues one. */
  pkcs12?: { der: Buffer; password: string };
}

export async function wechatPayKeys(dataDir: string): Promise<ChannelKeyMaterial> {
  const sim = await startWechatPaySimulator({ dataDir });
  await sim.close();
  const m = sim.credentials.direct;
  return {
    channel: 'wechatpay',
    privateKeyPem: m.merchantPrivateKeyPem,
    publicKeyPem: readFileSync(m.merchantCertificatePath, 'utf8'),
    pkcs12: { der: readFileSync(m.merchantPkcs12Path), password: m.mchid },
  };
}

export async function alipayKeys(dataDir: string): Promise<ChannelKeyMaterial> {
  const sim = await startAlipaySimulator({ dataDir });
  await sim.close();
  const c = sim.credentials;
  return { channel: 'alipay', privateKeyPem: c.appPrivateKeyPem, publicKeyPem: readFileSync(c.appPublicKeyPath, 'utf8') };
}

export async function unionPayKeys(dataDir: string): Promise<ChannelKeyMaterial> {
  const sim = await startUnionPaySimulator({ dataDir });
  await sim.close();
  const c = sim.credentials;
  return {
    channel: 'unionpay',
    // The merchant certificate sits next to the .pfx "for reference" (simulator README).
    publicKeyPem: readFileSync(join(dataDir, 'simulators', 'unionpay', 'acp_test_sign.cer'), 'utf8'),
    pkcs12: { der: readFileSync(c.signCertPfxPath), password: c.signCertPassword },
  };
}

export async function bankKeys(dataDir: string): Promise<ChannelKeyMaterial> {
  const sim = await startBankSimulator({ dataDir });
  await sim.close();
  const c = sim.credentials;
  return { channel: 'bank', privateKeyPem: c.merchantPrivateKeyPem, publicKeyPem: readFileSync(c.merchantPublicKeyPath, 'utf8') };
}

export async function sandboxKeyMaterial(dataDir: string): Promise<ChannelKeyMaterial[]> {
  // One after the other: key generation is CPU-bound and the machine is small.
  return [await wechatPayKeys(dataDir), await alipayKeys(dataDir), await unionPayKeys(dataDir), await bankKeys(dataDir)];
}
