-- The same columns as migrations/postgres/0007_broadcast_media.sql, in SQLite types.

ALTER TABLE broadcasts ADD COLUMN file_id TEXT;
ALTER TABLE broadcasts ADD COLUMN file_name TEXT;
ALTER TABLE broadcasts ADD COLUMN upload BLOB;
