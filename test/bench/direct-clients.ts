// The baseline: the same order creation the gateway does, sent straight to the channel's simulator by a merchant's
// own code. WeChat Pay and Alipay use their official Node SDKs, unchanged; UnionPay and the bank have no Node SDK,
// so their requests are built, signed (node:crypto, keys parsed once) and verified here, from the channels' specs.
// Every client checks the channel's response signature, as the gateway does.
import { createPrivateKey, createPublicKey, sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { Agent, request } from 'node:http';
import { readFileSync } from 'node:fs';
import { AlipaySdk } from 'alipay-sdk';
import { Wechatpay } from 'wechatpay-axios-plugin';
import { bankBaseString, bankPaymentBody, hexNonce, unionPayDigestHex, unionPayQrConsumeFields, unixSeconds, wechatNativeOrder, type ChannelName } from './channel-wire.js';
import { forgePrivateKeyFromPkcs12, forgePrivateKeyToPem } from './forge-rsa.js';

export interface DirectClient {
  channel: ChannelName;
  /** What the baseline is, for the report. */
  kind: string;
  /** Creates one QR-type order; throws unless the channel accepted it and its answer verified. */
  createOrder(): Promise<void>;
  close(): void;
}

/** Never called: no order is paid during the bench. */
const NOTIFY_URL = 'http://127.0.0.1:9/notify';

let sequence = 0;
/** Unique, alphanumeric, ≤ 32 characters: acceptable to every channel. */
function orderNo(prefix: string): string {
  return `${prefix}${process.pid}${Date.now().toString(36)}${(++sequence).toString(36)}`;
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

// ---------------------------------------------------------------- WeChat Pay: wechatpay-axios-plugin

interface WechatPayCredentials {
  baseUrl: string;
  direct: { mchid: string; appid: string; merchantPrivateKeyPath: string; merchantCertificateSerial: string };
  platformCertificate: { serialNo: string; pem: string };
}

interface ChainNode {
  post(data: unknown): Promise<{ status: number; data: { code_url?: string } }>;
}

function wechatPayClient(credentialsPath: string): DirectClient {
  const c = readJson<WechatPayCredentials>(credentialsPath);
  const wxpay = new Wechatpay({
    mchid: c.direct.mchid,
    serial: c.direct.merchantCertificateSerial,
    privateKey: readFileSync(c.direct.merchantPrivateKeyPath, 'utf8'),
    // The SDK verifies every response with these platform certificates.
    certs: { [c.platformCertificate.serialNo]: c.platformCertificate.pem },
    baseURL: `${c.baseUrl}/`,
  } as never);
  const native = (wxpay as unknown as { v3: { pay: { transactions: { native: ChainNode } } } }).v3.pay.transactions.native;
  return {
    channel: 'wechatpay',
    kind: 'wechatpay-axios-plugin 0.9 (v3 native order, response signature verified)',
    async createOrder() {
      const res = await native.post(wechatNativeOrder(c.direct.appid, c.direct.mchid, orderNo('wx'), NOTIFY_URL));
      if (res.status !== 200 || !res.data.code_url) throw new Error(`wechatpay: HTTP ${res.status} without code_url`);
    },
    close() {},
  };
}

// ---------------------------------------------------------------- Alipay: alipay-sdk

interface AlipayCredentials {
  appId: string;
  gatewayUrl: string;
  appPrivateKeyPem: string;
  alipayPublicKeyPem: string;
}

function alipayClient(credentialsPath: string): DirectClient {
  const c = readJson<AlipayCredentials>(credentialsPath);
  const sdk = new AlipaySdk({ appId: c.appId, privateKey: c.appPrivateKeyPem, alipayPublicKey: c.alipayPublicKeyPem, gateway: c.gatewayUrl, timeout: 10_000 });
  return {
    channel: 'alipay',
    kind: 'alipay-sdk 4 (exec alipay.trade.precreate, validateSign)',
    async createOrder() {
      const res = await sdk.exec('alipay.trade.precreate', {
        notifyUrl: NOTIFY_URL,
        bizContent: { out_trade_no: orderNo('ali'), total_amount: '10.00', subject: 'Corbel bench order' },
      }, { validateSign: true });
      if (res.code !== '10000' || !res.qrCode) throw new Error(`alipay: ${res.code} ${res.subCode ?? ''} ${res.msg}`);
    },
    close() {},
  };
}

// ---------------------------------------------------------------- plain HTTP for the channels without an SDK

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

function post(agent: Agent, url: string, headers: Record<string, string>, body: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

// ---------------------------------------------------------------- UnionPay: signed form POST built here

interface UnionPayCredentials {
  merId: string;
  certId: string;
  signCertPfxPath: string;
  signCertPassword: string;
  middleCertPem: string;
  backTransUrl: string;
}

/** A synchronous ACP answer: raw `k=v&k=v` (values are not URL-encoded; none in a QR consume answer holds `&`). */
function parseAcpAnswer(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const pair of text.trim().split('&')) {
    const eq = pair.indexOf('=');
    if (eq > 0) fields[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return fields;
}

/** UnionPay's signing certificate: checked against the intermediate once, then its key is reused. */
function unionPayCertificateKeys(middleCertPem: string): (pem: string) => KeyObject {
  const middle = new X509Certificate(middleCertPem);
  const known = new Map<string, KeyObject>();
  return (pem) => {
    let key = known.get(pem);
    if (!key) {
      const cert = new X509Certificate(pem);
      if (!cert.verify(middle.publicKey)) throw new Error('unionpay: signPubKeyCert is not issued by the intermediate');
      key = cert.publicKey;
      known.set(pem, key);
    }
    return key;
  };
}

function unionPayClient(credentialsPath: string, concurrency: number): DirectClient {
  const c = readJson<UnionPayCredentials>(credentialsPath);
  // node:crypto reads no PKCS#12: open it once with forge, keep a KeyObject.
  const privateKey = createPrivateKey(forgePrivateKeyToPem(forgePrivateKeyFromPkcs12(readFileSync(c.signCertPfxPath), c.signCertPassword)));
  const certificateKey = unionPayCertificateKeys(c.middleCertPem);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  return {
    channel: 'unionpay',
    kind: 'signed form POST built in the bench (node:crypto; no Node SDK exists)',
    async createOrder() {
      const fields = unionPayQrConsumeFields(c.merId, c.certId, orderNo('up'), NOTIFY_URL);
      const signature = sign('sha256', Buffer.from(unionPayDigestHex(fields), 'utf8'), privateKey).toString('base64');
      const res = await post(agent, c.backTransUrl, { 'content-type': 'application/x-www-form-urlencoded;charset=UTF-8' }, new URLSearchParams({ ...fields, signature }).toString());
      const answer = parseAcpAnswer(res.text);
      if (res.status !== 200 || answer.respCode !== '00' || !answer.qrCode) throw new Error(`unionpay: HTTP ${res.status} respCode ${answer.respCode} ${answer.respMsg ?? ''}`);
      const digest = unionPayDigestHex(answer);
      if (!verify('sha256', Buffer.from(digest, 'utf8'), certificateKey(answer.signPubKeyCert!), Buffer.from(answer.signature!, 'base64'))) {
        throw new Error('unionpay: answer signature does not verify');
      }
    },
    close: () => agent.destroy(),
  };
}

// ---------------------------------------------------------------- bank: signed JSON POST built here

interface BankCredentials {
  baseUrl: string;
  merchantId: string;
  merchantPrivateKeyPem: string;
  bankPublicKeyPem: string;
}

function header(res: RawResponse, name: string): string {
  const value = res.headers[name];
  return typeof value === 'string' ? value : '';
}

function bankClient(credentialsPath: string, concurrency: number): DirectClient {
  const c = readJson<BankCredentials>(credentialsPath);
  const privateKey = createPrivateKey(c.merchantPrivateKeyPem);
  const bankKey = createPublicKey(c.bankPublicKeyPem);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const path = '/api/v1/payments';
  return {
    channel: 'bank',
    kind: 'signed JSON POST built in the bench (node:crypto; no SDK exists)',
    async createOrder() {
      const body = bankPaymentBody(orderNo('bk'), NOTIFY_URL);
      const timestamp = unixSeconds();
      const nonce = hexNonce();
      const signature = sign('sha256', Buffer.from(bankBaseString('POST', path, c.merchantId, timestamp, nonce, body), 'utf8'), privateKey).toString('base64');
      const res = await post(agent, c.baseUrl + path, {
        'content-type': 'application/json; charset=utf-8',
        'x-bank-merchant': c.merchantId, 'x-bank-timestamp': timestamp, 'x-bank-nonce': nonce, 'x-bank-signature': signature,
      }, body);
      // PROTOCOL.md 3.3: verify before parsing; the answer must echo our nonce.
      const base = bankBaseString(String(res.status), path, header(res, 'x-bank-merchant'), header(res, 'x-bank-timestamp'), header(res, 'x-bank-nonce'), res.text);
      if (header(res, 'x-bank-nonce') !== nonce || !verify('sha256', Buffer.from(base, 'utf8'), bankKey, Buffer.from(header(res, 'x-bank-signature'), 'base64'))) {
        throw new Error(`bank: HTTP ${res.status} answer signature does not verify`);
      }
      const payment = JSON.parse(res.text) as { status?: string; pay_url?: string; code?: string };
      if (res.status !== 200 || payment.status !== 'PROCESSING' || !payment.pay_url) throw new Error(`bank: HTTP ${res.status} ${payment.code ?? payment.status}`);
    },
    close: () => agent.destroy(),
  };
}

export function directClient(channel: ChannelName, credentialsPath: string, concurrency: number): DirectClient {
  switch (channel) {
    case 'wechatpay': return wechatPayClient(credentialsPath);
    case 'alipay': return alipayClient(credentialsPath);
    case 'unionpay': return unionPayClient(credentialsPath, concurrency);
    case 'bank': return bankClient(credentialsPath, concurrency);
  }
}
