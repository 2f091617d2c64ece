import type { SqliteDatabase } from './sqlite.js';

/** Versioned schema; a migration is never edited once shipped, only followed by a new one. */
export const MIGRATIONS: ReadonlyArray<{ version: number; name: string; sql: string }> = [
  {
    version: 1,
    name: 'initial',
    sql: `
CREATE TABLE merchants (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  status TEXT NOT NULL,
  tags TEXT NOT NULL DEFAULT '[]',
  fee_rate_bps INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE apps (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants(id),
  auth_type TEXT NOT NULL,
  hmac_secret TEXT,
  public_key_pem TEXT,
  notify_url TEXT,
  status TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX apps_merchant ON apps(merchant_id);
CREATE TABLE merchant_channel_accounts (
  merchant_id TEXT NOT NULL REFERENCES merchants(id),
  account TEXT NOT NULL,
  sub_merchant_id TEXT,
  params TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL,
  PRIMARY KEY (merchant_id, account)
);
CREATE TABLE payments (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL,
  app_id TEXT NOT NULL,
  out_trade_no TEXT NOT NULL,
  amount INTEGER NOT NULL CHECK (amount > 0),
  amount_refunded INTEGER NOT NULL DEFAULT 0,
  currency TEXT NOT NULL,
  pay_method TEXT NOT NULL,
  channel TEXT,
  channel_account TEXT,
  channel_order_no TEXT,
  channel_trade_no TEXT,
  status TEXT NOT NULL,
  subject TEXT,
  notify_url TEXT,
  return_url TEXT,
  payer TEXT NOT NULL DEFAULT '{}',
  metadata TEXT NOT NULL DEFAULT '{}',
  action TEXT,
  failure TEXT,
  routing TEXT,
  fee INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  paid_at INTEGER,
  next_check_at INTEGER,
  check_count INTEGER NOT NULL DEFAULT 0,
  CHECK (amount_refunded >= 0 AND amount_refunded <= amount),
  UNIQUE (app_id, out_trade_no)
);
CREATE UNIQUE INDEX payments_channel_order ON payments(channel_order_no);
CREATE INDEX payments_pending ON payments(status, next_check_at);
CREATE TABLE payment_attempts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  payment_id TEXT NOT NULL REFERENCES payments(id),
  channel_account TEXT NOT NULL,
  channel_order_no TEXT NOT NULL,
  outcome TEXT NOT NULL,
  latency_ms INTEGER,
  error_code TEXT,
  created_at INTEGER NOT NULL
);
CREATE INDEX attempts_payment ON payment_attempts(payment_id);
CREATE TABLE refunds (
  id TEXT PRIMARY KEY,
  payment_id TEXT NOT NULL REFERENCES payments(id),
  merchant_id TEXT NOT NULL,
  out_refund_no TEXT NOT NULL,
  amount INTEGER NOT NULL CHECK (amount > 0),
  reason TEXT,
  status TEXT NOT NULL,
  channel_refund_no TEXT,
  failure TEXT,
  fee_returned INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  succeeded_at INTEGER,
  next_check_at INTEGER,
  UNIQUE (payment_id, out_refund_no)
);
CREATE INDEX refunds_pending ON refunds(status, next_check_at);
CREATE TABLE audit_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  object_type TEXT NOT NULL,
  object_id TEXT NOT NULL,
  from_status TEXT,
  to_status TEXT NOT NULL,
  source TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL
);
CREATE INDEX audit_object ON audit_events(object_id);
CREATE TRIGGER audit_events_append_only_u BEFORE UPDATE ON audit_events BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_append_only_d BEFORE DELETE ON audit_events BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TABLE ledger_journals (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  object_id TEXT NOT NULL,
  currency TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (kind, object_id)
);
CREATE TABLE ledger_entries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  journal_id INTEGER NOT NULL REFERENCES ledger_journals(id),
  account TEXT NOT NULL,
  debit INTEGER NOT NULL DEFAULT 0 CHECK (debit >= 0),
  credit INTEGER NOT NULL DEFAULT 0 CHECK (credit >= 0)
);
CREATE INDEX ledger_entries_journal ON ledger_entries(journal_id);
CREATE INDEX ledger_entries_account ON ledger_entries(account);
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE ON ledger_entries BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TABLE webhook_events (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL,
  type TEXT NOT NULL,
  object_id TEXT NOT NULL,
  payload TEXT NOT NULL,
  url TEXT,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  delivered_at INTEGER
);
CREATE INDEX webhook_due ON webhook_events(status, next_attempt_at);
CREATE TABLE webhook_attempts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL REFERENCES webhook_events(id),
  attempt INTEGER NOT NULL,
  status_code INTEGER,
  error TEXT,
  duration_ms INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_event ON webhook_attempts(event_id);
CREATE TABLE idempotency_keys (
  app_id TEXT NOT NULL,
  key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  status_code INTEGER,
  response_body TEXT,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (app_id, key)
);
CREATE TABLE request_nonces (
  app_id TEXT NOT NULL,
  nonce TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (app_id, nonce)
);
CREATE TABLE alerts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  object_id TEXT,
  detail TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'payment_channel_binding',
    sql: `
ALTER TABLE payments ADD COLUMN channel_binding TEXT;
`,
  },
  {
    // The audit row of every payment and refund transition is written by the database itself, in the
    // statement that changes the status: it cannot be forgotten, and a transition costs one statement.
    // Attempts live in the payment's routing trace, so their own table goes.
    version: 3,
    name: 'audit_by_trigger',
    sql: `
ALTER TABLE payments ADD COLUMN status_source TEXT NOT NULL DEFAULT 'create';
ALTER TABLE refunds ADD COLUMN status_source TEXT NOT NULL DEFAULT 'create';
DROP TABLE payment_attempts;
CREATE TRIGGER payments_audit_insert AFTER INSERT ON payments BEGIN
  INSERT INTO audit_events (object_type, object_id, from_status, to_status, source, detail, created_at)
  VALUES ('payment', NEW.id, NULL, NEW.status, NEW.status_source, json_object('account', NEW.channel_account), NEW.updated_at);
END;
CREATE TRIGGER payments_audit_update AFTER UPDATE OF status ON payments WHEN OLD.status IS NOT NEW.status BEGIN
  INSERT INTO audit_events (object_type, object_id, from_status, to_status, source, detail, created_at)
  VALUES ('payment', NEW.id, OLD.status, NEW.status, NEW.status_source, json_object('account', NEW.channel_account), NEW.updated_at);
END;
CREATE TRIGGER refunds_audit_insert AFTER INSERT ON refunds BEGIN
  INSERT INTO audit_events (object_type, object_id, from_status, to_status, source, detail, created_at)
  VALUES ('refund', NEW.id, NULL, NEW.status, NEW.status_source, json_object('payment_id', NEW.payment_id), NEW.updated_at);
END;
CREATE TRIGGER refunds_audit_update AFTER UPDATE OF status ON refunds WHEN OLD.status IS NOT NEW.status BEGIN
  INSERT INTO audit_events (object_type, object_id, from_status, to_status, source, detail, created_at)
  VALUES ('refund', NEW.id, OLD.status, NEW.status, NEW.status_source, json_object('payment_id', NEW.payment_id), NEW.updated_at);
END;
`,
  },
  {
    // Notifications find refunds by our channel refund number; admin views list an object's events.
    version: 4,
    name: 'lookup_indexes',
    sql: `
CREATE INDEX refunds_channel_refund_no ON refunds(channel_refund_no);
CREATE INDEX webhook_events_object ON webhook_events(object_id);
`,
  },
];

export async function migrate(db: SqliteDatabase): Promise<{ from: number; to: number; applied: string[] }> {
  await db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  return db.transaction(async (tx) => {
    const row = await tx.get<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations');
    const from = row?.v ?? 0;
    const applied: string[] = [];
    for (const m of MIGRATIONS) {
      if (m.version <= from) continue;
      for (const statement of splitStatements(m.sql)) await tx.run(statement);
      await tx.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, Date.now()]);
      applied.push(`${m.version}_${m.name}`);
    }
    return { from, to: MIGRATIONS[MIGRATIONS.length - 1]!.version, applied };
  });
}

/** Splits on statement-ending semicolons while keeping trigger bodies (BEGIN … END;) whole. */
function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const line of sql.split('\n')) {
    current += line + '\n';
    const trimmed = line.trim();
    const inTrigger = /CREATE TRIGGER/i.test(current) && !/\bEND;\s*$/i.test(current.trim());
    if (trimmed.endsWith(';') && !inTrigger) {
      out.push(current.trim());
      current = '';
    }
  }
  if (current.trim()) out.push(current.trim());
  return out;
}
