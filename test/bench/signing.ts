// Signing benchmark: per channel, RSA sign and verify with node-forge (keys parsed once into forge objects) against
// node:crypto (KeyObjects parsed once), and the one-off cost of parsing the key material.
//
//   npm run bench:signing [-- --rounds 5] [--round-ms 250]
//   npm run -s bench:signing -- --json     (-s: npm prints its own banner lines on stdout otherwise)
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import {
  alipayPrecreateParams, alipaySignContent, bankBaseString, unionPayQrConsumeFields, unionPaySignString, wechatNativeOrder, wechatPayMessage,
  type ChannelName,
} from './channel-wire.js';
import {
  forgePrivateKeyFromPem, forgePrivateKeyFromPkcs12, forgePrivateKeyToPem, forgePublicKeyFromPem, forgeSha256Hex, forgeSign, forgeVerify,
  type ForgePrivateKey, type ForgePublicKey,
} from './forge-rsa.js';
import { opsPerSecond, timeSync, wallMsPerOp, yieldToEventLoop } from './measure.js';
import { emit, flag, formatNumber, machine, median, numberOption, progress, round, table } from './report.js';
import { sandboxKeyMaterial, type ChannelKeyMaterial } from './sandbox-keys.js';
import { makeTempDir, removeTempDir } from './temp-dirs.js';

const ROUNDS = numberOption('rounds', 5);
const ROUND_MS = numberOption('round-ms', 250);
const PARSE_ROUND_MS = 80;

/** What a channel signs: the message and whether the RSA signature covers its hex SHA-256 instead (UnionPay). */
interface SignatureScheme {
  channel: ChannelName;
  description: string;
  message: string;
  preHashHex: boolean;
}

interface ParsedKeys {
  forgePrivate: ForgePrivateKey;
  forgePublic: ForgePublicKey;
  cryptoPrivate: KeyObject;
  cryptoPublic: KeyObject;
}

function schemeFor(channel: ChannelName): SignatureScheme {
  const notifyUrl = 'http://127.0.0.1:8080/notify/bench_account';
  switch (channel) {
    case 'wechatpay': {
      const body = JSON.stringify(wechatNativeOrder('wx8888888888888888', '1900000001', 'pay_0123456789abcdef_1', notifyUrl));
      return { channel, description: 'SHA256withRSA over the API v3 message', message: wechatPayMessage('POST', '/v3/pay/transactions/native', '1732780800', 'a1b2c3d4e5f6a7b8c9d0', body), preHashHex: false };
    }
    case 'alipay':
      return { channel, description: 'RSA2 over the sorted k=v string', message: alipaySignContent(alipayPrecreateParams('2021000000000001', 'pay_0123456789abcdef_1', notifyUrl)), preHashHex: false };
    case 'unionpay':
      return { channel, description: 'SHA256withRSA over the hex SHA-256 of the sorted string', message: unionPaySignString(unionPayQrConsumeFields('777290058110048', '69026276696', 'pay0123456789abcdef1', notifyUrl)), preHashHex: true };
    case 'bank': {
      const body = JSON.stringify({ out_trade_no: 'pay_0123456789abcdef_1', amount: 1000, currency: 'CNY', subject: 'Corbel bench order', scene: 'b2c', notify_url: notifyUrl, expire_seconds: 900 });
      return { channel, description: 'RSA-SHA256 over the base string', message: bankBaseString('POST', '/api/v1/payments', '100000000001', '1732780800', 'a1b2c3d4e5f6a7b8c9d0e1f2', body), preHashHex: false };
    }
  }
}

function parseKeys(material: ChannelKeyMaterial): ParsedKeys {
  const forgePrivate = material.privateKeyPem ? forgePrivateKeyFromPem(material.privateKeyPem) : forgePrivateKeyFromPkcs12(material.pkcs12!.der, material.pkcs12!.password);
  // node:crypto reads no PKCS#12: like the gateway's unionpay plugin, convert the forge key to PEM once.
  const cryptoPrivate = createPrivateKey(material.privateKeyPem ?? forgePrivateKeyToPem(forgePrivate));
  return { forgePrivate, forgePublic: forgePublicKeyFromPem(material.publicKeyPem), cryptoPrivate, cryptoPublic: createPublicKey(material.publicKeyPem) };
}

// ---------------------------------------------------------------- the four operations

const cryptoSigned = (s: SignatureScheme) => (s.preHashHex ? createHash('sha256').update(s.message, 'utf8').digest('hex') : s.message);
const forgeSigned = (s: SignatureScheme) => (s.preHashHex ? forgeSha256Hex(s.message) : s.message);

const cryptoSign = (s: SignatureScheme, k: ParsedKeys) => sign('sha256', Buffer.from(cryptoSigned(s), 'utf8'), k.cryptoPrivate).toString('base64');
const forgeSignScheme = (s: SignatureScheme, k: ParsedKeys) => forgeSign(k.forgePrivate, forgeSigned(s));
const cryptoVerify = (s: SignatureScheme, k: ParsedKeys, sig: string) => verify('sha256', Buffer.from(cryptoSigned(s), 'utf8'), k.cryptoPublic, Buffer.from(sig, 'base64'));
const forgeVerifyScheme = (s: SignatureScheme, k: ParsedKeys, sig: string) => forgeVerify(k.forgePublic, forgeSigned(s), sig);

/** PKCS#1 v1.5 is deterministic: both libraries must produce the same bytes and accept each other's signature. */
function checkInterop(s: SignatureScheme, k: ParsedKeys): string {
  const bySsl = cryptoSign(s, k);
  const byForge = forgeSignScheme(s, k);
  if (bySsl !== byForge) throw new Error(`${s.channel}: forge and node:crypto signatures differ`);
  if (!cryptoVerify(s, k, byForge) || !forgeVerifyScheme(s, k, bySsl)) throw new Error(`${s.channel}: a signature does not verify`);
  return bySsl;
}

// ---------------------------------------------------------------- measurements

interface OpResult {
  channel: ChannelName;
  op: 'sign' | 'verify';
  forge_ops_per_s: number;
  crypto_ops_per_s: number;
  /** Median of the per-round ratios crypto ÷ forge. */
  speedup: number;
}

async function measureOps(scheme: SignatureScheme, keys: ParsedKeys, signature: string): Promise<OpResult[]> {
  const ops = {
    sign: { forge: () => forgeSignScheme(scheme, keys), crypto: () => cryptoSign(scheme, keys) },
    verify: { forge: () => forgeVerifyScheme(scheme, keys, signature), crypto: () => cryptoVerify(scheme, keys, signature) },
  };
  const results: OpResult[] = [];
  for (const op of ['sign', 'verify'] as const) {
    const forgeRates: number[] = [];
    const cryptoRates: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate which library goes first so that drift on a noisy machine does not favour one of them.
      const order = r % 2 === 0 ? (['forge', 'crypto'] as const) : (['crypto', 'forge'] as const);
      for (const lib of order) {
        (lib === 'forge' ? forgeRates : cryptoRates).push(opsPerSecond(timeSync(ops[op][lib], ROUND_MS, 3)));
        await yieldToEventLoop();
      }
    }
    results.push({
      channel: scheme.channel, op,
      forge_ops_per_s: round(median(forgeRates)),
      crypto_ops_per_s: round(median(cryptoRates)),
      speedup: round(median(cryptoRates.map((c, i) => c / forgeRates[i]!))),
    });
  }
  return results;
}

interface ParseResult {
  channel: ChannelName;
  material: string;
  forge_ms: number;
  /** null: node:crypto has no parser for this format. */
  crypto_ms: number | null;
  /** What one parse costs in node:crypto signatures (of this channel's key): the price of parsing on the hot path. */
  forge_parse_in_crypto_signs: number;
  crypto_parse_in_crypto_signs: number | null;
}

function medianMsPerParse(parse: () => unknown): number {
  return median(Array.from({ length: ROUNDS }, () => wallMsPerOp(timeSync(parse, PARSE_ROUND_MS, 2))));
}

function privateKeyFormat(pem: string): string {
  return pem.includes('BEGIN RSA PRIVATE KEY') ? 'private key PEM (PKCS#1)' : 'private key PEM (PKCS#8)';
}

function measureParsing(material: ChannelKeyMaterial, cryptoSignMs: number): ParseResult[] {
  const rows: Array<{ material: string; forge: () => unknown; crypto?: () => unknown }> = [];
  if (material.privateKeyPem) {
    const pem = material.privateKeyPem;
    rows.push({ material: privateKeyFormat(pem), forge: () => forgePrivateKeyFromPem(pem), crypto: () => createPrivateKey(pem) });
  }
  if (material.pkcs12) {
    const { der, password } = material.pkcs12;
    rows.push({ material: 'PKCS#12 bundle → private key', forge: () => forgePrivateKeyFromPkcs12(der, password) });
  }
  const pub = material.publicKeyPem;
  rows.push({ material: pub.includes('BEGIN CERTIFICATE') ? 'certificate PEM → public key' : 'public key PEM (SPKI)', forge: () => forgePublicKeyFromPem(pub), crypto: () => createPublicKey(pub) });
  return rows.map((row) => {
    const forgeMs = medianMsPerParse(row.forge);
    const cryptoMs = row.crypto ? medianMsPerParse(row.crypto) : null;
    return {
      channel: material.channel, material: row.material,
      forge_ms: round(forgeMs),
      crypto_ms: cryptoMs === null ? null : round(cryptoMs),
      forge_parse_in_crypto_signs: round(forgeMs / cryptoSignMs),
      crypto_parse_in_crypto_signs: cryptoMs === null ? null : round(cryptoMs / cryptoSignMs),
    };
  });
}

// ---------------------------------------------------------------- output

function signingTable(results: OpResult[]): string {
  return table(['channel', 'op', 'forge ops/s', 'crypto ops/s', 'speed-up'], results.map((r) => [
    r.channel, r.op, formatNumber(r.forge_ops_per_s), formatNumber(r.crypto_ops_per_s), formatNumber(r.speedup, '×'),
  ]));
}

function parsingTable(results: ParseResult[]): string {
  return table(['channel', 'key material', 'forge ms', 'crypto ms', 'forge parse ÷ crypto sign', 'crypto parse ÷ crypto sign'], results.map((r) => [
    r.channel, r.material, formatNumber(r.forge_ms), r.crypto_ms === null ? '(no PKCS#12 parser)' : formatNumber(r.crypto_ms),
    formatNumber(r.forge_parse_in_crypto_signs, '×'), r.crypto_parse_in_crypto_signs === null ? '—' : formatNumber(r.crypto_parse_in_crypto_signs, '×'),
  ]));
}

async function main(): Promise<void> {
  const json = flag('json');
  const dataDir = makeTempDir('corbel-bench-signing-');
  try {
    progress(`generating sandbox key material in ${dataDir} (simulators started in-process)`);
    const materials = await sandboxKeyMaterial(dataDir);
    const signatures: OpResult[] = [];
    const parsing: ParseResult[] = [];
    const schemes: Array<{ channel: ChannelName; scheme: string; modulus_bits: number | undefined }> = [];
    for (const material of materials) {
      const scheme = schemeFor(material.channel);
      const keys = parseKeys(material);
      schemes.push({ channel: scheme.channel, scheme: scheme.description, modulus_bits: keys.cryptoPrivate.asymmetricKeyDetails?.modulusLength });
      const signature = checkInterop(scheme, keys);
      progress(`${material.channel}: sign/verify, ${ROUNDS} rounds of ${ROUND_MS} ms per library`);
      signatures.push(...(await measureOps(scheme, keys, signature)));
      const cryptoSignMs = 1000 / signatures.find((r) => r.channel === material.channel && r.op === 'sign')!.crypto_ops_per_s;
      progress(`${material.channel}: key parsing`);
      parsing.push(...measureParsing(material, cryptoSignMs));
    }
    const result = { bench: 'signing', machine: machine(), rounds: ROUNDS, round_ms: ROUND_MS, schemes, signatures, parsing };
    const tables = `RSA-2048 sign/verify, median of ${ROUNDS} rounds (ops/s of one core; speed-up = median of per-round crypto÷forge)\n${signingTable(signatures)}\n\n`
      + `One-off key parsing (median ms per parse; ÷ crypto sign: the parse's cost in node:crypto signatures, i.e. what parsing per request would add)\n${parsingTable(parsing)}`;
    emit(json, result, tables);
  } finally {
    removeTempDir(dataDir);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
