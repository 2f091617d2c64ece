import type { PluginManifest, PluginContext, HealthStatus } from './plugin.js';
import type { MinorUnits } from './money.js';

/** What a capability sees of a payment being created: plain data, no store handles. */
export interface PaymentDraft {
  merchantId: string;
  appId: string;
  outTradeNo: string;
  amount: MinorUnits;
  currency: string;
  payMethod: string;
  payer: { openid?: string; auth_code?: string; client_ip?: string };
  metadata: Record<string, string>;
}

export type HookVerdict = { allow: true } | { allow: false; code: string; message: string };

/** Route a capability adds under /v1/<plugin name>/…; receives the parsed JSON body. */
export interface CapabilityRoute {
  method: 'GET' | 'POST';
  path: string;
  handle(input: { merchantId: string; appId: string; params: Record<string, string>; body: unknown }): Promise<{ status: number; body: unknown }>;
}

export interface CapabilityInstance {
  beforeCreatePayment?(draft: PaymentDraft): Promise<HookVerdict>;
  afterPaymentSucceeded?(event: { paymentId: string; merchantId: string; amount: MinorUnits }): Promise<void>;
  routes?: CapabilityRoute[];
  health(): Promise<HealthStatus>;
  dispose(): Promise<void>;
}

export interface CapabilityPlugin<Config = unknown> {
  manifest: PluginManifest<Config> & { kind: 'capability' };
  create(config: Config, ctx: PluginContext): Promise<CapabilityInstance>;
}
