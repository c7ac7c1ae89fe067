-- config-svc's own storage: documents, their versions, the audit log, and
-- the staff who edit them on the admin page.
CREATE TABLE config_documents (
    name TEXT PRIMARY KEY,
    schema TEXT,
    latest BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE config_versions (
    name TEXT NOT NULL REFERENCES config_documents (name),
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    author TEXT NOT NULL,
    comment TEXT NOT NULL,
    published_at_ms BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE config_audit (
    id BIGSERIAL PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    name TEXT NOT NULL,
    from_version BIGINT NOT NULL,
    to_version BIGINT NOT NULL,
    change TEXT NOT NULL
);
CREATE INDEX config_audit_by_name ON config_audit (name, id);

CREATE TABLE staff_users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE staff_sessions (
    id_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES staff_users (username) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
