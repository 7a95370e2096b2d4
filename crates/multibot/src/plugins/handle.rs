//! [`BotHandle`]: the bot a plugin's handlers work for, as they see it (its id, client, router, FSM, database and
//! the [`Notifier`] to its admins), and nothing of how updates reach it.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::Router;
use crate::{
    config::{BotConfig, BotId},
    fsm::FsmStorage,
    storage::{Recorder, Storage},
    telegram::BotApi,
};

/// One running bot, as its plugins see it.
pub struct BotHandle {
    /// The YAML id.
    pub id: BotId,
    /// The Telegram username (from getMe).
    pub username: String,
    /// The Bot API client.
    pub api: BotApi,
    /// The handlers.
    pub router: Arc<Router>,
    /// FSM storage.
    pub fsm: Arc<dyn FsmStorage>,
    /// The configuration it runs with.
    pub config: Arc<BotConfig>,
    /// The database.
    pub storage: Storage,
    /// Background writes: user tracking, events, bot status.
    pub recorder: Recorder,
    /// Messages for the admins (through the admin bot).
    pub notifier: Notifier,
}

impl BotHandle {
    /// Removes the token from a message, should any library have put it there.
    pub(crate) fn redact(&self, message: String) -> String {
        self.config.token.redact(message)
    }
}

/// Messages for the admins; the admin bot forwards them, and they are dropped when there is none.
#[derive(Clone)]
pub struct Notifier(broadcast::Sender<String>);

impl Default for Notifier {
    fn default() -> Notifier {
        Notifier(broadcast::channel(256).0)
    }
}

impl Notifier {
    /// Sends `text` to every admin (if an admin bot runs).
    pub fn notify(&self, text: impl Into<String>) {
        let _ = self.0.send(text.into());
    }

    /// Receives what is sent from now on (the admin bot forwards it).
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.0.subscribe()
    }
}
