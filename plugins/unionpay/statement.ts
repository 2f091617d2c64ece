/**
 * Reconciliation file (txnType 76): fileContent = base64(zlib(zip)); the zip holds the ZM file of fixed-width records
 * (《全渠道平台接入接口规范 第3部分 文件接口》, widths as in the acpsdk's parseZMFile).
 */
import { unzipSync, unzlibSync } from 'fflate';
import type { StatementLine } from '../../core/index.js';
import { parseFen } from './transformers.js';

/** The 42 ZM fields: name used in StatementLine.raw, width in characters. Each field is followed by one space. */
export const ZM_FIELDS: ReadonlyArray<readonly [string, number]> = [
  ['txnCode', 3], ['agentInsCode', 11], ['sendInsCode', 11], ['traceNo', 6], ['traceTime', 10], ['accNo', 19], ['txnAmt', 12],
  ['merCatCode', 4], ['termType', 2], ['queryId', 21], ['payTypeOld', 2], ['orderId', 32], ['payCardType', 2],
  ['origTraceNo', 6], ['origTraceTime', 10], ['merFee', 13], ['settleAmt', 13], ['payType', 4], ['groupMerId', 15],
  ['txnType', 2], ['txnSubType', 2], ['bizType', 6], ['accType', 2], ['billType', 4], ['billNo', 32], ['interactMode', 1],
  ['origQryId', 21], ['merId', 15], ['splitMode', 1], ['subMerId', 15], ['subMerAbbr', 32], ['subMerSplitAmt', 13],
  ['netAmt', 13], ['termId', 8], ['merReserved', 32], ['discountAmt', 13], ['invoiceAmt', 13], ['installmentFee', 12],
  ['installmentCount', 2], ['txnMedium', 1], ['origOrderId', 32], ['reserved', 98],
];

/** Splits one ZM record into its named fields (trimmed). Short lines yield empty trailing fields. */
export function parseZmLine(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  const chars = Array.from(line);
  let at = 0;
  for (const [name, width] of ZM_FIELDS) {
    out[name] = chars.slice(at, at + width).join('').trim();
    at += width + 1;
  }
  return out;
}

/** `C000000000123` / `D000000000123` → signed fen (D, the merchant pays, is positive). */
export function parseSignedFen(s: string): number | undefined {
  const m = /^([CD])(\d+)$/.exec(s);
  if (!m) return undefined;
  const n = Number(m[2]);
  return m[1] === 'D' ? n : -n;
}

/** MMDDhhmmss (China time) in the year of the settlement date (the previous year for a December time in January). */
export function traceTimeToDate(mmddhhmmss: string, settleYear: number, settleMonth: number): Date | undefined {
  const m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(mmddhhmmss);
  if (!m) return undefined;
  const [month, day, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number];
  const year = month > settleMonth + 1 ? settleYear - 1 : settleYear;
  return new Date(Date.UTC(year, month - 1, day, h, mi, s) - 8 * 3600 * 1000);
}

/** One ZM record → a StatementLine, or undefined for record kinds that are neither payments nor refunds. */
export function zmToStatementLine(raw: Record<string, string>, settleYear: number, settleMonth: number, settleDay = 1): StatementLine | undefined {
  const amount = parseFen(raw.txnAmt);
  if (amount === undefined) return undefined;
  const fee = parseSignedFen(raw.merFee ?? '') ?? 0;
  // Without a readable trace time, the start of the settlement date (China time) stands in.
  const occurredAt = traceTimeToDate(raw.traceTime ?? '', settleYear, settleMonth) ?? traceTimeToDate(`${String(settleMonth).padStart(2, '0')}${String(settleDay).padStart(2, '0')}000000`, settleYear, settleMonth)!;
  switch (raw.txnCode) {
    case 'S22': // consume
      return { kind: 'payment', channelOrderNo: raw.orderId!, channelTradeNo: raw.queryId || undefined, amount, fee, occurredAt, raw };
    case 'S30': // refund
    case 'S31': // cancel (same-day full reversal): money goes back like a refund
      return { kind: 'refund', channelOrderNo: raw.origOrderId || '', channelRefundNo: raw.orderId || undefined, channelTradeNo: raw.origQryId || undefined, amount, fee, occurredAt, raw };
    default:
      return undefined;
  }
}

/** base64 → zlib inflate → zip → the ZM entry's lines → StatementLine[]. */
export function parseStatementFile(fileContentBase64: string, settleYear: number, settleMonth: number, settleDay = 1): StatementLine[] {
  const zip = unzlibSync(Buffer.from(fileContentBase64, 'base64'));
  const entries = unzipSync(zip);
  const lines: StatementLine[] = [];
  for (const [name, data] of Object.entries(entries)) {
    const base = name.slice(name.lastIndexOf('/') + 1);
    if (!/ZM_/.test(base)) continue; // ZME (the error/adjustment file) and others are not transactions.
    for (const text of Buffer.from(data).toString('utf8').split(/\r?\n/)) {
      if (text.trim() === '') continue;
      const line = zmToStatementLine(parseZmLine(text), settleYear, settleMonth, settleDay);
      if (line) lines.push(line);
    }
  }
  return lines;
}
