-- The initial schema: bots, their users, the audit log of events, and plugin state.
-- The same tables and columns as migrations/postgres/0001_initial.sql, in SQLite types: timestamps are
-- RFC 3339 text in UTC, JSON is text.

CREATE TABLE bots (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    mode        TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL,
    config_hash TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  TEXT,
    stopped_at  TEXT,
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE bot_users (
    bot_id        TEXT NOT NULL,
    user_id       INTEGER NOT NULL,
    username      TEXT,
    first_name    TEXT NOT NULL,
    last_name     TEXT,
    language_code TEXT,
    is_blocked    BOOLEAN NOT NULL DEFAULT FALSE,
    first_seen    TEXT NOT NULL,
    last_seen     TEXT NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (bot_id, user_id)
);
CREATE INDEX bot_users_by_last_seen ON bot_users (bot_id, last_seen DESC);

CREATE TABLE bot_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_id        TEXT,
    kind          TEXT NOT NULL,
    actor_user_id INTEGER,
    detail        TEXT NOT NULL,
    at            TEXT NOT NULL
);
CREATE INDEX bot_events_by_bot_kind ON bot_events (bot_id, kind, id);

CREATE TABLE plugin_state (
    bot_id     TEXT NOT NULL,
    plugin     TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (bot_id, plugin, key)
);
