-- The same tables as migrations/postgres/0005_fleet_commands.sql, in SQLite types, so that both schemas stay
-- alike. They stay empty: on SQLite one process runs the whole fleet.

ALTER TABLE bot_leases ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0;

CREATE TABLE fleet_commands (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    target    TEXT NOT NULL,
    bot_id    TEXT,
    action    TEXT NOT NULL,
    issued_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE fleet_replies (
    command_id INTEGER NOT NULL REFERENCES fleet_commands (id) ON DELETE CASCADE,
    replica    TEXT NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (command_id, replica)
);
