-- A player's signed-in sessions: one row per refresh-token family. The
-- family id is also the `sid` of the access tokens it issues. Only the
-- hash of the current refresh token's secret is kept; an older one shown
-- again is a reuse, which ends the family. An ended family's row is
-- deleted.
CREATE TABLE sessions (
    family TEXT PRIMARY KEY,
    uid INTEGER NOT NULL REFERENCES accounts (uid),
    token_hash TEXT NOT NULL,
    expires_at_s INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE INDEX sessions_by_uid ON sessions (uid, created_at_ms);

-- A banned account: no login, no refresh, until `until_s` (NULL: for good).
CREATE TABLE bans (
    uid INTEGER PRIMARY KEY REFERENCES accounts (uid),
    reason TEXT NOT NULL,
    until_s INTEGER,
    by_whom TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);

-- Every ban and lift, never deleted.
CREATE TABLE ban_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid INTEGER NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    until_s INTEGER,
    by_whom TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
