import { createHmac, randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import type { MerchantCredentials } from './gateway.js';

let counter = 0;

/** A signed, unique create-payment request per call, for autocannon's setupRequest. */
export function signedPaymentRequest(creds: MerchantCredentials, payMethod: string, amount = 1000, prefix = 'load') {
  return (req: { method?: string; path?: string; headers?: Record<string, string>; body?: string }) => {
    const body = JSON.stringify({ out_trade_no: `${prefix}-${process.pid}-${++counter}`, amount, pay_method: payMethod });
    const timestamp = Math.floor(Date.now() / 1000).toString();
    const nonce = randomBytes(12).toString('hex');
    const signature = createHmac('sha256', creds.secret!).update(`POST\n/v1/payments\n${timestamp}\n${nonce}\n${body}\n`).digest('base64');
    req.method = 'POST';
    req.path = '/v1/payments';
    req.body = body;
    req.headers = { 'content-type': 'application/json', authorization: `CORBEL-HMAC-SHA256 app_id="${creds.appId}",timestamp="${timestamp}",nonce="${nonce}",signature="${signature}"` };
    return req;
  };
}

export interface LoadResult {
  requests: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  reqPerSec: number;
  p50: number;
  p99: number;
}

/**
 * Bounded autocannon run against loopback (time and connection count capped by the caller). `onResponse` sees every
 * answer's status and body, for callers that judge a response by more than its status code.
 */
export async function runLoad(url: string, opts: { durationS: number; connections: number; setupRequest: ReturnType<typeof signedPaymentRequest>; overallRate?: number; onResponse?: (status: number, body: string) => void }): Promise<LoadResult> {
  const onResponse = opts.onResponse;
  const result = await autocannon({
    url,
    connections: opts.connections,
    duration: opts.durationS,
    overallRate: opts.overallRate,
    timeout: 10,
    requests: [{ setupRequest: opts.setupRequest as never, ...(onResponse ? { onResponse: (status: number, body: string) => onResponse(status, body) } : {}) }],
  });
  return {
    requests: result.requests.total,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    reqPerSec: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
  };
}
