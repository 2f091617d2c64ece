/**
 * Trade statement (bill_type=trade) in Alipay's layout: a zip with the detail file `<pid>0156_<yyyyMMdd>_业务明细.csv`
 * and the summary file `<pid>0156_<yyyyMMdd>_业务明细(汇总).csv`, contents GBK-encoded like the real files.
 */
import { zipSync } from 'fflate';
import { formatChinaTime, formatFenAsYuan, formatChinaDate } from './signing.js';
import { type Trade } from './state.js';

const DETAIL_HEADER = [
  '支付宝交易号', '商户订单号', '业务类型', '商品名称', '创建时间', '完成时间', '门店编号', '门店名称', '操作员', '终端号',
  '对方账户', '订单金额（元）', '商家实收（元）', '支付宝红包（元）', '集分宝（元）', '支付宝优惠（元）', '商家优惠（元）',
  '券核销金额（元）', '券名称', '商家红包消费金额（元）', '卡消费金额（元）', '退款批次号/请求号', '服务费（元）', '分润（元）', '备注',
].join(',');

const SUMMARY_HEADER = [
  '门店编号', '门店名称', '交易订单总笔数', '退款订单总笔数', '订单金额（元）', '商家实收（元）', '支付宝优惠（元）',
  '商家优惠（元）', '卡消费金额（元）', '服务费（元）', '分润（元）', '实收净额（元）',
].join(',');

const RULE = '-----------------------------------------';

/** CSV cell: commas and quotes in free text (subject) would break the naive splitters merchants use; real files quote nothing. */
function text(value: string): string {
  return value.replace(/[,\r\n"]/g, ' ');
}

/** Identifier cells carry a trailing TAB so spreadsheet tools keep them as text, as in the real files. */
function ident(value: string): string {
  return `${text(value)}\t`;
}

function chineseDateTime(date: string, time = '00:00:00'): string {
  const [y, m, d] = date.split('-');
  return `${y}年${m}月${d}日 ${time}`;
}

function nextDay(date: string): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

interface BillRow {
  cells: string[];
  kind: 'trade' | 'refund';
  orderFen: number;
  receivedFen: number;
}

export interface TradeBill {
  zipName: string;
  zip: Uint8Array;
  detailCsv: string;
  summaryCsv: string;
}

/** Builds the statement for `billDate` (yyyy-MM-dd, China time) from the trades of one seller. */
export function buildTradeBill(trades: Trade[], sellerId: string, billDate: string, now: Date): TradeBill {
  const rows: BillRow[] = [];
  for (const trade of trades) {
    if (trade.sellerId !== sellerId || !trade.tradeNo) continue;
    const common = (kind: string, finished: Date, orderFen: number, receivedFen: number, requestNo: string): string[] => [
      ident(trade.tradeNo!), ident(trade.outTradeNo), ident(kind), text(trade.subject), formatChinaTime(trade.gmtCreate),
      formatChinaTime(finished), '\t', '\t', '\t', '\t', ident(trade.buyerLogonId ?? ''),
      formatFenAsYuan(orderFen), formatFenAsYuan(receivedFen), '0.00', '0.00', '0.00', '0.00', '0.00', '',
      '0.00\t', '0.00', ident(requestNo), '0.00', '0.00', '',
    ];
    if (trade.gmtPayment && formatChinaDate(trade.gmtPayment) === billDate) {
      rows.push({ kind: 'trade', orderFen: trade.totalFen, receivedFen: trade.totalFen,
        cells: common('交易', trade.gmtPayment, trade.totalFen, trade.totalFen, '') });
    }
    for (const refund of trade.refunds) {
      if (formatChinaDate(refund.gmtRefund) !== billDate) continue;
      // Refund rows carry negative amounts; the request number is the refund's out_request_no.
      rows.push({ kind: 'refund', orderFen: -refund.refundFen, receivedFen: -refund.refundFen,
        cells: common('退款', refund.gmtRefund, -refund.refundFen, -refund.refundFen, refund.outRequestNo) });
    }
  }

  const account = `${sellerId}0156`;
  const compact = billDate.replace(/-/g, '');
  const period = `#起始日期：[${chineseDateTime(billDate)}]   终止日期：[${chineseDateTime(nextDay(billDate))}]`;
  const exported = `#导出时间：[${chineseDateTime(formatChinaDate(now), formatChinaTime(now).slice(11))}]`;
  const trades_ = rows.filter((r) => r.kind === 'trade');
  const refunds = rows.filter((r) => r.kind === 'refund');
  const sum = (list: BillRow[], pick: (r: BillRow) => number) => list.reduce((acc, r) => acc + pick(r), 0);

  const detailLines = [
    '#支付宝业务明细查询',
    `#账号：[${account}]`,
    period,
    `#${RULE}业务明细列表${RULE.slice(1)}`,
    DETAIL_HEADER,
    ...rows.map((r) => r.cells.join(',')),
    `#${RULE}业务明细列表结束${RULE.slice(7)}`,
    `#交易合计：${trades_.length}笔，商家实收共${formatFenAsYuan(sum(trades_, (r) => r.receivedFen))}元，商家优惠共0.00元`,
    `#退款合计：${refunds.length}笔，商家实收共${formatFenAsYuan(sum(refunds, (r) => r.receivedFen))}元，商家优惠共0.00元`,
    exported,
  ];
  const orderTotal = sum(rows, (r) => r.orderFen);
  const receivedTotal = sum(rows, (r) => r.receivedFen);
  const totals = [trades_.length, refunds.length, formatFenAsYuan(orderTotal), formatFenAsYuan(receivedTotal),
    '0.00', '0.00', '0.00', '0.00', '0.00', formatFenAsYuan(receivedTotal)];
  const summaryLines = [
    '#支付宝业务汇总查询',
    `#账号：[${account}]`,
    period,
    `#${RULE}业务汇总列表${RULE.slice(1)}`,
    SUMMARY_HEADER,
    ['合计', '', ...totals].join(','),
    `#${RULE}业务汇总列表结束${RULE.slice(7)}`,
    exported,
  ];
  const detailCsv = `${detailLines.join('\r\n')}\r\n`;
  const summaryCsv = `${summaryLines.join('\r\n')}\r\n`;
  const zip = zipSync({
    [`${account}_${compact}_业务明细.csv`]: encodeGbk(detailCsv),
    [`${account}_${compact}_业务明细(汇总).csv`]: encodeGbk(summaryCsv),
  }, { mtime: now });
  return { zipName: `${account}_${compact}.csv.zip`, zip, detailCsv, summaryCsv };
}

// ---------- GBK encoding ----------
// Node has no GBK encoder, but its WHATWG TextDecoder('gbk') decodes; the reverse table is built from it once.

let gbkTable: Map<string, [number, number]> | null = null;

function buildGbkTable(): Map<string, [number, number]> {
  const decoder = new TextDecoder('gbk');
  const table = new Map<string, [number, number]>();
  const pair = new Uint8Array(2);
  for (let lead = 0x81; lead <= 0xfe; lead++) {
    for (let trail = 0x40; trail <= 0xfe; trail++) {
      if (trail === 0x7f) continue;
      pair[0] = lead;
      pair[1] = trail;
      const ch = decoder.decode(pair);
      if (ch.length === 1 && ch !== '\ufffd' && !table.has(ch)) table.set(ch, [lead, trail]);
    }
  }
  return table;
}

/** Encodes text as GBK; characters outside GBK become '?'. */
export function encodeGbk(input: string): Uint8Array {
  gbkTable ??= buildGbkTable();
  const out: number[] = [];
  for (const ch of input) {
    const code = ch.codePointAt(0)!;
    if (code < 0x80) {
      out.push(code);
      continue;
    }
    const bytes = gbkTable.get(ch);
    if (bytes) out.push(bytes[0], bytes[1]);
    else out.push(0x3f);
  }
  return Uint8Array.from(out);
}
