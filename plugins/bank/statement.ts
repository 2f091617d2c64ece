// The daily statement (PROTOCOL.md 8): a signed CSV of one business date's money movements, parsed into the
// contract's StatementLine[] for reconciliation. Downloading is in account.ts (it is an ordinary signed GET whose
// signature covers the CSV bytes); this file is the pure parser, so it can be tested on literal CSV text.
import { ChannelError, type StatementLine } from '../../core/index.js';
import { amountFromWire, type AmountUnit } from './transformers.js';

/** The columns this plugin needs. Extra columns are kept in `raw`, so a bank adding one does not break us. */
const REQUIRED_COLUMNS = ['event_time', 'type', 'out_trade_no', 'bank_trade_no', 'out_refund_no', 'bank_refund_no', 'amount', 'fee', 'currency'] as const;

const KIND = { PAYMENT: 'payment', REFUND: 'refund' } as const;

/** `YYYY-MM-DD` that is a real calendar date; checked before the request so a typo is not a network round trip. */
export function isStatementDate(date: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.toISOString().slice(0, 10) === date;
}

/**
 * Any line we cannot read fails the whole statement: reconciliation over a silently shortened statement would
 * report the skipped movements as missing at the bank, which is worse than no report.
 */
export function parseStatement(csv: string, unit: AmountUnit): StatementLine[] {
  const lines = csv.split('\n');
  // Lines end in `\n`, so a well-formed file ends with one empty string after the split; tolerate CRLF too.
  if (lines.at(-1) === '') lines.pop();
  const header = (lines.shift() ?? '').replace(/\r$/, '').replace(/^\uFEFF/, '').split(',');
  const missing = REQUIRED_COLUMNS.filter((c) => !header.includes(c));
  if (missing.length) throw malformed(`header lacks ${missing.join(', ')}`);

  return lines.map((text, i) => {
    const lineNo = i + 2;
    const cells = text.replace(/\r$/, '').split(',');
    if (cells.length !== header.length) throw malformed(`line ${lineNo} has ${cells.length} fields, the header ${header.length}`);
    const raw: Record<string, string> = {};
    header.forEach((name, j) => (raw[name] = cells[j]!));

    const kind = KIND[raw.type as keyof typeof KIND];
    if (!kind) throw malformed(`line ${lineNo}: unknown type ${JSON.stringify(raw.type)}`);
    if (raw.currency !== 'CNY') throw malformed(`line ${lineNo}: currency ${JSON.stringify(raw.currency)}`);
    const occurredAt = new Date(raw.event_time!);
    if (Number.isNaN(occurredAt.getTime())) throw malformed(`line ${lineNo}: event_time ${JSON.stringify(raw.event_time)}`);
    let amount: number;
    let fee: number;
    try {
      amount = amountFromWire(raw.amount, unit);
      fee = amountFromWire(raw.fee, unit);
    } catch (err) {
      throw malformed(`line ${lineNo}: ${(err as Error).message}`);
    }
    if (!raw.out_trade_no) throw malformed(`line ${lineNo}: empty out_trade_no`);
    if (kind === 'refund' && !raw.out_refund_no) throw malformed(`line ${lineNo}: refund without out_refund_no`);

    const line: StatementLine = { kind, channelOrderNo: raw.out_trade_no, amount, fee, occurredAt, raw };
    if (raw.bank_trade_no) line.channelTradeNo = raw.bank_trade_no;
    if (kind === 'refund') line.channelRefundNo = raw.out_refund_no;
    return line;
  });
}

function malformed(detail: string): ChannelError {
  // mayExist is about orders, which a statement download never creates.
  return new ChannelError('unknown', `malformed statement: ${detail}`, false);
}
