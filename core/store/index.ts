import { SqliteDatabase } from './sqlite.js';
import { migrate } from './migrations.js';
import { AuditRepository, IdempotencyRepository, LedgerRepository, MerchantRepository, NonceRepository, PaymentRepository, WebhookRepository } from './repositories.js';

export type { Tx, LedgerLine, PaymentUpdate, PendingOnAccount } from './repositories.js';
export { isUniqueViolation } from './sqlite.js';

/** The store: the database and every repository over it. A PostgreSQL driver replaces this one class. */
export class Store {
  readonly merchants = new MerchantRepository();
  readonly payments = new PaymentRepository();
  readonly audit = new AuditRepository();
  readonly ledger = new LedgerRepository();
  readonly webhooks = new WebhookRepository();
  readonly idempotency = new IdempotencyRepository();
  readonly nonces = new NonceRepository();

  private constructor(readonly db: SqliteDatabase) {}

  static async open(path: string, opts: { migrate?: boolean } = {}): Promise<Store> {
    const db = await SqliteDatabase.open(path);
    if (opts.migrate !== false) await migrate(db);
    return new Store(db);
  }

  get reads() {
    return this.db.reads;
  }

  consistentRead<T>(fn: Parameters<SqliteDatabase['consistentRead']>[0] extends (db: infer X) => Promise<unknown> ? (db: X) => Promise<T> : never): Promise<T> {
    return this.db.consistentRead(fn);
  }

  /** One single-statement write, in turn with the transactions (see SqliteDatabase.write). */
  write<T>(fn: Parameters<SqliteDatabase['write']>[0] extends (db: infer X) => Promise<unknown> ? (db: X) => Promise<T> : never): Promise<T> {
    return this.db.write(fn);
  }

  transaction<T>(fn: Parameters<SqliteDatabase['transaction']>[0] extends (tx: infer X) => Promise<unknown> ? (tx: X) => Promise<T> : never): Promise<T> {
    return this.db.transaction(fn);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
