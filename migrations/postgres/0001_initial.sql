-- The initial schema: bots, their users, the audit log of events, and plugin state.
-- The same tables and columns as migrations/sqlite/0001_initial.sql, in PostgreSQL types.

CREATE TABLE bots (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    mode        TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL,
    config_hash TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  TIMESTAMPTZ,
    stopped_at  TIMESTAMPTZ,
    last_error  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE bot_users (
    bot_id        TEXT NOT NULL,
    user_id       BIGINT NOT NULL,
    username      TEXT,
    first_name    TEXT NOT NULL,
    last_name     TEXT,
    language_code TEXT,
    is_blocked    BOOLEAN NOT NULL DEFAULT FALSE,
    first_seen    TIMESTAMPTZ NOT NULL,
    last_seen     TIMESTAMPTZ NOT NULL,
    message_count BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (bot_id, user_id)
);
CREATE INDEX bot_users_by_last_seen ON bot_users (bot_id, last_seen DESC);

CREATE TABLE bot_events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bot_id        TEXT,
    kind          TEXT NOT NULL,
    actor_user_id BIGINT,
    detail        JSONB NOT NULL,
    at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX bot_events_by_bot_kind ON bot_events (bot_id, kind, id);

CREATE TABLE plugin_state (
    bot_id     TEXT NOT NULL,
    plugin     TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (bot_id, plugin, key)
);
