//! The `broadcasts` and `broadcast_deliveries` tables: one message to every user of a bot, as a job that survives
//! restarts. [`BroadcastRepository::create`] makes a broadcast and its deliveries, one per user of the bot who has
//! not blocked it, in one `INSERT ... SELECT` from `bot_users`. A runner (`fleet/broadcasts.rs`) then
//! [claims](BroadcastRepository::claim) pending deliveries, which marks them `sending` before any call, and
//! [records](BroadcastRepository::record) each one's outcome with the broadcast's counters in one transaction.
//! A delivery still `sending` when a runner starts was cut off by a crash: it may have arrived or not, so
//! [`BroadcastRepository::recover`] marks it failed ([`INTERRUPTED`]) and it is never sent again.
//! [`Broadcast`] is a row read back, [`Delivery`] one user's delivery.
//!
//! A media broadcast ([`BroadcastMessage::Media`]) keeps its file's bytes in the row until the broadcasting bot has
//! uploaded them once: [`BroadcastRepository::upload`] reads them (rows read back carry only their size), and
//! [`BroadcastRepository::set_file_id`] stores the file id Telegram gave the bot and drops them.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Sqlite};

use super::{StorageError, sql::Sql};
use crate::telegram::FileKind;

/// The error of a delivery cut off by a crash between its claim and its outcome: it may have arrived.
pub const INTERRUPTED: &str = "interrupted: the process stopped during the send; it may have arrived, and is not \
     sent again";

/// What a broadcast sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastMessage {
    /// A text, with a parse mode (`HTML`, `MarkdownV2`; `None` for the bot's default).
    Text {
        /// The text.
        text: String,
        /// `HTML`, `MarkdownV2` or `Markdown`; `None`: the bot's `settings.parse_mode`.
        parse_mode: Option<String>,
        /// The text's formatting as Telegram's message entities (JSON), used instead of a parse mode: a message an
        /// admin typed keeps its bold, links and so on.
        entities: Option<String>,
    },
    /// A copy of a message (`copyMessage`): media, formatting and buttons survive.
    Copy {
        /// The chat the message is in (for the admin bot, the admin's chat with the bot that broadcasts).
        from_chat_id: i64,
        /// The message.
        message_id: i64,
    },
    /// A photo, video, animation, document, audio or voice note with its caption: the broadcasting bot uploads the
    /// file to its first user and sends the file id Telegram then gave it to everyone else.
    Media {
        /// What the file is sent as.
        kind: FileKind,
        /// The caption.
        caption: Option<String>,
        /// The caption's formatting as Telegram's message entities (JSON).
        caption_entities: Option<String>,
        /// The broadcasting bot's file id, once it uploaded the file.
        file_id: Option<String>,
        /// The file until then.
        upload: Option<Upload>,
    },
}

impl BroadcastMessage {
    /// What it sends, in a few words: `text "Sale…"`, `photo with a caption, 1.2 MB to upload`.
    pub fn summary(&self) -> String {
        match self {
            BroadcastMessage::Text { text, .. } => {
                let mut start: String = text.chars().take(40).collect();
                if start.len() < text.len() {
                    start.push('…');
                }
                format!("text {start:?}")
            }
            BroadcastMessage::Copy { from_chat_id, message_id } => {
                format!("a copy of message {message_id} of chat {from_chat_id}")
            }
            BroadcastMessage::Media { kind, caption, upload, .. } => {
                let mut text = kind.name().to_owned();
                if caption.as_deref().is_some_and(|c| !c.is_empty()) {
                    text.push_str(" with a caption");
                }
                if let Some(upload) = upload {
                    text.push_str(&format!(", {} to upload", size(upload.size)));
                }
                text
            }
        }
    }
}

/// `512 bytes`, `12 KB`, `3.4 MB`.
fn size(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} bytes"),
        1024..1_048_576 => format!("{} KB", bytes / 1024),
        _ => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
    }
}

/// A media broadcast's file before the broadcasting bot has uploaded it, kept in the database until then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The file name it is uploaded under.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its bytes, given to create the broadcast; a row read back leaves them in the database (see
    /// [`BroadcastRepository::upload`]).
    pub data: Option<Bytes>,
}

impl Upload {
    /// The file `name` with the content `data`.
    pub fn new(name: impl Into<String>, data: impl Into<Bytes>) -> Upload {
        let data = data.into();
        Upload { name: name.into(), size: data.len() as u64, data: Some(data) }
    }
}

/// Where a broadcast is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastState {
    /// Sending (or waiting for its bot to run on this replica).
    Running,
    /// Stopped until resumed.
    Paused,
    /// Stopped for good; the pending deliveries stay pending.
    Cancelled,
    /// Every delivery has an outcome.
    Done,
}

/// A move of a broadcast's state machine: the states it applies to, and the one it leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The states it applies to.
    pub from: &'static [BroadcastState],
    /// The state it leads to.
    pub to: BroadcastState,
}

impl Transition {
    /// A running broadcast stops until resumed.
    pub const PAUSE: Transition = Transition { from: &[BroadcastState::Running], to: BroadcastState::Paused };
    /// A paused broadcast runs again.
    pub const RESUME: Transition = Transition { from: &[BroadcastState::Paused], to: BroadcastState::Running };
    /// A running or paused broadcast stops for good.
    pub const CANCEL: Transition =
        Transition { from: &[BroadcastState::Running, BroadcastState::Paused], to: BroadcastState::Cancelled };
    /// A running broadcast whose deliveries all have an outcome is done.
    pub const FINISH: Transition = Transition { from: &[BroadcastState::Running], to: BroadcastState::Done };
}

impl BroadcastState {
    /// The word stored in `broadcasts.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            BroadcastState::Running => "running",
            BroadcastState::Paused => "paused",
            BroadcastState::Cancelled => "cancelled",
            BroadcastState::Done => "done",
        }
    }

    /// The state a stored word names.
    pub fn parse(word: &str) -> Option<BroadcastState> {
        [BroadcastState::Running, BroadcastState::Paused, BroadcastState::Cancelled, BroadcastState::Done]
            .into_iter()
            .find(|s| s.as_str() == word)
    }

    /// Whether the broadcast is over (cancelled or done).
    pub fn is_final(self) -> bool {
        matches!(self, BroadcastState::Cancelled | BroadcastState::Done)
    }
}

/// A broadcast to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBroadcast {
    /// The bot that sends it.
    pub bot_id: String,
    /// What it sends.
    pub message: BroadcastMessage,
    /// Only users seen in the last this many days; `None` for every user who has not blocked the bot.
    pub active_days: Option<u32>,
    /// The admin who started it; `None` from the CLI.
    pub created_by: Option<i64>,
}

/// A row of `broadcasts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    /// Its id.
    pub id: i64,
    /// The bot that sends it.
    pub bot_id: String,
    /// What it sends.
    pub message: BroadcastMessage,
    /// Only users seen in the last this many days.
    pub active_days: Option<u32>,
    /// Where it is.
    pub state: BroadcastState,
    /// Deliveries made when it was created (its audience).
    pub total: i64,
    /// Delivered.
    pub sent: i64,
    /// Refused by Telegram for another reason than a block, or interrupted by a crash.
    pub failed: i64,
    /// The user blocked the bot or deleted their account (403).
    pub blocked: i64,
    /// The admin who started it.
    pub created_by: Option<i64>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was cancelled or done.
    pub finished_at: Option<DateTime<Utc>>,
}

impl Broadcast {
    /// Deliveries without an outcome yet.
    pub fn remaining(&self) -> i64 {
        (self.total - self.sent - self.failed - self.blocked).max(0)
    }
}

/// How one delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Telegram accepted the message.
    Sent,
    /// The user blocked the bot or is gone (403); the user is marked blocked in `bot_users`.
    Blocked(String),
    /// Another error, kept with the delivery.
    Failed(String),
}

/// One user's delivery of a broadcast.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The user (and private chat).
    pub user_id: i64,
    /// `pending`, `sending`, `sent`, `failed` or `blocked`.
    pub state: String,
    /// Why it failed or was blocked.
    pub error: Option<String>,
}

/// The `broadcasts` and `broadcast_deliveries` tables.
#[async_trait]
pub trait BroadcastRepository: Send + Sync {
    /// Creates a running broadcast and its pending deliveries, one per user of the bot who has not blocked it
    /// (and was seen in the last `active_days` days), in one transaction.
    async fn create(&self, new: &NewBroadcast, at: DateTime<Utc>) -> Result<Broadcast, StorageError>;
    /// One broadcast.
    async fn get(&self, id: i64) -> Result<Option<Broadcast>, StorageError>;
    /// The newest broadcasts first, of one bot or all.
    async fn list(&self, bot_id: Option<&str>, limit: u32) -> Result<Vec<Broadcast>, StorageError>;
    /// Every running broadcast, oldest first.
    async fn running(&self) -> Result<Vec<Broadcast>, StorageError>;
    /// Makes the move if the broadcast is in one of the states it applies to; false when it was not (or is
    /// unknown). Cancelled and done get their `finished_at`.
    async fn transition(&self, id: i64, step: Transition, at: DateTime<Utc>) -> Result<bool, StorageError>;
    /// Marks the deliveries a crash left `sending` as failed with [`INTERRUPTED`]; returns how many.
    async fn recover(&self, id: i64, at: DateTime<Utc>) -> Result<u64, StorageError>;
    /// Marks up to `limit` pending deliveries `sending`, the lowest user ids first, and returns their users.
    async fn claim(&self, id: i64, limit: u32) -> Result<Vec<i64>, StorageError>;
    /// Puts claimed deliveries that were not sent back to pending (a pause or cancel came before their call).
    async fn release(&self, id: i64, users: &[i64]) -> Result<(), StorageError>;
    /// Records the outcomes of claimed deliveries and adds them to the broadcast's counters, in one transaction;
    /// a blocked user is marked blocked in `bot_users` too.
    async fn record(&self, id: i64, outcomes: &[(i64, DeliveryOutcome)], at: DateTime<Utc>)
    -> Result<(), StorageError>;
    /// A broadcast's deliveries, of one state or all, by user.
    async fn deliveries(&self, id: i64, state: Option<&str>, limit: u32) -> Result<Vec<Delivery>, StorageError>;
    /// The bytes of a media broadcast's file, until [`BroadcastRepository::set_file_id`] dropped them.
    async fn upload(&self, id: i64) -> Result<Option<Bytes>, StorageError>;
    /// Stores the broadcasting bot's file id of a media broadcast's file and drops its bytes.
    async fn set_file_id(&self, id: i64, file_id: &str) -> Result<(), StorageError>;
}

/// The columns of `broadcasts`, for the statements that read whole rows.
macro_rules! columns {
    () => {
        "SELECT id, bot_id, kind, text, parse_mode, entities, from_chat_id, message_id, active_days, state, total, sent, \
         failed, blocked, created_by, created_at, finished_at, file_id, file_name, \
         CAST(length(upload) AS BIGINT) AS upload_size FROM broadcasts "
    };
}
const GET: &str = concat!(columns!(), "WHERE id = $1");
const LIST: &str = concat!(columns!(), "WHERE ($1 IS NULL OR bot_id = $1) ORDER BY id DESC LIMIT $2");
const RUNNING: &str = concat!(columns!(), "WHERE state = 'running' ORDER BY id");

const CREATE: &str = "INSERT INTO broadcasts (bot_id, kind, text, parse_mode, entities, from_chat_id, message_id, \
     active_days, state, created_by, created_at, file_id, file_name, upload) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running', $9, $10, $11, $12, $13) RETURNING id";
/// The audience, in one statement however many users the bot has.
const AUDIENCE: &str = "INSERT INTO broadcast_deliveries (broadcast_id, user_id, state) \
     SELECT $1, user_id, 'pending' FROM bot_users \
     WHERE bot_id = $2 AND NOT is_blocked AND ($3 IS NULL OR last_seen >= $3)";
const SET_TOTAL: &str = "UPDATE broadcasts SET total = $2 WHERE id = $1";
const TRANSITION: &str = "UPDATE broadcasts SET state = $2, \
     finished_at = CASE WHEN $2 IN ('cancelled', 'done') THEN $3 ELSE finished_at END \
     WHERE id = $1 AND state = $4";
const RECOVER: &str = "UPDATE broadcast_deliveries SET state = 'failed', error = $2, at = $3 \
     WHERE broadcast_id = $1 AND state = 'sending'";
const ADD_FAILED: &str = "UPDATE broadcasts SET failed = failed + $2 WHERE id = $1";
/// The outer `state = 'pending'` is checked again on the row PostgreSQL updates: two runners never claim one row.
const CLAIM: &str = "UPDATE broadcast_deliveries SET state = 'sending' \
     WHERE broadcast_id = $1 AND state = 'pending' AND user_id IN (SELECT user_id FROM broadcast_deliveries \
     WHERE broadcast_id = $1 AND state = 'pending' ORDER BY user_id LIMIT $2) RETURNING user_id";
const RELEASE: &str = "UPDATE broadcast_deliveries SET state = 'pending' \
     WHERE broadcast_id = $1 AND user_id = $2 AND state = 'sending'";
const MARK: &str = "UPDATE broadcast_deliveries SET state = $3, error = $4, at = $5 \
     WHERE broadcast_id = $1 AND user_id = $2 AND state = 'sending'";
const COUNT: &str = "UPDATE broadcasts SET sent = sent + $2, failed = failed + $3, blocked = blocked + $4 \
     WHERE id = $1";
const BLOCK: &str = "UPDATE bot_users SET is_blocked = $3 WHERE bot_id = $1 AND user_id = $2";
const UPLOAD: &str = "SELECT upload FROM broadcasts WHERE id = $1";
const SET_FILE_ID: &str = "UPDATE broadcasts SET file_id = $2, upload = NULL WHERE id = $1";
const DELIVERIES: &str = "SELECT user_id, state, error FROM broadcast_deliveries \
     WHERE broadcast_id = $1 AND ($2 IS NULL OR state = $2) ORDER BY user_id LIMIT $3";

/// Implements [`BroadcastRepository`] for `Sql<$db>`, whose rows are `$row`.
macro_rules! broadcasts {
    ($db:ty, $row:ty) => {
        impl Sql<$db> {
            fn broadcast(row: &$row) -> Result<Broadcast, sqlx::Error> {
                let kind: String = row.try_get("kind")?;
                let message = match (kind.as_str(), FileKind::from_name(&kind)) {
                    ("copy", _) => BroadcastMessage::Copy {
                        from_chat_id: row.try_get::<Option<i64>, _>("from_chat_id")?.unwrap_or_default(),
                        message_id: row.try_get::<Option<i64>, _>("message_id")?.unwrap_or_default(),
                    },
                    (_, Some(kind)) => {
                        let size: Option<i64> = row.try_get("upload_size")?;
                        let name: Option<String> = row.try_get("file_name")?;
                        BroadcastMessage::Media {
                            kind,
                            caption: row.try_get("text")?,
                            caption_entities: row.try_get("entities")?,
                            file_id: row.try_get("file_id")?,
                            upload: size.map(|size| Upload {
                                name: name.unwrap_or_default(),
                                size: size.max(0) as u64,
                                data: None,
                            }),
                        }
                    }
                    _ => BroadcastMessage::Text {
                        text: row.try_get::<Option<String>, _>("text")?.unwrap_or_default(),
                        parse_mode: row.try_get("parse_mode")?,
                        entities: row.try_get("entities")?,
                    },
                };
                let state: String = row.try_get("state")?;
                Ok(Broadcast {
                    id: row.try_get("id")?,
                    bot_id: row.try_get("bot_id")?,
                    message,
                    active_days: row.try_get::<Option<i32>, _>("active_days")?.map(|d| d.max(0) as u32),
                    state: BroadcastState::parse(&state).unwrap_or(BroadcastState::Paused),
                    total: row.try_get("total")?,
                    sent: row.try_get("sent")?,
                    failed: row.try_get("failed")?,
                    blocked: row.try_get("blocked")?,
                    created_by: row.try_get("created_by")?,
                    created_at: row.try_get("created_at")?,
                    finished_at: row.try_get("finished_at")?,
                })
            }
        }

        #[async_trait]
        impl BroadcastRepository for Sql<$db> {
            async fn create(&self, new: &NewBroadcast, at: DateTime<Utc>) -> Result<Broadcast, StorageError> {
                let (kind, text, mode, entities, chat, message) = match &new.message {
                    BroadcastMessage::Text { text, parse_mode, entities } => {
                        ("text", Some(text.clone()), parse_mode.clone(), entities.clone(), None, None)
                    }
                    BroadcastMessage::Copy { from_chat_id, message_id } => {
                        ("copy", None, None, None, Some(*from_chat_id), Some(*message_id))
                    }
                    BroadcastMessage::Media { kind, caption, caption_entities, .. } => {
                        (kind.name(), caption.clone(), None, caption_entities.clone(), None, None)
                    }
                };
                let (file_id, upload) = match &new.message {
                    BroadcastMessage::Media { file_id, upload, .. } => (file_id.clone(), upload.as_ref()),
                    _ => (None, None),
                };
                let file_name = upload.map(|u| u.name.clone());
                let data = upload.and_then(|u| u.data.as_ref()).map(|d| d.to_vec());
                let days = new.active_days.map(|d| i32::try_from(d).unwrap_or(i32::MAX));
                let since = new.active_days.map(|d| at - chrono::Duration::days(i64::from(d)));
                let mut tx = self.0.begin().await?;
                let id: i64 = sqlx::query_scalar(CREATE)
                    .bind(&new.bot_id)
                    .bind(kind)
                    .bind(text)
                    .bind(mode)
                    .bind(entities)
                    .bind(chat)
                    .bind(message)
                    .bind(days)
                    .bind(new.created_by)
                    .bind(at)
                    .bind(file_id)
                    .bind(file_name)
                    .bind(data)
                    .fetch_one(&mut *tx)
                    .await?;
                let made = sqlx::query(AUDIENCE)
                    .bind(id)
                    .bind(&new.bot_id)
                    .bind(since)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(SET_TOTAL).bind(id).bind(made as i64).execute(&mut *tx).await?;
                tx.commit().await?;
                self.get(id).await?.ok_or(StorageError::Database(sqlx::Error::RowNotFound))
            }

            async fn get(&self, id: i64) -> Result<Option<Broadcast>, StorageError> {
                let row = sqlx::query(GET).bind(id).fetch_optional(&self.0).await?;
                Ok(row.as_ref().map(Self::broadcast).transpose()?)
            }

            async fn list(&self, bot_id: Option<&str>, limit: u32) -> Result<Vec<Broadcast>, StorageError> {
                let query = sqlx::query(LIST).bind(bot_id).bind(i64::from(limit));
                let rows = query.fetch_all(&self.0).await?;
                Ok(rows.iter().map(Self::broadcast).collect::<Result<_, _>>()?)
            }

            async fn running(&self) -> Result<Vec<Broadcast>, StorageError> {
                let rows = sqlx::query(RUNNING).fetch_all(&self.0).await?;
                Ok(rows.iter().map(Self::broadcast).collect::<Result<_, _>>()?)
            }

            async fn transition(&self, id: i64, step: Transition, at: DateTime<Utc>) -> Result<bool, StorageError> {
                for state in step.from {
                    let query = sqlx::query(TRANSITION).bind(id).bind(step.to.as_str()).bind(at).bind(state.as_str());
                    if query.execute(&self.0).await?.rows_affected() > 0 {
                        return Ok(true);
                    }
                }
                Ok(false)
            }

            async fn recover(&self, id: i64, at: DateTime<Utc>) -> Result<u64, StorageError> {
                let mut tx = self.0.begin().await?;
                let n = sqlx::query(RECOVER).bind(id).bind(INTERRUPTED).bind(at).execute(&mut *tx).await?;
                let n = n.rows_affected();
                if n > 0 {
                    sqlx::query(ADD_FAILED).bind(id).bind(n as i64).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(n)
            }

            async fn claim(&self, id: i64, limit: u32) -> Result<Vec<i64>, StorageError> {
                let rows = sqlx::query(CLAIM).bind(id).bind(i64::from(limit)).fetch_all(&self.0).await?;
                let mut users = rows.iter().map(|r| r.try_get(0)).collect::<Result<Vec<i64>, _>>()?;
                users.sort_unstable();
                Ok(users)
            }

            async fn release(&self, id: i64, users: &[i64]) -> Result<(), StorageError> {
                if users.is_empty() {
                    return Ok(());
                }
                let mut tx = self.0.begin().await?;
                for user in users {
                    sqlx::query(RELEASE).bind(id).bind(user).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn record(
                &self,
                id: i64,
                outcomes: &[(i64, DeliveryOutcome)],
                at: DateTime<Utc>,
            ) -> Result<(), StorageError> {
                if outcomes.is_empty() {
                    return Ok(());
                }
                let mut tx = self.0.begin().await?;
                let bot_id: String = sqlx::query_scalar("SELECT bot_id FROM broadcasts WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let (mut sent, mut failed, mut blocked) = (0i64, 0i64, 0i64);
                for (user, outcome) in outcomes {
                    let (state, error) = match outcome {
                        DeliveryOutcome::Sent => ("sent", None),
                        DeliveryOutcome::Blocked(e) => ("blocked", Some(e.as_str())),
                        DeliveryOutcome::Failed(e) => ("failed", Some(e.as_str())),
                    };
                    let query = sqlx::query(MARK).bind(id).bind(user).bind(state).bind(error).bind(at);
                    if query.execute(&mut *tx).await?.rows_affected() == 0 {
                        continue;
                    }
                    match outcome {
                        DeliveryOutcome::Sent => sent += 1,
                        DeliveryOutcome::Failed(_) => failed += 1,
                        DeliveryOutcome::Blocked(_) => {
                            blocked += 1;
                            sqlx::query(BLOCK).bind(&bot_id).bind(user).bind(true).execute(&mut *tx).await?;
                        }
                    }
                }
                sqlx::query(COUNT).bind(id).bind(sent).bind(failed).bind(blocked).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn deliveries(
                &self,
                id: i64,
                state: Option<&str>,
                limit: u32,
            ) -> Result<Vec<Delivery>, StorageError> {
                let rows =
                    sqlx::query(DELIVERIES).bind(id).bind(state).bind(i64::from(limit)).fetch_all(&self.0).await?;
                rows.iter()
                    .map(|row| {
                        Ok(Delivery { user_id: row.try_get(0)?, state: row.try_get(1)?, error: row.try_get(2)? })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StorageError::from)
            }

            async fn upload(&self, id: i64) -> Result<Option<Bytes>, StorageError> {
                let data: Option<Option<Vec<u8>>> = sqlx::query_scalar(UPLOAD).bind(id).fetch_optional(&self.0).await?;
                Ok(data.flatten().map(Bytes::from))
            }

            async fn set_file_id(&self, id: i64, file_id: &str) -> Result<(), StorageError> {
                sqlx::query(SET_FILE_ID).bind(id).bind(file_id).execute(&self.0).await?;
                Ok(())
            }
        }
    };
}

broadcasts!(Postgres, sqlx::postgres::PgRow);
broadcasts!(Sqlite, sqlx::sqlite::SqliteRow);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Storage, UserProfile, UserSeen, now};

    async fn storage_with_users(n: i64) -> Storage {
        let storage = Storage::in_memory().await.unwrap();
        let at = now();
        let users: Vec<UserSeen> = (1..=n)
            .map(|user_id| UserSeen {
                bot_id: "shop".into(),
                user_id,
                profile: UserProfile { first_name: format!("u{user_id}"), ..UserProfile::default() },
                // Users 1..=10 were last seen 40 days ago.
                first_seen: at - chrono::Duration::days(if user_id <= 10 { 40 } else { 1 }),
                last_seen: at - chrono::Duration::days(if user_id <= 10 { 40 } else { 1 }),
                messages: 1,
            })
            .collect();
        storage.users().upsert(&users).await.unwrap();
        storage
    }

    fn text() -> NewBroadcast {
        NewBroadcast {
            bot_id: "shop".into(),
            message: BroadcastMessage::Text { text: "Sale!".into(), parse_mode: Some("HTML".into()), entities: None },
            active_days: None,
            created_by: Some(7),
        }
    }

    #[tokio::test]
    async fn the_audience_is_the_bots_unblocked_users_optionally_only_the_recent_ones() {
        let storage = storage_with_users(100).await;
        storage.users().set_blocked("shop", 50, true).await.unwrap();
        let all = storage.broadcasts().create(&text(), now()).await.unwrap();
        assert_eq!((all.total, all.remaining(), all.state), (99, 99, BroadcastState::Running));
        assert_eq!(all.message, text().message);
        let recent = NewBroadcast { active_days: Some(30), ..text() };
        let recent = storage.broadcasts().create(&recent, now()).await.unwrap();
        assert_eq!(recent.total, 89, "users 1-10 were last seen 40 days ago, user 50 blocked the bot");
        let listed = storage.broadcasts().list(Some("shop"), 10).await.unwrap();
        assert_eq!(listed.iter().map(|b| b.id).collect::<Vec<_>>(), [recent.id, all.id]);
    }

    #[tokio::test]
    async fn claims_outcomes_and_crash_recovery_keep_each_user_to_one_send() {
        let storage = storage_with_users(20).await;
        let repo = storage.broadcasts();
        let b = repo.create(&text(), now()).await.unwrap();
        let first = repo.claim(b.id, 8).await.unwrap();
        assert_eq!(first, (1..=8).collect::<Vec<_>>());
        let outcomes: Vec<(i64, DeliveryOutcome)> = vec![
            (1, DeliveryOutcome::Sent),
            (2, DeliveryOutcome::Blocked("Forbidden: bot was blocked by the user".into())),
            (3, DeliveryOutcome::Failed("Bad Request: chat not found".into())),
        ];
        repo.record(b.id, &outcomes, now()).await.unwrap();
        // Recording twice changes nothing: only `sending` rows take an outcome.
        repo.record(b.id, &outcomes, now()).await.unwrap();
        repo.release(b.id, &[4, 5]).await.unwrap();
        // A crash now leaves 6, 7 and 8 `sending`: they may have gone out, so they are failed, not resent.
        assert_eq!(repo.recover(b.id, now()).await.unwrap(), 3);
        let b = repo.get(b.id).await.unwrap().unwrap();
        assert_eq!((b.sent, b.blocked, b.failed, b.remaining()), (1, 1, 4, 14));
        assert!(storage.users().get("shop", 2).await.unwrap().unwrap().is_blocked);
        let interrupted = repo.deliveries(b.id, Some("failed"), 10).await.unwrap();
        assert_eq!(interrupted.iter().filter(|d| d.error.as_deref() == Some(INTERRUPTED)).count(), 3);
        // The released ones are claimed again, before the rest.
        assert_eq!(repo.claim(b.id, 3).await.unwrap(), [4, 5, 9]);
        assert!(repo.transition(b.id, Transition::PAUSE, now()).await.unwrap());
        assert!(!repo.transition(b.id, Transition::FINISH, now()).await.unwrap());
        assert!(repo.transition(b.id, Transition::CANCEL, now()).await.unwrap());
        let b = repo.get(b.id).await.unwrap().unwrap();
        assert_eq!(b.state, BroadcastState::Cancelled);
        assert!(b.finished_at.is_some());
        assert!(repo.running().await.unwrap().is_empty());
    }
}
