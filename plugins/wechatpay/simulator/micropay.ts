// APIv2 付款码支付 (micropay): XML over POST /pay/micropay, MD5 or HMAC-SHA256 signed with the merchant's v2 key.
// APIv3 has no micropay; WeChat still serves it on v2, and the resulting order is visible to APIv3 queries.
import { randomBytes } from 'node:crypto';
import { buildV2Xml, parseV2Xml, randomNonce, v2Sign, type V2SignType } from './crypto.js';
import { canonicalJson, chinaCompactTime, chinaTime, isPaid, type Order } from './model.js';
import type { ApiResponse, RequestContext, WechatPaySimulator } from './server.js';

const XML_CONTENT_TYPE = 'text/xml; charset=utf-8';
const REQUIRED = ['appid', 'mch_id', 'nonce_str', 'sign', 'body', 'out_trade_no', 'total_fee', 'spbill_create_ip', 'auth_code'];
/** WeChat payment codes are 18 digits starting 10-15. */
const AUTH_CODE_PATTERN = /^1[0-5]\d{16}$/;
/** Sandbox convention: codes starting 134 pay at once; any other valid code needs the payer's password (USERPAYING). */
const IMMEDIATE_PREFIX = '134';

function xml(fields: Record<string, string>): ApiResponse {
  return { status: 200, body: buildV2Xml(fields), contentType: XML_CONTENT_TYPE, sign: false };
}

function communicationFailure(message: string): ApiResponse {
  return xml({ return_code: 'FAIL', return_msg: message });
}

/** The answer used by the http_5xx fault: WeChat reports system errors on v2 inside a 200 XML body. */
export function micropaySystemError(): ApiResponse {
  return xml({ return_code: 'SUCCESS', return_msg: 'OK', result_code: 'FAIL', err_code: 'SYSTEMERROR', err_code_des: '系统超时，请立即调用被扫订单结果查询API，查询当前订单状态' });
}

function digits(count: number): string {
  let out = '';
  while (out.length < count) out += randomBytes(8).readBigUInt64BE().toString().slice(1);
  return out.slice(0, count);
}

export function handleMicropay(sim: WechatPaySimulator, ctx: RequestContext): ApiResponse {
  if (ctx.method !== 'POST') return communicationFailure('请使用post方法');
  const request = parseV2Xml(ctx.body);
  if (!request) return communicationFailure('XML格式错误');
  for (const field of REQUIRED) if (!request[field]) return communicationFailure(`缺少参数${field}`);
  const merchant = sim.merchant(request.mch_id);
  if (!merchant) return communicationFailure('mch_id参数格式错误');
  const signType = (request.sign_type ?? 'MD5') as V2SignType;
  if (signType !== 'MD5' && signType !== 'HMAC-SHA256') return communicationFailure('sign_type参数格式错误');
  if (v2Sign(request, merchant.apiV2Key, signType) !== request.sign) return communicationFailure('签名错误');

  const { identity } = merchant;
  const base: Record<string, string> = { return_code: 'SUCCESS', return_msg: 'OK', appid: request.appid, mch_id: identity.mchid };
  if (request.sub_mch_id) base.sub_mch_id = request.sub_mch_id;
  if (request.sub_appid) base.sub_appid = request.sub_appid;
  if (request.device_info) base.device_info = request.device_info;
  const reply = (fields: Record<string, string>): ApiResponse => {
    const answer: Record<string, string> = { ...base, nonce_str: randomNonce(16), ...fields };
    answer.sign = v2Sign(answer, merchant.apiV2Key, signType);
    return xml(answer);
  };
  const businessFailure = (code: string, description: string) => reply({ result_code: 'FAIL', err_code: code, err_code_des: description });

  if (request.appid !== identity.appid) return businessFailure('APPID_MCHID_NOT_MATCH', 'appid和mch_id不匹配');
  let owner = identity.mchid;
  if (identity.subMchid) {
    if (!request.sub_mch_id) return businessFailure('PARAM_ERROR', '缺少参数sub_mch_id');
    if (request.sub_mch_id !== identity.subMchid) return businessFailure('NOAUTH', '特约商户与服务商不存在受理关系');
    if (request.sub_appid && request.sub_appid !== identity.subAppid) return businessFailure('SUB_APPID_MCHID_NOT_MATCH', 'sub_appid和sub_mch_id不匹配');
    owner = request.sub_mch_id;
  }
  const totalFee = Number(request.total_fee);
  if (!/^\d+$/.test(request.total_fee) || totalFee <= 0) return businessFailure('PARAM_ERROR', 'total_fee参数格式错误');
  if (!/^[0-9A-Za-z_\-|*@]{1,32}$/.test(request.out_trade_no)) return businessFailure('PARAM_ERROR', 'out_trade_no参数格式错误');
  if (!AUTH_CODE_PATTERN.test(request.auth_code)) return businessFailure('AUTH_CODE_INVALID', '请扫描微信支付授权码(以10/11/12/13/14/15开头的18位纯数字)');

  const { sign: _sign, nonce_str: _nonce, sign_type: _signType, ...businessFields } = request;
  const fingerprint = `MICROPAY:${canonicalJson(businessFields)}`;
  let order = sim.findOrder(owner, request.out_trade_no);
  if (order && order.requestFingerprint !== fingerprint) return businessFailure('OUT_TRADE_NO_USED', '商户订单号重复');
  if (order && order.trade_state === 'CLOSED') return businessFailure('ORDERCLOSED', '该订单已关闭');
  if (order && order.trade_state === 'REVOKED') return businessFailure('ORDERREVERSED', '订单已撤销');

  if (!order) {
    const partner = identity.subMchid !== undefined;
    order = {
      mode: partner ? 'partner' : 'direct',
      signerMchid: identity.mchid,
      appid: identity.appid,
      mchid: identity.mchid,
      ...(partner ? { sub_mchid: owner, ...(request.sub_appid ? { sub_appid: request.sub_appid } : {}) } : {}),
      out_trade_no: request.out_trade_no,
      transaction_id: `4200${digits(24)}`,
      trade_type: 'MICROPAY',
      trade_state: 'USERPAYING',
      description: request.body,
      ...(request.attach ? { attach: request.attach } : {}),
      total: totalFee,
      currency: request.fee_type ?? 'CNY',
      payer: { [partner ? 'sp_openid' : 'openid']: `oMicropay${request.auth_code.slice(-8)}` },
      requestFingerprint: fingerprint,
      prepay_id: '',
      create_time: chinaTime(new Date()),
      refunds: [],
      notifications: [],
    } satisfies Order;
    sim.addOrder(owner, order);
    if (request.auth_code.startsWith(IMMEDIATE_PREFIX)) sim.payOrder(order);
  }

  if (order.trade_state === 'USERPAYING') return businessFailure('USERPAYING', '需要用户输入支付密码');
  if (order.trade_state === 'PAYERROR') return businessFailure('BANKERROR', '银行系统异常');
  if (!isPaid(order)) return businessFailure('SYSTEMERROR', '系统错误');
  const paidAt = order.success_time ? new Date(order.success_time) : new Date();
  return reply({
    result_code: 'SUCCESS',
    openid: Object.values(order.payer)[0] ?? '',
    is_subscribe: 'N',
    trade_type: 'MICROPAY',
    bank_type: 'OTHERS',
    fee_type: order.currency,
    total_fee: String(order.total),
    cash_fee_type: order.currency,
    cash_fee: String(order.total),
    transaction_id: order.transaction_id,
    out_trade_no: order.out_trade_no,
    ...(order.attach ? { attach: order.attach } : {}),
    time_end: chinaCompactTime(paidAt),
  });
}
