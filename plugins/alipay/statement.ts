/**
 * The daily trade bill (alipay.data.dataservice.bill.downloadurl.query, bill_type=trade): a zip holding a
 * GBK "业务明细" detail CSV and a "业务明细(汇总)" summary CSV. Only the detail file is parsed.
 */
import { unzipSync } from 'fflate';
import { ChannelError, type StatementLine } from '../../core/index.js';
import { fromSignedYuan } from './transformers.js';
import { parseChinaTime } from './transport.js';

const COL = {
  tradeNo: '支付宝交易号',
  outTradeNo: '商户订单号',
  type: '业务类型',
  created: '创建时间',
  finished: '完成时间',
  amount: '订单金额（元）',
  received: '商家实收（元）',
  refundNo: '退款批次号/请求号',
  fee: '服务费（元）',
} as const;

/** Splits one CSV line (RFC 4180 quotes, no embedded newlines in Alipay's bills). */
export function splitCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"' && cur === '') quoted = true;
    else if (c === ',') {
      cells.push(cur);
      cur = '';
    } else cur += c;
  }
  cells.push(cur);
  return cells;
}

/** Alipay suffixes identifier cells with a TAB (so spreadsheets keep them as text); strip it and spaces. */
const clean = (s: string | undefined) => (s ?? '').replace(/^[\s\t]+|[\s\t]+$/g, '');

/** Parses the detail CSV text (already decoded) into statement lines; `#` lines are header/footer comments. */
export function parseDetailCsv(text: string): StatementLine[] {
  const lines = text.split(/\r?\n/);
  const headerIdx = lines.findIndex((l) => l.startsWith(COL.tradeNo) || l.includes(`${COL.tradeNo},${COL.outTradeNo}`));
  if (headerIdx < 0) throw new ChannelError('unknown', 'alipay bill: no detail header line', false);
  const header = splitCsvLine(lines[headerIdx]!).map(clean);
  const at = (name: string) => header.indexOf(name);
  const idx = { tradeNo: at(COL.tradeNo), outTradeNo: at(COL.outTradeNo), type: at(COL.type), created: at(COL.created), finished: at(COL.finished), amount: at(COL.amount), received: at(COL.received), refundNo: at(COL.refundNo), fee: at(COL.fee) };
  for (const key of ['tradeNo', 'outTradeNo', 'type', 'amount'] as const) {
    if (idx[key] < 0) throw new ChannelError('unknown', `alipay bill: detail header lacks ${COL[key]}`, false);
  }
  const out: StatementLine[] = [];
  for (let i = headerIdx + 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.trim() || line.startsWith('#')) continue;
    const cells = splitCsvLine(line);
    if (cells.length < header.length) continue;
    const cell = (j: number) => (j < 0 ? '' : clean(cells[j]));
    const type = cell(idx.type);
    const kind = type === '退款' ? 'refund' : type === '交易' ? 'payment' : undefined;
    if (!kind) continue;
    const raw: Record<string, string> = {};
    header.forEach((h, j) => {
      if (h) raw[h] = clean(cells[j]);
    });
    const occurredAt = parseChinaTime(cell(idx.finished)) ?? parseChinaTime(cell(idx.created));
    if (!occurredAt) throw new ChannelError('unknown', `alipay bill: line ${i + 1} has no valid time`, false);
    const line_: StatementLine = {
      kind,
      channelOrderNo: cell(idx.outTradeNo),
      channelTradeNo: cell(idx.tradeNo) || undefined,
      amount: fromSignedYuan(cell(idx.amount), COL.amount),
      fee: fromSignedYuan(cell(idx.fee), COL.fee),
      occurredAt,
      raw,
    };
    if (kind === 'refund') line_.channelRefundNo = cell(idx.refundNo) || undefined;
    out.push(line_);
  }
  return out;
}

/** Finds the detail CSV in the bill zip by content (real zips carry GBK entry names without the UTF-8 flag). */
export function parseBillZip(zip: Uint8Array): StatementLine[] {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(zip);
  } catch (err) {
    throw new ChannelError('unknown', `alipay bill: not a zip file (${(err as Error).message})`, false);
  }
  const gbk = new TextDecoder('gbk');
  for (const [name, data] of Object.entries(files)) {
    if (!name.toLowerCase().endsWith('.csv')) continue;
    const text = gbk.decode(data);
    if (text.includes(`${COL.tradeNo},${COL.outTradeNo}`)) return parseDetailCsv(text);
  }
  throw new ChannelError('unknown', 'alipay bill: the zip holds no detail CSV', false);
}
