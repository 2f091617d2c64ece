import sqlite3 from 'sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type SqlValue = string | number | bigint | null | Buffer;
export type Row = Record<string, SqlValue>;

/**
 * One sqlite connection with promise methods. Statements are prepared once per SQL text and
 * reused: preparing (parsing) the SQL on every call was the store's largest CPU cost.
 */
class Connection {
  private readonly statements = new Map<string, Promise<sqlite3.Statement>>();
  /** The same statements once prepared, for calls that need not wait a turn for a settled promise. */
  private readonly ready = new Map<string, sqlite3.Statement>();

  constructor(private readonly db: sqlite3.Database) {}

  /** A prepared statement, cached per SQL text; a failed prepare rejects the call and is not cached. */
  private statement(sql: string): Promise<sqlite3.Statement> {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = new Promise((resolve, reject) => {
        const prepared: sqlite3.Statement = this.db.prepare(sql, (err: Error | null) => {
          if (err) return reject(err);
          this.ready.set(sql, prepared);
          resolve(prepared);
        });
      });
      stmt.catch(() => this.statements.delete(sql));
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  static open(path: string, mode: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const db = new sqlite3.Database(path, mode, (err) => (err ? reject(err) : resolve(new Connection(db))));
    });
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<{ changes: number; lastID: number }> {
    const stmt = this.ready.get(sql) ?? (await this.statement(sql));
    return new Promise((resolve, reject) => {
      stmt.run(params as SqlValue[], function (this: sqlite3.RunResult, err: Error | null) {
        if (err) reject(err);
        else resolve({ changes: this.changes, lastID: this.lastID });
      });
    });
  }

  /** Reads through all(), which steps to the end and resets the statement, so no read transaction stays open. */
  async get<T = Row>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    return (await this.all<T>(sql, params))[0];
  }

  async all<T = Row>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    const stmt = this.ready.get(sql) ?? (await this.statement(sql));
    return new Promise((resolve, reject) => {
      stmt.all(params as SqlValue[], (err: Error | null, rows: T[]) => (err ? reject(err) : resolve(rows)));
    });
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => this.db.exec(sql, (err) => (err ? reject(err) : resolve())));
  }

  async close(): Promise<void> {
    const prepared = await Promise.all([...this.statements.values()].map((s) => s.catch(() => null)));
    await Promise.all(prepared.map((s) => s && new Promise<void>((resolve) => s.finalize(() => resolve()))));
    this.statements.clear();
    this.ready.clear();
    await new Promise<void>((resolve, reject) => this.db.close((err) => (err ? reject(err) : resolve())));
  }
}

/** What a repository may do inside a transaction or against the reader. */
export interface SqlExecutor {
  run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number; lastID: number }>;
  get<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  all<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
}

interface WriteJob {
  fn: (tx: SqlExecutor) => Promise<unknown>;
  /** One statement: sqlite undoes a failed statement by itself, so it needs no savepoint of its own. */
  singleStatement: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** At most this many queued transactions share one commit. */
const MAX_GROUP = 64;

/**
 * The embedded sqlite store: one writer connection and one reader connection that sees committed
 * data only. Writes are serialised by an in-process queue (sqlite has one writer, and interleaved
 * BEGINs on one connection would merge unrelated work) and committed in groups: the transactions
 * waiting when the writer frees up run one after another, each inside its own savepoint, under one
 * COMMIT and one fsync. Each is acknowledged only after that COMMIT, so nothing is acknowledged
 * before it is durable; one that fails is rolled back to its savepoint without touching the others.
 */
export class SqliteDatabase {
  private readonly jobs: WriteJob[] = [];
  private flushing: Promise<void> | null = null;
  private closed = false;

  private constructor(
    private readonly writer: Connection,
    private readonly reader: Connection,
    readonly path: string,
  ) {}

  static async open(path: string): Promise<SqliteDatabase> {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const writer = await Connection.open(path, sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE | sqlite3.OPEN_FULLMUTEX);
    await writer.exec('PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;');
    const reader = await Connection.open(path, sqlite3.OPEN_READONLY | sqlite3.OPEN_FULLMUTEX);
    await reader.exec('PRAGMA busy_timeout=5000; PRAGMA query_only=ON;');
    return new SqliteDatabase(writer, reader, path);
  }

  /** Reads committed data; never blocks behind a write transaction. */
  get reads(): SqlExecutor {
    return this.reader;
  }

  /** Runs fn atomically; every write of the store goes through here. Never call it from inside fn. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.enqueue(fn, false);
  }

  /** A write of exactly one statement: the same guarantees as a transaction, cheaper (alone, no BEGIN/COMMIT at all). */
  write<T>(fn: (w: SqlExecutor) => Promise<T>): Promise<T> {
    return this.enqueue(fn, true);
  }

  private enqueue<T>(fn: (tx: SqlExecutor) => Promise<T>, singleStatement: boolean): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.jobs.push({ fn, singleStatement, resolve: resolve as (value: unknown) => void, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = this.flush().finally(() => {
      this.flushing = null;
      if (this.jobs.length) this.kick();
    });
  }

  private async flush(): Promise<void> {
    while (this.jobs.length) {
      const group = this.jobs.splice(0, MAX_GROUP);
      if (group.length === 1 && group[0]!.singleStatement) {
        // One statement alone is its own transaction in sqlite's autocommit mode, committed (and synced) before its
        // callback: BEGIN and COMMIT would only add two more trips through the thread pool.
        const job = group[0]!;
        await job.fn(this.writer).then(job.resolve, job.reject);
        continue;
      }
      try {
        await this.writer.run('BEGIN IMMEDIATE');
      } catch (err) {
        for (const job of group) job.reject(err);
        continue;
      }
      const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
      let lost: number | null = null;
      for (let k = 0; k < group.length && lost === null; k++) {
        const job = group[k]!;
        const alone = group.length === 1;
        // A failed statement normally undoes only itself, but some failures (disk full, I/O errors, a
        // RAISE(ROLLBACK)) roll back the whole transaction: after a failure, find out which happened.
        const bare = alone || job.singleStatement;
        try {
          if (!bare) await this.writer.run('SAVEPOINT job');
          const value = await job.fn(this.writer);
          if (!bare) await this.writer.run('RELEASE job');
          outcomes.push({ ok: true, value });
        } catch (error) {
          outcomes.push({ ok: false, error });
          if (alone) break;
          const undone = bare ? await this.transactionStillOpen() : await this.writer.exec('ROLLBACK TO job; RELEASE job').then(() => true, () => false);
          if (!undone) lost = k;
        }
      }
      if (lost !== null) {
        // The transaction is gone: the failing job is rejected, the others run again in a fresh group.
        await this.writer.exec('ROLLBACK').catch(() => undefined);
        group[lost]!.reject((outcomes[lost] as { error: unknown }).error);
        this.jobs.unshift(...group.filter((_, k) => k !== lost));
        continue;
      }
      if (group.length === 1 && !outcomes[0]!.ok) {
        await this.writer.exec('ROLLBACK').catch(() => undefined);
        group[0]!.reject((outcomes[0] as { error: unknown }).error);
        continue;
      }
      try {
        await this.writer.run('COMMIT');
      } catch (err) {
        await this.writer.exec('ROLLBACK').catch(() => undefined);
        for (const job of group) job.reject(err);
        continue;
      }
      group.forEach((job, k) => {
        const o = outcomes[k]!;
        if (o.ok) job.resolve(o.value);
        else job.reject(o.error);
      });
    }
  }

  /** BEGIN fails inside an open transaction; when it succeeds, the group's transaction was lost (undo the probe). */
  private transactionStillOpen(): Promise<boolean> {
    return this.writer.run('BEGIN').then(
      () => this.writer.run('ROLLBACK').then(() => false, () => false),
      () => true,
    );
  }

  /**
   * Runs several reads against one consistent snapshot (a read transaction on a dedicated
   * connection, so concurrent plain reads are unaffected).
   */
  async consistentRead<T>(fn: (db: SqlExecutor) => Promise<T>): Promise<T> {
    const conn = await Connection.open(this.path, sqlite3.OPEN_READONLY);
    try {
      await conn.exec('PRAGMA busy_timeout=5000; BEGIN');
      const value = await fn(conn);
      await conn.exec('COMMIT');
      return value;
    } finally {
      await conn.close();
    }
  }

  async exec(sql: string): Promise<void> {
    await this.transaction(async () => this.writer.exec(sql));
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.reader.close();
    await this.writer.exec('PRAGMA wal_checkpoint(TRUNCATE)').catch(() => undefined);
    await this.writer.close();
  }
}

export function isUniqueViolation(err: unknown): boolean {
  return err instanceof Error && /SQLITE_CONSTRAINT: UNIQUE/.test(err.message);
}
