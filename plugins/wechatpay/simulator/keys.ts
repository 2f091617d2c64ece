// Sandbox key material: generated once into `${dataDir}/simulators/wechatpay/`, reused on later starts.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { randomNonce } from './crypto.js';

export interface MerchantIdentity {
  mchid: string;
  appid: string;
  /** Only for the service provider: its sub-merchant and the sub-merchant's app. */
  subMchid?: string;
  subAppid?: string;
}

export const DIRECT_MERCHANT: MerchantIdentity = { mchid: '1900000001', appid: 'wx8888888888888888' };
export const SERVICE_PROVIDER: MerchantIdentity = {
  mchid: '1900000100',
  appid: 'wx8888888888888100',
  subMchid: '1900000109',
  subAppid: 'wx8888888888888109',
};

export interface MerchantKeys {
  identity: MerchantIdentity;
  privateKeyPath: string;
  certificatePath: string;
  pkcs12Path: string;
  /** Certificate serial as WeChat shows it: uppercase hex. */
  certificateSerial: string;
  privateKeyPem: string;
  certificatePem: string;
  publicKey: KeyObject;
  apiV3Key: string;
  apiV2Key: string;
  /** ID of the WeChat Pay public key as shown to this merchant (`PUB_KEY_ID_…`). */
  wechatpayPublicKeyId: string;
}

export interface PlatformKeys {
  certificatePath: string;
  certificatePem: string;
  certificateSerial: string;
  certificatePrivateKey: KeyObject;
  effectiveTime: Date;
  expireTime: Date;
  publicKeyPath: string;
  publicKeyPem: string;
  publicKeyPrivateKey: KeyObject;
}

export interface KeyMaterial {
  dir: string;
  merchants: MerchantKeys[];
  platform: PlatformKeys;
}

interface PersistedSecrets {
  merchants: Record<string, { apiV3Key: string; apiV2Key: string; wechatpayPublicKeyId: string }>;
}

function newRsaKeyPem(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** Positive 20-byte serial (first byte < 0x80 keeps the DER INTEGER positive), uppercase hex. */
function newSerialHex(): string {
  const bytes = randomBytes(20);
  bytes[0] = (bytes[0] & 0x7f) | 0x10;
  return bytes.toString('hex').toUpperCase();
}

interface IssuedCertificate {
  pem: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

function issueCertificate(
  subjectKeyPem: string,
  subject: forge.pki.CertificateField[],
  issuer: { keyPem: string; subject: forge.pki.CertificateField[] } | null,
): IssuedCertificate {
  const cert = forge.pki.createCertificate();
  const privateKey = forge.pki.privateKeyFromPem(subjectKeyPem) as forge.pki.rsa.PrivateKey;
  cert.publicKey = forge.pki.setRsaPublicKey(privateKey.n, privateKey.e);
  const serial = newSerialHex();
  cert.serialNumber = serial.toLowerCase();
  const notBefore = new Date(Date.now() - 24 * 3600 * 1000);
  const notAfter = new Date(notBefore.getTime() + 5 * 365 * 24 * 3600 * 1000);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject(subject);
  cert.setIssuer(issuer ? issuer.subject : subject);
  cert.setExtensions(issuer ? [{ name: 'basicConstraints', cA: false }, { name: 'keyUsage', digitalSignature: true, keyEncipherment: true }] : [{ name: 'basicConstraints', cA: true }]);
  const signingKey = forge.pki.privateKeyFromPem(issuer ? issuer.keyPem : subjectKeyPem);
  cert.sign(signingKey, forge.md.sha256.create());
  return { pem: forge.pki.certificateToPem(cert), serial, notBefore, notAfter };
}

function certificateSerialOf(pem: string): string {
  return forge.pki.certificateFromPem(pem).serialNumber.toUpperCase().replace(/^0+(?=[0-9A-F]{40}$)/, '');
}

const ROOT_SUBJECT: forge.pki.CertificateField[] = [
  { name: 'countryName', value: 'CN' },
  { name: 'organizationName', value: 'Tenpay.com' },
  { name: 'organizationalUnitName', value: 'Tenpay.com CA Center' },
  { name: 'commonName', value: 'Tenpay.com Root CA (Corbel sandbox)' },
];

function merchantSubject(mchid: string): forge.pki.CertificateField[] {
  return [
    { name: 'countryName', value: 'CN' },
    // forge wants UTF-8 as a binary string plus an explicit UTF8String tag for non-ASCII values.
    { name: 'organizationName', value: forge.util.encodeUtf8('微信商户系统'), valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class },
    { name: 'organizationalUnitName', value: 'Corbel sandbox merchant' },
    { name: 'commonName', value: mchid },
  ];
}

function writeIfMissing(path: string, content: string | Buffer, mode = 0o600): void {
  if (!existsSync(path)) writeFileSync(path, content, { mode });
}

/** Loads the persisted key material or generates it (RSA with node:crypto, X.509 + PKCS#12 with node-forge). */
export function loadOrCreateKeyMaterial(dataDir: string): KeyMaterial {
  const dir = join(dataDir, 'simulators', 'wechatpay');
  mkdirSync(dir, { recursive: true });

  const rootKeyPath = join(dir, 'root_ca_key.pem');
  const rootCertPath = join(dir, 'root_ca_cert.pem');
  if (!existsSync(rootCertPath)) {
    const keyPem = newRsaKeyPem();
    const issued = issueCertificate(keyPem, ROOT_SUBJECT, null);
    writeFileSync(rootKeyPath, keyPem, { mode: 0o600 });
    writeFileSync(rootCertPath, issued.pem);
  }
  const root = { keyPem: readFileSync(rootKeyPath, 'utf8'), subject: ROOT_SUBJECT };

  const secretsPath = join(dir, 'secrets.json');
  const secrets: PersistedSecrets = existsSync(secretsPath)
    ? (JSON.parse(readFileSync(secretsPath, 'utf8')) as PersistedSecrets)
    : { merchants: {} };

  const merchants = [DIRECT_MERCHANT, SERVICE_PROVIDER].map((identity): MerchantKeys => {
    const merchantDir = join(dir, identity.mchid);
    mkdirSync(merchantDir, { recursive: true });
    const privateKeyPath = join(merchantDir, 'apiclient_key.pem');
    const certificatePath = join(merchantDir, 'apiclient_cert.pem');
    const pkcs12Path = join(merchantDir, 'apiclient_cert.p12');
    if (!existsSync(certificatePath)) {
      const keyPem = newRsaKeyPem();
      const issued = issueCertificate(keyPem, merchantSubject(identity.mchid), root);
      writeFileSync(privateKeyPath, keyPem, { mode: 0o600 });
      writeFileSync(certificatePath, issued.pem);
      // WeChat's PKCS#12 uses the mchid as passphrase; 3DES keeps it loadable by OpenSSL 3.
      const p12 = forge.pkcs12.toPkcs12Asn1(forge.pki.privateKeyFromPem(keyPem), [forge.pki.certificateFromPem(issued.pem)], identity.mchid, { algorithm: '3des', friendlyName: 'Tenpay Certificate' });
      writeFileSync(pkcs12Path, Buffer.from(forge.asn1.toDer(p12).getBytes(), 'binary'), { mode: 0o600 });
    }
    if (!secrets.merchants[identity.mchid]) {
      const stamp = new Date().toISOString().slice(0, 10).replace(/-/g, '');
      secrets.merchants[identity.mchid] = {
        apiV3Key: randomNonce(32),
        apiV2Key: randomNonce(32),
        // Real IDs look like PUB_KEY_ID_ + 0114/0119 + mchid + date + sequence digits.
        wechatpayPublicKeyId: `PUB_KEY_ID_0119${identity.mchid}${stamp}${String(randomBytes(4).readUInt32BE() % 1e6).padStart(6, '0')}`,
      };
    }
    const privateKeyPem = readFileSync(privateKeyPath, 'utf8');
    const certificatePem = readFileSync(certificatePath, 'utf8');
    return {
      identity,
      privateKeyPath,
      certificatePath,
      pkcs12Path,
      certificateSerial: certificateSerialOf(certificatePem),
      privateKeyPem,
      certificatePem,
      publicKey: createPublicKey(certificatePem),
      ...secrets.merchants[identity.mchid],
    };
  });
  writeFileSync(secretsPath, JSON.stringify(secrets, null, 2), { mode: 0o600 });

  const platformDir = join(dir, 'wechatpay');
  mkdirSync(platformDir, { recursive: true });
  const platformKeyPath = join(platformDir, 'platform_private_key.pem');
  const platformCertPath = join(platformDir, 'wechatpay_platform_cert.pem');
  if (!existsSync(platformCertPath)) {
    const keyPem = newRsaKeyPem();
    const issued = issueCertificate(keyPem, [
      { name: 'countryName', value: 'CN' },
      { name: 'organizationName', value: 'Tenpay.com' },
      { name: 'organizationalUnitName', value: 'Tenpay.com CA Center' },
      { name: 'commonName', value: 'Tenpay.com Sign' },
    ], root);
    writeFileSync(platformKeyPath, keyPem, { mode: 0o600 });
    writeFileSync(platformCertPath, issued.pem);
  }
  const publicKeyPrivatePath = join(platformDir, 'pub_key_private.pem');
  const publicKeyPath = join(platformDir, 'pub_key.pem');
  writeIfMissing(publicKeyPrivatePath, newRsaKeyPem());
  const publicKeyPrivateKey = createPrivateKey(readFileSync(publicKeyPrivatePath, 'utf8'));
  writeIfMissing(publicKeyPath, createPublicKey(publicKeyPrivateKey).export({ type: 'spki', format: 'pem' }).toString(), 0o644);

  const platformCertPem = readFileSync(platformCertPath, 'utf8');
  const parsed = forge.pki.certificateFromPem(platformCertPem);
  return {
    dir,
    merchants,
    platform: {
      certificatePath: platformCertPath,
      certificatePem: platformCertPem,
      certificateSerial: certificateSerialOf(platformCertPem),
      certificatePrivateKey: createPrivateKey(readFileSync(platformKeyPath, 'utf8')),
      effectiveTime: parsed.validity.notBefore,
      expireTime: parsed.validity.notAfter,
      publicKeyPath,
      publicKeyPem: readFileSync(publicKeyPath, 'utf8'),
      publicKeyPrivateKey,
    },
  };
}
