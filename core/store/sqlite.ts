import sqlite3 from 'sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { MAX_MERGED_ROWS, mergedStatement, mergeShape, updateKey, type MergeShape } from './statement-merge.js';

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
  /** Statements sent to sqlite so far: each is one trip through the thread pool. */
  statementsRun = 0;

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
    this.statementsRun++;
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
    this.statementsRun++;
    const stmt = this.ready.get(sql) ?? (await this.statement(sql));
    return new Promise((resolve, reject) => {
      stmt.all(params as SqlValue[], (err: Error | null, rows: T[]) => (err ? reject(err) : resolve(rows)));
    });
  }

  exec(sql: string): Promise<void> {
    this.statementsRun++;
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
  /** False once a merged statement it was part of lost its transaction: it then runs on its own. */
  merge?: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** A single-statement job whose statement is held by its OneStatement, to run merged with others. */
interface Held {
  k: number;
  executor: OneStatement;
  /** Never rejects: a job that fails early must not be an unhandled rejection while others run. */
  done: Promise<Outcome>;
  shape: MergeShape;
}

type RunResult = { changes: number; lastID: number };

/**
 * The executor of a single-statement job: it lets exactly one statement through, and refuses reads and any second
 * statement, so that a job that promised one statement cannot commit half of two. In a group (holding), that one
 * statement is held rather than run, so that the store can run it merged with the same statement of other jobs and
 * then hand each job its own share of the result.
 */
class OneStatement implements SqlExecutor {
  held: { sql: string; params: readonly SqlValue[] } | null = null;
  private settle: { resolve: (r: RunResult) => void; reject: (err: unknown) => void } | null = null;
  private statements = 0;

  constructor(
    private readonly writer: SqlExecutor,
    private holding: boolean,
  ) {}

  run(sql: string, params: readonly SqlValue[] = []): Promise<RunResult> {
    if (++this.statements > 1) return Promise.reject(new Error('a single-statement write issued a second statement; use transaction()'));
    if (!this.holding) return this.writer.run(sql, params);
    return new Promise<RunResult>((resolve, reject) => {
      this.held = { sql, params };
      this.settle = { resolve, reject };
    });
  }

  get<T = Row>(): Promise<T | undefined> {
    return Promise.reject(new Error('a single-statement write cannot read; use transaction()'));
  }

  all<T = Row>(): Promise<T[]> {
    return Promise.reject(new Error('a single-statement write cannot read; use transaction()'));
  }

  /** The held statement ran as part of a merged one: this is its own share of the result. */
  answer(result: RunResult): void {
    this.holding = false;
    this.settle?.resolve(result);
  }

  /** Runs the held statement (if any) on its own; a statement issued later runs straight away. */
  release(): void {
    this.holding = false;
    if (this.held && this.settle) this.writer.run(this.held.sql, this.held.params).then(this.settle.resolve, this.settle.reject);
  }
}

/** Starts a job; a job that throws before its first await fails like one that rejects. */
function startJob(job: WriteJob, executor: SqlExecutor): Promise<unknown> {
  try {
    return job.fn(executor);
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Starts a job whose outcome is collected later: the promise settles into an Outcome and never rejects. */
function startJobOutcome(job: WriteJob, executor: SqlExecutor): Promise<Outcome> {
  return startJob(job, executor).then((value): Outcome => ({ ok: true, value }), (error: unknown): Outcome => ({ ok: false, error }));
}

function fitsShape(shape: MergeShape, params: readonly SqlValue[]): boolean {
  if (shape.kind === 'insert') return params.length === shape.params;
  return params.length === shape.columns.length + 1 && typeof updateKey(params) === 'string';
}

/** Whether a statement can join the held run: same text, room left, and (for updates) not a row already in it. */
function joins(held: readonly Held[], statement: { sql: string; params: readonly SqlValue[] }, shape: MergeShape): boolean {
  if (held[0]!.executor.held!.sql !== statement.sql || held.length >= MAX_MERGED_ROWS) return false;
  if (shape.kind === 'insert') return true;
  const key = updateKey(statement.params);
  return !held.some((h) => updateKey(h.executor.held!.params) === key);
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

  /** Statements the writer has sent to sqlite: what group commit and merging save is counted here. */
  get writerStatements(): number {
    return this.writer.statementsRun;
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
        await startJob(job, new OneStatement(this.writer, false)).then(job.resolve, job.reject);
        continue;
      }
      try {
        await this.writer.run('BEGIN IMMEDIATE');
      } catch (err) {
        for (const job of group) job.reject(err);
        continue;
      }
      const outcomes: Outcome[] = new Array<Outcome>(group.length);
      const lost = await this.runGroup(group, outcomes);
      if (lost !== null) {
        await this.writer.exec('ROLLBACK').catch(() => undefined);
        if (lost === 'merged') {
          // A merged statement took the transaction with it: run everyone again, each statement on its own this time,
          // so that the one at fault is found and only it fails.
          for (const job of group) job.merge = false;
          this.jobs.unshift(...group);
        } else {
          // The transaction is gone: the failing job is rejected, the others run again in a fresh group.
          group[lost]!.reject((outcomes[lost] as { error: unknown }).error);
          this.jobs.unshift(...group.filter((_, k) => k !== lost));
        }
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

  /**
   * Runs a group's jobs in order inside its open transaction, filling in each one's outcome. Consecutive
   * single-statement jobs with the same mergeable statement are held back and run as one statement
   * (statement-merge.ts). Returns the job whose failure took the transaction with it ('merged' when a merged
   * statement did), or null.
   */
  private async runGroup(group: WriteJob[], outcomes: Outcome[]): Promise<number | 'merged' | null> {
    let held: Held[] = [];
    const runHeld = async () => {
      const lost = await this.runHeld(held, outcomes);
      held = [];
      return lost;
    };
    for (let k = 0; k < group.length; k++) {
      const job = group[k]!;
      if (job.singleStatement && job.merge !== false) {
        const executor = new OneStatement(this.writer, true);
        const done = startJobOutcome(job, executor);
        const statement = executor.held;
        const shape = statement && mergeShape(statement.sql);
        if (statement && shape && fitsShape(shape, statement.params)) {
          if (held.length > 0 && !joins(held, statement, shape)) {
            const lost = await runHeld();
            if (lost !== null) return lost;
          }
          held.push({ k, executor, done, shape });
          continue;
        }
        const lost = await runHeld();
        if (lost !== null) return lost;
        executor.release();
        const lostHere = await this.settleBare(k, done, outcomes);
        if (lostHere !== null) return lostHere;
        continue;
      }
      const lost = await runHeld();
      if (lost !== null) return lost;
      const alone = group.length === 1;
      // A failed statement normally undoes only itself, but some failures (disk full, I/O errors, a
      // RAISE(ROLLBACK)) roll back the whole transaction: after a failure, find out which happened.
      const bare = alone || job.singleStatement;
      try {
        if (!bare) await this.writer.run('SAVEPOINT job');
        // A single-statement job re-run on its own (after a merged statement lost its transaction) keeps its guard.
        const value = await job.fn(job.singleStatement ? new OneStatement(this.writer, false) : this.writer);
        if (!bare) await this.writer.run('RELEASE job');
        outcomes[k] = { ok: true, value };
      } catch (error) {
        outcomes[k] = { ok: false, error };
        if (alone) return null;
        const undone = bare ? await this.transactionStillOpen() : await this.writer.exec('ROLLBACK TO job; RELEASE job').then(() => true, () => false);
        if (!undone) return k;
      }
    }
    return runHeld();
  }

  /** Runs held statements: alone, or merged; when a merged one fails, each again on its own to find whose it was. */
  private async runHeld(held: readonly Held[], outcomes: Outcome[]): Promise<number | 'merged' | null> {
    if (held.length === 0) return null;
    if (held.length === 1) {
      held[0]!.executor.release();
      return this.settleBare(held[0]!.k, held[0]!.done, outcomes);
    }
    const shape = held[0]!.shape;
    const merged = mergedStatement(shape, held.map((h) => h.executor.held!.params));
    try {
      if (shape.kind === 'insert') {
        await this.writer.run(merged.sql, merged.params);
        for (const h of held) h.executor.answer({ changes: 1, lastID: Number.NaN });
      } else {
        const changed = new Set((await this.writer.all<{ id: SqlValue }>(merged.sql, merged.params)).map((r) => r.id));
        for (const h of held) h.executor.answer({ changes: changed.has(updateKey(h.executor.held!.params) as string) ? 1 : 0, lastID: Number.NaN });
      }
    } catch {
      // The merged statement undid itself (most often a constraint on one of its rows): run each alone.
      if (!(await this.transactionStillOpen())) return 'merged';
      for (const h of held) {
        h.executor.release();
        const lost = await this.settleBare(h.k, h.done, outcomes);
        if (lost !== null) return lost;
      }
      return null;
    }
    for (const h of held) outcomes[h.k] = await h.done;
    return null;
  }

  /** The outcome of a single-statement job; when it failed, whether its failure took the transaction too. */
  private async settleBare(k: number, done: Promise<Outcome>, outcomes: Outcome[]): Promise<number | null> {
    const outcome = await done;
    outcomes[k] = outcome;
    if (outcome.ok) return null;
    return (await this.transactionStillOpen()) ? null : k;
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
