import { generateKeyPairSync, createPrivateKey, createPublicKey, createHash, type KeyObject } from 'node:crypto';
import { rsaSha256SignBase64 } from '../contract/signing.js';
import { randomPoolBytes } from './ids.js';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type SignedHeaders = { 'Corbel-Timestamp': string; 'Corbel-Nonce': string; 'Corbel-Signature': string; 'Corbel-Key-Id': string };

/** The gateway's own RSA key: it signs every API response and every webhook. */
export interface GatewaySigner {
  keyId: string;
  publicKeyPem: string;
  /** Returns the Corbel-Timestamp/Nonce/Signature headers for a body. */
  signHeaders(body: string): Promise<SignedHeaders>;
}

export function gatewaySignedString(timestamp: string, nonce: string, body: string): string {
  return `${timestamp}\n${nonce}\n${body}\n`;
}

export function loadOrCreateGatewayKey(dataDir: string): GatewaySigner {
  const dir = join(dataDir, 'keys');
  const path = join(dir, 'gateway_private_key.pem');
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  }
  return createGatewaySigner(createPrivateKey(readFileSync(path)));
}

export function createGatewaySigner(privateKey: KeyObject): GatewaySigner {
  const publicKey = createPublicKey(privateKey);
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const keyId = createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
  return {
    keyId,
    publicKeyPem,
    async signHeaders(body) {
      const timestamp = Math.floor(Date.now() / 1000).toString();
      const nonce = randomPoolBytes(12).toString('hex');
      const signature = await rsaSha256SignBase64(gatewaySignedString(timestamp, nonce, body), privateKey);
      return { 'Corbel-Timestamp': timestamp, 'Corbel-Nonce': nonce, 'Corbel-Signature': signature, 'Corbel-Key-Id': keyId };
    },
  };
}
