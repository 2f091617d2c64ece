import type { Logger } from 'pino';
import type { Store } from '../store/index.js';
import type { PaymentService } from '../payments/service.js';
import type { MerchantService } from '../merchants/service.js';
import type { ConfigRuntime } from '../kernel/runtime.js';
import type { GatewaySigner } from '../crypto/gateway-keys.js';
import type { WebhookDispatcher } from '../webhooks/dispatcher.js';
import type { Metrics } from '../ops/metrics.js';
import type { CallerCache } from './middleware/merchant-auth.js';
import type { NonceGuard } from './middleware/nonces.js';

/** What the HTTP layer is given; resolved once from the container when the app is built. */
export interface HttpServices {
  store: Store;
  payments: PaymentService;
  merchants: MerchantService;
  runtime: ConfigRuntime;
  signer: GatewaySigner;
  webhooks: WebhookDispatcher;
  metrics: Metrics;
  logger: Logger;
  callers: CallerCache;
  nonces: NonceGuard;
  adminToken: () => string | undefined;
  isDraining: () => boolean;
  /** Requests being handled now: shutdown waits for them before it closes the store. */
  inFlight: { count: number };
}
