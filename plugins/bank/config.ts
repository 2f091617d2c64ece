// The account's config block (`channels.<name>.config` in corbel.yaml), validated by the kernel before
// createAccount runs: a bad value is reported with its config path and this account stays down while the
// rest of the gateway serves. Everything a merchant gets from the bank's portal lives here, plus the few
// wire details that differ between otherwise similar banks (see "Knobs" below).
import { z } from '../../core/index.js';

/**
 * Key material is given either as a file path (relative paths resolve against the config file's folder, so a
 * config directory can be moved as a whole) or as the PEM text itself (handy for secrets injected through
 * the environment). keys.ts tells them apart by the `-----BEGIN` armour.
 */
const keySource = z.string().trim().min(1, 'a PEM file path or inline PEM text');

export const bankConfigSchema = z
  .object({
    /** Sent as the merchant header of every request; PROTOCOL.md 2 says 12 digits, other banks use other lengths. */
    merchant_id: z.string().regex(/^[A-Za-z0-9]{1,32}$/, '1–32 letters or digits'),
    /** RSA private key (PKCS#8 or PKCS#1 PEM) that signs our requests; the bank holds its public half. */
    merchant_private_key: keySource,
    /** The bank's RSA public key (SPKI PEM, or an X.509 certificate PEM) that verifies everything the bank sends. */
    bank_public_key: keySource,
    /** Production host. The sandbox binding replaces it with the simulator's URL. */
    base_url: z
      .string()
      .url()
      .default('https://openapi.bank.example')
      // The spec appends paths starting with `/`; a trailing slash would make `//api`, a different request-target.
      .transform((url) => url.replace(/\/+$/, '')),

    // ---- Knobs: the parts of the wire that vary between banks of this family (shared/protocols.md) ----------
    /** Prefix of the four signature headers: `<prefix>Merchant`, `<prefix>Timestamp`, `<prefix>Nonce`, `<prefix>Signature`. */
    header_prefix: z.string().regex(/^[A-Za-z0-9-]+$/, 'letters, digits and "-"').default('X-Bank-'),
    /** Path prefix of every API call; part of the signed request-target, so it must match the bank exactly. */
    api_prefix: z.string().regex(/^(\/[A-Za-z0-9._-]+)+$/, 'like /api/v1').default('/api/v1'),
    /** How amounts travel on the wire: integer fen (this spec), or two-decimal yuan strings (many other banks). */
    amount_unit: z.enum(['fen', 'yuan']).default('fen'),
    /** A notification older or newer than this (by its timestamp header) is refused as a possible replay. */
    notify_max_skew_s: z.number().int().positive().default(300),
    /** Statements can be large and slow to produce; they get their own deadline instead of the account's. */
    statement_timeout_ms: z.number().int().positive().default(30_000),
  })
  .strict();

export type BankConfig = z.output<typeof bankConfigSchema>;
