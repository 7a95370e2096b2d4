//! The admin bot's broadcast commands: `/broadcast <bot_id> [days]`, then the message to send (its text and
//! formatting are kept as Telegram's entities), a preview with Confirm/Cancel, and a progress message edited as the
//! broadcast goes; `/broadcasts` lists them, `/broadcast_pause`, `/broadcast_resume` and `/broadcast_cancel <id>`
//! control one.
//!
//! The message may be a photo, video, animation, document, audio or voice note with its caption: a file id belongs
//! to the bot that received the file, so the admin bot downloads the file (up to the Bot API's
//! [`DOWNLOAD_LIMIT`]) and the broadcast keeps its bytes for the broadcasting bot to upload once.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use teloxide_core::{
    payloads::{SendMessage, SendMessageSetters},
    types::{ChatId, InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageId},
};
use tracing::warn;

use super::{Admin, Click};
use crate::{
    fleet::broadcasts::{BroadcastAction, average_rate, describe, media_of},
    plugins::Ctx,
    storage::{BroadcastMessage, BroadcastState, NewBroadcast, Upload},
    telegram::{DOWNLOAD_LIMIT, FileOptions, InputFile},
};

/// What the admin bot can broadcast, for its answers.
const ACCEPTED: &str = "a text, photo, video, animation (GIF), document, audio or voice note";

/// How often the progress message is edited.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// A broadcast an admin is composing: chosen with `/broadcast`, waiting for its message, then for Confirm.
pub(super) struct Draft {
    bot: String,
    active_days: Option<u32>,
    message: Option<BroadcastMessage>,
    /// The question's chat and message, once asked; the button must come from there.
    question: Option<(ChatId, MessageId, String)>,
    asked: Instant,
}

impl Admin {
    /// `/broadcast <bot_id> [days]`: the next message the admin sends is what goes to the bot's users.
    pub(super) async fn broadcast(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        if !self.allowed(&cx).await? {
            return Ok(());
        }
        let Some(bot) = self.target(&cx).await? else { return Ok(()) };
        let active_days = cx.command_args().split_whitespace().nth(1).and_then(|d| d.parse().ok());
        let admin = cx.user().map_or(0, |u| u.id.0 as i64);
        let users = self.fleet.storage.users().get_user_count(bot.id.as_str()).await.unwrap_or_default();
        let draft =
            Draft { bot: bot.id.to_string(), active_days, message: None, question: None, asked: Instant::now() };
        self.drafts.lock().insert(admin, draft);
        let within = active_days.map_or(String::new(), |d| format!(", active in the last {d} days"));
        let text = format!(
            "📣 Broadcast from {} to its users ({users} known{within}, not counting those who blocked it).\n\
             Send the message now ({ACCEPTED}; its formatting is kept), or /cancel.",
            bot.id
        );
        self.say(&cx, text).await
    }

    /// A message from an admin composing a broadcast: keeps it, previews it and asks to confirm.
    pub(super) async fn broadcast_message(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let admin = cx.user().map_or(0, |u| u.id.0 as i64);
        let composing = self.drafts.lock().get(&admin).is_some_and(|d| d.message.is_none());
        if !self.fleet.allowed.contains(&admin) || !composing {
            return Ok(());
        }
        let Some(message) = cx.message() else { return Ok(()) };
        let Some(broadcast) = self.broadcast_of(&cx, message).await? else { return Ok(()) };
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let Some(bot) = self.drafts.lock().get(&admin).map(|d| d.bot.clone()) else { return Ok(()) };
        // The preview: the message as the users will see it (a file as the admin bot's own file id).
        if let Some(text) = message.text() {
            let mut preview = SendMessage::new(message.chat.id, text.to_owned());
            if let Some(entities) = message.entities() {
                preview = preview.entities(entities.to_vec());
            }
            cx.api().call(&preview).await?;
        } else if let Some(media) = media_of(message) {
            let options = FileOptions {
                caption: message.caption().map(str::to_owned),
                parse_mode: Some(None),
                caption_entities: message.caption_entities().map(<[_]>::to_vec),
                reply_markup: None,
            };
            cx.reply_file(media.kind, InputFile::Id(media.file_id), options).await?;
        }
        let keyboard = InlineKeyboardMarkup::new([[
            InlineKeyboardButton::callback("✅ Confirm", format!("bc:ok:{nonce}")),
            InlineKeyboardButton::callback("❌ Cancel", format!("bc:no:{nonce}")),
        ]]);
        let question = cx.reply(format!("Send this to the users of {bot}?")).plain().keyboard(keyboard).await?;
        if let Some(draft) = self.drafts.lock().get_mut(&admin) {
            draft.message = Some(broadcast);
            draft.question = Some((question.chat, question.id, nonce));
            draft.asked = Instant::now();
        }
        Ok(())
    }

    /// What `message` broadcasts: its text, or its file downloaded; `None` after telling the admin why it cannot be
    /// broadcast.
    async fn broadcast_of(&self, cx: &Ctx, message: &Message) -> anyhow::Result<Option<BroadcastMessage>> {
        if let Some(text) = message.text() {
            let entities = message.entities().filter(|e| !e.is_empty()).map(serde_json::to_string).transpose()?;
            return Ok(Some(BroadcastMessage::Text { text: text.to_owned(), parse_mode: None, entities }));
        }
        let Some(media) = media_of(message) else {
            let why = format!("{} cannot be broadcast from here: send {ACCEPTED}, or /cancel.", what(message));
            self.say(cx, why).await?;
            return Ok(None);
        };
        if media.size > DOWNLOAD_LIMIT {
            let mb = |bytes: u64| bytes.div_ceil(1024 * 1024);
            let why = format!(
                "This {} is {} MB: a bot can download at most {} MB, so it cannot be broadcast from here. Send a \
                 smaller file, or /cancel.",
                media.kind.name(),
                mb(media.size),
                mb(DOWNLOAD_LIMIT)
            );
            self.say(cx, why).await?;
            return Ok(None);
        }
        let data = match cx.download(&media.file_id, DOWNLOAD_LIMIT).await {
            Ok(data) => data,
            Err(e) => {
                warn!(error = %e, "cannot download a file to broadcast");
                self.say(
                    cx,
                    format!("❌ Could not download the {}: {e}. Send it again, or /cancel.", media.kind.name()),
                )
                .await?;
                return Ok(None);
            }
        };
        let entities = message.caption_entities().filter(|e| !e.is_empty()).map(serde_json::to_string).transpose()?;
        Ok(Some(BroadcastMessage::Media {
            kind: media.kind,
            caption: message.caption().map(str::to_owned),
            caption_entities: entities,
            file_id: None,
            upload: Some(Upload::new(media.file_name, data)),
        }))
    }

    /// The Confirm or Cancel button under a broadcast's preview.
    pub(super) async fn broadcast_confirm(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let Some(Click { choice, nonce, user: admin, on: clicked_on }) = self.click(&cx).await? else { return Ok(()) };
        let taken = {
            let mut drafts = self.drafts.lock();
            match drafts.get(&admin) {
                Some(d) if d.question.as_ref().is_some_and(|(c, m, n)| Some((*c, *m)) == clicked_on && *n == nonce) => {
                    if d.asked.elapsed() > self.fleet.confirm_timeout {
                        drafts.remove(&admin);
                        Err("This confirmation expired; start again with /broadcast.")
                    } else {
                        Ok(drafts.remove(&admin))
                    }
                }
                _ => Err("This button expired or belongs to another message or admin."),
            }
        };
        let draft = match taken {
            Ok(Some(draft)) => draft,
            Ok(None) => return Ok(()),
            Err(why) => {
                cx.answer_callback(Some(why)).await?;
                return Ok(());
            }
        };
        let Some(message) = draft.message else { return Ok(()) };
        if choice != "ok" {
            cx.answer_callback(Some("Cancelled")).await?;
            cx.edit_text(format!("Broadcast from {}: cancelled.", draft.bot), None).await?;
            return Ok(());
        }
        cx.answer_callback(Some("Starting…")).await?;
        let new = NewBroadcast {
            bot_id: draft.bot.clone(),
            message,
            active_days: draft.active_days,
            created_by: Some(admin),
        };
        let broadcast = match self.fleet.broadcasts.start(new).await {
            Ok(broadcast) => broadcast,
            Err(e) => {
                cx.edit_text(format!("❌ Could not start the broadcast: {e}"), None).await?;
                return Ok(());
            }
        };
        let control =
            format!("\n/broadcast_pause {id} · /broadcast_resume {id} · /broadcast_cancel {id}", id = broadcast.id);
        cx.edit_text(format!("{}{control}", describe(&broadcast, None)), None).await?;
        // The progress message, edited until the broadcast ends (and kept going by whoever holds the bot).
        let Some((chat, message)) = clicked_on else { return Ok(()) };
        let (api, storage, shutdown, id) =
            (cx.api().clone(), self.fleet.storage.clone(), self.shutdown.clone(), broadcast.id);
        self.tasks.spawn(async move {
            let mut last: Option<(Instant, i64)> = None;
            let mut shown = String::new();
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(PROGRESS_EVERY) => {}
                }
                let Ok(Some(b)) = storage.broadcasts().get(id).await else { continue };
                let done = b.sent + b.failed + b.blocked;
                let rate = match last {
                    Some((at, before)) if done > before => Some((done - before) as f64 / at.elapsed().as_secs_f64()),
                    _ => average_rate(&b),
                };
                last = Some((Instant::now(), done));
                let text = format!("{}{}", describe(&b, rate), if b.state.is_final() { "" } else { &control });
                if text != shown {
                    if let Err(e) = api.edit_message_text(chat, message, text.clone(), None).await {
                        warn!(broadcast_id = id, error = %e, "cannot edit the broadcast's progress message");
                    }
                    shown = text;
                }
                if b.state.is_final() {
                    return;
                }
            }
        });
        Ok(())
    }

    /// `/cancel`: drops the broadcast the admin is composing.
    pub(super) async fn cancel_draft(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        if !self.allowed(&cx).await? {
            return Ok(());
        }
        let admin = cx.user().map_or(0, |u| u.id.0 as i64);
        let text = match self.drafts.lock().remove(&admin) {
            Some(draft) => format!("Broadcast from {}: cancelled.", draft.bot),
            None => "Nothing to cancel.".to_owned(),
        };
        self.say(&cx, text).await
    }

    /// `/broadcasts`: the latest broadcasts and their progress.
    pub(super) async fn broadcasts(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        if !self.allowed(&cx).await? {
            return Ok(());
        }
        let list = self.fleet.storage.broadcasts().list(None, 10).await?;
        if list.is_empty() {
            return self.say(&cx, "No broadcasts yet. Start one with /broadcast <bot_id>.".to_owned()).await;
        }
        let texts: Vec<String> = list.iter().map(|b| describe(b, average_rate(b))).collect();
        self.say(&cx, texts.join("\n\n")).await
    }

    /// `/broadcast_pause <id>`, `/broadcast_resume <id>`, `/broadcast_cancel <id>`.
    pub(super) async fn broadcast_control(self: Arc<Self>, cx: Ctx, action: BroadcastAction) -> anyhow::Result<()> {
        if !self.allowed(&cx).await? {
            return Ok(());
        }
        let Some(id) = cx.command_args().split_whitespace().next().and_then(|w| w.trim_start_matches('#').parse().ok())
        else {
            return self
                .say(&cx, format!("Which broadcast? /broadcast_{} <id> (see /broadcasts)", action.as_str()))
                .await;
        };
        let admin = cx.user().map(|u| u.id.0 as i64);
        match self.fleet.broadcasts.control(id, action, admin).await {
            Ok(b) => self.say(&cx, describe(&b, None)).await,
            Err(e) => self.say(&cx, format!("❌ {e}")).await,
        }
    }

    /// The running or paused broadcasts of a bot, for `/status <bot>`.
    pub(super) async fn broadcast_status(&self, bot: &str) -> Option<String> {
        let list = self.fleet.storage.broadcasts().list(Some(bot), 5).await.ok()?;
        let active: Vec<String> = list
            .iter()
            .filter(|b| matches!(b.state, BroadcastState::Running | BroadcastState::Paused))
            .map(|b| describe(b, average_rate(b)))
            .collect();
        (!active.is_empty()).then(|| active.join("\n"))
    }
}

/// What a message that cannot be broadcast is, for the answer that says so.
fn what(message: &Message) -> &'static str {
    if message.sticker().is_some() {
        "A sticker"
    } else if message.video_note().is_some() {
        "A video note"
    } else if message.poll().is_some() {
        "A poll"
    } else if message.location().is_some() || message.venue().is_some() {
        "A location"
    } else if message.contact().is_some() {
        "A contact"
    } else if message.dice().is_some() {
        "A dice"
    } else {
        "This message"
    }
}
