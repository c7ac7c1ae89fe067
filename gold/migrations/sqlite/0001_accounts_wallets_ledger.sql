CREATE TABLE accounts (
    uid INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT UNIQUE,
    username TEXT UNIQUE,
    password_hash TEXT,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE wallets (
    uid INTEGER NOT NULL REFERENCES accounts (uid),
    currency TEXT NOT NULL,
    balance INTEGER NOT NULL CHECK (balance >= 0),
    PRIMARY KEY (uid, currency)
);

CREATE TABLE ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid INTEGER NOT NULL REFERENCES accounts (uid),
    currency TEXT NOT NULL,
    delta INTEGER NOT NULL,
    balance_after INTEGER NOT NULL CHECK (balance_after >= 0),
    reason TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE INDEX ledger_by_uid ON ledger (uid, id);

CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    balance INTEGER NOT NULL,
    balance_to INTEGER,
    entry_id INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
);
