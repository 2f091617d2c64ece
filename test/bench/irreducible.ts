// The work a payment cannot avoid, measured in-process: an RSA-2048 signature (node:crypto) and one durable sqlite
// insert (its own autocommit transaction, on the same pragmas as core/store/sqlite.ts).
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { join } from 'node:path';
import sqlite3 from 'sqlite3';
import { cpuMsPerOp, timeAsync, timeSync, wallMsPerOp } from './measure.js';
import { median, round } from './report.js';
import { makeTempDir, removeTempDir } from './temp-dirs.js';

export interface IrreducibleCosts {
  rsa_sign_cpu_ms: number;
  sqlite_insert_cpu_ms: number;
  sqlite_insert_wall_ms: number;
}

/** CPU per RSA-2048 signature over a typical response body. */
export function rsaSignCpuMs(rounds: number, roundMs: number): number {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const body = Buffer.from(`1732780800\n${randomBytes(12).toString('hex')}\n${JSON.stringify({ id: 'pay_x', qr: 'x'.repeat(600) })}\n`);
  return median(Array.from({ length: rounds }, () => cpuMsPerOp(timeSync(() => sign('sha256', body, privateKey), roundMs, 5))));
}

function run(db: sqlite3.Database, sql: string, params: unknown[] = []): Promise<void> {
  return new Promise((resolve, reject) => db.run(sql, params, (err) => (err ? reject(err) : resolve())));
}

function exec(db: sqlite3.Database, sql: string): Promise<void> {
  return new Promise((resolve, reject) => db.exec(sql, (err) => (err ? reject(err) : resolve())));
}

function open(path: string): Promise<sqlite3.Database> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(path, sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE | sqlite3.OPEN_FULLMUTEX, (err) => (err ? reject(err) : resolve(db)));
  });
}

/** A payments-like row: the same kind of columns and the same unique and pending indexes as the gateway's table. */
const SCHEMA = `CREATE TABLE payments (
  id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, app_id TEXT NOT NULL, out_trade_no TEXT NOT NULL, amount INTEGER NOT NULL,
  currency TEXT NOT NULL, pay_method TEXT NOT NULL, channel_account TEXT, channel_order_no TEXT, status TEXT NOT NULL,
  payer TEXT NOT NULL, metadata TEXT NOT NULL, routing TEXT, expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL, next_check_at INTEGER, UNIQUE (app_id, out_trade_no));
CREATE UNIQUE INDEX payments_channel_order ON payments(channel_order_no);
CREATE INDEX payments_pending ON payments(status, next_check_at);`;

/**
 * CPU (all threads) and wall time of one durable INSERT: WAL with synchronous=FULL as the store runs, and the cheapest
 * way to make one row durable, a lone statement in autocommit mode (no BEGIN/COMMIT round trips).
 */
export async function sqliteInsertCost(rounds: number, roundMs: number): Promise<{ cpuMs: number; wallMs: number }> {
  const dir = makeTempDir('corbel-bench-sqlite-');
  const db = await open(join(dir, 'bench.db'));
  try {
    await exec(db, 'PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;');
    await exec(db, SCHEMA);
    let n = 0;
    const insert = async () => {
      const id = `pay_${randomBytes(10).toString('hex')}`;
      const now = Date.now();
      await run(db, 'INSERT INTO payments VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)', [
        id, 'mch_bench', 'app_bench', `o-${++n}`, 1000, 'CNY', 'wechat.native', 'wechat_sandbox', `${id}_1`, 'pending',
        '{}', '{}', '{"rule":"wechat","strategy":"priority","channel":null,"attempts":[]}', now + 900_000, now, now, now + 600_000,
      ]);
    };
    const timings = [];
    for (let r = 0; r < rounds; r++) timings.push(await timeAsync(insert, roundMs, 20));
    return { cpuMs: median(timings.map(cpuMsPerOp)), wallMs: median(timings.map(wallMsPerOp)) };
  } finally {
    await new Promise<void>((resolve) => db.close(() => resolve()));
    removeTempDir(dir);
  }
}

/**
 * Each cost's median over measurements spread across a run. A durable insert's CPU is mostly the kernel's fsync path,
 * which swings with the machine's I/O state (0.2 to 0.38 ms here within one hour), so one measurement is not enough.
 */
export function medianCosts(samples: readonly IrreducibleCosts[]): IrreducibleCosts {
  return {
    rsa_sign_cpu_ms: round(median(samples.map((s) => s.rsa_sign_cpu_ms))),
    sqlite_insert_cpu_ms: round(median(samples.map((s) => s.sqlite_insert_cpu_ms))),
    sqlite_insert_wall_ms: round(median(samples.map((s) => s.sqlite_insert_wall_ms))),
  };
}

export async function irreducibleCosts(rounds: number): Promise<IrreducibleCosts> {
  const rsa = rsaSignCpuMs(rounds, 200);
  const insert = await sqliteInsertCost(rounds, 300);
  return { rsa_sign_cpu_ms: round(rsa), sqlite_insert_cpu_ms: round(insert.cpuMs), sqlite_insert_wall_ms: round(insert.wallMs) };
}
