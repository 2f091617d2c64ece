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
  /** One statement: it commits on its own in sqlite's autocommit mode, and can be merged with others of its text. */
  singleStatement: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** A single-statement job whose statement is held by its OneStatement, to run merged with others. */
interface Held {
  job: WriteJob;
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
  /** The job broke its promise of one statement: what it held is never run. */
  refused = false;
  /** Its statement once sent to sqlite, so the job is settled only after that has finished. */
  private sent: Promise<unknown> | null = null;
  private finished = false;

  constructor(
    private readonly writer: SqlExecutor,
    private holding: boolean,
  ) {}

  run(sql: string, params: readonly SqlValue[] = []): Promise<RunResult> {
    if (this.finished) return Promise.reject(new Error('a single-statement write issued its statement after it had finished'));
    if (++this.statements > 1) {
      this.refused = true;
      return Promise.reject(new Error('a single-statement write issued a second statement; use transaction()'));
    }
    if (!this.holding) return this.send(sql, params);
    return new Promise<RunResult>((resolve, reject) => {
      this.held = { sql, params };
      this.settle = { resolve, reject };
    });
  }

  private send(sql: string, params: readonly SqlValue[]): Promise<RunResult> {
    const result = this.writer.run(sql, params);
    this.sent = result.catch(() => undefined);
    return result;
  }

  /**
   * Waits for a statement the job sent but did not wait for, then lets no more through: a job is acknowledged only
   * once its statement has committed, and nothing it sends later can land in another job's transaction.
   */
  async finish(): Promise<void> {
    await this.sent;
    this.finished = true;
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
    if (!this.held || !this.settle) return;
    if (this.refused) this.settle.reject(new Error('a single-statement write issued a second statement; neither ran'));
    else this.send(this.held.sql, this.held.params).then(this.settle.resolve, this.settle.reject);
  }
}

/**
 * A transaction's view of the writer: its job ends only once every statement it sent has finished (even one it did
 * not wait for), and nothing it sends after that can land in the next job's savepoint or transaction.
 */
class TransactionStatements implements SqlExecutor {
  private readonly inFlight = new Set<Promise<unknown>>();
  private finished = false;

  constructor(private readonly writer: SqlExecutor) {}

  run(sql: string, params?: readonly SqlValue[]): Promise<RunResult> {
    return this.track(() => this.writer.run(sql, params));
  }

  get<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    return this.track(() => this.writer.get<T>(sql, params));
  }

  all<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.track(() => this.writer.all<T>(sql, params));
  }

  async finish(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
    this.finished = true;
  }

  private track<T>(send: () => Promise<T>): Promise<T> {
    if (this.finished) return Promise.reject(new Error('a transaction issued a statement after it had finished'));
    const result = send();
    const settled = result.then(() => undefined, () => undefined);
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return result;
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

/**
 * Held statements of one text split into runs that can each be one statement: at most MAX_MERGED_ROWS rows, and an
 * UPDATE's row at most once per run, so two writes to one row still apply in the order they were queued.
 */
function mergeableRuns(held: readonly Held[]): Held[][] {
  const runs: Held[][] = [];
  let run: Held[] = [];
  let keys = new Set<SqlValue>();
  for (const h of held) {
    const key = h.shape.kind === 'update' ? updateKey(h.executor.held!.params) : null;
    if (run.length >= MAX_MERGED_ROWS || (key !== null && keys.has(key))) {
      runs.push(run);
      run = [];
      keys = new Set();
    }
    run.push(h);
    if (key !== null) keys.add(key);
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/** Settles a single-statement job once it has finished and its statement, if it sent one, has too. */
async function settleAfter(job: WriteJob, executor: OneStatement, done: Promise<Outcome>): Promise<void> {
  const outcome = await done;
  await executor.finish();
  settle(job, outcome);
}

function settle(job: WriteJob, outcome: Outcome): void {
  if (outcome.ok) job.resolve(outcome.value);
  else job.reject(outcome.error);
}

/** At most this many queued transactions share one commit. */
const MAX_GROUP = 64;

/**
 * The embedded sqlite store: one writer connection and one reader connection that sees committed
 * data only. Writes are serialised by an in-process queue (sqlite has one writer, and interleaved
 * BEGINs on one connection would merge unrelated work) and taken in groups: whatever is waiting
 * when the writer frees up. Nothing is acknowledged before it is durable (synchronous=FULL).
 *
 * Every statement is a trip through libuv's thread pool and back to a busy event loop, and under load that trip, not
 * sqlite, is what a write waits for. So a group takes as few as it can:
 * - single-statement writes (write()) commit in autocommit mode, one statement per SQL text: the rows of all the
 *   group's writes of that text run as one merged statement (statement-merge.ts), with no BEGIN or COMMIT trips;
 * - transactions (transaction()) share one BEGIN … COMMIT, each inside its own savepoint, so one that fails is
 *   rolled back without touching the others.
 * Writes in flight at the same time are concurrent, as in any database: the store may commit them in any order (the
 * single-statement ones first). Two writes to one row from one text keep their order. A caller that needs one write
 * to follow another awaits the first.
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
      const transactions = group.filter((job) => !job.singleStatement);
      if (transactions.length < group.length) await this.commitSingles(group.filter((job) => job.singleStatement));
      if (transactions.length > 0) await this.commitTransactions(transactions);
    }
  }

  /**
   * Single-statement writes, each committed by its own statement in autocommit mode: those of one text as one merged
   * statement. When a merged statement fails (most often a constraint on one of its rows) it has undone itself, and
   * each of its rows runs again alone, so only the one at fault fails.
   */
  private async commitSingles(jobs: readonly WriteJob[]): Promise<void> {
    const byText = new Map<string, Held[]>();
    const alone: Array<{ job: WriteJob; executor: OneStatement; done: Promise<Outcome> }> = [];
    for (const job of jobs) {
      const executor = new OneStatement(this.writer, true);
      const done = startJobOutcome(job, executor);
      const statement = executor.held;
      const shape = statement && mergeShape(statement.sql);
      if (statement && shape && !executor.refused && fitsShape(shape, statement.params)) {
        const held = byText.get(statement.sql);
        if (held) held.push({ job, executor, done, shape });
        else byText.set(statement.sql, [{ job, executor, done, shape }]);
      } else {
        // Not mergeable, or not issued yet (the job awaited something first).
        alone.push({ job, executor, done });
      }
    }
    for (const held of byText.values()) for (const run of mergeableRuns(held)) await this.runMerged(run);
    // One after another, in queue order; each settled before the writer moves on, so that a late statement cannot
    // land inside the next group's transaction.
    for (const { job, executor, done } of alone) {
      executor.release();
      await settleAfter(job, executor, done);
    }
  }

  private async runMerged(run: readonly Held[]): Promise<void> {
    if (run.length > 1) {
      const shape = run[0]!.shape;
      const merged = mergedStatement(shape, run.map((h) => h.executor.held!.params));
      let results: RunResult[] | null = null;
      try {
        if (shape.kind === 'insert') {
          await this.writer.run(merged.sql, merged.params);
          results = run.map(() => ({ changes: 1, lastID: Number.NaN }));
        } else {
          const changed = new Set((await this.writer.all<{ id: SqlValue }>(merged.sql, merged.params)).map((r) => r.id));
          results = run.map((h) => ({ changes: changed.has(updateKey(h.executor.held!.params)) ? 1 : 0, lastID: Number.NaN }));
        }
      } catch {
        // Undone as a whole: each row again, alone and in order, so the one at fault is found and only it fails.
      }
      if (results) {
        run.forEach((h, k) => h.executor.answer(results[k]!));
        for (const h of run) await settleAfter(h.job, h.executor, h.done);
        return;
      }
    }
    for (const h of run) {
      h.executor.release();
      await settleAfter(h.job, h.executor, h.done);
    }
  }

  /** Transactions under one BEGIN … COMMIT, each in its own savepoint. */
  private async commitTransactions(group: WriteJob[]): Promise<void> {
    try {
      await this.writer.run('BEGIN IMMEDIATE');
    } catch (err) {
      for (const job of group) job.reject(err);
      return;
    }
    const outcomes: Outcome[] = new Array<Outcome>(group.length);
    const lost = await this.runTransactions(group, outcomes);
    if (lost !== null) {
      // The transaction is gone: the failing job is rejected, the others run again in a fresh group.
      await this.writer.exec('ROLLBACK').catch(() => undefined);
      group[lost]!.reject((outcomes[lost] as { error: unknown }).error);
      this.jobs.unshift(...group.filter((_, k) => k !== lost));
      return;
    }
    if (group.length === 1 && !outcomes[0]!.ok) {
      await this.writer.exec('ROLLBACK').catch(() => undefined);
      group[0]!.reject((outcomes[0] as { error: unknown }).error);
      return;
    }
    try {
      await this.writer.run('COMMIT');
    } catch (err) {
      await this.writer.exec('ROLLBACK').catch(() => undefined);
      for (const job of group) job.reject(err);
      return;
    }
    group.forEach((job, k) => settle(job, outcomes[k]!));
  }

  /**
   * Runs a group's transactions in order inside its open transaction, filling in each one's outcome. Returns the
   * job whose failure took the whole transaction with it, or null.
   */
  private async runTransactions(group: readonly WriteJob[], outcomes: Outcome[]): Promise<number | null> {
    const alone = group.length === 1;
    for (let k = 0; k < group.length; k++) {
      const job = group[k]!;
      const executor = new TransactionStatements(this.writer);
      try {
        if (!alone) await this.writer.run('SAVEPOINT job');
        const value = await job.fn(executor);
        await executor.finish();
        if (!alone) await this.writer.run('RELEASE job');
        outcomes[k] = { ok: true, value };
      } catch (error) {
        await executor.finish();
        outcomes[k] = { ok: false, error };
        if (alone) return null;
        // Some failures (disk full, I/O errors, a RAISE(ROLLBACK)) roll back the whole transaction, not the savepoint.
        const undone = await this.writer.exec('ROLLBACK TO job; RELEASE job').then(() => true, () => false);
        if (!undone) return k;
      }
    }
    return null;
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
