/** Money inside Corbel is an integer count of minor units (fen for CNY). */
export type MinorUnits = number;

export class MoneyFormatError extends Error {
  constructor(readonly input: unknown, reason: string) {
    super(`invalid money value ${JSON.stringify(input)}: ${reason}`);
  }
}

export function assertMinorUnits(value: unknown): asserts value is MinorUnits {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new MoneyFormatError(value, 'not a safe integer of minor units');
}

const YUAN_PATTERN = /^(0|[1-9]\d{0,13})(?:\.(\d{1,2}))?$/;

/** "88.8" → 8880 exactly, without floating point. Rejects signs, exponents and a third decimal. */
export function yuanToFen(yuan: string): MinorUnits {
  const m = YUAN_PATTERN.exec(yuan);
  if (!m) throw new MoneyFormatError(yuan, 'expected a non-negative yuan amount with at most two decimals');
  const fraction = (m[2] ?? '').padEnd(2, '0');
  return Number(m[1]) * 100 + Number(fraction);
}

/** 8880 → "88.80": the two-decimal yuan string channels such as Alipay expect. */
export function fenToYuan(fen: MinorUnits): string {
  assertMinorUnits(fen);
  if (fen < 0) throw new MoneyFormatError(fen, 'negative');
  const whole = Math.trunc(fen / 100);
  const cents = fen % 100;
  return `${whole}.${cents < 10 ? '0' : ''}${cents}`;
}
