// node-forge counterparts of node:crypto's RSASSA-PKCS1-v1_5 / SHA-256 sign and verify, and its key parsing.
import forge from 'node-forge';

export type ForgePrivateKey = forge.pki.rsa.PrivateKey;
export type ForgePublicKey = forge.pki.rsa.PublicKey;

export function forgePrivateKeyFromPem(pem: string): ForgePrivateKey {
  return forge.pki.privateKeyFromPem(pem) as ForgePrivateKey;
}

/** SPKI public key or X.509 certificate PEM. */
export function forgePublicKeyFromPem(pem: string): ForgePublicKey {
  if (pem.includes('BEGIN CERTIFICATE')) return forge.pki.certificateFromPem(pem).publicKey as ForgePublicKey;
  return forge.pki.publicKeyFromPem(pem) as ForgePublicKey;
}

/** Opens a PKCS#12 bundle and returns its private key (shrouded or plain key bag). */
export function forgePrivateKeyFromPkcs12(der: Buffer, password: string): ForgePrivateKey {
  const p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary'))), false, password);
  const shrouded = forge.pki.oids.pkcs8ShroudedKeyBag!;
  const plain = forge.pki.oids.keyBag!;
  const bag = p12.getBags({ bagType: shrouded })[shrouded]?.[0] ?? p12.getBags({ bagType: plain })[plain]?.[0];
  if (!bag?.key) throw new Error('the PKCS#12 bundle holds no private key');
  return bag.key as ForgePrivateKey;
}

export function forgePrivateKeyToPem(key: ForgePrivateKey): string {
  return forge.pki.privateKeyToPem(key);
}

/** Lowercase hex SHA-256 of a UTF-8 string, in forge. */
export function forgeSha256Hex(text: string): string {
  return forge.md.sha256.create().update(text, 'utf8').digest().toHex();
}

function sha256Of(text: string): forge.md.MessageDigest {
  return forge.md.sha256.create().update(text, 'utf8');
}

/** SHA256withRSA (PKCS#1 v1.5) over a UTF-8 string; standard base64. */
export function forgeSign(key: ForgePrivateKey, text: string): string {
  return forge.util.encode64(key.sign(sha256Of(text)));
}

export function forgeVerify(key: ForgePublicKey, text: string, signatureBase64: string): boolean {
  try {
    return key.verify(sha256Of(text).digest().bytes(), forge.util.decode64(signatureBase64));
  } catch {
    return false;
  }
}
