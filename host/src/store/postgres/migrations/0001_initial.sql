-- fnhost's PostgreSQL store, version 1 (docs/STORAGE.md, *PostgreSQL backend*).
-- Shipped inside the binary and applied once; never edit it after a release: add 0002_*.sql.

-- Module bytes, content-addressed: sha256 is the lowercase hex digest of bytes.
CREATE TABLE modules (
    sha256 text PRIMARY KEY,
    bytes bytea NOT NULL,
    size bigint NOT NULL
);

-- One row per name that has a history; next_version is the number its next commit gets.
CREATE TABLE names (
    name text PRIMARY KEY,
    next_version integer NOT NULL
);

-- Each version of a name (the last is served). sha256 repeats record's digest so that the
-- bytes a version needs cannot be collected while it exists.
CREATE TABLE versions (
    name text NOT NULL REFERENCES names (name) ON DELETE CASCADE,
    version integer NOT NULL,
    sha256 text NOT NULL REFERENCES modules (sha256),
    record jsonb NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX versions_sha256 ON versions (sha256);

-- Caller keys (never their secrets, only the secrets' SHA-256).
CREATE TABLE keys (
    id text PRIMARY KEY,
    record jsonb NOT NULL
);

-- The audit log: append-only.
CREATE TABLE audit (
    seq bigserial PRIMARY KEY,
    entry jsonb NOT NULL
);

-- Every change to names and keys, numbered in commit order, for replicas to catch up with.
CREATE TABLE changes (
    seq bigint PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('name', 'key')),
    id text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
