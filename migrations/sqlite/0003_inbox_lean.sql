-- The inbox's rows live in its primary key's b-tree (WITHOUT ROWID), and nothing indexes `state`: an update is
-- stored once, marked done and deleted, and each of those wrote a row, a primary-key entry and a state-index
-- entry. docs/BENCHMARKS.md (durable inbox) has what it saved.
-- A bot's pending updates are found through its primary-key prefix: the table is pruned, so that stays short.

CREATE TABLE inbox_lean (
    bot_id      TEXT NOT NULL,
    update_id   INTEGER NOT NULL,
    chat_key    INTEGER NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    received_at TEXT NOT NULL,
    done_at     TEXT,
    PRIMARY KEY (bot_id, update_id)
) WITHOUT ROWID;
INSERT INTO inbox_lean SELECT bot_id, update_id, chat_key, payload, state, received_at, done_at FROM inbox;
DROP TABLE inbox;
ALTER TABLE inbox_lean RENAME TO inbox;
