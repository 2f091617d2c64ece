/**
 * Key material of the UnionPay sandbox, generated once with node-forge and persisted under
 * `${dataDir}/simulators/unionpay/`:
 *   - root CA and intermediate CA certificates (what acp_sdk calls rootCert / middleCert);
 *   - UnionPay's own signing certificate (issued by the intermediate; its PEM travels in every response and
 *     notification as `signPubKeyCert`) and its private key (simulator-only);
 *   - the merchant's signing certificate and key as a PKCS#12 `.pfx` (password "000000" like acp_test_sign.pfx),
 *     issued by the intermediate. The merchant's `certId` is the decimal serial number of that certificate.
 * RSA keys come from node:crypto (fast); forge only builds certificates and the PKCS#12 container.
 */
import { generateKeyPairSync, createPrivateKey, createPublicKey, randomInt, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';

export const UNIONPAY_ORG_NAME = '中国银联股份有限公司';
/** Subject CN of UnionPay's signing certificate: `041@<id>@<organisation>@<sequence>` (CFCA enterprise format). */
export const UNIONPAY_SIGN_CERT_CN = `041@Z12400000000000000@${UNIONPAY_ORG_NAME}@00000001`;
export const MERCHANT_PFX_PASSWORD = '000000';
export const DEFAULT_MER_ID = '777290058110048';

export const KEY_FILES = {
  rootCert: 'acp_test_root.cer',
  middleCert: 'acp_test_middle.cer',
  unionPaySignCert: 'acp_test_verify_sign.cer',
  unionPaySignKey: 'unionpay_sign_private.key',
  merchantPfx: 'acp_test_sign.pfx',
  merchantCert: 'acp_test_sign.cer',
} as const;

export interface UnionPayKeyMaterial {
  dir: string;
  rootCertPem: string;
  middleCertPem: string;
  unionPaySignCertPem: string;
  unionPaySignKey: KeyObject;
  merchantCertPem: string;
  merchantPublicKey: KeyObject;
  /** Decimal serial of the merchant certificate. */
  merchantCertId: string;
}

type ForgeName = forge.pki.CertificateField[];

const CFCA_ORG = 'China Financial Certification Authority';

function nameAttrs(parts: Array<[string, string]>): ForgeName {
  return parts.map(([shortName, value]) =>
    shortName === 'C'
      ? { shortName, value }
      : // UTF8String so the Chinese organisation name in the CN survives (forge UTF-8-encodes the JS string itself).
        { shortName, value, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class },
  );
}

/** A positive serial of 11 decimal digits (real certIds look like 68759663125), as forge's hex string. */
function randomSerialHex(): { hex: string; decimal: string } {
  const decimal = String(randomInt(10_000_000_000, 99_999_999_999));
  let hex = BigInt(decimal).toString(16);
  if (hex.length % 2 === 1) hex = '0' + hex;
  if (parseInt(hex[0], 16) >= 8) hex = '00' + hex;
  return { hex, decimal };
}

function newRsaKeyPair(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; privatePem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privatePem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(privatePem);
  return { privateKey: forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), privatePem };
}

interface IssueOptions {
  subject: ForgeName;
  issuer: ForgeName;
  publicKey: forge.pki.rsa.PublicKey;
  signingKey: forge.pki.rsa.PrivateKey;
  serialHex: string;
  years: number;
  ca: boolean;
}

function issueCertificate(opts: IssueOptions): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = opts.publicKey;
  cert.serialNumber = opts.serialHex;
  const notBefore = new Date(Date.now() - 24 * 3600 * 1000);
  const notAfter = new Date(notBefore);
  notAfter.setFullYear(notAfter.getFullYear() + opts.years);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject(opts.subject);
  cert.setIssuer(opts.issuer);
  const extensions: object[] = opts.ca
    ? [
        { name: 'basicConstraints', cA: true, critical: true },
        { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
        { name: 'subjectKeyIdentifier' },
      ]
    : [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, nonRepudiation: true, critical: true },
        { name: 'subjectKeyIdentifier' },
      ];
  cert.setExtensions(extensions);
  cert.sign(opts.signingKey, forge.md.sha256.create());
  return cert;
}

function generate(dir: string, merId: string): void {
  mkdirSync(dir, { recursive: true });
  const rootName = nameAttrs([['C', 'CN'], ['O', CFCA_ORG], ['CN', 'CFCA ACS TEST CS CA (Corbel sandbox)']]);
  const middleName = nameAttrs([['C', 'CN'], ['O', CFCA_ORG], ['CN', 'CFCA ACS TEST OCA31 (Corbel sandbox)']]);

  const root = newRsaKeyPair();
  const rootCert = issueCertificate({
    subject: rootName, issuer: rootName, publicKey: root.publicKey, signingKey: root.privateKey,
    serialHex: randomSerialHex().hex, years: 20, ca: true,
  });
  const middle = newRsaKeyPair();
  const middleCert = issueCertificate({
    subject: middleName, issuer: rootName, publicKey: middle.publicKey, signingKey: root.privateKey,
    serialHex: randomSerialHex().hex, years: 10, ca: true,
  });

  const unionPay = newRsaKeyPair();
  const unionPayCert = issueCertificate({
    subject: nameAttrs([
      ['C', 'CN'], ['O', 'CFCA ACS TEST OCA31'], ['OU', 'Local RA'], ['OU', 'Enterprises'], ['CN', UNIONPAY_SIGN_CERT_CN],
    ]),
    issuer: middleName, publicKey: unionPay.publicKey, signingKey: middle.privateKey,
    serialHex: randomSerialHex().hex, years: 3, ca: false,
  });

  const merchant = newRsaKeyPair();
  const merchantCert = issueCertificate({
    subject: nameAttrs([
      ['C', 'CN'], ['O', 'CFCA ACS TEST OCA31'], ['OU', 'Local RA'], ['OU', 'Enterprises'],
      ['CN', `041@Z${merId}@Corbel沙箱测试商户@00000001`],
    ]),
    issuer: middleName, publicKey: merchant.publicKey, signingKey: middle.privateKey,
    serialHex: randomSerialHex().hex, years: 3, ca: false,
  });
  const pfxAsn1 = forge.pkcs12.toPkcs12Asn1(merchant.privateKey, [merchantCert, middleCert], MERCHANT_PFX_PASSWORD, {
    algorithm: '3des',
    friendlyName: 'acp_test_sign',
  });
  const pfxDer = forge.asn1.toDer(pfxAsn1).getBytes();

  writeFileSync(join(dir, KEY_FILES.rootCert), forge.pki.certificateToPem(rootCert));
  writeFileSync(join(dir, KEY_FILES.middleCert), forge.pki.certificateToPem(middleCert));
  writeFileSync(join(dir, KEY_FILES.unionPaySignCert), forge.pki.certificateToPem(unionPayCert));
  writeFileSync(join(dir, KEY_FILES.unionPaySignKey), unionPay.privatePem, { mode: 0o600 });
  writeFileSync(join(dir, KEY_FILES.merchantCert), forge.pki.certificateToPem(merchantCert));
  writeFileSync(join(dir, KEY_FILES.merchantPfx), Buffer.from(pfxDer, 'binary'), { mode: 0o600 });
}

/** Loads the key material from `dir`, generating all of it first if any file is missing. */
export function loadOrCreateKeyMaterial(dir: string, merId = DEFAULT_MER_ID): UnionPayKeyMaterial {
  const complete = Object.values(KEY_FILES).every((file) => existsSync(join(dir, file)));
  if (!complete) generate(dir, merId);
  const read = (file: string): string => readFileSync(join(dir, file), 'utf8');
  const merchantCertPem = read(KEY_FILES.merchantCert);
  const merchantCert = forge.pki.certificateFromPem(merchantCertPem);
  return {
    dir,
    rootCertPem: read(KEY_FILES.rootCert),
    middleCertPem: read(KEY_FILES.middleCert),
    unionPaySignCertPem: read(KEY_FILES.unionPaySignCert),
    unionPaySignKey: createPrivateKey(read(KEY_FILES.unionPaySignKey)),
    merchantCertPem,
    merchantPublicKey: createPublicKey(merchantCertPem),
    merchantCertId: BigInt('0x' + merchantCert.serialNumber).toString(10),
  };
}

export function keyFilePath(dir: string, file: keyof typeof KEY_FILES): string {
  return join(dir, KEY_FILES[file]);
}
