// What each channel signs, written from the channels' specifications (the simulator READMEs and the bank's
// PROTOCOL.md), not imported from the gateway's plugins: the benches compare the gateway with code that does
// not share its implementation.
import { createHash, randomBytes } from 'node:crypto';

export type ChannelName = 'wechatpay' | 'alipay' | 'unionpay' | 'bank';
export const CHANNELS: readonly ChannelName[] = ['wechatpay', 'alipay', 'unionpay', 'bank'];

/** WeChat Pay API v3 request message: METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n. */
export function wechatPayMessage(method: string, pathWithQuery: string, timestamp: string, nonce: string, body: string): string {
  return `${method}\n${pathWithQuery}\n${timestamp}\n${nonce}\n${body}\n`;
}

/** Alipay RSA2 sign content: non-empty parameters but `sign`, sorted by key, joined as k=v&k=v. */
export function alipaySignContent(params: Record<string, string>): string {
  return Object.keys(params)
    .filter((k) => k !== 'sign' && params[k] !== '')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
}

/** UnionPay ACP 5.1.0 sorted string: non-blank fields but `signature`, sorted, k=v&k=v with raw values. */
export function unionPaySignString(fields: Record<string, string>): string {
  return Object.keys(fields)
    .filter((k) => k !== 'signature' && fields[k] !== '')
    .sort()
    .map((k) => `${k}=${fields[k]}`)
    .join('&');
}

/** signMethod 01: the RSA signature covers the lowercase hex SHA-256 of the sorted string. */
export function unionPayDigestHex(fields: Record<string, string>): string {
  return createHash('sha256').update(unionPaySignString(fields), 'utf8').digest('hex');
}

/** Bank PROTOCOL.md 3.1: six lines, each ending in \n; the last is the hex SHA-256 of the body bytes. */
export function bankBaseString(line1: string, line2: string, merchantId: string, timestamp: string, nonce: string, body: string): string {
  const bodySha = createHash('sha256').update(body, 'utf8').digest('hex');
  return `${line1}\n${line2}\n${merchantId}\n${timestamp}\n${nonce}\n${bodySha}\n`;
}

export function unixSeconds(): string {
  return Math.floor(Date.now() / 1000).toString();
}

export function hexNonce(bytes = 16): string {
  return randomBytes(bytes).toString('hex');
}

/** yyyyMMddHHmmss in China time (UTC+8), UnionPay's txnTime. */
export function chinaTime(date: Date): string {
  return new Date(date.getTime() + 8 * 3600 * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/** Alipay's `timestamp` parameter: yyyy-MM-dd HH:mm:ss in China time. */
export function alipayTimestamp(date: Date): string {
  return new Date(date.getTime() + 8 * 3600 * 1000).toISOString().replace('T', ' ').slice(0, 19);
}

// ---------------------------------------------------------------- typical create-order messages

/** A native (QR) order body as a merchant sends it to /v3/pay/transactions/native. */
export function wechatNativeOrder(appid: string, mchid: string, outTradeNo: string, notifyUrl: string): Record<string, unknown> {
  return { appid, mchid, description: 'Corbel bench order', out_trade_no: outTradeNo, notify_url: notifyUrl, amount: { total: 1000, currency: 'CNY' } };
}

/** alipay.trade.precreate common parameters plus biz_content, unsigned. */
export function alipayPrecreateParams(appId: string, outTradeNo: string, notifyUrl: string): Record<string, string> {
  return {
    app_id: appId, method: 'alipay.trade.precreate', format: 'JSON', charset: 'utf-8', sign_type: 'RSA2', version: '1.0',
    timestamp: alipayTimestamp(new Date()), notify_url: notifyUrl,
    biz_content: JSON.stringify({ out_trade_no: outTradeNo, total_amount: '10.00', subject: 'Corbel bench order' }),
  };
}

/** QR consume (backTransReq.do, txnType 01 / txnSubType 07), unsigned. */
export function unionPayQrConsumeFields(merId: string, certId: string, orderId: string, backUrl: string, now = new Date()): Record<string, string> {
  return {
    version: '5.1.0', encoding: 'utf-8', signMethod: '01', accessType: '0', merId, certId,
    txnType: '01', txnSubType: '07', bizType: '000000', channelType: '08', currencyCode: '156',
    orderId, txnTime: chinaTime(now), txnAmt: '1000', backUrl, payTimeout: chinaTime(new Date(now.getTime() + 900_000)),
  };
}

/** POST /api/v1/payments body, scene b2c. */
export function bankPaymentBody(outTradeNo: string, notifyUrl: string): string {
  return JSON.stringify({ out_trade_no: outTradeNo, amount: 1000, currency: 'CNY', subject: 'Corbel bench order', scene: 'b2c', notify_url: notifyUrl, expire_seconds: 900 });
}
