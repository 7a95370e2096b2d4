//! The emulated Telegram: registered bots and their update queues, users, groups, chat transcripts, the call
//! log, fault injection and flood simulation. `World` is shared by the Bot API routes, the control API and the
//! webhook pushers; each bot's mutable state sits behind its own short-held lock (`BotCell`), never held across
//! an await. `bot` holds `BotState`, `files` the stored files, `records` what a bot's queries, polls, memberships,
//! business connections and boosts left behind.

mod bot;
mod files;
mod records;

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

pub use bot::UPDATE_TYPES;
pub(crate) use bot::{BotState, Fault, FaultAction};
pub(crate) use files::{FileInfo, FileKind, Files, MediaMeta, NewFile, Refusal, StoreError};
use parking_lot::{Mutex, RwLock};
pub(crate) use records::{Boost, Business, InlineQuery, PaymentQuery, PollRecord, STATUSES, chat_member};
use serde_json::value::RawValue;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    EmulatorConfig,
    types::{CallRecord, Chat, ChatMessage, User},
};

/// Checks a token's shape: `<digits>:<at least 20 of A-Z a-z 0-9 _ ->`, and returns the bot id.
pub fn parse_token(token: &str) -> Option<i64> {
    let (digits, secret) = token.split_once(':')?;
    let well_formed = !digits.is_empty()
        && digits.len() <= 15
        && digits.bytes().all(|b| b.is_ascii_digit())
        && secret.len() >= 20
        && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let id: i64 = digits.parse().ok()?;
    (well_formed && id > 0).then_some(id)
}

/// Current Unix time in seconds.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Current Unix time in milliseconds.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Current Unix time in microseconds.
pub(crate) fn unix_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// The whole emulated Telegram.
pub(crate) struct World {
    pub(crate) config: EmulatorConfig,
    bots: RwLock<HashMap<String, Arc<BotCell>>>,
    by_id: RwLock<HashMap<i64, Arc<BotCell>>>,
    users: RwLock<HashMap<i64, User>>,
    groups: RwLock<HashMap<i64, Chat>>,
    calls: Mutex<VecDeque<CallRecord>>,
    next_call: AtomicU64,
    next_id: AtomicU64,
    flood: AtomicBool,
    pub(crate) files: Files,
    pub(crate) http: reqwest::Client,
    pub(crate) shutdown: CancellationToken,
}

/// One registered bot.
pub(crate) struct BotCell {
    pub(crate) id: i64,
    pub(crate) token: String,
    /// Wakes long polls and the webhook pusher when updates arrive or the delivery mode changes.
    pub(crate) updates: Notify,
    /// Wakes control API waiters when the bot does something.
    pub(crate) events: Notify,
    pub(crate) state: Mutex<BotState>,
}

/// A callback query sent to the bot.
pub(crate) struct CallbackMeta {
    pub(crate) answered: bool,
    pub(crate) chat_id: i64,
    pub(crate) message_id: i64,
    pub(crate) data: String,
}

/// An update not yet confirmed.
pub(crate) struct Pending {
    pub(crate) id: i64,
    pub(crate) json: Box<RawValue>,
    pub(crate) deliveries: u32,
    pub(crate) in_flight: bool,
}

/// A webhook as set by `setWebhook`.
pub(crate) struct Webhook {
    pub(crate) url: String,
    pub(crate) secret: Option<String>,
    pub(crate) max_connections: usize,
    pub(crate) in_flight: usize,
    pub(crate) failures: u32,
    pub(crate) retry_at: Option<tokio::time::Instant>,
    pub(crate) last_error_date: Option<i64>,
    pub(crate) last_error_message: Option<String>,
}

/// A chat's transcript as one bot sees it.
pub(crate) struct ChatLog {
    pub(crate) chat: Chat,
    first_id: i64,
    messages: VecDeque<ChatMessage>,
}

impl ChatLog {
    fn new(chat: Chat) -> ChatLog {
        ChatLog { chat, first_id: 1, messages: VecDeque::new() }
    }

    /// The id the next message in this chat gets.
    pub(crate) fn next_id(&self) -> i64 {
        self.first_id + self.messages.len() as i64
    }

    /// The message with this id, if still kept and not deleted.
    pub(crate) fn get_mut(&mut self, id: i64) -> Option<&mut ChatMessage> {
        let index = usize::try_from(id - self.first_id).ok()?;
        self.messages.get_mut(index).filter(|m| !m.deleted)
    }

    /// The kept messages, oldest first.
    pub(crate) fn messages(&self) -> &VecDeque<ChatMessage> {
        &self.messages
    }

    fn push(&mut self, message: ChatMessage, limit: usize) {
        self.messages.push_back(message);
        while self.messages.len() > limit.max(1) {
            self.messages.pop_front();
            self.first_id += 1;
        }
    }
}

impl World {
    pub(crate) fn new(config: EmulatorConfig, shutdown: CancellationToken) -> World {
        let flood = AtomicBool::new(config.flood);
        let files = Files::new(config.file_limit as u64, config.storage_limit as u64);
        World {
            config,
            bots: RwLock::default(),
            by_id: RwLock::default(),
            users: RwLock::default(),
            groups: RwLock::default(),
            calls: Mutex::default(),
            next_call: AtomicU64::new(1),
            next_id: AtomicU64::new(1),
            flood,
            files,
            http: reqwest::Client::new(),
            shutdown,
        }
    }

    /// A fresh poll id, numeric as Telegram's are.
    pub(crate) fn poll_id(&self) -> String {
        (5_000_000_000_000_000_000u64 + self.unique()).to_string()
    }

    /// A fresh number for ids that must be unique across the emulator.
    pub(crate) fn unique(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a bot (or returns the one with this token); `None` for a malformed token.
    pub(crate) fn register(
        &self,
        token: &str,
        first_name: Option<String>,
        username: Option<String>,
    ) -> Option<Arc<BotCell>> {
        let id = parse_token(token)?;
        if let Some(bot) = self.bots.read().get(token) {
            return Some(bot.clone());
        }
        let me = User {
            id,
            is_bot: true,
            first_name: first_name.unwrap_or_else(|| format!("Bot {id}")),
            last_name: None,
            username: Some(username.unwrap_or_else(|| format!("bot{id}_bot"))),
            language_code: None,
        };
        let bot = Arc::new(BotCell {
            id,
            token: token.to_owned(),
            updates: Notify::new(),
            events: Notify::new(),
            state: Mutex::new(BotState::new(me)),
        });
        let mut bots = self.bots.write();
        let bot = bots.entry(token.to_owned()).or_insert(bot).clone();
        // A new token for a known id replaces the old one, as revoking a token does.
        if let Some(old) = self.by_id.write().insert(id, bot.clone())
            && old.token != bot.token
        {
            bots.remove(&old.token);
        }
        Some(bot)
    }

    /// The bot for a token from a Bot API URL, registering it when any token is accepted.
    pub(crate) fn authorize(&self, token: &str) -> Option<Arc<BotCell>> {
        if let Some(bot) = self.bots.read().get(token) {
            return Some(bot.clone());
        }
        if self.config.accept_any_token { self.register(token, None, None) } else { None }
    }

    /// The bot with this id or username.
    pub(crate) fn find(&self, key: &str) -> Option<Arc<BotCell>> {
        if let Ok(id) = key.parse::<i64>() {
            return self.by_id.read().get(&id).cloned();
        }
        let name = key.trim_start_matches('@');
        let bots = self.by_id.read();
        bots.values()
            .find(|b| b.state.lock().me.username.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(name)))
            .cloned()
    }

    /// Every registered bot.
    pub(crate) fn all_bots(&self) -> Vec<Arc<BotCell>> {
        let mut bots: Vec<_> = self.by_id.read().values().cloned().collect();
        bots.sort_by_key(|b| b.id);
        bots
    }

    /// Forgets a bot.
    pub(crate) fn unregister(&self, bot: &BotCell) {
        self.by_id.write().remove(&bot.id);
        self.bots.write().remove(&bot.token);
        let mut st = bot.state.lock();
        st.webhook = None;
        st.webhook_generation += 1;
        st.poll_generation += 1;
        drop(st);
        bot.updates.notify_waiters();
    }

    /// Forgets every bot, user, group and file, and the call log.
    pub(crate) fn reset(&self) {
        for bot in self.all_bots() {
            self.unregister(&bot);
        }
        self.users.write().clear();
        self.groups.write().clear();
        self.calls.lock().clear();
        self.files.clear();
    }

    /// The user with this id, created with a default name when unknown.
    pub(crate) fn user(&self, id: i64) -> User {
        if let Some(user) = self.users.read().get(&id) {
            return user.clone();
        }
        let user = User {
            id,
            is_bot: false,
            first_name: format!("User {id}"),
            last_name: None,
            username: Some(format!("user{id}")),
            language_code: Some("en".into()),
        };
        self.users.write().entry(id).or_insert(user).clone()
    }

    /// Creates or replaces a user.
    pub(crate) fn upsert_user(&self, user: User) {
        self.users.write().insert(user.id, user);
    }

    /// True when a user with this id exists.
    pub(crate) fn user_exists(&self, id: i64) -> bool {
        self.users.read().contains_key(&id)
    }

    /// The group with this id, if known.
    pub(crate) fn group(&self, id: i64) -> Option<Chat> {
        self.groups.read().get(&id).cloned()
    }

    /// Creates or replaces a group or supergroup.
    pub(crate) fn upsert_group(&self, chat: Chat) {
        self.groups.write().insert(chat.id, chat);
    }

    /// Whether flood simulation is on.
    pub(crate) fn flood(&self) -> bool {
        self.flood.load(Ordering::Relaxed)
    }

    /// Turns flood simulation on or off.
    pub(crate) fn set_flood(&self, on: bool) {
        self.flood.store(on, Ordering::Relaxed);
    }

    /// Appends to the call log, dropping the oldest entries beyond its capacity.
    pub(crate) fn log_call(&self, mut record: CallRecord) {
        if self.config.call_log_capacity == 0 {
            return;
        }
        record.seq = self.next_call.fetch_add(1, Ordering::Relaxed);
        let mut calls = self.calls.lock();
        if calls.len() >= self.config.call_log_capacity {
            calls.pop_front();
        }
        calls.push_back(record);
    }

    /// Call log entries matching the filters, oldest first.
    pub(crate) fn calls(&self, bot_id: Option<i64>, method: Option<&str>, after: u64, limit: usize) -> Vec<CallRecord> {
        let calls = self.calls.lock();
        calls
            .iter()
            .filter(|c| c.seq > after)
            .filter(|c| bot_id.is_none() || c.bot_id == bot_id)
            .filter(|c| method.is_none_or(|m| c.method.eq_ignore_ascii_case(m)))
            .take(limit)
            .cloned()
            .collect()
    }
}
