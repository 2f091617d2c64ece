import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../core/store/index.js';
import { SqliteDatabase, type SqlExecutor } from '../../core/store/sqlite.js';
import { mergedStatement, mergeShape } from '../../core/store/statement-merge.js';

/** A fresh database file with table t (id, v, status), closed and removed after fn. */
async function withTable(fn: (db: SqliteDatabase) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'corbel-store-'));
  const db = await SqliteDatabase.open(join(dir, 'x.db'));
  try {
    await db.exec("CREATE TABLE t (id TEXT PRIMARY KEY, v INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'pending')");
    await fn(db);
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('group commit: each queued write succeeds or fails alone, even when a failure rolls back the whole transaction', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corbel-store-'));
  const db = await SqliteDatabase.open(join(dir, 'x.db'));
  try {
    await db.exec('CREATE TABLE t (v TEXT UNIQUE)');
    await db.exec("CREATE TRIGGER boom BEFORE INSERT ON t WHEN NEW.v = 'boom' BEGIN SELECT RAISE(ROLLBACK, 'boom'); END;");
    const results = await Promise.allSettled([
      db.write((w) => w.run("INSERT INTO t VALUES ('A')")),
      db.write((w) => w.run("INSERT INTO t VALUES ('A')")),
      db.write((w) => w.run("INSERT INTO t VALUES ('boom')")),
      db.write((w) => w.run("INSERT INTO t VALUES ('C')")),
      db.transaction(async (tx) => {
        await tx.run("INSERT INTO t VALUES ('D1')");
        await tx.run("INSERT INTO t VALUES ('D2')");
      }),
      db.transaction(async (tx) => {
        await tx.run("INSERT INTO t VALUES ('E1')");
        await tx.run("INSERT INTO t VALUES ('A')");
      }),
    ]);
    t.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled', 'fulfilled', 'rejected']);
    t.deepEqual((await db.reads.all<{ v: string }>('SELECT v FROM t ORDER BY v')).map((r) => r.v), ['A', 'C', 'D1', 'D2'], 'what was acknowledged is exactly what is stored');
    await t.throwsAsync(db.write((w) => w.run('INSERT INTO missing_table VALUES (1)')), { message: /no such table/ });
    await t.notThrowsAsync(db.write((w) => w.run("INSERT INTO t VALUES ('F')")), 'a failed prepare leaves the writer usable');
  } finally {
    await db.close();
    await t.throwsAsync(db.write((w) => w.run("INSERT INTO t VALUES ('G')")), { message: /closed/ });
    rmSync(dir, { recursive: true, force: true });
  }
});

test('group commit merges same-text single-row writes and still answers each caller with its own outcome', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corbel-store-'));
  const db = await SqliteDatabase.open(join(dir, 'x.db'));
  try {
    await db.exec("CREATE TABLE t (id TEXT PRIMARY KEY, v INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'pending')");
    await db.exec("CREATE TRIGGER boom BEFORE INSERT ON t WHEN NEW.id = 'boom' BEGIN SELECT RAISE(ROLLBACK, 'boom'); END;");
    const insert = (id: string, v: number) => db.write((w) => w.run("INSERT INTO t (id, v, status) VALUES (?, ?, 'pending')", [id, v]));
    // Queued in one tick: the first runs alone, the rest share one group and one merged INSERT, which the duplicate
    // and the trigger make fail, so each is then run alone to find whose row it was.
    const ids = ['a', 'b', 'c', 'b', 'd', 'boom', 'e', 'f'];
    const inserted = await Promise.allSettled(ids.map((id, i) => insert(id, i)));
    t.deepEqual(inserted.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    t.deepEqual(await db.reads.all('SELECT id, v FROM t ORDER BY id'), [
      { id: 'a', v: 0 }, { id: 'b', v: 1 }, { id: 'c', v: 2 }, { id: 'd', v: 4 }, { id: 'e', v: 6 }, { id: 'f', v: 7 },
    ]);

    // A clean batch merges without falling back; jobs that fail before their statement (a throw, a read, which a
    // single-statement write may not do) fail alone while the others are held, and crash nothing.
    const more = await Promise.allSettled([
      insert('g', 10), insert('h', 11),
      db.write(() => {
        throw new Error('invalid input');
      }),
      insert('i', 12),
      db.write(async (w) => w.get('SELECT 1')),
      insert('j', 13),
    ]);
    t.deepEqual(more.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);

    // Merged for real, in autocommit mode: four inserts queued in one tick cost one INSERT (two if the first ran
    // alone because the writer was free), and no BEGIN or COMMIT.
    const before = db.writerStatements;
    await Promise.all(['w1', 'w2', 'w3', 'w4'].map((id, i) => insert(id, 20 + i)));
    t.true(db.writerStatements - before <= 2, `${db.writerStatements - before} statements`);
    t.deepEqual((await db.reads.all<{ id: string }>("SELECT id FROM t WHERE id IN ('g','h','i','j') ORDER BY id")).map((r) => r.id), ['g', 'h', 'i', 'j']);

    await db.write((w) => w.run("UPDATE t SET status = 'done' WHERE id = ?", ['c']));
    const updateIfPending = (id: string, v: number) =>
      db.write(async (w) => (await w.run("UPDATE t SET v = ?, status = ? WHERE id = ? AND status = 'pending'", [v, 'pending', id])).changes === 1);
    const changed = await Promise.all([updateIfPending('a', 100), updateIfPending('b', 101), updateIfPending('c', 102), updateIfPending('zz', 103), updateIfPending('d', 104), updateIfPending('b', 105)]);
    t.deepEqual(changed, [true, true, false, false, true, true], 'each caller learns whether its own row changed');
    // A key of another type than the column's is compared by sqlite, not by the store: such writes run unmerged.
    const byNumber = await Promise.all([updateIfPending('e', 200), db.write(async (w) => (await w.run("UPDATE t SET v = ? WHERE id = ? AND status = 'pending'", [201, 7])).changes), updateIfPending('f', 202)]);
    t.deepEqual(byNumber, [true, 0, true]);
    t.deepEqual(await db.reads.all("SELECT id, v FROM t WHERE id IN ('a','b','c','d') ORDER BY id"), [
      { id: 'a', v: 100 }, { id: 'b', v: 105 }, { id: 'c', v: 2 }, { id: 'd', v: 104 },
    ], 'two writes to one row in one group apply in order');

    // A write() job must be one statement: a second one is refused, and only that job fails.
    const [bad, good] = await Promise.allSettled([
      db.write(async (w) => {
        await w.run('INSERT INTO t (id, v) VALUES (?, ?)', ['k', 1]);
        await w.run('INSERT INTO t (id, v) VALUES (?, ?)', ['l', 1]);
      }),
      insert('m', 1),
      insert('n', 1),
    ]);
    t.is(bad.status, 'rejected', 'alone, in autocommit mode, the second statement is refused too');
    t.is(good.status, 'fulfilled');
    const [second, third] = await Promise.allSettled([
      insert('o', 1),
      db.write(async (w) => {
        await w.run('INSERT INTO t (id, v) VALUES (?, ?)', ['p', 1]);
        await w.run('INSERT INTO t (id, v) VALUES (?, ?)', ['q', 1]);
      }),
      insert('r', 1),
    ]);
    t.is(second.status, 'fulfilled');
    t.is(third.status, 'rejected');
    t.deepEqual((await db.reads.all<{ id: string }>("SELECT id FROM t WHERE id IN ('k','l','m','n','o','p','q','r') ORDER BY id")).map((r) => r.id), ['k', 'm', 'n', 'o', 'p', 'r'],
      'a refused second statement never runs (the first one, alone, was its own statement)');
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('statement merging: which statements merge, and the merged SQL and parameters', (t) => {
  const insert = mergeShape("INSERT INTO payments (id, amount, status_source)\n   VALUES (?,?,'create')");
  t.like(insert, { kind: 'insert', params: 2 });
  t.deepEqual(mergedStatement(insert!, [['p1', 100], ['p2', 200]]), {
    sql: "INSERT OR ABORT INTO payments (id, amount, status_source) VALUES (?,?,'create'),(?,?,'create')", params: ['p1', 100, 'p2', 200],
  });
  const update = mergeShape("UPDATE payments SET updated_at = ?, routing = ? WHERE id = ? AND status = 'pending'");
  t.like(update, { kind: 'update', table: 'payments', columns: ['updated_at', 'routing'] });
  t.deepEqual(mergedStatement(update!, [[1, 'r1', 'p1'], [2, 'r2', 'p2']]), {
    sql: "WITH v(__k, __c0, __c1) AS (VALUES (?,?,?),(?,?,?)) UPDATE OR ABORT payments SET updated_at = v.__c0, routing = v.__c1 FROM v WHERE payments.id = v.__k AND status = 'pending' RETURNING payments.id AS id",
    params: ['p1', 1, 'r1', 'p2', 2, 'r2'],
  });
  // Anything else runs as written: arithmetic in SET, parameters in the condition, upserts, several statements.
  for (const sql of [
    'UPDATE payments SET amount_refunded = amount_refunded + ?, updated_at = ? WHERE id = ?',
    'UPDATE payments SET status = ? WHERE id = ? AND status IN (?,?)',
    'INSERT INTO t (a) VALUES (?) ON CONFLICT DO NOTHING',
    'INSERT OR REPLACE INTO t (a) VALUES (?)',
    "INSERT INTO t VALUES ('A')",
    'INSERT INTO t (a) VALUES (?); DELETE FROM t',
    'DELETE FROM t WHERE id = ?',
  ]) t.is(mergeShape(sql), null, sql);
});

test('the migrated schema has no trigger that could leave a merged write half done (RAISE(FAIL) or RAISE(IGNORE))', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corbel-store-'));
  const store = await Store.open(join(dir, 'x.db'));
  try {
    const triggers = await store.reads.all<{ name: string; sql: string }>("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'");
    t.true(triggers.length > 0);
    for (const trigger of triggers) t.notRegex(trigger.sql, /RAISE\s*\(\s*(FAIL|IGNORE)/i, trigger.name);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a group commits its single-statement writes in autocommit mode, one statement per text, and its transactions under one BEGIN … COMMIT', (t) =>
  withTable(async (db) => {
    await db.exec('CREATE TABLE u (id TEXT PRIMARY KEY)');
    await Promise.all(['a', 'b', 'c'].map((id) => db.write((w) => w.run('INSERT INTO t (id, v) VALUES (?, ?)', [id, 0]))));
    const insert = (id: string) => db.write((w) => w.run('INSERT INTO t (id, v) VALUES (?, ?)', [id, 1]));
    const update = (id: string, v: number) => db.write(async (w) => (await w.run('UPDATE t SET v = ? WHERE id = ?', [v, id])).changes);
    const pair = (id: string) => db.transaction(async (tx) => {
      await tx.run('INSERT INTO u (id) VALUES (?)', [`${id}1`]);
      await tx.run('INSERT INTO u (id) VALUES (?)', [`${id}2`]);
    });

    // Held behind a write in progress, so that the rest queue up as one group: inserts and updates interleaved, two
    // writes to one row, and two transactions of which one fails half way.
    let release!: () => void;
    let started!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const running = new Promise<void>((resolve) => (started = resolve));
    const blocker = db.transaction(async (tx) => {
      started();
      await gate;
      await tx.run("UPDATE t SET status = 'seen' WHERE id = 'a'");
    });
    await running;
    const queued = [insert('d'), update('a', 10), insert('e'), update('b', 20), update('a', 11), insert('f'), pair('x'), pair('d')];
    await new Promise((resolve) => setImmediate(resolve));
    const before = db.writerStatements;
    release();
    await blocker;
    const settled = await Promise.allSettled(queued);
    t.deepEqual(settled.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
    // The blocker's UPDATE and COMMIT, then: one merged INSERT; the updates in two runs (row a twice, in order); and
    // the two transactions: BEGIN, 2 × (SAVEPOINT, two INSERTs, RELEASE), COMMIT.
    t.is(db.writerStatements - before, 2 + 1 + 2 + 10);
    t.deepEqual(await db.reads.all('SELECT id, v FROM t ORDER BY id'), [
      { id: 'a', v: 11 }, { id: 'b', v: 20 }, { id: 'c', v: 0 }, { id: 'd', v: 1 }, { id: 'e', v: 1 }, { id: 'f', v: 1 },
    ]);
    t.deepEqual((await db.reads.all<{ id: string }>('SELECT id FROM u ORDER BY id')).map((r) => r.id), ['d1', 'd2', 'x1', 'x2']);

    // A failing transaction next to single statements: only it fails, and nothing of it stays.
    const [bad, good] = await Promise.allSettled([
      db.transaction(async (tx) => {
        await tx.run('INSERT INTO u (id) VALUES (?)', ['y1']);
        await tx.run('INSERT INTO u (id) VALUES (?)', ['x1']);
      }),
      insert('g'),
    ]);
    t.is(bad.status, 'rejected');
    t.is(good.status, 'fulfilled');
    t.deepEqual((await db.reads.all<{ id: string }>("SELECT id FROM u WHERE id = 'y1'")).length, 0);
  }));

test('single-statement writes queued while others commit keep one row\'s order and never land inside a transaction that rolls back', (t) =>
  withTable(async (db) => {
    await db.write((w) => w.run('INSERT INTO t (id, v) VALUES (?, ?)', ['row', 0]));
    const writes: Array<Promise<unknown>> = [];
    for (let i = 1; i <= 60; i++) {
      // One row written again and again, one new row each time, and now and then a transaction that fails half way:
      // queued a few per tick, so that groups form while earlier ones are still committing.
      writes.push(db.write((w) => w.run('UPDATE t SET v = ? WHERE id = ?', [i, 'row'])));
      writes.push(db.write((w) => w.run('INSERT INTO t (id, v) VALUES (?, ?)', [`n${i}`, i])));
      if (i % 10 === 0) {
        writes.push(db.transaction(async (tx) => {
          await tx.run('INSERT INTO t (id, v) VALUES (?, ?)', [`tx${i}`, i]);
          await tx.run('INSERT INTO t (id, v) VALUES (?, ?)', ['row', i]);
        }).then(() => 'committed', () => 'rolled back'));
      }
      if (i % 3 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const outcomes = await Promise.all(writes);
    t.deepEqual(outcomes.filter((o) => typeof o === 'string'), Array(6).fill('rolled back'));
    t.is((await db.reads.get<{ v: number }>("SELECT v FROM t WHERE id = 'row'"))!.v, 60, 'the last write to the row is the one that stays');
    t.is((await db.reads.get<{ n: number }>("SELECT COUNT(*) AS n FROM t WHERE id LIKE 'n%'"))!.n, 60);
    t.is((await db.reads.get<{ n: number }>("SELECT COUNT(*) AS n FROM t WHERE id LIKE 'tx%'"))!.n, 0, 'nothing of a rolled-back transaction stays');
  }));

test('a single-statement write is acknowledged only after its statement has committed, and one that fires two statements runs neither', (t) =>
  withTable(async (db) => {
    const insert = (w: SqlExecutor, id: string) => w.run('INSERT INTO t (id, v) VALUES (?, ?)', [id, 1]);
    const results = await Promise.allSettled([
      // Sent and not awaited: the acknowledgement still waits for it.
      ...Array.from({ length: 20 }, (_, i) => db.write(async (w) => {
        void insert(w, `late${i}`).catch(() => undefined);
      }).then(async () => (await db.reads.get<{ id: string }>('SELECT id FROM t WHERE id = ?', [`late${i}`]))?.id ?? 'absent')),
      db.transaction(async (tx) => {
        await tx.run('INSERT INTO t (id, v) VALUES (?, ?)', ['tx1', 1]);
        await tx.run('INSERT INTO t (id, v) VALUES (?, ?)', ['tx1', 1]);
      }),
      // Two statements fired at once break the promise of one: the job fails and neither row is written.
      db.write((w) => {
        void insert(w, 'half').catch(() => undefined);
        return insert(w, 'other');
      }),
    ]);
    t.deepEqual(results.slice(0, 20).map((r) => (r.status === 'fulfilled' ? r.value : 'rejected')), Array.from({ length: 20 }, (_, i) => `late${i}`));
    t.is(results[20]!.status, 'rejected');
    t.is(results[21]!.status, 'rejected');
    t.deepEqual(await db.reads.all("SELECT id FROM t WHERE id IN ('half', 'other', 'tx1')"), []);
  }));

test('a transaction is acknowledged only after the statements it sent have finished, even those it did not wait for', (t) =>
  withTable(async (db) => {
    const results = await Promise.allSettled([
      db.transaction(async (tx) => {
        void tx.run('INSERT INTO t (id, v) VALUES (?, ?)', ['fired', 1]).catch(() => undefined);
      }).then(async () => (await db.reads.get<{ id: string }>("SELECT id FROM t WHERE id = 'fired'"))?.id ?? 'absent'),
      db.transaction(async (tx) => {
        await tx.run('INSERT INTO t (id, v) VALUES (?, ?)', ['dup', 1]);
        await tx.run('INSERT INTO t (id, v) VALUES (?, ?)', ['dup', 1]);
      }),
    ]);
    t.deepEqual(results.map((r) => (r.status === 'fulfilled' ? r.value : 'rejected')), ['fired', 'rejected']);
    await t.throwsAsync(db.transaction(async (tx) => {
      setTimeout(() => void tx.run('INSERT INTO t (id, v) VALUES (?, ?)', ['later', 1]).catch(() => undefined), 0);
    }).then(() => new Promise((resolve) => setTimeout(resolve, 50))).then(async () => {
      if (!(await db.reads.get("SELECT id FROM t WHERE id = 'later'"))) throw new Error('refused after the transaction ended');
    }), { message: 'refused after the transaction ended' }, 'a statement sent after its transaction ended is refused');
  }));
