// Tiny payer pages: order summary plus "Pay" / "Fail" buttons posting to the control API.
import { yuan, type Order } from './model.js';

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function payerPage(order: Order): string {
  const no = encodeURIComponent(order.out_trade_no);
  return `<!doctype html><html><head><meta charset="utf-8"><title>微信支付 (sandbox)</title></head><body>
<h1>微信支付 sandbox</h1>
<p>商户订单号 <b>${escapeHtml(order.out_trade_no)}</b> · ${escapeHtml(order.description)}</p>
<p>金额 ¥${yuan(order.total)} · 状态 <b id="state">${order.trade_state}</b></p>
<form method="post" action="/__sim/orders/${no}/pay"><button type="submit" name="action" value="pay">Pay</button></form>
<form method="post" action="/__sim/orders/${no}/fail"><button type="submit" name="action" value="fail">Fail</button></form>
</body></html>`;
}

export function resultPage(message: string, order: Order | null): string {
  const state = order ? ` · 状态 <b id="state">${order.trade_state}</b>` : '';
  return `<!doctype html><html><head><meta charset="utf-8"><title>微信支付 (sandbox)</title></head><body><p>${escapeHtml(message)}${state}</p></body></html>`;
}
