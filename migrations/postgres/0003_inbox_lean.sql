-- Nothing indexes the inbox's `state` any more: marking an update done then changes no indexed column, so
-- PostgreSQL can update the row in place (a HOT update) instead of writing new entries in both indexes. A bot's
-- pending updates are found through its primary-key prefix: the table is pruned, so that stays short. (The
-- SQLite table changes the same way: migrations/sqlite/0003_inbox_lean.sql.)

DROP INDEX inbox_by_state;
