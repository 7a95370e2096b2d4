//! One bot's mutable state (`BotState`): its update queue and `allowed_updates`, chat transcripts, blocked
//! users, event stream, injected faults and flood buckets.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    time::{Duration, Instant},
};

use serde_json::{Map, Value};

use super::{
    CallbackMeta, ChatLog, Pending, Webhook,
    records::{Boost, Business, InlineQuery, PaymentQuery, PollRecord},
    unix_us,
};
use crate::{
    error::ApiError,
    types::{BotCommand, BotStats, Chat, ChatMessage, Event, User},
};

/// Every update type Telegram sends, as `allowed_updates` names them.
pub const UPDATE_TYPES: &[&str] = &[
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
];

/// Update types not delivered unless asked for by name: the reference (Bot API 6.9) names `chat_member`; the
/// reactions, added later, joined it.
const DEFAULT_EXCLUDED: [&str; 3] = ["chat_member", "message_reaction", "message_reaction_count"];

/// A bot's mutable state.
pub(crate) struct BotState {
    pub(crate) me: User,
    pub(crate) queue: VecDeque<Pending>,
    next_update_id: i64,
    /// The update types the bot asked for; `None` for the default.
    allowed: Option<Vec<String>>,
    pub(crate) poll_generation: u64,
    /// getUpdates calls waiting for updates now.
    pub(crate) waiting_polls: u32,
    pub(crate) webhook: Option<Webhook>,
    pub(crate) webhook_generation: u64,
    pub(crate) chats: HashMap<i64, ChatLog>,
    blocked_by: HashSet<i64>,
    events: VecDeque<Event>,
    next_seq: u64,
    pub(crate) callbacks: HashMap<String, CallbackMeta>,
    pub(crate) inline_queries: HashMap<String, InlineQuery>,
    pub(crate) payment_queries: HashMap<String, PaymentQuery>,
    pub(crate) polls: HashMap<String, PollRecord>,
    /// `ChatMember` objects by chat and user, for the chats the bot is in (itself included).
    pub(crate) members: HashMap<(i64, i64), Value>,
    pub(crate) business: HashMap<String, Business>,
    pub(crate) boosts: HashMap<String, Boost>,
    /// Join requests not yet approved or declined, by chat and user.
    pub(crate) join_requests: HashSet<(i64, i64)>,
    /// Reactions by chat and message, then by user.
    pub(crate) reactions: HashMap<(i64, i64), BTreeMap<i64, Vec<Value>>>,
    pub(crate) commands: BTreeMap<String, Vec<BotCommand>>,
    faults: Vec<Fault>,
    buckets: HashMap<i64, Bucket>,
    bot_bucket: Bucket,
    pub(crate) stats: BotStats,
}

/// An injected failure for the next calls of one method.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub(crate) method: String,
    pub(crate) remaining: u32,
    pub(crate) action: FaultAction,
}

/// What an injected fault does to a call.
#[derive(Debug, Clone)]
pub(crate) enum FaultAction {
    /// Answer with this error instead of processing.
    Fail(ApiError),
    /// Wait, then process normally.
    Delay(Duration),
    /// Close the connection without processing.
    DropRequest,
    /// Process, then close the connection without answering.
    DropResponse,
    /// Answer this HTTP status with an HTML error page instead of processing, as Telegram's front end does under
    /// load.
    HtmlError(u16),
    /// Process, then remove these fields (dot-separated paths) from the result, or from each element of a list
    /// result; a use counts only when a field was removed.
    Omit(Vec<String>),
    /// Process, then answer with this result instead.
    Replace(Value),
}

impl FaultAction {
    /// Whether it changes a successful result after processing (instead of acting before).
    fn rewrites(&self) -> bool {
        matches!(self, FaultAction::Omit(_) | FaultAction::Replace(_))
    }
}

impl Fault {
    fn matches(&self, method: &str) -> bool {
        self.method == "*" || self.method.eq_ignore_ascii_case(method)
    }
}

/// Removes the field at `path` (`a.b.c`) from `value`, or from each element when `value` is a list.
fn omit(value: &mut Value, path: &str) -> bool {
    if let Value::Array(items) = value {
        return items.iter_mut().fold(false, |removed, item| omit(item, path) | removed);
    }
    let (parent, field) = path.rsplit_once('.').map_or(("", path), |(p, f)| (p, f));
    let mut target = Some(value);
    for key in parent.split('.').filter(|k| !k.is_empty()) {
        target = target.and_then(|t| t.get_mut(key));
    }
    target.and_then(Value::as_object_mut).is_some_and(|object| object.remove(field).is_some())
}

/// A token bucket for flood simulation.
#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64) -> Bucket {
        Bucket { tokens: capacity, at: Instant::now() }
    }

    /// Seconds to wait before a token is available, after refilling; zero means one is available.
    fn wait(&mut self, capacity: f64, per_second: f64, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(capacity);
        self.at = now;
        if self.tokens >= 1.0 { 0.0 } else { (1.0 - self.tokens) / per_second }
    }
}

impl BotState {
    pub(crate) fn new(me: User) -> BotState {
        BotState {
            me,
            queue: VecDeque::new(),
            next_update_id: 1,
            allowed: None,
            poll_generation: 0,
            waiting_polls: 0,
            webhook: None,
            webhook_generation: 0,
            chats: HashMap::new(),
            blocked_by: HashSet::new(),
            events: VecDeque::new(),
            next_seq: 1,
            callbacks: HashMap::new(),
            inline_queries: HashMap::new(),
            payment_queries: HashMap::new(),
            polls: HashMap::new(),
            members: HashMap::new(),
            business: HashMap::new(),
            boosts: HashMap::new(),
            join_requests: HashSet::new(),
            reactions: HashMap::new(),
            commands: BTreeMap::new(),
            faults: Vec::new(),
            buckets: HashMap::new(),
            bot_bucket: Bucket::full(30.0),
            stats: BotStats::default(),
        }
    }

    /// Clears everything but the bot's identity.
    pub(crate) fn reset(&mut self) {
        let poll_generation = self.poll_generation + 1;
        let webhook_generation = self.webhook_generation + 1;
        let waiting_polls = self.waiting_polls;
        *self = BotState::new(self.me.clone());
        self.waiting_polls = waiting_polls;
        self.poll_generation = poll_generation;
        self.webhook_generation = webhook_generation;
    }

    /// Makes the next update id at least `next`; returns it.
    pub(crate) fn skip_update_ids(&mut self, next: i64) -> i64 {
        self.next_update_id = self.next_update_id.max(next);
        self.next_update_id
    }

    /// Queues an update (`payload` is the update without `update_id`, with one field naming its type) and
    /// returns its id; `None` when the bot's `allowed_updates` excludes that type.
    pub(crate) fn push_update(&mut self, kind: &str, payload: Value) -> Option<i64> {
        let allowed = match &self.allowed {
            Some(list) => list.iter().any(|k| k == kind),
            None => !DEFAULT_EXCLUDED.contains(&kind),
        };
        let id = self.next_update_id;
        self.next_update_id += 1;
        if !allowed {
            return None;
        }
        let mut update = Map::new();
        update.insert("update_id".into(), id.into());
        update.insert(kind.into(), payload);
        let json = serde_json::value::to_raw_value(&update).ok()?;
        self.queue.push_back(Pending { id, json, deliveries: 0, in_flight: false });
        self.stats.updates_created += 1;
        self.stats.pending = self.queue.len() as u64;
        Some(id)
    }

    /// Sets the update types to deliver from now on: `None` leaves the setting as it is, an empty list restores
    /// the default.
    pub(crate) fn set_allowed(&mut self, allowed: Option<Vec<String>>) {
        if let Some(list) = allowed {
            self.allowed = (!list.is_empty()).then_some(list);
        }
    }

    /// The update types the bot chose, `None` for the default, for `getWebhookInfo`.
    pub(crate) fn allowed(&self) -> Option<&[String]> {
        self.allowed.as_deref()
    }

    /// Confirms (forgets) every update below `offset`; a negative offset keeps only the last `-offset`.
    pub(crate) fn confirm(&mut self, offset: i64) {
        let before = self.queue.len();
        if offset > 0 {
            while self.queue.front().is_some_and(|p| p.id < offset) {
                let p = self.queue.pop_front();
                self.note_confirmed(p.map(|p| p.id));
            }
        } else if offset < 0 {
            let keep = offset.unsigned_abs() as usize;
            while self.queue.len() > keep {
                let p = self.queue.pop_front();
                self.note_confirmed(p.map(|p| p.id));
            }
        }
        if self.queue.len() != before {
            self.stats.pending = self.queue.len() as u64;
        }
    }

    /// Confirms one update by id (a webhook answered 2xx).
    pub(crate) fn confirm_one(&mut self, id: i64) {
        if let Ok(index) = self.queue.binary_search_by_key(&id, |p| p.id) {
            self.queue.remove(index);
            self.note_confirmed(Some(id));
            self.stats.pending = self.queue.len() as u64;
        }
    }

    /// Drops every pending update (`drop_pending_updates`).
    pub(crate) fn drop_pending(&mut self) {
        while let Some(p) = self.queue.pop_front() {
            self.note_confirmed(Some(p.id));
        }
        self.stats.pending = 0;
    }

    fn note_confirmed(&mut self, id: Option<i64>) {
        if let Some(id) = id {
            self.stats.updates_confirmed += 1;
            self.stats.last_confirmed_update_id = self.stats.last_confirmed_update_id.max(Some(id));
        }
    }

    /// Counts a hand-out of the update at `index`.
    pub(crate) fn note_delivery(&mut self, index: usize) {
        if let Some(p) = self.queue.get_mut(index) {
            if p.deliveries == 0 {
                self.stats.updates_delivered += 1;
            }
            p.deliveries += 1;
            self.stats.deliveries += 1;
        }
    }

    /// The chat log for `chat`, created when first seen.
    pub(crate) fn chat_log(&mut self, chat: &Chat) -> &mut ChatLog {
        self.chats.entry(chat.id).or_insert_with(|| ChatLog::new(chat.clone()))
    }

    /// Records a message in its chat, assigning its id; returns the id.
    pub(crate) fn record(&mut self, mut entry: ChatMessage, limit: usize) -> i64 {
        let log = self.chat_log(&entry.message.chat);
        let id = log.next_id();
        entry.message.message_id = id;
        log.push(entry, limit);
        id
    }

    /// Marks that `user_id` blocked (or unblocked) the bot; true when that changed anything.
    pub(crate) fn set_blocked(&mut self, user_id: i64, blocked: bool) -> bool {
        if blocked { self.blocked_by.insert(user_id) } else { self.blocked_by.remove(&user_id) }
    }

    /// The status of `user_id` in chat `chat_id`, when known.
    pub(crate) fn member_status(&self, chat_id: i64, user_id: i64) -> Option<&str> {
        self.members.get(&(chat_id, user_id)).and_then(|m| m["status"].as_str())
    }

    /// True when `user_id` blocked the bot.
    pub(crate) fn is_blocked_by(&self, user_id: i64) -> bool {
        self.blocked_by.contains(&user_id)
    }

    /// Appends to the bot's event stream; the caller wakes waiters after unlocking.
    pub(crate) fn emit(
        &mut self,
        kind: &str,
        chat_id: Option<i64>,
        message: Option<&ChatMessage>,
        detail: Option<Value>,
        capacity: usize,
    ) {
        let at_us = unix_us();
        let event = Event {
            seq: self.next_seq,
            at_ms: at_us / 1000,
            at_us,
            kind: kind.into(),
            chat_id,
            message_id: message.map(|m| m.message.message_id),
            message: message.map(|m| m.message.clone()),
            parse_mode: message.and_then(|m| m.parse_mode.clone()),
            detail,
        };
        self.next_seq += 1;
        if self.events.len() >= capacity.max(1) {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// The position of the latest event (0 before the first).
    pub(crate) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Events after `after`, optionally of one chat and kind.
    pub(crate) fn events(&self, after: u64, chat_id: Option<i64>, kind: Option<&str>, limit: usize) -> Vec<Event> {
        let start = self.events.partition_point(|e| e.seq <= after);
        self.events
            .range(start..)
            .filter(|e| chat_id.is_none() || e.chat_id == chat_id)
            .filter(|e| kind.is_none_or(|k| e.kind == k))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Adds an injected fault.
    pub(crate) fn add_fault(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    /// Removes every injected fault.
    pub(crate) fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Takes one use of the first fault that matches `method` and acts before processing.
    pub(crate) fn take_fault(&mut self, method: &str) -> Option<FaultAction> {
        if self.faults.is_empty() {
            return None;
        }
        let index = self.faults.iter().position(|f| !f.action.rewrites() && f.matches(method))?;
        let action = self.faults[index].action.clone();
        self.use_fault(index);
        Some(action)
    }

    /// Whether a fault will change the result of `method`.
    pub(crate) fn rewrites(&self, method: &str) -> bool {
        self.faults.iter().any(|f| f.action.rewrites() && f.matches(method))
    }

    /// Applies the first fault that changes the result of `method` to `result`.
    pub(crate) fn rewrite(&mut self, method: &str, result: &mut Value) {
        let Some(index) = self.faults.iter().position(|f| f.action.rewrites() && f.matches(method)) else { return };
        let applied = match &self.faults[index].action {
            FaultAction::Omit(paths) => paths.iter().fold(false, |removed, path| omit(result, path) | removed),
            FaultAction::Replace(value) => {
                *result = value.clone();
                true
            }
            _ => false,
        };
        if applied {
            self.use_fault(index);
        }
    }

    fn use_fault(&mut self, index: usize) {
        let fault = &mut self.faults[index];
        fault.remaining = fault.remaining.saturating_sub(1);
        if fault.remaining == 0 {
            self.faults.remove(index);
        }
    }

    /// Flood simulation: 429 when a send to `chat` would go over Telegram's limits (about 30 messages per
    /// second per bot, 1 per second per private chat with short bursts, 20 per minute per group).
    pub(crate) fn check_flood(&mut self, chat: &Chat) -> Result<(), ApiError> {
        let now = Instant::now();
        let (capacity, rate) = if chat.is_group() { (20.0, 20.0 / 60.0) } else { (3.0, 1.0) };
        let chat_bucket = self.buckets.entry(chat.id).or_insert_with(|| Bucket::full(capacity));
        let chat_wait = chat_bucket.wait(capacity, rate, now);
        let bot_wait = self.bot_bucket.wait(30.0, 30.0, now);
        let wait = chat_wait.max(bot_wait);
        if wait > 0.0 {
            return Err(ApiError::too_many_requests(wait.ceil().max(1.0) as u32));
        }
        if let Some(bucket) = self.buckets.get_mut(&chat.id) {
            bucket.tokens -= 1.0;
        }
        self.bot_bucket.tokens -= 1.0;
        Ok(())
    }
}
