import type { Store } from '../store/index.js';
import type { SqlExecutor } from '../store/sqlite.js';
import { paymentSucceededLines, refundSucceededLines } from './postings.js';

export interface LedgerReport {
  ok: boolean;
  journals: number;
  problems: string[];
  balances: Record<string, number>;
}

/**
 * Checks that every journal balances, that every succeeded payment and refund has exactly the
 * journal the posting rules give, and that no journal exists without one.
 */
export function verifyLedger(store: Store): Promise<LedgerReport> {
  return store.consistentRead((db) => verifyAt(store, db));
}

async function verifyAt(store: Store, db: SqlExecutor): Promise<LedgerReport> {
  const problems: string[] = [];
  for (const j of await store.ledger.unbalancedJournals(db)) {
    problems.push(`journal ${j.id} (${j.kind} ${j.object_id}) does not balance: debit ${j.total_debit} != credit ${j.total_credit}`);
  }
  const actual = await store.ledger.journalTotals(db);
  const expected = await store.ledger.expectedFromPayments(db);
  for (const e of expected) {
    const key = `${e.kind}:${e.object_id}`;
    const lines = e.kind === 'payment'
      ? paymentSucceededLines({ amount: e.amount, fee: e.fee, channelAccount: e.account ?? '?', merchantId: e.merchant_id })
      : refundSucceededLines({ amount: e.amount, feeReturned: e.fee, channelAccount: e.account ?? '?', merchantId: e.merchant_id });
    const want = new Map<string, number>();
    for (const l of lines) want.set(l.account, (want.get(l.account) ?? 0) + l.debit - l.credit);
    const got = actual.get(key);
    if (!got) {
      problems.push(`${key} succeeded but has no journal`);
      continue;
    }
    for (const [account, net] of want) {
      if ((got.get(account) ?? 0) !== net) problems.push(`${key}: ${account} is ${got.get(account) ?? 0}, expected ${net}`);
    }
    if (got.size !== want.size) problems.push(`${key}: journal touches ${got.size} accounts, expected ${want.size}`);
    actual.delete(key);
  }
  for (const key of actual.keys()) problems.push(`journal ${key} has no succeeded payment or refund behind it`);

  const balances: Record<string, number> = {};
  for (const [account, b] of await store.ledger.balances(db)) balances[account] = b.debit - b.credit;
  const total = Object.values(balances).reduce((a, b) => a + b, 0);
  if (total !== 0) problems.push(`trial balance is off by ${total}`);
  return { ok: problems.length === 0, journals: await store.ledger.journalCount(db), problems, balances };
}
