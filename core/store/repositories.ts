import type { SqlExecutor, SqlValue } from './sqlite.js';
import { toApp, toBinding, toMerchant, toPayment, toRefund, toWebhookEvent } from './rows.js';
import type {
  AppRecord, BindingRecord, MerchantRecord, MerchantStatus, PaymentRecord, PaymentStatus, RefundRecord, RefundStatus, RoutingTrace, WebhookEventRecord,
} from '../payments/types.js';

/** A transaction handle: the domain passes it through without looking inside. */
export type Tx = SqlExecutor;

const j = (v: unknown): string => JSON.stringify(v);

export class MerchantRepository {
  async insert(tx: Tx, m: MerchantRecord): Promise<void> {
    await tx.run('INSERT INTO merchants (id, name, status, tags, fee_rate_bps, created_at, updated_at) VALUES (?,?,?,?,?,?,?)', [
      m.id, m.name, m.status, j(m.tags), m.feeRateBps, m.createdAt, m.updatedAt,
    ]);
  }

  async get(db: SqlExecutor, id: string): Promise<MerchantRecord | undefined> {
    const row = await db.get('SELECT * FROM merchants WHERE id = ?', [id]);
    return row && toMerchant(row);
  }

  async list(db: SqlExecutor, status?: MerchantStatus): Promise<MerchantRecord[]> {
    const rows = status
      ? await db.all('SELECT * FROM merchants WHERE status = ? ORDER BY created_at', [status])
      : await db.all('SELECT * FROM merchants ORDER BY created_at');
    return rows.map(toMerchant);
  }

  /** Conditional transition: returns false when the merchant was not in one of `from`. */
  async setStatus(tx: Tx, id: string, from: readonly MerchantStatus[], to: MerchantStatus, now: number): Promise<boolean> {
    const res = await tx.run(`UPDATE merchants SET status = ?, updated_at = ? WHERE id = ? AND status IN (${from.map(() => '?').join(',')})`, [to, now, id, ...from]);
    return res.changes === 1;
  }

  async insertApp(tx: Tx, a: AppRecord): Promise<void> {
    await tx.run('INSERT INTO apps (id, merchant_id, auth_type, hmac_secret, public_key_pem, notify_url, status, created_at) VALUES (?,?,?,?,?,?,?,?)', [
      a.id, a.merchantId, a.authType, a.hmacSecret, a.publicKeyPem, a.notifyUrl, a.status, a.createdAt,
    ]);
  }

  async getApp(db: SqlExecutor, id: string): Promise<AppRecord | undefined> {
    const row = await db.get('SELECT * FROM apps WHERE id = ?', [id]);
    return row && toApp(row);
  }

  async listApps(db: SqlExecutor, merchantId: string): Promise<AppRecord[]> {
    return (await db.all('SELECT * FROM apps WHERE merchant_id = ? ORDER BY created_at', [merchantId])).map(toApp);
  }

  async upsertBinding(tx: Tx, b: BindingRecord): Promise<void> {
    await tx.run(
      `INSERT INTO merchant_channel_accounts (merchant_id, account, sub_merchant_id, params, created_at) VALUES (?,?,?,?,?)
       ON CONFLICT (merchant_id, account) DO UPDATE SET sub_merchant_id = excluded.sub_merchant_id, params = excluded.params`,
      [b.merchantId, b.account, b.subMerchantId, j(b.params), b.createdAt],
    );
  }

  async deleteBinding(tx: Tx, merchantId: string, account: string): Promise<boolean> {
    return (await tx.run('DELETE FROM merchant_channel_accounts WHERE merchant_id = ? AND account = ?', [merchantId, account])).changes === 1;
  }

  async listBindings(db: SqlExecutor, merchantId: string): Promise<BindingRecord[]> {
    return (await db.all('SELECT * FROM merchant_channel_accounts WHERE merchant_id = ? ORDER BY account', [merchantId])).map(toBinding);
  }
}

export interface PaymentUpdate {
  channelTradeNo?: string | null;
  action?: unknown;
  failure?: unknown;
  routing?: RoutingTrace;
  paidAt?: number | null;
  fee?: number;
  nextCheckAt?: number | null;
  checkCount?: number;
  channel?: string;
  channelAccount?: string;
  channelOrderNo?: string;
  binding?: { subMerchantId?: string; params: Record<string, string> } | null;
}

const PAYMENT_UPDATE_COLUMNS: Record<keyof PaymentUpdate, string> = {
  channelTradeNo: 'channel_trade_no',
  action: 'action',
  failure: 'failure',
  routing: 'routing',
  paidAt: 'paid_at',
  fee: 'fee',
  nextCheckAt: 'next_check_at',
  checkCount: 'check_count',
  channel: 'channel',
  channelAccount: 'channel_account',
  channelOrderNo: 'channel_order_no',
  binding: 'channel_binding',
};
const JSON_COLUMNS = new Set(['action', 'failure', 'routing', 'channel_binding']);

function updateClause(update: PaymentUpdate): { sets: string[]; values: SqlValue[] } {
  const sets: string[] = [];
  const values: SqlValue[] = [];
  for (const [key, value] of Object.entries(update) as Array<[keyof PaymentUpdate, unknown]>) {
    if (value === undefined) continue;
    const column = PAYMENT_UPDATE_COLUMNS[key];
    sets.push(`${column} = ?`);
    values.push(JSON_COLUMNS.has(column) ? (value === null ? null : j(value)) : (value as SqlValue));
  }
  return { sets, values };
}

/** Non-final rows that name one channel account. */
export interface PendingOnAccount {
  payments: number;
  refunds: number;
}

export class PaymentRepository {
  async insert(tx: Tx, p: PaymentRecord): Promise<void> {
    await tx.run(
      `INSERT INTO payments (id, merchant_id, app_id, out_trade_no, amount, amount_refunded, currency, pay_method, channel, channel_account,
        channel_order_no, channel_trade_no, status, subject, notify_url, return_url, payer, metadata, action, failure, routing, fee,
        expires_at, created_at, updated_at, paid_at, next_check_at, check_count, channel_binding, status_source)
       VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'create')`,
      [
        p.id, p.merchantId, p.appId, p.outTradeNo, p.amount, p.amountRefunded, p.currency, p.payMethod, p.channel, p.channelAccount,
        p.channelOrderNo, p.channelTradeNo, p.status, p.subject, p.notifyUrl, p.returnUrl, j(p.payer), j(p.metadata),
        p.action === null ? null : j(p.action), p.failure === null ? null : j(p.failure), p.routing === null ? null : j(p.routing), p.fee,
        p.expiresAt, p.createdAt, p.updatedAt, p.paidAt, p.nextCheckAt, p.checkCount, p.binding === null ? null : j(p.binding),
      ],
    );
  }

  async get(db: SqlExecutor, id: string): Promise<PaymentRecord | undefined> {
    const row = await db.get('SELECT * FROM payments WHERE id = ?', [id]);
    return row && toPayment(row);
  }

  async getByOutTradeNo(db: SqlExecutor, appId: string, outTradeNo: string): Promise<PaymentRecord | undefined> {
    const row = await db.get('SELECT * FROM payments WHERE app_id = ? AND out_trade_no = ?', [appId, outTradeNo]);
    return row && toPayment(row);
  }

  async getByChannelOrderNo(db: SqlExecutor, channelOrderNo: string): Promise<PaymentRecord | undefined> {
    const row = await db.get('SELECT * FROM payments WHERE channel_order_no = ?', [channelOrderNo]);
    return row && toPayment(row);
  }

  /**
   * The one way a payment changes status: a conditional update that does nothing unless the
   * payment is still in one of `from`. Returns whether this call made the change.
   */
  async transition(tx: Tx, id: string, from: readonly PaymentStatus[], to: PaymentStatus, update: PaymentUpdate, now: number, source: string): Promise<boolean> {
    const { sets, values } = updateClause(update);
    // The audit row is written by the payments_audit_update trigger, from status_source.
    const res = await tx.run(
      `UPDATE payments SET status = ?, status_source = ?, updated_at = ?${sets.length ? ', ' + sets.join(', ') : ''} WHERE id = ? AND status IN (${from.map(() => '?').join(',')})`,
      [to, source, now, ...values, id, ...from],
    );
    return res.changes === 1;
  }

  /** Updates fields without a status change (channel reference, action, poll schedule). */
  async update(tx: Tx, id: string, update: PaymentUpdate, now: number): Promise<void> {
    const { sets, values } = updateClause(update);
    if (sets.length === 0) return;
    await tx.run(`UPDATE payments SET updated_at = ?, ${sets.join(', ')} WHERE id = ?`, [now, ...values, id]);
  }

  /** Like update, but only while the payment is still pending; returns whether it was. */
  async updateIfPending(tx: Tx, id: string, update: PaymentUpdate, now: number): Promise<boolean> {
    const { sets, values } = updateClause(update);
    const res = await tx.run(`UPDATE payments SET updated_at = ?${sets.length ? ', ' + sets.join(', ') : ''} WHERE id = ? AND status = 'pending'`, [now, ...values, id]);
    return res.changes === 1;
  }

  async addRefunded(tx: Tx, id: string, amount: number, now: number): Promise<boolean> {
    const res = await tx.run('UPDATE payments SET amount_refunded = amount_refunded + ?, updated_at = ? WHERE id = ? AND amount_refunded + ? <= amount', [amount, now, id, amount]);
    return res.changes === 1;
  }

  /**
   * Each account's share of its daily limits since `since`, as routing holds it: every payment created there, except
   * one that provably created nothing (declined, or failed without reaching it). A payment whose order was created
   * (or may have been) and that failed later keeps its share, as it does in the running gateway.
   */
  async usageSince(db: SqlExecutor, since: number): Promise<Array<{ account: string; count: number; amount: number }>> {
    const rows = await db.all<{ account: string; count: number; amount: number }>(
      `SELECT channel_account AS account, COUNT(*) AS count, SUM(amount) AS amount FROM payments
       WHERE created_at >= ? AND channel_account IS NOT NULL
         AND (status != 'failed' OR json_extract(routing, '$.attempts[#-1].outcome') IN ('created', 'unknown'))
       GROUP BY channel_account`, [since]);
    return rows.map((r) => ({ account: r.account, count: Number(r.count), amount: Number(r.amount) }));
  }

  /**
   * Non-final payments and refunds per channel account (only `accounts`, when given): rows that only that
   * account can still resolve, so a config must keep serving it while any remain.
   */
  async pendingByAccount(db: SqlExecutor, accounts?: readonly string[]): Promise<Map<string, PendingOnAccount>> {
    const only = accounts ? ` AND p.channel_account IN (${accounts.map(() => '?').join(',')})` : '';
    const rows = await db.all<{ account: string; payments: number; refunds: number }>(
      `SELECT p.channel_account AS account, COUNT(*) AS payments, 0 AS refunds FROM payments p WHERE p.status = 'pending'${only} GROUP BY p.channel_account
       UNION ALL
       SELECT p.channel_account AS account, 0 AS payments, COUNT(*) AS refunds FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.status = 'pending'${only} GROUP BY p.channel_account`,
      accounts ? [...accounts, ...accounts] : [],
    );
    const out = new Map<string, PendingOnAccount>();
    for (const r of rows) {
      const counts = out.get(r.account) ?? { payments: 0, refunds: 0 };
      counts.payments += Number(r.payments);
      counts.refunds += Number(r.refunds);
      out.set(r.account, counts);
    }
    return out;
  }

  /** Pending payments whose next channel check is due. */
  async listDueForCheck(db: SqlExecutor, now: number, limit: number): Promise<PaymentRecord[]> {
    return (await db.all("SELECT * FROM payments WHERE status = 'pending' AND next_check_at IS NOT NULL AND next_check_at <= ? ORDER BY next_check_at LIMIT ?", [now, limit])).map(toPayment);
  }

  async insertRefund(tx: Tx, r: RefundRecord): Promise<void> {
    await tx.run(
      `INSERT INTO refunds (id, payment_id, merchant_id, out_refund_no, amount, reason, status, channel_refund_no, failure, fee_returned, created_at, updated_at, succeeded_at, next_check_at, status_source)
       VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,'create')`,
      [r.id, r.paymentId, r.merchantId, r.outRefundNo, r.amount, r.reason, r.status, r.channelRefundNo, r.failure === null ? null : j(r.failure), r.feeReturned, r.createdAt, r.updatedAt, r.succeededAt, r.nextCheckAt ?? null],
    );
  }

  async getRefund(db: SqlExecutor, id: string): Promise<RefundRecord | undefined> {
    const row = await db.get('SELECT * FROM refunds WHERE id = ?', [id]);
    return row && toRefund(row);
  }

  async getRefundByOutRefundNo(db: SqlExecutor, paymentId: string, outRefundNo: string): Promise<RefundRecord | undefined> {
    const row = await db.get('SELECT * FROM refunds WHERE payment_id = ? AND out_refund_no = ?', [paymentId, outRefundNo]);
    return row && toRefund(row);
  }

  async getRefundByChannelRefundNo(db: SqlExecutor, channelRefundNo: string): Promise<RefundRecord | undefined> {
    const row = await db.get('SELECT * FROM refunds WHERE channel_refund_no = ?', [channelRefundNo]);
    return row && toRefund(row);
  }

  async listRefunds(db: SqlExecutor, paymentId: string): Promise<RefundRecord[]> {
    return (await db.all('SELECT * FROM refunds WHERE payment_id = ? ORDER BY created_at', [paymentId])).map(toRefund);
  }

  /** Sum of refunds that are pending or succeeded: the amount no new refund may push past the payment's. */
  async committedRefundTotal(tx: Tx, paymentId: string): Promise<number> {
    const row = await tx.get<{ total: number | null }>("SELECT SUM(amount) AS total FROM refunds WHERE payment_id = ? AND status IN ('pending','succeeded')", [paymentId]);
    return Number(row?.total ?? 0);
  }

  async transitionRefund(
    tx: Tx, id: string, from: readonly RefundStatus[], to: RefundStatus,
    update: { channelRefundNo?: string | null; failure?: unknown; succeededAt?: number | null; feeReturned?: number; nextCheckAt?: number | null }, now: number, source: string,
  ): Promise<boolean> {
    const sets: string[] = ['status = ?', 'status_source = ?', 'updated_at = ?'];
    const values: SqlValue[] = [to, source, now];
    if (update.channelRefundNo !== undefined) { sets.push('channel_refund_no = COALESCE(channel_refund_no, ?)'); values.push(update.channelRefundNo); }
    if (update.failure !== undefined) { sets.push('failure = ?'); values.push(update.failure === null ? null : j(update.failure)); }
    if (update.succeededAt !== undefined) { sets.push('succeeded_at = ?'); values.push(update.succeededAt); }
    if (update.feeReturned !== undefined) { sets.push('fee_returned = ?'); values.push(update.feeReturned); }
    if (update.nextCheckAt !== undefined) { sets.push('next_check_at = ?'); values.push(update.nextCheckAt); }
    const res = await tx.run(`UPDATE refunds SET ${sets.join(', ')} WHERE id = ? AND status IN (${from.map(() => '?').join(',')})`, [...values, id, ...from]);
    return res.changes === 1;
  }

  async setRefundNextCheck(tx: Tx, id: string, nextCheckAt: number | null): Promise<void> {
    await tx.run('UPDATE refunds SET next_check_at = ? WHERE id = ?', [nextCheckAt, id]);
  }

  async listRefundsDueForCheck(db: SqlExecutor, now: number, limit: number): Promise<RefundRecord[]> {
    return (await db.all("SELECT * FROM refunds WHERE status = 'pending' AND next_check_at IS NOT NULL AND next_check_at <= ? ORDER BY next_check_at LIMIT ?", [now, limit])).map(toRefund);
  }

  async sumSucceededRefunds(db: SqlExecutor, paymentId: string): Promise<{ amount: number; feeReturned: number }> {
    const row = await db.get<{ amount: number | null; fee: number | null }>("SELECT SUM(amount) AS amount, SUM(fee_returned) AS fee FROM refunds WHERE payment_id = ? AND status = 'succeeded'", [paymentId]);
    return { amount: Number(row?.amount ?? 0), feeReturned: Number(row?.fee ?? 0) };
  }
}

export class AuditRepository {
  async append(tx: Tx, e: { objectType: string; objectId: string; from: string | null; to: string; source: string; detail?: unknown; at: number }): Promise<void> {
    await tx.run('INSERT INTO audit_events (object_type, object_id, from_status, to_status, source, detail, created_at) VALUES (?,?,?,?,?,?,?)', [
      e.objectType, e.objectId, e.from, e.to, e.source, j(e.detail ?? {}), e.at,
    ]);
  }

  async list(db: SqlExecutor, objectId: string): Promise<Array<{ from_status: string | null; to_status: string; source: string; created_at: number }>> {
    return db.all('SELECT from_status, to_status, source, detail, created_at FROM audit_events WHERE object_id = ? ORDER BY id', [objectId]);
  }

  async raiseAlert(tx: Tx, kind: string, objectId: string | null, detail: unknown, at: number): Promise<void> {
    await tx.run('INSERT INTO alerts (kind, object_id, detail, created_at) VALUES (?,?,?,?)', [kind, objectId, j(detail), at]);
  }

  async listAlerts(db: SqlExecutor, limit = 100): Promise<Array<{ id: number; kind: string; object_id: string | null; detail: string; created_at: number }>> {
    return db.all('SELECT * FROM alerts ORDER BY id DESC LIMIT ?', [limit]);
  }
}

export interface LedgerLine { account: string; debit: number; credit: number }

export class LedgerRepository {
  /** Posts a journal once per (kind, object): a second posting for the same object is ignored. */
  async post(tx: Tx, kind: string, objectId: string, currency: string, lines: readonly LedgerLine[], at: number): Promise<boolean> {
    const res = await tx.run('INSERT OR IGNORE INTO ledger_journals (kind, object_id, currency, created_at) VALUES (?,?,?,?)', [kind, objectId, currency, at]);
    if (res.changes === 0) return false;
    for (const line of lines) {
      await tx.run('INSERT INTO ledger_entries (journal_id, account, debit, credit) VALUES (?,?,?,?)', [res.lastID, line.account, line.debit, line.credit]);
    }
    return true;
  }

  async unbalancedJournals(db: SqlExecutor): Promise<Array<{ id: number; kind: string; object_id: string; total_debit: number; total_credit: number }>> {
    return db.all(
      `SELECT j.id, j.kind, j.object_id, COALESCE(SUM(e.debit),0) AS total_debit, COALESCE(SUM(e.credit),0) AS total_credit
       FROM ledger_journals j LEFT JOIN ledger_entries e ON e.journal_id = j.id GROUP BY j.id HAVING total_debit != total_credit OR COUNT(e.id) = 0`,
    );
  }

  async balances(db: SqlExecutor): Promise<Map<string, { debit: number; credit: number }>> {
    const rows = await db.all<{ account: string; debit: number; credit: number }>('SELECT account, SUM(debit) AS debit, SUM(credit) AS credit FROM ledger_entries GROUP BY account');
    return new Map(rows.map((r) => [r.account, { debit: Number(r.debit), credit: Number(r.credit) }]));
  }

  async journalCount(db: SqlExecutor): Promise<number> {
    return Number((await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM ledger_journals'))?.n ?? 0);
  }

  /** What the ledger should hold according to the payments and refunds tables. */
  async expectedFromPayments(db: SqlExecutor): Promise<Array<{ kind: string; object_id: string; amount: number; fee: number; account: string | null; merchant_id: string }>> {
    return db.all(
      `SELECT 'payment' AS kind, id AS object_id, amount, fee, channel_account AS account, merchant_id FROM payments WHERE status = 'succeeded' OR paid_at IS NOT NULL
       UNION ALL
       SELECT 'refund' AS kind, r.id, r.amount, r.fee_returned, p.channel_account, r.merchant_id FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.status = 'succeeded'`,
    );
  }

  async journalTotals(db: SqlExecutor): Promise<Map<string, Map<string, number>>> {
    const rows = await db.all<{ kind: string; object_id: string; account: string; net: number }>(
      'SELECT j.kind, j.object_id, e.account, SUM(e.debit) - SUM(e.credit) AS net FROM ledger_journals j JOIN ledger_entries e ON e.journal_id = j.id GROUP BY j.id, e.account',
    );
    const out = new Map<string, Map<string, number>>();
    for (const r of rows) {
      const key = `${r.kind}:${r.object_id}`;
      if (!out.has(key)) out.set(key, new Map());
      out.get(key)!.set(r.account, Number(r.net));
    }
    return out;
  }
}

export class WebhookRepository {
  async enqueue(tx: Tx, e: WebhookEventRecord): Promise<void> {
    await tx.run(
      'INSERT INTO webhook_events (id, merchant_id, type, object_id, payload, url, status, attempts, next_attempt_at, last_error, created_at, delivered_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)',
      [e.id, e.merchantId, e.type, e.objectId, e.payload, e.url, e.status, e.attempts, e.nextAttemptAt, e.lastError, e.createdAt, e.deliveredAt],
    );
  }

  async get(db: SqlExecutor, id: string): Promise<WebhookEventRecord | undefined> {
    const row = await db.get('SELECT * FROM webhook_events WHERE id = ?', [id]);
    return row && toWebhookEvent(row);
  }

  async listForObject(db: SqlExecutor, objectId: string): Promise<WebhookEventRecord[]> {
    return (await db.all('SELECT * FROM webhook_events WHERE object_id = ? ORDER BY created_at', [objectId])).map(toWebhookEvent);
  }

  async due(db: SqlExecutor, now: number, limit: number): Promise<WebhookEventRecord[]> {
    return (await db.all("SELECT * FROM webhook_events WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?", [now, limit])).map(toWebhookEvent);
  }

  async nextDueAt(db: SqlExecutor): Promise<number | null> {
    const row = await db.get<{ t: number | null }>("SELECT MIN(next_attempt_at) AS t FROM webhook_events WHERE status = 'pending'");
    return row?.t ?? null;
  }

  /** Records one delivery attempt and its effect on the event, in one transaction. */
  async recordAttempt(
    tx: Tx, eventId: string, attempt: { number: number; statusCode: number | null; error: string | null; durationMs: number; at: number },
    next: { status: WebhookEventRecord['status']; nextAttemptAt: number | null },
  ): Promise<void> {
    await tx.run('INSERT INTO webhook_attempts (event_id, attempt, status_code, error, duration_ms, created_at) VALUES (?,?,?,?,?,?)', [
      eventId, attempt.number, attempt.statusCode, attempt.error, attempt.durationMs, attempt.at,
    ]);
    await tx.run('UPDATE webhook_events SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?, delivered_at = ? WHERE id = ?', [
      next.status, attempt.number, next.nextAttemptAt, attempt.error, next.status === 'delivered' ? attempt.at : null, eventId,
    ]);
  }

  async attempts(db: SqlExecutor, eventId: string): Promise<Array<{ attempt: number; status_code: number | null; error: string | null; duration_ms: number; created_at: number }>> {
    return db.all('SELECT attempt, status_code, error, duration_ms, created_at FROM webhook_attempts WHERE event_id = ? ORDER BY id', [eventId]);
  }

  async redeliver(tx: Tx, eventId: string, now: number): Promise<boolean> {
    const res = await tx.run("UPDATE webhook_events SET status = 'pending', next_attempt_at = ? WHERE id = ? AND url IS NOT NULL", [now, eventId]);
    return res.changes === 1;
  }

  async backlog(db: SqlExecutor): Promise<number> {
    return Number((await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM webhook_events WHERE status = 'pending'"))?.n ?? 0);
  }
}

export class IdempotencyRepository {
  /** Claims the key; returns the existing row when someone already has it. */
  async claim(tx: Tx, appId: string, key: string, requestHash: string, now: number): Promise<{ claimed: true } | { claimed: false; requestHash: string; statusCode: number | null; responseBody: string | null; createdAt: number }> {
    const existing = await tx.get<{ request_hash: string; status_code: number | null; response_body: string | null; created_at: number }>(
      'SELECT request_hash, status_code, response_body, created_at FROM idempotency_keys WHERE app_id = ? AND key = ?', [appId, key],
    );
    if (existing) return { claimed: false, requestHash: existing.request_hash, statusCode: existing.status_code, responseBody: existing.response_body, createdAt: Number(existing.created_at) };
    await tx.run('INSERT INTO idempotency_keys (app_id, key, request_hash, created_at) VALUES (?,?,?,?)', [appId, key, requestHash, now]);
    return { claimed: true };
  }

  async complete(tx: Tx, appId: string, key: string, statusCode: number, body: string): Promise<void> {
    await tx.run('UPDATE idempotency_keys SET status_code = ?, response_body = ? WHERE app_id = ? AND key = ?', [statusCode, body, appId, key]);
  }

  async release(tx: Tx, appId: string, key: string): Promise<void> {
    await tx.run('DELETE FROM idempotency_keys WHERE app_id = ? AND key = ? AND status_code IS NULL', [appId, key]);
  }

  /** Takes over a claim whose request died before completing (a crash), so the key is not stuck forever. */
  async reclaimStale(tx: Tx, appId: string, key: string, requestHash: string, olderThan: number, now: number): Promise<boolean> {
    const res = await tx.run('UPDATE idempotency_keys SET created_at = ? WHERE app_id = ? AND key = ? AND status_code IS NULL AND request_hash = ? AND created_at < ?', [now, appId, key, requestHash, olderThan]);
    return res.changes === 1;
  }

  async purge(tx: Tx, olderThan: number): Promise<number> {
    return (await tx.run('DELETE FROM idempotency_keys WHERE created_at < ?', [olderThan])).changes;
  }
}

export class NonceRepository {
  /** Nonces per statement: a batch up to this size is one statement (a single-statement write). */
  static readonly ROWS_PER_STATEMENT = 200;

  /** Records a batch of nonces, one statement per ROWS_PER_STATEMENT (the guard has already refused live duplicates). */
  async insertMany(db: SqlExecutor, rows: ReadonlyArray<readonly [string, string, number]>): Promise<void> {
    for (let k = 0; k < rows.length; k += NonceRepository.ROWS_PER_STATEMENT) {
      const chunk = rows.slice(k, k + NonceRepository.ROWS_PER_STATEMENT);
      await db.run(`INSERT OR REPLACE INTO request_nonces (app_id, nonce, expires_at) VALUES ${chunk.map(() => '(?,?,?)').join(',')}`, chunk.flat());
    }
  }

  async live(db: SqlExecutor, now: number): Promise<Array<{ app_id: string; nonce: string; expires_at: number }>> {
    return db.all('SELECT app_id, nonce, expires_at FROM request_nonces WHERE expires_at > ?', [now]);
  }

  async purge(tx: Tx, now: number): Promise<number> {
    return (await tx.run('DELETE FROM request_nonces WHERE expires_at < ?', [now])).changes;
  }
}
