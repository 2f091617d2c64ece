// Which single-row statements of a commit group can run as one statement, and that statement.
//
// Every statement is a trip through libuv's thread pool and back to the event loop, and the one sqlite writer makes
// those trips one after another: under load that trip, not sqlite, is what a write waits for. So the writes of one
// group that have the same SQL text run as one multi-row INSERT, or as one UPDATE … FROM (VALUES …) RETURNING, and
// each caller still gets its own answer (its row changed or not). Pure functions, no sqlite here.
//
// A trigger's RAISE(FAIL) or RAISE(IGNORE) would let a merged statement keep some of its rows and skip others, which
// no caller could be told apart: the store's schema has none, and a test over the migrated schema keeps it so.
import type { SqlValue } from './sqlite.js';

export type MergeShape =
  | { kind: 'insert'; head: string; tuple: string; params: number }
  | { kind: 'update'; table: string; columns: string[]; extraWhere: string };

const INSERT = /^\s*INSERT INTO (\w+)\s*\(([^()]*)\)\s*VALUES\s*(\([^()]*\))\s*$/s;
const UPDATE = /^\s*UPDATE (\w+) SET (.+?) WHERE id = \?((?:\s+AND\s+[^?;]*)?)\s*$/s;
const SET_ITEM = /^(\w+) = \?$/;
/** Well under sqlite's 32,766 bound parameters for the widest row (payments: 29). */
export const MAX_MERGED_ROWS = 64;

const shapes = new Map<string, MergeShape | null>();

/** The statement's shape when it can be merged with others of the same text; null when it must run alone. */
export function mergeShape(sql: string): MergeShape | null {
  let shape = shapes.get(sql);
  if (shape === undefined) {
    shape = parse(sql);
    if (shapes.size < 1_000) shapes.set(sql, shape);
  }
  return shape;
}

function parse(sql: string): MergeShape | null {
  if (sql.includes(';')) return null;
  const insert = INSERT.exec(sql);
  if (insert) {
    const tuple = insert[3]!;
    // OR ABORT overrides any ON CONFLICT clause of the table, so a failing merged INSERT undoes all of its rows.
    return { kind: 'insert', head: `INSERT OR ABORT INTO ${insert[1]} (${insert[2]}) VALUES `, tuple, params: (tuple.match(/\?/g) ?? []).length };
  }
  const update = UPDATE.exec(sql);
  if (update) {
    const columns: string[] = [];
    for (const item of update[2]!.split(',')) {
      const column = SET_ITEM.exec(item.trim());
      if (!column) return null;
      // Setting the key itself would make RETURNING name the new key, not the caller's.
      if (column[1] === 'id') return null;
      columns.push(column[1]!);
    }
    return { kind: 'update', table: update[1]!, columns, extraWhere: update[3]!.trim() };
  }
  return null;
}

/**
 * The key an UPDATE's row is found by (its last parameter), for telling which callers' rows changed. Only text keys
 * merge (fitsShape): sqlite hands RETURNING values back after column affinity, so a number or a blob key could come
 * back as another type and match no caller.
 */
export function updateKey(params: readonly SqlValue[]): SqlValue {
  return params[params.length - 1]!;
}

/** One statement for the rows of several statements of the same shape, with their parameters in order. */
export function mergedStatement(shape: MergeShape, rows: ReadonlyArray<readonly SqlValue[]>): { sql: string; params: SqlValue[] } {
  const params: SqlValue[] = [];
  if (shape.kind === 'insert') {
    for (const row of rows) params.push(...row);
    return { sql: shape.head + rows.map(() => shape.tuple).join(','), params };
  }
  // Each row becomes (key, set values…): the statement's own order is (set values…, key).
  const width = shape.columns.length + 1;
  for (const row of rows) params.push(updateKey(row), ...row.slice(0, width - 1));
  const tuple = `(${Array.from({ length: width }, () => '?').join(',')})`;
  const names = ['__k', ...shape.columns.map((_, i) => `__c${i}`)];
  const sets = shape.columns.map((c, i) => `${c} = v.__c${i}`).join(', ');
  const where = `${shape.table}.id = v.__k${shape.extraWhere ? ` ${shape.extraWhere}` : ''}`;
  return {
    sql: `WITH v(${names.join(', ')}) AS (VALUES ${rows.map(() => tuple).join(',')}) UPDATE OR ABORT ${shape.table} SET ${sets} FROM v WHERE ${where} RETURNING ${shape.table}.id AS id`,
    params,
  };
}
