import type { ChannelPaymentStatus } from '../contract/channel.js';
import type { PaymentStatus } from './types.js';

/**
 * What a channel-reported status does to a stored payment:
 *  - 'apply': a normal forward transition from pending;
 *  - 'late_success': the channel took the money after the payment was closed or failed here;
 *  - 'none': nothing changes (same state, pending reports, or a terminal state the report cannot move).
 */
export function paymentTransitionFor(current: PaymentStatus, reported: ChannelPaymentStatus): 'apply' | 'late_success' | 'none' {
  if (reported === 'pending' || reported === current) return 'none';
  if (current === 'pending') return 'apply';
  if (reported === 'succeeded' && (current === 'closed' || current === 'failed')) return 'late_success';
  return 'none';
}

/** Delay before the next channel query of a pending payment: the backoff schedule, its last step repeating. */
export function nextCheckDelay(checksDone: number, backoffS: readonly number[]): number {
  const step = backoffS[Math.min(checksDone, backoffS.length - 1)] ?? 60;
  return step * 1000;
}
