/**
 * UnionPay online gateway (ACP 5.1.0) sandbox simulator for Corbel.
 * Speaks the real wire protocol: form-encoded requests signed with the merchant's .pfx key (certId = cert serial),
 * raw `k=v&…` responses and form-POST notifications signed by UnionPay's certificate (carried as signPubKeyCert,
 * chained to the root and intermediate certificates handed out in the credentials).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createUnionPaySimulatorApp, GATEWAY_PATHS } from './app.js';
import { UnionPayGateway } from './gateway.js';
import { DEFAULT_MER_ID, keyFilePath, loadOrCreateKeyMaterial, MERCHANT_PFX_PASSWORD } from './keys.js';
import type { SimulatorBaseOptions } from '../../../core/index.js';

export { createUnionPaySimulatorApp, FILE_TRANS_PATH, GATEWAY_PATHS } from './app.js';
export { UnionPayGateway } from './gateway.js';

export type SimulatorOptions = SimulatorBaseOptions;

/** What a merchant gets from the UnionPay portal (and acp_sdk.properties would hold), pointed at the sandbox. */
export interface UnionPaySandboxCredentials {
  /** 商户号. */
  merId: string;
  /** Decimal serial of the merchant signing certificate inside the .pfx (sent as certId). */
  certId: string;
  /** acpsdk.signCert.path: PKCS#12 with the merchant's signing key and certificate. */
  signCertPfxPath: string;
  /** acpsdk.signCert.pwd */
  signCertPassword: string;
  /** acpsdk.rootCert.path (PEM). */
  rootCertPath: string;
  /** acpsdk.middleCert.path (PEM), the intermediate CA. */
  middleCertPath: string;
  rootCertPem: string;
  middleCertPem: string;
  /** UnionPay's current signing certificate (also sent in every response as signPubKeyCert). */
  unionPaySignCertPath: string;
  /** Simulator base URL (stands in for https://gateway.test.95516.com). */
  baseUrl: string;
  frontTransUrl: string;
  backTransUrl: string;
  singleQueryUrl: string;
  /** Stands in for the separate file host https://filedownload.95516.com/ . */
  fileTransUrl: string;
}

export interface RunningSimulator {
  channel: 'unionpay';
  url: string;
  credentials: UnionPaySandboxCredentials;
  close(): Promise<void>;
}

/** Compressed version of UnionPay's back-notification re-send back-off. */
export const DEFAULT_NOTIFY_RETRY_DELAYS_MS = [1000, 2000, 4000, 8000, 16000];

export async function startUnionPaySimulator(opts: SimulatorOptions): Promise<RunningSimulator> {
  const dir = join(opts.dataDir, 'simulators', 'unionpay');
  mkdirSync(dir, { recursive: true });
  const log = opts.log ?? (() => undefined);
  const keys = loadOrCreateKeyMaterial(dir, DEFAULT_MER_ID);
  let baseUrl = '';
  const gateway = new UnionPayGateway({
    keys,
    merId: DEFAULT_MER_ID,
    baseUrl: () => baseUrl,
    retryDelaysMs: opts.notifyRetryDelaysMs ?? DEFAULT_NOTIFY_RETRY_DELAYS_MS,
    log,
  });
  const app = createUnionPaySimulatorApp(gateway);
  const server: Server = createServer(app.callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  baseUrl = `http://${host}:${address.port}`;

  const credentials: UnionPaySandboxCredentials = {
    merId: DEFAULT_MER_ID,
    certId: keys.merchantCertId,
    signCertPfxPath: keyFilePath(dir, 'merchantPfx'),
    signCertPassword: MERCHANT_PFX_PASSWORD,
    rootCertPath: keyFilePath(dir, 'rootCert'),
    middleCertPath: keyFilePath(dir, 'middleCert'),
    rootCertPem: keys.rootCertPem,
    middleCertPem: keys.middleCertPem,
    unionPaySignCertPath: keyFilePath(dir, 'unionPaySignCert'),
    baseUrl,
    frontTransUrl: baseUrl + GATEWAY_PATHS.front,
    backTransUrl: baseUrl + GATEWAY_PATHS.back,
    singleQueryUrl: baseUrl + GATEWAY_PATHS.query,
    fileTransUrl: baseUrl + GATEWAY_PATHS.file,
  };
  writeFileSync(join(dir, 'credentials.json'), JSON.stringify(credentials, null, 2));
  log({ event: 'started', channel: 'unionpay', url: baseUrl, merId: credentials.merId, certId: credentials.certId });

  let closing: Promise<void> | null = null;
  return {
    channel: 'unionpay',
    url: baseUrl,
    credentials,
    close() {
      closing ??= new Promise<void>((resolve) => {
        gateway.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
