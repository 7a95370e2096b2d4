-- The same tables as migrations/postgres/0004_leases.sql, in SQLite types, so that both schemas stay alike.
-- They stay empty: on SQLite one process runs the whole fleet (storage/lock.rs).

CREATE TABLE replicas (
    id          TEXT PRIMARY KEY,
    started_at  TEXT NOT NULL,
    alive_until TEXT NOT NULL
);

CREATE TABLE bot_leases (
    bot_id     TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    token      INTEGER NOT NULL,
    expires_at TEXT NOT NULL
);
