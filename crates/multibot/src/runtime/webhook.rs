//! Webhook mode, the bot side. [`Webhooks`] is what every webhook bot shares: the routes (a path after
//! `/webhook` -> that bot's [`WebhookInbox`]), the public base URL and the [`WebhookSecrets`] store.
//!
//! Starting a webhook bot (`open`) registers a new inbox at its path, then calls setWebhook with its URL,
//! secret, `max_connections` and the update types its plugins handle. The HTTP side ([`crate::http`]) checks a
//! request's secret and [`WebhookInbox::offer`]s the update. With the durable inbox (`INBOX=database`) the
//! update is committed to the `inbox` table before the answer 200, and the insert tells a re-delivery apart; if
//! the database cannot store it the answer is 503 (Telegram retries). With `INBOX=memory` it is only queued, and
//! a short window of recent `update_id`s drops re-deliveries. Either way the queue to the bot is bounded: the
//! bot's receiving task (`Opened::run`) moves updates into its sequencer while fewer than the inbox's capacity
//! are in flight, so a slow bot fills its queue and Telegram is answered 503 (before anything is stored) instead
//! of memory growing. On start a durable bot first resumes what the last run left pending, refusing deliveries
//! meanwhile. On stop the path answers 503 and in-flight updates finish; what is stored but unfinished stays
//! pending for the next start (in memory, what the queue holds is handled first), and the webhook stays set so
//! Telegram keeps new updates.
//!
//! - `secrets`: [`WebhookSecret`] and where secrets are kept.

pub mod secrets;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use parking_lot::{Mutex, RwLock};
use reqwest::Url;
pub use secrets::{MemorySecrets, StorageSecrets, WebhookSecret, WebhookSecrets};
use teloxide_core::{
    payloads::{SetWebhook, SetWebhookSetters},
    types::Update,
};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{inbox::Inbox, polling::allowed_updates, sequencer::Sequencer};
use crate::{
    config::{BotConfig, BotId},
    plugins::BotHandle,
    telegram::CallFailure,
    telemetry::{Sampler, metrics},
};

/// How many recent `update_id`s each bot remembers to drop Telegram's re-deliveries.
const RECENT_IDS: usize = 1024;

/// The webhook routes and what starting a webhook bot needs.
pub struct Webhooks {
    base_url: Option<String>,
    inbox_capacity: usize,
    secrets: Arc<dyn WebhookSecrets>,
    routes: RwLock<HashMap<String, Arc<WebhookInbox>>>,
    /// The secrets of bots other replicas run, read once each (a bot's secret never changes).
    relayed: tokio::sync::Mutex<HashMap<BotId, WebhookSecret>>,
}

impl Webhooks {
    /// Routing for webhook bots reachable at `base_url` (`WEBHOOK_BASE_URL`), each with an inbox of
    /// `inbox_capacity` updates, their secrets kept in `secrets`.
    pub fn new(base_url: Option<String>, inbox_capacity: usize, secrets: Arc<dyn WebhookSecrets>) -> Webhooks {
        let (routes, relayed) = (RwLock::default(), tokio::sync::Mutex::default());
        Webhooks { base_url, inbox_capacity: inbox_capacity.max(1), secrets, routes, relayed }
    }

    /// The path a bot is served at, after `/webhook`: its `webhook.path`, or `/<bot_id>`.
    pub fn path_of(config: &BotConfig) -> String {
        config.webhook.path.clone().unwrap_or_else(|| format!("/{}", config.id))
    }

    /// The URL Telegram posts a bot's updates to.
    pub fn url_of(&self, config: &BotConfig) -> Result<Url, WebhookError> {
        let base = self.base_url.as_deref().ok_or(WebhookError::NoBaseUrl)?;
        let url = format!("{base}/webhook{}", Webhooks::path_of(config));
        Url::parse(&url).map_err(|e| WebhookError::BadUrl { cause: e.to_string(), url })
    }

    /// The inbox served at `path` (the request path after `/webhook`), running or stopped.
    pub fn inbox(&self, path: &str) -> Option<Arc<WebhookInbox>> {
        self.routes.read().get(path).cloned()
    }

    /// The secret of a bot another replica runs (the same for every replica: it is kept in the database).
    pub async fn secret_of(&self, bot: &BotId) -> anyhow::Result<WebhookSecret> {
        let mut relayed = self.relayed.lock().await;
        if let Some(secret) = relayed.get(bot) {
            return Ok(secret.clone());
        }
        let secret = self.secrets.get_or_create(bot).await?;
        relayed.insert(bot.clone(), secret.clone());
        Ok(secret)
    }

    /// The entrances of the webhook bots running here.
    pub fn open_entrances(&self) -> Vec<Arc<WebhookInbox>> {
        self.routes.read().values().filter(|inbox| !inbox.is_closed()).cloned().collect()
    }

    /// The paths served, with their bots.
    pub fn routes(&self) -> Vec<(String, BotId)> {
        let mut routes: Vec<_> = self.routes.read().iter().map(|(p, i)| (p.clone(), i.bot_id.clone())).collect();
        routes.sort();
        routes
    }

    /// Serves `inbox` at `path`, replacing the bot's previous inbox wherever it was.
    fn register(&self, path: String, inbox: Arc<WebhookInbox>) {
        let mut routes = self.routes.write();
        routes.retain(|_, old| old.bot_id != inbox.bot_id);
        routes.insert(path, inbox);
    }

    /// Stops serving a bot (it moved to polling, or its webhook could not be set).
    pub(crate) fn forget(&self, bot: &BotId) {
        self.routes.write().retain(|_, old| old.bot_id != *bot);
    }
}

/// What [`WebhookInbox::offer`] did with an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued for the bot.
    Accepted,
    /// Seen recently (Telegram retrying): already queued once, dropped.
    Duplicate,
    /// The inbox is full: Telegram should retry later.
    Full,
    /// The bot has stopped: Telegram should retry later.
    Stopped,
    /// The bot is still resuming what its last run left pending: Telegram should retry later.
    NotReady,
    /// The database could not store it: Telegram should retry later.
    Unavailable,
}

/// One running (or stopped) webhook bot's entrance: its secret, its bounded queue, how it keeps deliveries.
pub struct WebhookInbox {
    bot_id: BotId,
    secret: WebhookSecret,
    sender: mpsc::Sender<Box<Update>>,
    intake: Intake,
    /// A relayed update could not be picked up at once: the next sweep looks for it.
    missed: AtomicBool,
}

/// How a webhook bot keeps a delivery before answering 200.
enum Intake {
    /// `INBOX=memory`: queued only; the recent ids drop re-deliveries.
    Memory(Mutex<RecentIds>),
    /// `INBOX=database`: stored first; deliveries are refused until the last run's pending updates are resumed.
    /// `taken`: the ids queued lately (stored here, resumed, or picked up after another replica stored them), so
    /// that a pick-up never queues one twice.
    Durable { inbox: Arc<Inbox>, resumed: AtomicBool, taken: Mutex<RecentIds> },
}

impl WebhookInbox {
    /// The bot it belongs to.
    pub fn bot_id(&self) -> &BotId {
        &self.bot_id
    }

    /// Whether a request's `X-Telegram-Bot-Api-Secret-Token` is this bot's secret (constant time).
    pub fn secret_matches(&self, presented: &[u8]) -> bool {
        self.secret.matches(presented)
    }

    /// Takes an update for the bot (`body`: the request's body it was decoded from) unless it was taken before,
    /// the queue is full, the bot has stopped or is not ready, or the database cannot store it.
    pub async fn offer(&self, update: Box<Update>, body: &[u8]) -> Offer {
        let (inbox, resumed, taken) = match &self.intake {
            Intake::Memory(recent) => return self.queue(update, recent),
            Intake::Durable { inbox, resumed, taken } => (inbox, resumed, taken),
        };
        // A place in the queue first, so that nothing is stored that the bot has no room for.
        let permit = match self.sender.try_reserve() {
            Ok(permit) => permit,
            Err(TrySendError::Full(())) => return Offer::Full,
            Err(TrySendError::Closed(())) => return Offer::Stopped,
        };
        if !resumed.load(Ordering::Acquire) {
            return Offer::NotReady;
        }
        // JSON that decoded is UTF-8, so this borrows.
        let payload = String::from_utf8_lossy(body);
        match inbox.store_one(&update, &payload).await {
            Ok(true) => {
                taken.lock().insert(update.id.0);
                permit.send(update);
                Offer::Accepted
            }
            Ok(false) => Offer::Duplicate,
            Err(e) => {
                // While the database is away every delivery fails: one line per period, not one per request.
                static STORE_FAILED: Sampler = Sampler::new(Duration::from_secs(10));
                metrics::inbox_store_failure(self.bot_id.as_str());
                if let Some(suppressed) = STORE_FAILED.sample() {
                    warn!(bot_id = %self.bot_id, error = %e, suppressed, "could not store a webhook delivery; answered 503");
                }
                Offer::Unavailable
            }
        }
    }

    /// Whether the bot stopped here: its queue takes nothing more.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Queues the update `id` that another replica stored in the shared inbox for this bot (a delivery that the
    /// load balancer sent there), unless it was taken already or is no longer pending. Left pending when the
    /// queue is full or the database cannot be read: [`WebhookInbox::sweep`] or the next start takes it.
    pub async fn pick_up(&self, id: i64) {
        let Intake::Durable { inbox, resumed, taken } = &self.intake else { return };
        let Ok(short) = u32::try_from(id) else { return };
        if taken.lock().contains(short) {
            return;
        }
        // Before the last run's updates are resumed, the sweep after it takes this one.
        let taken = resumed.load(Ordering::Acquire)
            && match inbox.pending_one(id).await {
                Ok(Some(update)) => self.take(update, taken),
                Ok(None) => true,
                Err(e) => {
                    warn!(bot_id = %self.bot_id, update_id = id, error = %e, "could not read a relayed update");
                    false
                }
            };
        if !taken {
            self.missed.store(true, Ordering::Release);
        }
    }

    /// Whether a sweep should look for relayed updates: one was missed since the last sweep, or `all`.
    pub fn missed(&self, all: bool) -> bool {
        self.missed.swap(false, Ordering::AcqRel) || all
    }

    /// Queues the pending updates stored `before` that nothing took: those whose notice was lost while this
    /// replica was not listening.
    pub async fn sweep(&self, before: chrono::DateTime<chrono::Utc>) {
        let Intake::Durable { inbox, resumed, taken } = &self.intake else { return };
        if !resumed.load(Ordering::Acquire) {
            return;
        }
        let all_taken = match inbox.pending_before(before).await {
            // Every one is offered, even after one found no room.
            Ok(updates) => updates.into_iter().map(|update| self.take(update, taken)).filter(|t| !t).count() == 0,
            Err(e) => {
                warn!(bot_id = %self.bot_id, error = %e, "could not read the inbox for relayed updates");
                false
            }
        };
        if !all_taken {
            self.missed.store(true, Ordering::Release);
        }
    }

    /// Queues an update unless it was taken already; false if the queue had no room.
    fn take(&self, update: Box<Update>, taken: &Mutex<RecentIds>) -> bool {
        // Held across the send so that a pick-up and a sweep cannot both queue it.
        let mut taken = taken.lock();
        let id = update.id.0;
        if taken.contains(id) {
            return true;
        }
        let sent = self.sender.try_send(update).is_ok();
        if sent {
            taken.insert(id);
        }
        sent
    }

    /// Lets deliveries in, once the last run's pending updates (`ids`) are dispatched.
    fn resumed(&self, ids: &[u32]) {
        if let Intake::Durable { resumed, taken, .. } = &self.intake {
            let mut taken = taken.lock();
            ids.iter().for_each(|id| taken.insert(*id));
            resumed.store(true, Ordering::Release);
        }
    }

    /// Queues an update in memory unless it was seen recently, the queue is full or the bot has stopped.
    fn queue(&self, update: Box<Update>, recent: &Mutex<RecentIds>) -> Offer {
        let id = update.id.0;
        // Held across the send so that two deliveries of one update cannot both pass the check.
        let mut recent = recent.lock();
        if recent.contains(id) {
            return Offer::Duplicate;
        }
        match self.sender.try_send(update) {
            Ok(()) => {
                recent.insert(id);
                Offer::Accepted
            }
            Err(TrySendError::Full(_)) => Offer::Full,
            Err(TrySendError::Closed(_)) => Offer::Stopped,
        }
    }
}

/// The last [`RECENT_IDS`] update ids, oldest first.
#[derive(Default)]
struct RecentIds {
    order: VecDeque<u32>,
    set: HashSet<u32>,
}

impl RecentIds {
    fn contains(&self, id: u32) -> bool {
        self.set.contains(&id)
    }

    fn insert(&mut self, id: u32) {
        if self.order.len() == RECENT_IDS
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        self.order.push_back(id);
        self.set.insert(id);
    }
}

/// Why a bot's webhook could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// `WEBHOOK_BASE_URL` is not set.
    #[error("webhook mode needs WEBHOOK_BASE_URL")]
    NoBaseUrl,
    /// The base URL and the bot's path do not make a URL.
    #[error("invalid webhook URL {url:?}: {cause}")]
    BadUrl {
        /// The URL as put together.
        url: String,
        /// Why it does not parse.
        cause: String,
    },
    /// The bot's secret could not be read or stored.
    #[error("could not get the webhook secret: {0}")]
    Secret(String),
    /// Telegram refused setWebhook, or could not be reached.
    #[error("setWebhook failed: {0}")]
    SetWebhook(CallFailure),
}

/// A webhook bot's receiving side, set up and waiting to run.
pub(crate) struct Opened {
    receiver: mpsc::Receiver<Box<Update>>,
    capacity: usize,
    entrance: Arc<WebhookInbox>,
    durable: Option<Arc<Inbox>>,
}

/// Registers the bot's inbox at its path (keeping deliveries in `durable` when given) and sets its webhook. On
/// failure the path is no longer served.
pub(crate) async fn open(
    webhooks: &Webhooks,
    bot: &BotHandle,
    durable: Option<Arc<Inbox>>,
) -> Result<Opened, WebhookError> {
    let secret = secret(webhooks, bot).await?;
    let (sender, receiver) = mpsc::channel(webhooks.inbox_capacity);
    let intake = match &durable {
        Some(inbox) => {
            Intake::Durable { inbox: inbox.clone(), resumed: AtomicBool::new(false), taken: Mutex::default() }
        }
        None => Intake::Memory(Mutex::default()),
    };
    let missed = AtomicBool::new(false);
    let entrance = Arc::new(WebhookInbox { bot_id: bot.id.clone(), secret: secret.clone(), sender, intake, missed });
    // Served before setWebhook, so Telegram's first push finds the path.
    webhooks.register(Webhooks::path_of(&bot.config), entrance.clone());
    if let Err(reason) = set_webhook(webhooks, bot, &secret).await {
        webhooks.forget(&bot.id);
        return Err(reason);
    }
    Ok(Opened { receiver, capacity: webhooks.inbox_capacity, entrance, durable })
}

/// Calls setWebhook again for a bot reloaded in place, whose plugins may handle other update types.
pub(crate) async fn refresh(webhooks: &Webhooks, bot: &BotHandle) -> Result<(), WebhookError> {
    let secret = secret(webhooks, bot).await?;
    set_webhook(webhooks, bot, &secret).await
}

async fn secret(webhooks: &Webhooks, bot: &BotHandle) -> Result<WebhookSecret, WebhookError> {
    webhooks.secrets.get_or_create(&bot.id).await.map_err(|e| WebhookError::Secret(bot.redact(format!("{e:#}"))))
}

/// setWebhook with the bot's URL, secret, `max_connections` and the update types its plugins handle.
async fn set_webhook(webhooks: &Webhooks, bot: &BotHandle, secret: &WebhookSecret) -> Result<(), WebhookError> {
    let url = webhooks.url_of(&bot.config)?;
    let max_connections = bot.config.webhook.max_connections.clamp(1, 100) as u8;
    let payload = SetWebhook::new(url.clone())
        .secret_token(secret.expose())
        .max_connections(max_connections)
        .allowed_updates(allowed_updates(bot));
    bot.api.call(&payload).await.map_err(|e| WebhookError::SetWebhook(CallFailure::of(&e, &bot.config.token)))?;
    info!(bot_id = %bot.id, url = %url, max_connections, "webhook set");
    Ok(())
}

impl Opened {
    /// Resumes the durable inbox's pending updates, then moves updates from the queue into the sequencer until
    /// `cancel`; then closes the queue (its path answers 503), handles what it holds (in memory only), waits for
    /// in-flight updates within `grace` and writes what finished to the durable inbox.
    pub(crate) async fn run(self, sequencer: Arc<Sequencer>, grace: Duration, cancel: CancellationToken) {
        let Opened { mut receiver, capacity, entrance, durable } = self;
        let tracker = sequencer.tracker.clone();
        if let Some(inbox) = &durable {
            let ids = super::polling::resume(&sequencer, inbox, &cancel).await;
            entrance.resumed(&ids);
        }
        'receiving: loop {
            // Take more only while fewer than `capacity` are in flight: the rest waits in the bounded inbox.
            loop {
                let progress = tracker.progress.notified();
                tokio::pin!(progress);
                progress.as_mut().enable();
                if tracker.in_flight() < capacity {
                    break;
                }
                tokio::select! {
                    () = progress => {}
                    () = cancel.cancelled() => break 'receiving,
                }
            }
            let next = tokio::select! {
                next = receiver.recv() => next,
                () = cancel.cancelled() => break,
            };
            let Some(update) = next else { break };
            tracker.track(i64::from(update.id.0));
            sequencer.dispatch(update);
        }
        receiver.close();
        // Every update in the queue was answered 200, so Telegram will not send it again: in memory it is handled
        // now; in the durable inbox it is stored, and the next start resumes it.
        if durable.is_none() {
            while let Some(update) = receiver.recv().await {
                tracker.track(i64::from(update.id.0));
                sequencer.dispatch(update);
            }
        }
        if !sequencer.drained_within(grace).await {
            let bot_id = sequencer.runtime().bot.id.clone();
            warn!(%bot_id, in_flight = tracker.in_flight(), "webhook updates still in flight after the grace period were abandoned");
            sequencer.abort();
        }
        if let Some(inbox) = durable {
            inbox.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbox(sender: mpsc::Sender<Box<Update>>) -> WebhookInbox {
        WebhookInbox {
            bot_id: BotId::parse("shop").unwrap(),
            secret: WebhookSecret::parse("s3cret").unwrap(),
            sender,
            intake: Intake::Memory(Mutex::default()),
            missed: AtomicBool::new(false),
        }
    }

    fn update(id: u32) -> Box<Update> {
        serde_json::from_value(serde_json::json!({"update_id": id, "unknown_kind": {}})).unwrap()
    }

    #[tokio::test]
    async fn an_inbox_in_memory_takes_each_update_once_and_refuses_when_full_or_stopped() {
        let (sender, mut receiver) = mpsc::channel(2);
        let inbox = inbox(sender);
        assert!(inbox.secret_matches(b"s3cret"));
        assert!(!inbox.secret_matches(b"s3cre"));
        assert_eq!(inbox.offer(update(1), b"").await, Offer::Accepted);
        // Bad input: the same update again (Telegram retrying).
        assert_eq!(inbox.offer(update(1), b"").await, Offer::Duplicate);
        assert_eq!(inbox.offer(update(2), b"").await, Offer::Accepted);
        // Bad input: a third update while two wait.
        assert_eq!(inbox.offer(update(3), b"").await, Offer::Full);
        assert_eq!(receiver.try_recv().unwrap().id.0, 1);
        // Refused while full, so not remembered: its retry is taken.
        assert_eq!(inbox.offer(update(3), b"").await, Offer::Accepted);
        receiver.close();
        assert_eq!(inbox.offer(update(4), b"").await, Offer::Stopped);
        // What was queued before the close still comes out.
        assert_eq!(receiver.try_recv().unwrap().id.0, 2);
        assert_eq!(receiver.try_recv().unwrap().id.0, 3);
    }

    #[test]
    fn the_recent_window_forgets_the_oldest() {
        let mut recent = RecentIds::default();
        for id in 0..RECENT_IDS as u32 + 10 {
            recent.insert(id);
        }
        assert_eq!(recent.set.len(), RECENT_IDS);
        assert!(!recent.contains(9) && recent.contains(10) && recent.contains(RECENT_IDS as u32 + 9));
    }
}
