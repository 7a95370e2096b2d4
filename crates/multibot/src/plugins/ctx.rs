//! [`Ctx`]: what a handler receives for one update. It reads the update, replies with the bot's default
//! `settings`, edits and answers callbacks, and reaches the conversation's FSM ([`Fsm`], `cx.fsm()`).
//!
//! - `updates`: the payload of each other update type (`cx.inline_query()`, ...) and the answers they need.

mod updates;

use std::{
    future::{Future, IntoFuture},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Map, Value};
use teloxide_core::types::{
    CallbackQuery, ChatId, InlineKeyboardMarkup, Message, MessageKind, ParseMode, ReplyMarkup, Update, UpdateKind, User,
};

use super::{
    BotHandle,
    keyboard::check_keyboard,
    router::{CommandInfo, parse_command},
};
use crate::{
    config::{BotId, FsmStrategy},
    fsm::{FsmKey, FsmRecord},
    storage::{PluginStore, Storage},
    telegram::{ApiCallError, BotApi, DOWNLOAD_LIMIT, FileKind, FileOptions, InputFile, SendOptions, Sent},
};

/// A failed handler, as error hooks see it.
#[derive(Debug, Clone)]
pub struct HandlerError {
    /// Short id shown to the user and carried by the log line.
    pub id: String,
    /// The plugin whose handler failed.
    pub plugin: String,
    /// What went wrong (never containing the token).
    pub message: String,
}

/// One update being handled, and the bot it came to.
///
/// Every handler receives one. It reads the update ([`Ctx::text`], [`Ctx::user`], [`Ctx::callback_data`], ...),
/// answers it ([`Ctx::reply`], [`Ctx::edit_text`], [`Ctx::answer_callback`]), and reaches the conversation's
/// FSM ([`Ctx::fsm`]), the plugins' stores ([`Ctx::plugin_store`]) and the Bot API ([`Ctx::api`]).
///
/// A reply with a keyboard and a parse mode other than the bot's default:
///
/// ```rust
/// use std::sync::Arc;
///
/// use multibot::prelude::*;
///
/// # struct Shop;
/// impl Shop {
///     /// `/menu`: a question in bold, two buttons under it.
///     async fn menu(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
///         let keyboard = InlineKeyboardMarkup::new([[
///             InlineKeyboardButton::callback("Prices", "menu:prices"),
///             InlineKeyboardButton::callback("Opening hours", "menu:hours"),
///         ]]);
///         cx.reply("<b>What would you like to know?</b>").parse_mode(ParseMode::Html).keyboard(keyboard).await?;
///         Ok(())
///     }
///
///     /// A press on either button (`CallbackFilter::prefix("menu:")`): the answer replaces the menu.
///     async fn menu_choice(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
///         let answer = match cx.callback_data() {
///             Some("menu:prices") => "Everything is 5 EUR.",
///             _ => "Open 9:00 to 18:00, Monday to Saturday.",
///         };
///         cx.answer_callback(None).await?;
///         cx.edit_text(answer, None).await
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Ctx {
    inner: Arc<Inner>,
}

struct Inner {
    bot: Arc<BotHandle>,
    update: Box<Update>,
    fsm: Mutex<Option<FsmRecord>>,
    answered: AtomicBool,
    /// Chats whose user Telegram said blocked the bot while this update was handled: nothing more goes there.
    blocked: Mutex<Vec<ChatId>>,
}

impl Ctx {
    pub(crate) fn new(bot: Arc<BotHandle>, update: Box<Update>) -> Ctx {
        Ctx {
            inner: Arc::new(Inner {
                bot,
                update,
                fsm: Mutex::new(None),
                answered: AtomicBool::new(false),
                blocked: Mutex::default(),
            }),
        }
    }

    /// The bot's id from its YAML.
    pub fn bot_id(&self) -> &BotId {
        &self.inner.bot.id
    }

    /// The bot's Telegram username.
    pub fn bot_username(&self) -> &str {
        &self.inner.bot.username
    }

    /// The bot's Bot API client, for anything the helpers below do not cover.
    pub fn api(&self) -> &BotApi {
        &self.inner.bot.api
    }

    /// The database (the spec's `db`): `cx.db().users().get_user_count(cx.bot_id().as_str())`.
    pub fn db(&self) -> &Storage {
        &self.inner.bot.storage
    }

    /// The persistent store of `plugin` in this bot: the same as that plugin's
    /// [`PluginContext::store`](crate::plugins::PluginContext::store), which has an example.
    pub fn plugin_store(&self, plugin: &str) -> PluginStore {
        self.db().plugin_store(self.bot_id().as_str(), plugin)
    }

    /// Deprecated: [`Ctx::plugin_store`].
    #[deprecated(note = "use `cx.plugin_store(plugin)`")]
    pub fn plugin_state(&self, plugin: &str) -> PluginStore {
        self.plugin_store(plugin)
    }

    /// The commands the bot's plugins registered, in plugin order.
    pub fn commands(&self) -> &[CommandInfo] {
        self.inner.bot.router.commands()
    }

    /// The background writer (events, user tracking).
    pub(crate) fn recorder(&self) -> &crate::storage::Recorder {
        &self.inner.bot.recorder
    }

    /// Sends `text` to the fleet's admins through the admin bot (`ADMIN_ALLOWED_USERS`), if one runs.
    pub fn notify_admins(&self, text: impl Into<String>) {
        self.inner.bot.notifier.notify(text);
    }

    /// The bot's `access.admin_users`.
    pub fn admin_users(&self) -> &[i64] {
        &self.inner.bot.config.access.admin_users
    }

    /// The update.
    pub fn update(&self) -> &Update {
        &self.inner.update
    }

    /// The message of a message-like update (a message, a channel post, a business message, or a new version of
    /// one), or the message of a callback query's button.
    pub fn message(&self) -> Option<&Message> {
        match &self.inner.update.kind {
            UpdateKind::CallbackQuery(q) => q.message.as_ref().and_then(|m| m.regular_message()),
            _ => self.posted(),
        }
    }

    /// The message of a message-like update.
    fn posted(&self) -> Option<&Message> {
        match &self.inner.update.kind {
            UpdateKind::Message(m)
            | UpdateKind::EditedMessage(m)
            | UpdateKind::ChannelPost(m)
            | UpdateKind::EditedChannelPost(m)
            | UpdateKind::BusinessMessage(m)
            | UpdateKind::EditedBusinessMessage(m) => Some(m),
            _ => None,
        }
    }

    /// The callback query, for callback updates.
    pub fn callback(&self) -> Option<&CallbackQuery> {
        match &self.inner.update.kind {
            UpdateKind::CallbackQuery(q) => Some(q),
            _ => None,
        }
    }

    /// The callback data, for callback updates.
    pub fn callback_data(&self) -> Option<&str> {
        self.callback().and_then(|q| q.data.as_deref())
    }

    /// The text of a message-like update.
    pub fn text(&self) -> Option<&str> {
        self.posted().and_then(Message::text)
    }

    /// The arguments after a command (`/echo hello` gives `hello`); empty when there are none.
    pub fn command_args(&self) -> &str {
        self.text().and_then(|t| parse_command(t, self.bot_username())).map_or("", |(_, args)| args)
    }

    /// Who caused the update: the sender, the user who pressed, asked, paid, voted, reacted or changed a
    /// membership; `None` for updates without one (channel posts, polls, anonymous reactions and counts).
    pub fn user(&self) -> Option<&User> {
        self.inner.update.from()
    }

    /// The chat the update belongs to: for callbacks, the chat of the button's message, else the user's; for a
    /// business connection, the private chat with its user; `None` for updates outside any chat (inline queries
    /// and chosen results, shipping and pre-checkout queries, paid media purchases, polls and poll answers).
    pub fn chat_id(&self) -> Option<ChatId> {
        match &self.inner.update.kind {
            UpdateKind::CallbackQuery(q) => {
                Some(q.message.as_ref().map_or(ChatId(q.from.id.0 as i64), |m| m.chat().id))
            }
            UpdateKind::BusinessConnection(c) => Some(ChatId(c.user_chat_id.0 as i64)),
            _ => self.inner.update.chat().map(|c| c.id),
        }
    }

    /// Whether Telegram said, while this update was handled, that the user of `chat` blocked the bot (a send
    /// there then fails without calling Telegram).
    pub fn is_blocked(&self, chat: ChatId) -> bool {
        self.inner.blocked.lock().contains(&chat)
    }

    /// Replies in the update's chat with the bot's default `settings` (to a business message, on behalf of the
    /// business account); `.keyboard(..)`, `.parse_mode(..)`, `.plain()` adjust it, `.await` sends it.
    pub fn reply(&self, text: impl Into<String>) -> Reply<'_> {
        let business_connection_id = match self.posted().map(|m| &m.kind) {
            Some(MessageKind::Common(common)) => common.business_connection_id.clone(),
            _ => None,
        };
        let options = SendOptions { business_connection_id, ..SendOptions::default() };
        Reply { cx: self, chat: self.chat_id(), text: text.into(), options }
    }

    /// Sends to any chat with the bot's default `settings`.
    pub fn send(&self, chat: ChatId, text: impl Into<String>) -> Reply<'_> {
        Reply { cx: self, chat: Some(chat), text: text.into(), options: SendOptions::default() }
    }

    /// Replaces the text (and keyboard) of the callback's message. A keyboard Telegram would refuse (see
    /// [`check_keyboard`]) is an error and nothing is sent.
    pub async fn edit_text(
        &self,
        text: impl Into<String>,
        keyboard: Option<InlineKeyboardMarkup>,
    ) -> anyhow::Result<()> {
        let message = self.message().ok_or_else(|| anyhow::anyhow!("no message to edit in this update"))?;
        keyboard.as_ref().map(check_keyboard).transpose()?;
        self.api().edit_message_text(message.chat.id, message.id, text.into(), keyboard).await?;
        Ok(())
    }

    /// Deletes the update's message (for callbacks, the button's message).
    pub async fn delete_message(&self) -> anyhow::Result<()> {
        let message = self.message().ok_or_else(|| anyhow::anyhow!("no message to delete in this update"))?;
        self.api().delete_message(message.chat.id, message.id).await?;
        Ok(())
    }

    /// Sends a file to the update's chat as `kind` (a photo, a document, ...): bytes made in memory, a local file,
    /// a `file_id` or a URL ([`InputFile`]); `options` carry the caption and a keyboard.
    pub async fn reply_file(&self, kind: FileKind, file: InputFile, options: FileOptions) -> anyhow::Result<Message> {
        let chat = self.chat_id().ok_or_else(|| anyhow::anyhow!("this update has no chat to send a file to"))?;
        if let Some(ReplyMarkup::InlineKeyboard(keyboard)) = &options.reply_markup {
            check_keyboard(keyboard)?;
        }
        self.deliver(chat, self.api().send_file(chat, kind, file, options)).await
    }

    /// Downloads a file Telegram has (a user's document or photo, by its `file_id`), refusing one over `limit`
    /// bytes ([`DOWNLOAD_LIMIT`] is the Bot API's own).
    pub async fn download(&self, file_id: &str, limit: u64) -> anyhow::Result<Bytes> {
        let file = self.api().get_file(file_id).await?;
        let Some(path) = file.file_path else {
            anyhow::bail!("Telegram does not let bots download this file (over {DOWNLOAD_LIMIT} bytes?)");
        };
        Ok(self.api().download(&path, limit).await?)
    }

    /// Sends to `chat` unless its user blocked the bot during this update; a send Telegram refuses because the
    /// user blocked the bot marks them blocked in `bot_users`, and nothing more goes there.
    async fn deliver<T>(&self, chat: ChatId, send: impl Future<Output = Result<T, ApiCallError>>) -> anyhow::Result<T> {
        if self.is_blocked(chat) {
            anyhow::bail!("not sent: the user of chat {chat} blocked the bot");
        }
        let sent = send.await;
        if let Err(e) = &sent
            && e.is_blocked_by_user()
        {
            let bot = &self.inner.bot;
            bot.recorder.user_blocked(bot.id.as_str(), chat.0, true);
            self.inner.blocked.lock().push(chat);
        }
        Ok(sent?)
    }

    /// Answers the callback query, with a notification text or none.
    pub async fn answer_callback(&self, text: Option<&str>) -> anyhow::Result<()> {
        let query = self.callback().ok_or_else(|| anyhow::anyhow!("not a callback query"))?;
        if self.inner.answered.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.api().answer_callback_query(query.id.clone(), text.map(str::to_owned)).await?;
        Ok(())
    }

    /// Whether the callback was answered.
    pub(crate) fn callback_answered(&self) -> bool {
        self.inner.answered.load(Ordering::SeqCst)
    }

    /// The FSM key of this update under the bot's `fsm_strategy`.
    pub fn fsm_key(&self) -> Option<FsmKey> {
        let user = self.user()?.id.0 as i64;
        let chat = self.chat_id().map_or(user, |c| c.0);
        let (chat_id, user_id) = match self.inner.bot.config.fsm_strategy {
            FsmStrategy::GlobalUser => (user, user),
            FsmStrategy::UserInChat => (chat, user),
            FsmStrategy::Chat => (chat, chat),
        };
        Some(FsmKey { bot_id: self.bot_id().clone(), chat_id, user_id })
    }

    /// The conversation's FSM (state and data), keyed by the bot's `fsm_strategy`: `cx.fsm().state().await?`.
    ///
    /// A conversation of two questions: the state says which answer the bot waits for, a route filters on it
    /// ([`MessageFilter::state`](crate::plugins::MessageFilter::state)), and the data keeps the answers until the
    /// last one.
    ///
    /// ```rust
    /// use std::sync::Arc;
    ///
    /// use multibot::prelude::*;
    ///
    /// /// `/signup` asks for a name, then an age.
    /// struct Signup;
    /// # #[derive(Deserialize)]
    /// # struct SignupConfig {}
    ///
    /// impl Plugin for Signup {
    /// #   type Config = SignupConfig;
    /// #   fn meta() -> PluginMeta {
    /// #       PluginMeta::new("signup")
    /// #   }
    /// #   fn new(_config: SignupConfig, _cx: &PluginContext) -> anyhow::Result<Signup> {
    /// #       Ok(Signup)
    /// #   }
    ///     fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
    ///         let answer = |state: &str| MessageFilter::text().not_command().state(state);
    ///         handlers
    ///             .command("signup", "Sign up", Signup::start)
    ///             .message(answer("signup:name"), Signup::name)
    ///             .message(answer("signup:age"), Signup::age);
    ///     }
    /// }
    ///
    /// impl Signup {
    ///     async fn start(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
    ///         cx.fsm().set_state(Some("signup:name")).await?;
    ///         cx.reply("What is your name?").await?;
    ///         Ok(())
    ///     }
    ///
    ///     async fn name(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
    ///         let fsm = cx.fsm();
    ///         fsm.update_data("name", cx.text().unwrap_or_default()).await?;
    ///         fsm.set_state(Some("signup:age")).await?;
    ///         cx.reply("How old are you?").await?;
    ///         Ok(())
    ///     }
    ///
    ///     async fn age(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
    ///         let Ok(age) = cx.text().unwrap_or_default().trim().parse::<u8>() else {
    ///             // The state stays: the next text is taken as the age again.
    ///             cx.reply("Please send a number.").await?;
    ///             return Ok(());
    ///         };
    ///         let data = cx.fsm().data().await?;
    ///         let name = data.get("name").and_then(|name| name.as_str()).unwrap_or_default();
    ///         cx.reply(format!("Welcome, {name} ({age})!")).await?;
    ///         cx.fsm().clear().await
    ///     }
    /// }
    /// ```
    pub fn fsm(&self) -> Fsm<'_> {
        Fsm { cx: self }
    }

    /// Deprecated: [`Fsm::state`].
    #[deprecated(note = "use `cx.fsm().state()`")]
    pub async fn state(&self) -> anyhow::Result<Option<String>> {
        self.fsm().state().await
    }

    /// Deprecated: [`Fsm::set_state`].
    #[deprecated(note = "use `cx.fsm().set_state(..)`")]
    pub async fn set_state(&self, state: Option<&str>) -> anyhow::Result<()> {
        self.fsm().set_state(state).await
    }

    /// Deprecated: [`Fsm::data`].
    #[deprecated(note = "use `cx.fsm().data()`")]
    pub async fn data(&self) -> anyhow::Result<Map<String, Value>> {
        self.fsm().data().await
    }

    /// Deprecated: [`Fsm::update_data`].
    #[deprecated(note = "use `cx.fsm().update_data(k, v)`")]
    pub async fn update_data(&self, key: &str, value: impl Into<Value>) -> anyhow::Result<()> {
        self.fsm().update_data(key, value).await
    }

    /// Deprecated: [`Fsm::clear`].
    #[deprecated(note = "use `cx.fsm().clear()`")]
    pub async fn clear_state(&self) -> anyhow::Result<()> {
        self.fsm().clear().await
    }
}

/// The FSM of the conversation an update belongs to ([`Ctx::fsm`]): its state and data, read once per update
/// and written through to the bot's FSM storage.
pub struct Fsm<'a> {
    cx: &'a Ctx,
}

impl Fsm<'_> {
    async fn record(&self) -> anyhow::Result<FsmRecord> {
        let inner = &self.cx.inner;
        if let Some(record) = inner.fsm.lock().clone() {
            return Ok(record);
        }
        let Some(key) = self.cx.fsm_key() else {
            return Ok(FsmRecord::default());
        };
        let record = inner.bot.fsm.load(&key).await?;
        *inner.fsm.lock() = Some(record.clone());
        Ok(record)
    }

    async fn save(&self, record: FsmRecord) -> anyhow::Result<()> {
        let key = self.cx.fsm_key().ok_or_else(|| anyhow::anyhow!("this update has no user, so no FSM state"))?;
        self.cx.inner.bot.fsm.save(&key, &record).await?;
        *self.cx.inner.fsm.lock() = Some(record);
        Ok(())
    }

    /// The conversation's state.
    pub async fn state(&self) -> anyhow::Result<Option<String>> {
        Ok(self.record().await?.state)
    }

    /// Sets (or with `None` clears) the state, keeping the data.
    pub async fn set_state(&self, state: Option<&str>) -> anyhow::Result<()> {
        let mut record = self.record().await?;
        record.state = state.map(str::to_owned);
        self.save(record).await
    }

    /// The conversation's data.
    pub async fn data(&self) -> anyhow::Result<Map<String, Value>> {
        Ok(self.record().await?.data)
    }

    /// Sets one data field.
    pub async fn update_data(&self, key: &str, value: impl Into<Value>) -> anyhow::Result<()> {
        let mut record = self.record().await?;
        record.data.insert(key.to_owned(), value.into());
        self.save(record).await
    }

    /// Clears the state and the data.
    pub async fn clear(&self) -> anyhow::Result<()> {
        self.save(FsmRecord::default()).await
    }
}

/// A message about to be sent; `.await` sends it and gives the sent message ([`Sent`]: its id and chat, the rest
/// parsed on demand).
pub struct Reply<'a> {
    cx: &'a Ctx,
    chat: Option<ChatId>,
    text: String,
    options: SendOptions,
}

impl Reply<'_> {
    /// Attaches an inline keyboard; one Telegram would refuse (see [`check_keyboard`]) makes `.await` fail
    /// before anything is sent.
    pub fn keyboard(mut self, keyboard: InlineKeyboardMarkup) -> Self {
        self.options.reply_markup = Some(ReplyMarkup::InlineKeyboard(keyboard));
        self
    }

    /// Uses this parse mode instead of the bot's default.
    pub fn parse_mode(mut self, mode: ParseMode) -> Self {
        self.options.parse_mode = Some(Some(mode));
        self
    }

    /// Sends the text as is, without the bot's default parse mode.
    pub fn plain(mut self) -> Self {
        self.options.parse_mode = Some(None);
        self
    }

    /// Overrides the bot's `disable_web_page_preview`.
    pub fn disable_preview(mut self, disable: bool) -> Self {
        self.options.disable_preview = Some(disable);
        self
    }
}

impl<'a> IntoFuture for Reply<'a> {
    type Output = anyhow::Result<Sent>;
    type IntoFuture = Pin<Box<dyn Future<Output = anyhow::Result<Sent>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let chat = self.chat.ok_or_else(|| anyhow::anyhow!("this update has no chat to reply in"))?;
            if let Some(ReplyMarkup::InlineKeyboard(keyboard)) = &self.options.reply_markup {
                check_keyboard(keyboard)?;
            }
            self.cx.deliver(chat, self.cx.api().send_message(chat, self.text, self.options)).await
        })
    }
}
