//! Webhook deliveries with replicas: a load balancer sends each to any replica. One that does not run the bot
//! relays it: stores it in the shared inbox, announces it with `NOTIFY multibot_fleet 'inbox:<bot>:<update_id>'`
//! and answers 200. The replica running the bot picks it up from the inbox and handles it in its chat's order.
//! An update it could not pick up at once (its notice was lost while it reconnected to the database, the bot was
//! still resuming, its queue was full) is found by a sweep of the bot's pending updates at the next lease round.

use std::time::Duration;

use teloxide_core::types::Update;
use tracing::warn;

use super::BotManager;
use crate::{
    config::{BotId, InboxMode, Mode},
    runtime::{
        order_key,
        webhook::{Offer, WebhookInbox, Webhooks},
    },
    storage::{InboxUpdate, now},
    telemetry::{Sampler, metrics},
};

/// How a relayed update's notice starts.
pub(crate) const NOTICE: &str = "inbox:";

/// How old a pending update must be for a sweep to take it: one just stored by the owner itself is being queued.
const SWEEP_AGE: Duration = Duration::from_secs(2);

impl BotManager {
    /// The webhook bot served at `path` (after `/webhook`) whose deliveries this replica can relay: with
    /// replicas and the durable inbox, any enabled webhook bot of the configuration.
    pub fn relay_target(&self, path: &str) -> Option<BotId> {
        self.replication.as_ref()?;
        if self.deps.settings.inbox != InboxMode::Database || self.deps.storage.commands().is_none() {
            return None;
        }
        let statuses = self.statuses.lock();
        let mut webhook_bots = statuses.values().filter(|e| e.config.mode == Mode::Webhook && e.config.enabled);
        webhook_bots.find(|e| Webhooks::path_of(&e.config) == path).map(|e| e.config.id.clone())
    }

    /// Stores a delivery for `bot` (`body`: the request's body, decoded as `update`) in the shared inbox and tells
    /// the replica running it.
    pub async fn relay(&self, bot: &BotId, update: &Update, body: &[u8]) -> Offer {
        let id = i64::from(update.id.0);
        let payload = String::from_utf8_lossy(body).into_owned();
        let row = InboxUpdate { update_id: id, chat_key: order_key(update), payload };
        match self.deps.storage.inbox().insert(bot.as_str(), &[row], now()).await {
            Ok(new) if new.is_empty() => Offer::Duplicate,
            Ok(_) => {
                if let Some(commands) = self.deps.storage.commands()
                    && let Err(e) = commands.announce(&format!("{NOTICE}{bot}:{id}")).await
                {
                    // Stored: the owner's sweep finds it.
                    warn!(bot_id = %bot, update_id = id, error = %e, "could not announce a relayed update");
                }
                Offer::Accepted
            }
            Err(e) => {
                static STORE_FAILED: Sampler = Sampler::new(Duration::from_secs(10));
                metrics::inbox_store_failure(bot.as_str());
                if let Some(suppressed) = STORE_FAILED.sample() {
                    warn!(bot_id = %bot, error = %e, suppressed, "could not store a relayed webhook delivery; answered 503");
                }
                Offer::Unavailable
            }
        }
    }

    /// Takes the update of a notice (`<bot>:<update_id>`) if its bot runs here.
    pub(crate) async fn pick_up(&self, notice: &str) {
        let Some((bot, id)) = notice.rsplit_once(':') else { return };
        let (Ok(bot), Ok(id)) = (BotId::parse(bot), id.parse::<i64>()) else { return };
        if let Some(entrance) = self.entrance(&bot) {
            entrance.pick_up(id).await;
        }
    }

    /// Sweeps the inbox of every webhook bot running here that missed a relayed update (`all`: every one, after
    /// notices may have been lost).
    pub(crate) async fn sweep_relayed(&self, all: bool) {
        let Some(webhooks) = &self.deps.webhooks else { return };
        let before = now() - chrono::Duration::from_std(SWEEP_AGE).unwrap_or_default();
        for entrance in webhooks.open_entrances() {
            if entrance.missed(all) {
                entrance.sweep(before).await;
            }
        }
    }

    /// The entrance of a webhook bot running here.
    fn entrance(&self, bot: &BotId) -> Option<std::sync::Arc<WebhookInbox>> {
        let webhooks = self.deps.webhooks.as_ref()?;
        let config = self.statuses.lock().get(bot).map(|e| e.config.clone())?;
        let entrance = webhooks.inbox(&Webhooks::path_of(&config)).filter(|e| !e.is_closed())?;
        (entrance.bot_id() == bot).then_some(entrance)
    }
}
