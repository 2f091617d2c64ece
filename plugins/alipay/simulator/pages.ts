/** Tiny HTML pages: the payer ("cashier") page and error/result pages. */
import { formatFenAsYuan } from './signing.js';
import type { Trade } from './state.js';

export function escapeHtml(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body>${body}</body></html>`;
}

/** The payer page: Pay / Fail buttons post to the same actions as the control API. */
export function renderPayerPage(trade: Trade): string {
  const base = `/__sim/pay/${encodeURIComponent(trade.simId)}`;
  const state = trade.status === 'WAIT_BUYER_PAY'
    ? `<form method="post" action="${base}/pay"><button type="submit" name="action" value="pay">Pay</button></form>
<form method="post" action="${base}/fail"><button type="submit" name="action" value="fail">Fail</button></form>`
    : `<p>Trade status: <b id="trade-status">${escapeHtml(trade.status)}</b></p>`;
  return page('支付宝 收银台 (simulator)', `<h1>支付宝收银台 / Alipay cashier (simulator)</h1>
<dl>
<dt>商户订单号 out_trade_no</dt><dd id="out-trade-no">${escapeHtml(trade.outTradeNo)}</dd>
<dt>商品 subject</dt><dd>${escapeHtml(trade.subject)}</dd>
<dt>金额 total_amount</dt><dd id="total-amount">${formatFenAsYuan(trade.totalFen)}</dd>
<dt>收款方 seller_id</dt><dd>${escapeHtml(trade.sellerId)}</dd>
</dl>
${state}`);
}

export function renderResultPage(trade: Trade, message: string): string {
  return page('支付宝 (simulator)', `<h1>${escapeHtml(message)}</h1>
<p>out_trade_no: ${escapeHtml(trade.outTradeNo)}</p><p>Trade status: <b id="trade-status">${escapeHtml(trade.status)}</b></p>`);
}

/** What the real cashier shows when the page request is rejected (error code and description). */
export function renderErrorPage(subCode: string, subMsg: string): string {
  return page('支付宝 - 网上支付 安全快速！', `<h1>抱歉，您的操作出现错误</h1>
<p>错误代码 <b id="error-code">${escapeHtml(subCode)}</b></p><p id="error-message">${escapeHtml(subMsg)}</p>`);
}
