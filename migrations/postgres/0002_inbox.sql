-- The inbox: updates received from Telegram, stored before they are confirmed and marked done once handled.
-- The same table as migrations/sqlite/0002_inbox.sql, in PostgreSQL types.

CREATE TABLE inbox (
    bot_id      TEXT NOT NULL,
    update_id   BIGINT NOT NULL,
    chat_key    BIGINT NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    received_at TIMESTAMPTZ NOT NULL,
    done_at     TIMESTAMPTZ,
    PRIMARY KEY (bot_id, update_id)
);
CREATE INDEX inbox_by_state ON inbox (bot_id, state, update_id);
