import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteDatabase } from '../../core/store/sqlite.js';

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
