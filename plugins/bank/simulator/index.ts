// Sandbox simulator of the generic bank-direct API (PROTOCOL.md in this folder).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { defaultFaults } from '../../../core/index.js';
import { createBankSimulatorApp, type FaultState } from './app.js';
import { Bank } from './bank.js';
import { loadKeyMaterial, writeCredentials, type BankSandboxCredentials } from './keys.js';
import { Notifier } from './notifier.js';
import type { SimulatorBaseOptions } from '../../../core/index.js';

export type { BankSandboxCredentials } from './keys.js';
export { createBankSimulatorApp } from './app.js';
export type { FaultSet } from '../../../core/index.js';

/** notifyRetryDelaysMs: the bank's real schedule is 15 s, 1 min, 5 min, 30 min, 2 h, 6 h, 24 h. */
export type SimulatorOptions = SimulatorBaseOptions;

export interface BankSimulatorOptions extends SimulatorOptions {
  /** Delay after which a refund settles to SUCCESS by itself; null = only via POST /__sim/refunds/:no/succeed|fail. Default 200. */
  refundSettleMs?: number | null;
}

export interface RunningSimulator {
  channel: 'bank';
  url: string;
  credentials: BankSandboxCredentials;
  close(): Promise<void>;
}

export const DEFAULT_NOTIFY_RETRY_DELAYS_MS = [1000, 2000, 5000, 10000, 30000];

export async function startBankSimulator(opts: BankSimulatorOptions): Promise<RunningSimulator> {
  const log = opts.log ?? (() => undefined);
  const keys = await loadKeyMaterial(opts.dataDir);
  const faultState: FaultState = { faults: defaultFaults() };
  const shutdown = new AbortController();
  let baseUrl = '';

  const notifier = new Notifier({
    merchantId: keys.merchantId,
    bankPrivateKey: keys.bankPrivateKey,
    retryDelaysMs: opts.notifyRetryDelaysMs ?? DEFAULT_NOTIFY_RETRY_DELAYS_MS,
    faults: () => faultState.faults,
    log,
  });
  const bank = new Bank({
    merchantId: keys.merchantId,
    payerPageUrl: (bankTradeNo) => `${baseUrl}/payer/${bankTradeNo}`,
    notifier,
    faults: () => faultState.faults,
    refundSettleMs: opts.refundSettleMs === undefined ? 200 : opts.refundSettleMs,
    log,
  });
  const app = createBankSimulatorApp({
    bank,
    notifier,
    faultState,
    merchantId: keys.merchantId,
    merchantPublicKey: keys.merchantPublicKey,
    bankPrivateKey: keys.bankPrivateKey,
    shutdown: shutdown.signal,
    log,
  });

  const server = createServer(app.callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  baseUrl = `http://${host}:${address.port}`;
  const credentials = await writeCredentials(keys, baseUrl);
  log({ event: 'simulator.started', channel: 'bank', url: baseUrl, merchant_id: keys.merchantId });

  let closing: Promise<void> | undefined;
  return {
    channel: 'bank',
    url: baseUrl,
    credentials,
    close() {
      closing ??= new Promise<void>((resolve) => {
        shutdown.abort();
        notifier.close();
        bank.close();
        server.close(() => resolve());
        // Includes sockets held open by the `timeout` fault.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
