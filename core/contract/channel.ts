import type { MinorUnits } from './money.js';
import type { PluginManifest, PluginContext, HealthStatus } from './plugin.js';

/** Standard failure codes every channel maps its own codes into (one list for all channels). */
export type StandardChannelCode =
  | 'invalid_request'
  | 'authentication_failed'
  | 'signature_invalid'
  | 'duplicate_order'
  | 'order_not_found'
  | 'order_closed'
  | 'order_paid'
  | 'insufficient_balance'
  | 'payer_action_required'
  | 'card_declined'
  | 'rate_limited'
  | 'channel_unavailable'
  | 'timeout'
  | 'refund_exceeds_amount'
  | 'not_supported'
  | 'unknown';

/**
 * A failed channel call. `mayExist` is the money-safety bit: false only when the channel provably
 * did not create anything (the request never left, or a defined pre-acceptance rejection).
 */
export class ChannelError extends Error {
  constructor(
    readonly code: StandardChannelCode,
    message: string,
    readonly mayExist: boolean,
    readonly channelCode?: string,
    readonly retryable = false,
  ) {
    super(message);
    this.name = 'ChannelError';
  }
}

export type PaymentAction =
  | { type: 'qr_code'; qr_code: string }
  | { type: 'redirect'; url: string }
  | { type: 'jsapi'; params: Record<string, string> }
  | { type: 'app'; params: Record<string, string> }
  | null;

export type ChannelPaymentStatus = 'pending' | 'succeeded' | 'failed' | 'closed';

export interface ChannelPaymentResult {
  status: ChannelPaymentStatus;
  channelTradeNo?: string;
  action?: PaymentAction;
  /** Amount the channel says was paid, in minor units, when it reports one. */
  paidAmount?: MinorUnits;
  paidAt?: Date;
  failure?: { code: StandardChannelCode; message: string; channelCode?: string };
}

export type ChannelRefundStatus = 'pending' | 'succeeded' | 'failed';

export interface ChannelRefundResult {
  status: ChannelRefundStatus;
  channelRefundNo?: string;
  succeededAt?: Date;
  failure?: { code: StandardChannelCode; message: string; channelCode?: string };
}

export interface PayerInfo {
  openid?: string;
  auth_code?: string;
  client_ip?: string;
}

/** The sub-merchant binding used in service-provider mode. */
export interface MerchantBinding {
  subMerchantId?: string;
  params: Record<string, string>;
}

/**
 * Which merchant API request a channel call serves. A plugin passes it on as OutboundRequest.requestId, so the
 * call is logged under it and carries it as X-Request-Id. Absent when the gateway calls on its own (pollers).
 */
export interface ChannelCallScope {
  requestId?: string;
}

export interface CreatePaymentRequest extends ChannelCallScope {
  paymentId: string;
  /** The order number the channel sees; unique per attempt, alphanumeric, at most 32 characters. */
  channelOrderNo: string;
  amount: MinorUnits;
  currency: string;
  payMethod: string;
  subject: string;
  expiresAt: Date;
  /** Where the channel must send its asynchronous notification (the gateway's own endpoint). */
  notifyUrl: string;
  returnUrl?: string;
  payer: PayerInfo;
  binding?: MerchantBinding;
  /** When the payment was created: PaymentReference.createdAt carries the same instant on every later call. */
  createdAt: Date;
}

export interface PaymentReference extends ChannelCallScope {
  channelOrderNo: string;
  channelTradeNo?: string;
  amount: MinorUnits;
  currency: string;
  payMethod: string;
  createdAt: Date;
  binding?: MerchantBinding;
}

export interface RefundRequest extends ChannelCallScope {
  refundId: string;
  channelRefundNo: string;
  payment: PaymentReference;
  amount: MinorUnits;
  reason?: string;
  notifyUrl: string;
  /** When the refund was created; the same value on every later call about it. */
  createdAt: Date;
}

export interface RefundReference extends ChannelCallScope {
  channelRefundNo: string;
  payment: PaymentReference;
  amount: MinorUnits;
  /** When the refund was created (channels such as UnionPay need the original request time to query it). */
  createdAt: Date;
}

/** A notification exactly as it reached the gateway, before any parsing. */
export interface InboundNotification {
  headers: Record<string, string | string[] | undefined>;
  rawBody: Buffer;
  query: Record<string, string>;
}

/** What a verified notification says, in the kernel's terms. */
export type ChannelNotification =
  | { kind: 'payment'; channelOrderNo: string; result: ChannelPaymentResult; amount: MinorUnits; merchantRef?: string }
  | { kind: 'refund'; channelRefundNo: string; channelOrderNo?: string; result: ChannelRefundResult; amount?: MinorUnits }
  | { kind: 'ignored'; reason: string };

/** The exact answer the channel requires. */
export interface NotificationAck {
  status: number;
  body?: string;
  contentType?: string;
}

export interface StatementLine {
  kind: 'payment' | 'refund';
  channelOrderNo: string;
  channelTradeNo?: string;
  channelRefundNo?: string;
  amount: MinorUnits;
  fee: MinorUnits;
  occurredAt: Date;
  raw: Record<string, string>;
}

/** One configured channel account: a plugin instance bound to one set of credentials. */
export interface ChannelAccount {
  createPayment(req: CreatePaymentRequest): Promise<ChannelPaymentResult>;
  queryPayment(ref: PaymentReference): Promise<ChannelPaymentResult>;
  closePayment(ref: PaymentReference): Promise<void>;
  refund(req: RefundRequest): Promise<ChannelRefundResult>;
  queryRefund(ref: RefundReference): Promise<ChannelRefundResult>;
  /** Verifies and parses; throws ChannelError('signature_invalid') on a forged or tampered one. */
  parseNotification(n: InboundNotification): Promise<ChannelNotification>;
  acknowledge(accepted: boolean): NotificationAck;
  downloadStatement?(date: string): Promise<StatementLine[]>;
  /**
   * Sandbox accounts only: make the simulated payer pay or fail the order at the channel. `action`
   * is what createPayment returned (a payer may first have to open a redirect URL or post a form).
   */
  simulatePayer?(ref: PaymentReference, outcome: 'pay' | 'fail', action?: PaymentAction): Promise<void>;
  health(): Promise<HealthStatus>;
  dispose(): Promise<void>;
}

export interface ChannelAccountContext extends PluginContext {
  /** Name of the account in the config (`channels.<name>`). */
  accountName: string;
  sandbox: boolean;
}

/** A running channel simulator (sandbox only). */
export interface RunningChannelSimulator {
  url: string;
  credentials: unknown;
  close(): Promise<void>;
}

/**
 * How the sandbox wires a plugin to its simulator: start it, and turn the credentials it issued
 * into this plugin's config. `variant` picks one of the simulator's identities (e.g. "service_provider").
 */
export interface ChannelSandbox<Config> {
  startSimulator(opts: { dataDir: string; host?: string; port?: number }): Promise<RunningChannelSimulator>;
  accountConfig(credentials: unknown, variant: string | undefined): Config;
}

export interface ChannelPlugin<Config = unknown> {
  manifest: PluginManifest<Config> & {
    kind: 'channel';
    payMethods: readonly string[];
    /** Payer fields a pay method cannot do without (e.g. JSAPI needs the openid): checked before anything is created. */
    payerFields?: Readonly<Record<string, ReadonlyArray<keyof PayerInfo>>>;
  };
  createAccount(config: Config, ctx: ChannelAccountContext): Promise<ChannelAccount>;
  sandbox?: ChannelSandbox<Config>;
}
