-- The admin's orders across replicas (fleet/control.rs): a bot stopped by an admin stays stopped wherever it
-- moves, and an order reaches the replica that runs the bot (or every replica) through these rows, announced
-- with NOTIFY on the channel `multibot_fleet`.

ALTER TABLE bot_leases ADD COLUMN stopped BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE fleet_commands (
    id        BIGSERIAL PRIMARY KEY,
    -- A replica's id, or '*' for every replica.
    target    TEXT NOT NULL,
    -- NULL for an order about the whole fleet (reload_all).
    bot_id    TEXT,
    action    TEXT NOT NULL,
    issued_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE fleet_replies (
    command_id BIGINT NOT NULL REFERENCES fleet_commands (id) ON DELETE CASCADE,
    replica    TEXT NOT NULL,
    -- What the replica did, as JSON (control.rs: Reply).
    body       TEXT NOT NULL,
    PRIMARY KEY (command_id, replica)
);
