-- Broadcasts of a photo, video, animation, document, audio or voice note (kind 'photo', 'video', ...), sent from
-- the admin bot: its caption is in text and entities. The admin bot downloads the file; the broadcasting bot uploads
-- it once and then sends the file_id Telegram gave it. Until that first upload succeeds the file's bytes wait in
-- upload (so a restart does not lose them), under file_name; storing file_id clears them.

ALTER TABLE broadcasts ADD COLUMN file_id TEXT;
ALTER TABLE broadcasts ADD COLUMN file_name TEXT;
ALTER TABLE broadcasts ADD COLUMN upload BYTEA;
