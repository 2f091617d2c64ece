import type { PaymentAction, PayerInfo } from '../contract/channel.js';

export type PaymentStatus = 'pending' | 'succeeded' | 'failed' | 'closed';
export type RefundStatus = 'pending' | 'succeeded' | 'failed';

export interface Failure {
  code: string;
  message: string;
  channel_code?: string;
}

export interface RoutingAttempt {
  channel: string;
  outcome: string;
  latency_ms: number | null;
  error_code?: string | null;
}

export interface RoutingTrace {
  rule: string | null;
  strategy: string;
  channel: string | null;
  attempts: RoutingAttempt[];
}

export interface PaymentRecord {
  id: string;
  merchantId: string;
  appId: string;
  outTradeNo: string;
  amount: number;
  amountRefunded: number;
  currency: string;
  payMethod: string;
  channel: string | null;
  channelAccount: string | null;
  channelOrderNo: string | null;
  channelTradeNo: string | null;
  status: PaymentStatus;
  subject: string | null;
  notifyUrl: string | null;
  returnUrl: string | null;
  payer: PayerInfo;
  metadata: Record<string, string>;
  action: PaymentAction;
  failure: Failure | null;
  routing: RoutingTrace | null;
  fee: number;
  expiresAt: number;
  createdAt: number;
  updatedAt: number;
  paidAt: number | null;
  checkCount: number;
  nextCheckAt: number | null;
  /** The sub-merchant binding the channel order was created under (service-provider mode). */
  binding: { subMerchantId?: string; params: Record<string, string> } | null;
}

export interface RefundRecord {
  id: string;
  paymentId: string;
  merchantId: string;
  outRefundNo: string;
  amount: number;
  reason: string | null;
  status: RefundStatus;
  channelRefundNo: string | null;
  failure: Failure | null;
  feeReturned: number;
  createdAt: number;
  updatedAt: number;
  succeededAt: number | null;
  /** When the poller should next ask the channel about a pending refund. */
  nextCheckAt?: number | null;
}

export type MerchantStatus = 'pending_review' | 'active' | 'rejected' | 'suspended';

export interface MerchantRecord {
  id: string;
  name: string;
  status: MerchantStatus;
  tags: string[];
  feeRateBps: number;
  createdAt: number;
  updatedAt: number;
}

export interface AppRecord {
  id: string;
  merchantId: string;
  authType: 'hmac' | 'rsa';
  hmacSecret: string | null;
  publicKeyPem: string | null;
  notifyUrl: string | null;
  status: 'active' | 'disabled';
  createdAt: number;
}

export interface BindingRecord {
  merchantId: string;
  account: string;
  subMerchantId: string | null;
  params: Record<string, string>;
  createdAt: number;
}

export interface WebhookEventRecord {
  id: string;
  merchantId: string;
  type: string;
  objectId: string;
  payload: string;
  url: string | null;
  status: 'pending' | 'delivered' | 'failed' | 'no_endpoint';
  attempts: number;
  nextAttemptAt: number | null;
  lastError: string | null;
  createdAt: number;
  deliveredAt: number | null;
}
