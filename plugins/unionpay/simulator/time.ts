/** China Standard Time helpers (UTC+8, no DST): UnionPay timestamps are always Beijing time. */

const CST_OFFSET_MS = 8 * 3600 * 1000;

export interface CstParts {
  year: number; month: number; day: number; hour: number; minute: number; second: number;
}

export function cstParts(date: Date): CstParts {
  const shifted = new Date(date.getTime() + CST_OFFSET_MS);
  return {
    year: shifted.getUTCFullYear(), month: shifted.getUTCMonth() + 1, day: shifted.getUTCDate(),
    hour: shifted.getUTCHours(), minute: shifted.getUTCMinutes(), second: shifted.getUTCSeconds(),
  };
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** yyyyMMddHHmmss in Beijing time. */
export function formatTxnTime(date: Date): string {
  const p = cstParts(date);
  return `${p.year}${pad(p.month)}${pad(p.day)}${pad(p.hour)}${pad(p.minute)}${pad(p.second)}`;
}

/** MMDDhhmmss in Beijing time (traceTime). */
export function formatTraceTime(date: Date): string {
  return formatTxnTime(date).slice(4);
}

/** Parses a yyyyMMddHHmmss Beijing-time string; null if malformed or not a real date/time. */
export function parseTxnTime(text: string): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number);
  const utc = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(utc);
  if (check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
    return null;
  }
  return new Date(utc - CST_OFFSET_MS);
}

/**
 * The settlement (clearing) date of a transaction completed at `date`: UnionPay's clearing day is cut at
 * 23:00 Beijing time, so anything after 23:00 settles on the next calendar day. Returned as yyyyMMdd.
 */
export function settleDateOf(date: Date): string {
  const shifted = new Date(date.getTime() + CST_OFFSET_MS + 3600 * 1000);
  return `${shifted.getUTCFullYear()}${pad(shifted.getUTCMonth() + 1)}${pad(shifted.getUTCDate())}`;
}

/** The most recent yyyyMMdd (not after today's settlement date) whose MMDD is `mmdd`; null if mmdd is no date. */
export function resolveSettleDate(mmdd: string, now: Date): string | null {
  if (!/^\d{4}$/.test(mmdd)) return null;
  const month = Number(mmdd.slice(0, 2));
  const day = Number(mmdd.slice(2));
  const today = settleDateOf(now);
  let year = Number(today.slice(0, 4));
  for (let attempt = 0; attempt < 8; attempt++, year--) {
    const candidate = new Date(Date.UTC(year, month - 1, day));
    if (candidate.getUTCMonth() !== month - 1 || candidate.getUTCDate() !== day) continue; // e.g. 0229 in a non-leap year
    const text = `${year}${mmdd}`;
    if (text <= today) return text;
  }
  return null;
}
