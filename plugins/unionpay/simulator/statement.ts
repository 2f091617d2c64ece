/**
 * Merchant reconciliation file (txnType=76, fileType=00), 全渠道商户对账文件:
 *   fileContent = base64( zlib-deflate( zip bytes ) )   — acpsdk deCodeFileContent base64-decodes, inflates
 *   (java.util.zip.Inflater, zlib-wrapped) and writes the result to `fileName`, a zip archive holding
 *   `INN<yyMMdd>88ZM_<merId>` (successful transactions) and `INN<yyMMdd>88ZME_<merId>` (error transactions).
 * A ZM line is 42 fixed-width fields separated by one space (acpsdk parseZMFile widths), CRLF-terminated.
 */
import { zipSync, zlibSync, strToU8 } from 'fflate';

export interface ZmField {
  name: string;
  width: number;
  /** 'n' = zero-padded on the left; 'an' = left-aligned, space-padded on the right. */
  kind: 'n' | 'an';
}

/** ZM record layout (《全渠道平台接入接口规范 第3部分 文件接口》 ZM 文件), widths as in acpsdk parseZMFile. */
export const ZM_LAYOUT: readonly ZmField[] = [
  { name: '交易代码', width: 3, kind: 'an' },
  { name: '代理机构标识码', width: 11, kind: 'an' },
  { name: '发送机构标识码', width: 11, kind: 'an' },
  { name: '系统跟踪号', width: 6, kind: 'n' },
  { name: '交易传输时间', width: 10, kind: 'n' },
  { name: '帐号', width: 19, kind: 'an' },
  { name: '交易金额', width: 12, kind: 'n' },
  { name: '商户类别', width: 4, kind: 'an' },
  { name: '终端类型', width: 2, kind: 'an' },
  { name: '查询流水号', width: 21, kind: 'an' },
  { name: '支付方式（旧）', width: 2, kind: 'an' },
  { name: '商户订单号', width: 32, kind: 'an' },
  { name: '支付卡类型', width: 2, kind: 'an' },
  { name: '原始交易的系统跟踪号', width: 6, kind: 'an' },
  { name: '原始交易日期时间', width: 10, kind: 'an' },
  { name: '商户手续费', width: 13, kind: 'an' },
  { name: '结算金额', width: 13, kind: 'an' },
  { name: '支付方式', width: 4, kind: 'an' },
  { name: '集团商户代码', width: 15, kind: 'an' },
  { name: '交易类型', width: 2, kind: 'an' },
  { name: '交易子类', width: 2, kind: 'an' },
  { name: '业务类型', width: 6, kind: 'an' },
  { name: '帐号类型', width: 2, kind: 'an' },
  { name: '账单类型', width: 4, kind: 'an' },
  { name: '账单号码', width: 32, kind: 'an' },
  { name: '交互方式', width: 1, kind: 'an' },
  { name: '原交易查询流水号', width: 21, kind: 'an' },
  { name: '商户代码', width: 15, kind: 'an' },
  { name: '分账入账方式', width: 1, kind: 'an' },
  { name: '二级商户代码', width: 15, kind: 'an' },
  { name: '二级商户简称', width: 32, kind: 'an' },
  { name: '二级商户分账入账金额', width: 13, kind: 'an' },
  { name: '清算净额', width: 13, kind: 'an' },
  { name: '终端号', width: 8, kind: 'an' },
  { name: '商户自定义域', width: 32, kind: 'an' },
  { name: '优惠金额', width: 13, kind: 'an' },
  { name: '发票金额', width: 13, kind: 'an' },
  { name: '分期付款附加手续费', width: 12, kind: 'an' },
  { name: '分期付款期数', width: 2, kind: 'an' },
  { name: '交易介质', width: 1, kind: 'an' },
  { name: '原始交易订单号', width: 32, kind: 'an' },
  { name: '保留使用', width: 98, kind: 'an' },
];

/** One statement line's source data (amounts in fen). */
export interface StatementEntry {
  /** S22 消费 (consume), S30 退货 (refund), S31 消费撤销 (cancel). */
  transactionCode: 'S22' | 'S30' | 'S31';
  traceNo: string;
  traceTime: string;
  accNo: string;
  txnAmt: number;
  channelType: string;
  queryId: string;
  orderId: string;
  origTraceNo?: string;
  origTraceTime?: string;
  txnType: string;
  txnSubType: string;
  bizType: string;
  origQryId?: string;
  merId: string;
  origOrderId?: string;
}

/** Sign-prefixed amount `X+n<digits>`: C = credit to the merchant, D = debit. */
export function signedAmount(direction: 'C' | 'D', fen: number, digits = 12): string {
  return direction + String(fen).padStart(digits, '0');
}

/** Acquirer institution code used for the online gateway in the sandbox files. */
const ACQUIRER_INST_CODE = '00010000';

/** Fee is 0 in the sandbox, so 结算金额 and 清算净额 equal the transaction amount. */
export function zmFieldValues(entry: StatementEntry): string[] {
  const credit = entry.transactionCode === 'S22';
  const settle = signedAmount(credit ? 'C' : 'D', entry.txnAmt);
  return [
    entry.transactionCode,
    ACQUIRER_INST_CODE,
    ACQUIRER_INST_CODE,
    entry.traceNo,
    entry.traceTime,
    entry.accNo,
    String(entry.txnAmt),
    '5999',
    entry.channelType,
    entry.queryId,
    '',
    entry.orderId,
    '01',
    entry.origTraceNo ?? '',
    entry.origTraceTime ?? '',
    signedAmount('D', 0),
    settle,
    '',
    '',
    entry.txnType,
    entry.txnSubType,
    entry.bizType,
    '01',
    '',
    '',
    '',
    entry.origQryId ?? '',
    entry.merId,
    '',
    '',
    '',
    signedAmount('C', 0),
    settle,
    '',
    '',
    signedAmount('C', 0),
    signedAmount('C', 0),
    signedAmount('C', 0, 11),
    '00',
    '0',
    entry.origOrderId ?? '',
    '',
  ];
}

function fit(value: string, field: ZmField): string {
  if (field.kind === 'n') return value.padStart(field.width, '0').slice(-field.width);
  return value.padEnd(field.width, ' ').slice(0, field.width);
}

export function formatZmLine(entry: StatementEntry): string {
  const values = zmFieldValues(entry);
  return ZM_LAYOUT.map((field, index) => fit(values[index] ?? '', field)).join(' ');
}

/** Splits a ZM line back into its fields (same rule as acpsdk parseZMFile: width, then one separator). */
export function parseZmLine(line: string): string[] {
  const out: string[] = [];
  let offset = 0;
  for (const field of ZM_LAYOUT) {
    out.push(line.slice(offset, offset + field.width));
    offset += field.width + 1;
  }
  return out;
}

export interface StatementFile {
  fileName: string;
  /** base64 of zlib-deflated zip bytes. */
  fileContent: string;
  zipBytes: Uint8Array;
}

/** `settleDate` is yyyyMMdd. */
export function buildStatementFile(merId: string, settleDate: string, entries: StatementEntry[]): StatementFile {
  const yymmdd = settleDate.slice(2);
  const zmText = entries.map((entry) => formatZmLine(entry) + '\r\n').join('');
  const mtime = new Date(Date.UTC(2000, 0, 1));
  const zipBytes = zipSync({
    [`INN${yymmdd}88ZM_${merId}`]: [strToU8(zmText), { mtime }],
    [`INN${yymmdd}88ZME_${merId}`]: [strToU8(''), { mtime }],
  });
  const fileContent = Buffer.from(zlibSync(zipBytes)).toString('base64');
  return { fileName: `${merId}_${settleDate}.zip`, fileContent, zipBytes };
}
