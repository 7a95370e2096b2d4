-- Replicas and the leases by which each bot is owned by one replica at a time (fleet/leases.rs says how they
-- are used). Expiry times are the database server's clock, so replicas whose clocks differ still agree.

CREATE TABLE replicas (
    id         TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    -- Alive while the server's clock is before this; each heartbeat moves it.
    alive_until TIMESTAMPTZ NOT NULL
);

CREATE TABLE bot_leases (
    bot_id     TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    -- The fencing token: grows by one each time the bot changes hands, never goes back.
    token      BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
