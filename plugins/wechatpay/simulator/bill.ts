// Daily trade statement (交易账单) in WeChat's CSV layout: UTF-8 BOM, a header row, one backtick-prefixed row per
// payment or refund, then the summary caption and the summary row.
import { chinaDateTime, yuan, type Order } from './model.js';

export type BillType = 'ALL' | 'SUCCESS' | 'REFUND';

export const TRADE_BILL_HEADER = [
  '交易时间', '公众账号ID', '商户号', '特约商户号', '设备号', '微信订单号', '商户订单号', '用户标识', '交易类型', '交易状态',
  '付款银行', '货币种类', '应结订单金额', '代金券金额', '微信退款单号', '商户退款单号', '退款金额', '充值券退款金额', '退款类型', '退款状态',
  '商品名称', '商户数据包', '手续费', '费率', '订单金额', '申请退款金额', '费率备注',
];

export const TRADE_BILL_SUMMARY_HEADER = ['总交易单数', '应结订单总金额', '退款总金额', '充值券退款总金额', '手续费总金额', '订单总金额', '申请退款总金额'];

/** Sandbox fee rate: 0.6 %, the common WeChat rate; the fee is rounded half-up to the fen. */
export const FEE_RATE_PERMILLE = 6;
const FEE_RATE_LABEL = '0.60%';

export function feeFen(amountFen: number): number {
  return Math.round((amountFen * FEE_RATE_PERMILLE) / 1000);
}

function billDateOf(rfc3339: string): string {
  return chinaDateTime(rfc3339).slice(0, 10);
}

function line(cells: string[]): string {
  return cells.map((cell) => `\`${cell}`).join(',');
}

/** Builds the statement for one merchant (and optionally one sub-merchant) and one China-time date. */
export function buildTradeBill(orders: Order[], billDate: string, billType: BillType): Buffer {
  const rows: string[] = [];
  let settleTotal = 0;
  let refundTotal = 0;
  let feeTotal = 0;
  let orderTotal = 0;
  let appliedRefundTotal = 0;

  for (const order of orders) {
    const userId = order.payer.openid ?? order.payer.sp_openid ?? order.payer.sub_openid ?? '';
    const common = (time: string) => [
      chinaDateTime(time), order.appid, order.mchid, order.sub_mchid ?? '0', '', order.transaction_id, order.out_trade_no, userId, order.trade_type,
    ];
    if (billType !== 'REFUND' && order.success_time && billDateOf(order.success_time) === billDate) {
      const fee = feeFen(order.total);
      rows.push(line([
        ...common(order.success_time), 'SUCCESS', 'OTHERS', order.currency, yuan(order.total), '0.00', '0', '0', '0.00', '0.00', '', '',
        order.description, order.attach ?? '', yuan(fee), FEE_RATE_LABEL, yuan(order.total), '0.00', '',
      ]));
      settleTotal += order.total;
      feeTotal += fee;
      orderTotal += order.total;
    }
    if (billType === 'SUCCESS') continue;
    for (const refund of order.refunds) {
      if (refund.status !== 'SUCCESS' || !refund.success_time || billDateOf(refund.success_time) !== billDate) continue;
      // A refund hands back the proportional fee, so its fee is negative.
      const fee = -feeFen(refund.refund);
      rows.push(line([
        ...common(refund.success_time), 'REFUND', 'OTHERS', order.currency, '0.00', '0.00', refund.refund_id, refund.out_refund_no,
        yuan(refund.refund), '0.00', 'ORIGINAL', 'SUCCESS', order.description, order.attach ?? '', yuan(fee), FEE_RATE_LABEL, '0.00',
        yuan(refund.refund), '',
      ]));
      refundTotal += refund.refund;
      feeTotal += fee;
      appliedRefundTotal += refund.refund;
    }
  }

  const summary = line([
    String(rows.length), yuan(settleTotal), yuan(refundTotal), '0.00', yuan(feeTotal), yuan(orderTotal), yuan(appliedRefundTotal),
  ]);
  const text = [TRADE_BILL_HEADER.join(','), ...rows, TRADE_BILL_SUMMARY_HEADER.join(','), summary, ''].join('\r\n');
  return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text, 'utf8')]);
}
