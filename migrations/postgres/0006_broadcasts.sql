-- Broadcasts (fleet/broadcasts.rs): one message to every user of a bot, as a job that survives restarts. A
-- broadcast's deliveries are made from bot_users when it is created (one row per user); a runner claims pending
-- ones, marks them 'sending' before the call and 'sent', 'failed' or 'blocked' after it. A row still 'sending'
-- after a crash may or may not have arrived: it is marked failed ("interrupted") and never sent again.

CREATE TABLE broadcasts (
    id           BIGSERIAL PRIMARY KEY,
    bot_id       TEXT NOT NULL,
    -- 'text' (text, parse_mode) or 'copy' (copyMessage of from_chat_id/message_id).
    kind         TEXT NOT NULL,
    text         TEXT,
    parse_mode   TEXT,
    entities     TEXT,
    from_chat_id BIGINT,
    message_id   BIGINT,
    -- Only users seen in the last N days; NULL for all.
    active_days  INTEGER,
    -- 'running', 'paused', 'cancelled' or 'done'.
    state        TEXT NOT NULL,
    total        BIGINT NOT NULL DEFAULT 0,
    sent         BIGINT NOT NULL DEFAULT 0,
    failed       BIGINT NOT NULL DEFAULT 0,
    blocked      BIGINT NOT NULL DEFAULT 0,
    -- The admin who started it (NULL from the CLI).
    created_by   BIGINT,
    created_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ
);
CREATE INDEX broadcasts_by_state ON broadcasts (state, id);

CREATE TABLE broadcast_deliveries (
    broadcast_id BIGINT NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    user_id      BIGINT NOT NULL,
    -- 'pending', 'sending', 'sent', 'failed' or 'blocked'.
    state        TEXT NOT NULL,
    error        TEXT,
    at           TIMESTAMPTZ,
    PRIMARY KEY (broadcast_id, user_id)
);
CREATE INDEX broadcast_deliveries_by_state ON broadcast_deliveries (broadcast_id, state, user_id);
