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
  private readonly statements = new Map<string, sqlite3.Statement>();

  constructor(private readonly db: sqlite3.Database) {}

  private statement(sql: string): sqlite3.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  static open(path: string, mode: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const db = new sqlite3.Database(path, mode, (err) => (err ? reject(err) : resolve(new Connection(db))));
    });
  }

  run(sql: string, params: readonly SqlValue[] = []): Promise<{ changes: number; lastID: number }> {
    return new Promise((resolve, reject) => {
      this.statement(sql).run(params as SqlValue[], function (this: sqlite3.RunResult, err: Error | null) {
        if (err) reject(err);
        else resolve({ changes: this.changes, lastID: this.lastID });
      });
    });
  }

  /** Reads through all(), which steps to the end and resets the statement, so no read transaction stays open. */
  async get<T = Row>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    return (await this.all<T>(sql, params))[0];
  }

  all<T = Row>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return new Promise((resolve, reject) => {
      this.statement(sql).all(params as SqlValue[], (err: Error | null, rows: T[]) => (err ? reject(err) : resolve(rows)));
    });
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => this.db.exec(sql, (err) => (err ? reject(err) : resolve())));
  }

  async close(): Promise<void> {
    await Promise.all([...this.statements.values()].map((s) => new Promise<void>((resolve) => s.finalize(() => resolve()))));
    this.statements.clear();
    await new Promise<void>((resolve, reject) => this.db.close((err) => (err ? reject(err) : resolve())));
  }
}

/** What a repository may do inside a transaction or against the reader. */
export interface SqlExecutor {
  run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number; lastID: number }>;
  get<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  all<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
}

/**
 * The embedded sqlite store: one writer connection whose transactions are serialised by an
 * in-process queue (sqlite allows one writer; interleaving BEGINs on one connection would merge
 * unrelated work into one transaction), and one reader connection that sees committed data only.
 */
export class SqliteDatabase {
  private writeQueue: Promise<unknown> = Promise.resolve();

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

  /** Runs fn in one IMMEDIATE transaction; every write of the store goes through here. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const result = this.writeQueue.then(async () => {
      await this.writer.exec('BEGIN IMMEDIATE');
      try {
        const value = await fn(this.writer);
        await this.writer.exec('COMMIT');
        return value;
      } catch (err) {
        await this.writer.exec('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
    this.writeQueue = result.catch(() => undefined);
    return result;
  }

  /**
   * Runs one statement on the writer, in turn with the transactions: for writes that are a single
   * statement (atomic on their own, triggers included), without the BEGIN/COMMIT round trips.
   */
  write<T>(fn: (w: SqlExecutor) => Promise<T>): Promise<T> {
    const result = this.writeQueue.then(() => fn(this.writer));
    this.writeQueue = result.catch(() => undefined);
    return result;
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
    await this.writeQueue;
    await this.reader.close();
    await this.writer.exec('PRAGMA wal_checkpoint(TRUNCATE)').catch(() => undefined);
    await this.writer.close();
  }
}

export function isUniqueViolation(err: unknown): boolean {
  return err instanceof Error && /SQLITE_CONSTRAINT: UNIQUE/.test(err.message);
}
