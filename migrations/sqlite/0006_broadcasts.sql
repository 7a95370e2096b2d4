-- The same tables as migrations/postgres/0006_broadcasts.sql, in SQLite types.

CREATE TABLE broadcasts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_id       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    text         TEXT,
    parse_mode   TEXT,
    entities     TEXT,
    from_chat_id INTEGER,
    message_id   INTEGER,
    active_days  INTEGER,
    state        TEXT NOT NULL,
    total        INTEGER NOT NULL DEFAULT 0,
    sent         INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    blocked      INTEGER NOT NULL DEFAULT 0,
    created_by   INTEGER,
    created_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX broadcasts_by_state ON broadcasts (state, id);

CREATE TABLE broadcast_deliveries (
    broadcast_id INTEGER NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL,
    state        TEXT NOT NULL,
    error        TEXT,
    at           TEXT,
    PRIMARY KEY (broadcast_id, user_id)
) WITHOUT ROWID;
CREATE INDEX broadcast_deliveries_by_state ON broadcast_deliveries (broadcast_id, state, user_id);
