import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

/** Random bytes drawn from a refilled pool: one system call per 4 KiB instead of one per id. */
const pool = Buffer.alloc(4_096);
let poolOffset = pool.length;

export function randomPoolBytes(n: number): Buffer {
  if (poolOffset + n > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const out = Buffer.from(pool.subarray(poolOffset, poolOffset + n));
  poolOffset += n;
  return out;
}

/** Time-ordered, URL- and channel-safe id body: 9 chars of milliseconds + 12 random, base36. */
export function idBody(): string {
  const time = Date.now().toString(36).padStart(9, '0').slice(-9);
  const bytes = randomPoolBytes(12);
  let random = '';
  for (const b of bytes) random += ALPHABET[b % 36];
  return time + random;
}

export function newId(prefix: 'pay' | 're' | 'evt' | 'mch' | 'app' | 'req'): string {
  return `${prefix}_${idBody()}`;
}

/** The order number a channel sees for one attempt: alphanumeric and at most 32 chars, as every channel accepts. */
export function channelOrderNo(paymentId: string, attempt: number): string {
  return `P${paymentId.slice(paymentId.indexOf('_') + 1)}${attempt}`;
}

export function channelRefundNo(refundId: string): string {
  return `R${refundId.slice(refundId.indexOf('_') + 1)}`;
}

export function randomToken(bytes = 24): string {
  return randomPoolBytes(bytes).toString('base64url');
}
