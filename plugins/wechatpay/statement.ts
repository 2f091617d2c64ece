/**
 * The trade bill (交易账单): GET /v3/bill/tradebill → {hash_type, hash_value, download_url}, then a signed GET of
 * download_url. The file is CSV with a BOM, a header row, backtick-prefixed detail rows, and a two-line summary
 * (总交易单数,…) at the end. Amounts are yuan strings; fees of refund rows are negative.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ChannelError, MoneyFormatError, yuanToFen, type StatementLine } from '../../core/index.js';

export interface TradeBillAnswer {
  hash_type?: string;
  hash_value?: string;
  download_url?: string;
}

/** Checks the downloaded (uncompressed) file against the SHA1 the bill API announced. */
export function verifyBillHash(file: Buffer, answer: TradeBillAnswer): void {
  if ((answer.hash_type ?? 'SHA1').toUpperCase() !== 'SHA1' || !answer.hash_value) {
    throw new ChannelError('signature_invalid', `trade bill hash ${answer.hash_type ?? '(none)'} cannot be checked`, false);
  }
  const actual = createHash('sha1').update(file).digest();
  const expected = Buffer.from(answer.hash_value, 'hex');
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
    throw new ChannelError('signature_invalid', 'trade bill file does not match its SHA1 hash_value', false);
  }
}

/** Splits one CSV line; WeChat's bill has no quoted fields, but quotes are honoured anyway. */
function splitCsv(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; }
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"' && cur === '') quoted = true;
    else if (c === ',') { out.push(cur); cur = ''; }
    else cur += c;
  }
  out.push(cur);
  return out;
}

/** Removes the leading backtick WeChat puts on every value (so spreadsheets keep long ids as text). */
function cell(v: string | undefined): string {
  const t = (v ?? '').trim();
  return t.startsWith('`') ? t.slice(1).trim() : t;
}

/** Signed yuan string → fen; empty → 0. */
export function signedYuanToFen(v: string): number {
  if (v === '') return 0;
  const negative = v.startsWith('-');
  const fen = yuanToFen(negative ? v.slice(1) : v);
  return negative ? -fen : fen;
}

const SUMMARY_FIRST = '总交易单数';

function chinaTime(s: string): Date {
  const d = new Date(`${s.replace(' ', 'T')}+08:00`);
  if (Number.isNaN(d.getTime())) throw new ChannelError('unknown', `trade bill has an unreadable time ${JSON.stringify(s)}`, false);
  return d;
}

/**
 * Parses the ALL trade bill into statement lines: SUCCESS rows are payments (amount 应结订单金额),
 * REFUND rows are refunds (amount 退款金额, fee as written: negative = fee given back). Columns are found by name.
 */
export function parseTradeBill(text: string): StatementLine[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length === 0) return [];
  const header = splitCsv(lines[0]!).map((h) => h.trim());
  const col = (name: string): number => header.indexOf(name);
  const idx = {
    time: col('交易时间'),
    tradeNo: col('微信订单号'),
    orderNo: col('商户订单号'),
    state: col('交易状态'),
    settled: col('应结订单金额'),
    refundId: col('微信退款单号'),
    outRefundNo: col('商户退款单号'),
    refund: col('退款金额'),
    fee: col('手续费'),
  };
  for (const [k, v] of Object.entries(idx)) {
    if (v < 0) throw new ChannelError('unknown', `trade bill header lacks the column for ${k}`, false);
  }
  const out: StatementLine[] = [];
  for (const line of lines.slice(1)) {
    if (line.startsWith(SUMMARY_FIRST)) break;
    const cells = splitCsv(line).map(cell);
    const raw: Record<string, string> = {};
    header.forEach((h, i) => { raw[h] = cells[i] ?? ''; });
    const state = cells[idx.state] ?? '';
    try {
      const base = {
        channelOrderNo: cells[idx.orderNo] ?? '',
        channelTradeNo: cells[idx.tradeNo] || undefined,
        fee: signedYuanToFen(cells[idx.fee] ?? ''),
        occurredAt: chinaTime(cells[idx.time] ?? ''),
        raw,
      };
      if (state === 'SUCCESS') {
        out.push({ kind: 'payment', ...base, amount: signedYuanToFen(cells[idx.settled] ?? '') });
      } else if (state === 'REFUND' || (state === 'REVOKED' && signedYuanToFen(cells[idx.refund] ?? '') > 0)) {
        out.push({ kind: 'refund', ...base, channelRefundNo: cells[idx.outRefundNo] || cells[idx.refundId] || undefined, amount: Math.abs(signedYuanToFen(cells[idx.refund] ?? '')) });
      }
    } catch (err) {
      if (err instanceof MoneyFormatError) throw new ChannelError('unknown', `trade bill row has a bad amount: ${err.message}`, false);
      throw err;
    }
  }
  return out;
}
