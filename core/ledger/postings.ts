import type { LedgerLine } from '../store/index.js';

/**
 * Posting rules, pure. Accounts:
 *   channel_clearing:<account>  money the channel holds for us (asset, debit-normal)
 *   merchant_payable:<merchant> what we owe the merchant (liability, credit-normal)
 *   fee_revenue                 our fee income (credit-normal)
 */
export const accounts = {
  clearing: (channelAccount: string) => `channel_clearing:${channelAccount}`,
  payable: (merchantId: string) => `merchant_payable:${merchantId}`,
  feeRevenue: 'fee_revenue',
};

/** Fee in minor units for an amount at a rate in basis points, rounded half up. */
export function feeFor(amount: number, rateBps: number): number {
  return Math.floor((amount * rateBps + 5_000) / 10_000);
}

/** Fee returned with a refund: proportional, computed on cumulative totals so a full refund returns the whole fee. */
export function feeReturnedFor(fee: number, paymentAmount: number, refundedBefore: number, refundAmount: number): number {
  const shareAfter = Math.floor((fee * (refundedBefore + refundAmount)) / paymentAmount);
  const shareBefore = Math.floor((fee * refundedBefore) / paymentAmount);
  return shareAfter - shareBefore;
}

export function paymentSucceededLines(p: { amount: number; fee: number; channelAccount: string; merchantId: string }): LedgerLine[] {
  const lines: LedgerLine[] = [
    { account: accounts.clearing(p.channelAccount), debit: p.amount, credit: 0 },
    { account: accounts.payable(p.merchantId), debit: 0, credit: p.amount - p.fee },
  ];
  if (p.fee > 0) lines.push({ account: accounts.feeRevenue, debit: 0, credit: p.fee });
  return lines;
}

export function refundSucceededLines(r: { amount: number; feeReturned: number; channelAccount: string; merchantId: string }): LedgerLine[] {
  const lines: LedgerLine[] = [
    { account: accounts.payable(r.merchantId), debit: r.amount - r.feeReturned, credit: 0 },
    { account: accounts.clearing(r.channelAccount), debit: 0, credit: r.amount },
  ];
  if (r.feeReturned > 0) lines.push({ account: accounts.feeRevenue, debit: r.feeReturned, credit: 0 });
  return lines;
}
