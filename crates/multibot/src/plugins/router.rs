//! The [`Router`]: handlers in plugin order, each behind a filter; the first that matches an update handles it.
//! Native plugins register through [`Handlers`] (their handlers receive `Arc<Self>`); script plugins register
//! on the `Router` directly.

use std::{future::Future, sync::Arc};

use futures_util::future::BoxFuture;
use regex::Regex;
use teloxide_core::types::{CallbackQuery, ChatKind, MediaKind, Message, MessageKind, PublicChatKind, UpdateKind};

use super::{Ctx, HandlerError, Plugin};

/// A handler, type-erased.
pub type HandlerFn = Arc<dyn Fn(Ctx) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// An error hook, type-erased.
pub type ErrorHookFn = Arc<dyn Fn(Ctx, HandlerError) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// Which FSM states a handler runs in.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum StateFilter {
    /// Any state, or none (the default).
    #[default]
    Any,
    /// Only when no state is set.
    None,
    /// Only in this state.
    Is(String),
}

impl StateFilter {
    fn needs_state(&self) -> bool {
        !matches!(self, StateFilter::Any)
    }

    fn accepts(&self, state: Option<&str>) -> bool {
        match self {
            StateFilter::Any => true,
            StateFilter::None => state.is_none(),
            StateFilter::Is(wanted) => state == Some(wanted.as_str()),
        }
    }
}

/// A message's content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// Text.
    Text,
    /// A photo.
    Photo,
    /// A document.
    Document,
    /// A sticker.
    Sticker,
    /// A voice note.
    Voice,
    /// A video.
    Video,
    /// A location.
    Location,
    /// A contact.
    Contact,
}

/// A chat's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatType {
    /// A private chat.
    Private,
    /// A basic group.
    Group,
    /// A supergroup.
    Supergroup,
    /// A channel.
    Channel,
}

/// Which messages a message handler takes. All conditions must hold; the default takes every message.
///
/// Give one to [`Handlers::message`] or [`Handlers::edited_message`].
///
/// ```rust
/// use multibot::{plugins::StateFilter, prelude::*};
///
/// // A four-digit PIN, in a private chat, while the conversation waits for one (`cx.fsm().set_state(..)`).
/// let pin = MessageFilter::regex(r"^\d{4}$").chat(ChatType::Private).state("login:pin");
/// // Any photo, in any chat.
/// let photos = MessageFilter::any().content(ContentType::Photo);
/// // Text that is not a command, while no FSM state is set.
/// let chatter = MessageFilter::text().not_command().with_state(StateFilter::None);
/// # let _ = (pin, photos, chatter);
/// ```
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    text: bool,
    no_commands: bool,
    regex: Option<Regex>,
    content: Option<ContentType>,
    chat: Option<ChatType>,
    state: StateFilter,
}

impl MessageFilter {
    /// Every message.
    pub fn any() -> MessageFilter {
        MessageFilter::default()
    }

    /// Messages with text.
    pub fn text() -> MessageFilter {
        MessageFilter { text: true, ..MessageFilter::default() }
    }

    /// Text messages matching a regular expression; panics on an invalid pattern (a programming error).
    pub fn regex(pattern: &str) -> MessageFilter {
        let regex = Regex::new(pattern).unwrap_or_else(|e| panic!("invalid regex {pattern:?}: {e}"));
        MessageFilter::text().with_regex(regex)
    }

    /// Only messages that are not commands (text not starting with `/`): answers to a question, for example.
    pub fn not_command(mut self) -> MessageFilter {
        self.no_commands = true;
        self
    }

    /// Adds a compiled regular expression the text must match.
    pub fn with_regex(mut self, regex: Regex) -> MessageFilter {
        self.text = true;
        self.regex = Some(regex);
        self
    }

    /// Only this content type.
    pub fn content(mut self, content: ContentType) -> MessageFilter {
        self.content = Some(content);
        self
    }

    /// Only in this chat type.
    pub fn chat(mut self, chat: ChatType) -> MessageFilter {
        self.chat = Some(chat);
        self
    }

    /// Only in this FSM state.
    pub fn state(mut self, state: &str) -> MessageFilter {
        self.state = StateFilter::Is(state.to_owned());
        self
    }

    /// Only with this state filter.
    pub fn with_state(mut self, state: StateFilter) -> MessageFilter {
        self.state = state;
        self
    }

    fn matches(&self, message: &Message) -> bool {
        let text = message.text();
        if (self.text || self.regex.is_some()) && text.is_none() {
            return false;
        }
        if self.no_commands && text.is_some_and(|t| t.starts_with('/')) {
            return false;
        }
        if let (Some(regex), Some(text)) = (&self.regex, text)
            && !regex.is_match(text)
        {
            return false;
        }
        if let Some(content) = self.content
            && content_type(message) != Some(content)
        {
            return false;
        }
        if let Some(chat) = self.chat
            && chat_type(message) != chat
        {
            return false;
        }
        true
    }
}

/// Which callback queries a callback handler takes, by the `callback_data` of the pressed button.
///
/// Give one to [`Handlers::callback_query`].
///
/// ```rust
/// use multibot::{plugins::check_keyboard, prelude::*};
///
/// // Data names what a button does; a prefix groups buttons that one handler takes.
/// let keyboard = InlineKeyboardMarkup::new([
///     vec![InlineKeyboardButton::callback("Yes", "vote:yes"), InlineKeyboardButton::callback("No", "vote:no")],
///     vec![InlineKeyboardButton::callback("Back", "menu:back")],
/// ]);
/// let back = CallbackFilter::data("menu:back");
/// let votes = CallbackFilter::prefix("vote:").state("voting");
/// # let _ = (back, votes);
///
/// // Telegram takes 1-64 bytes of data; a reply with a longer one fails before anything is sent.
/// assert!(check_keyboard(&keyboard).is_ok());
/// let long = InlineKeyboardMarkup::new([[InlineKeyboardButton::callback("Long", "x".repeat(65))]]);
/// assert_eq!(check_keyboard(&long).unwrap_err().bytes, 65);
/// ```
#[derive(Debug, Clone, Default)]
pub struct CallbackFilter {
    data: Option<String>,
    prefix: Option<String>,
    state: StateFilter,
}

impl CallbackFilter {
    /// Every callback query.
    pub fn any() -> CallbackFilter {
        CallbackFilter::default()
    }

    /// Callback queries whose data is exactly `data`.
    pub fn data(data: &str) -> CallbackFilter {
        CallbackFilter { data: Some(data.to_owned()), ..CallbackFilter::default() }
    }

    /// Callback queries whose data starts with `prefix`.
    pub fn prefix(prefix: &str) -> CallbackFilter {
        CallbackFilter { prefix: Some(prefix.to_owned()), ..CallbackFilter::default() }
    }

    /// Only in this FSM state.
    pub fn state(mut self, state: &str) -> CallbackFilter {
        self.state = StateFilter::Is(state.to_owned());
        self
    }

    fn matches(&self, query: &CallbackQuery) -> bool {
        let data = query.data.as_deref().unwrap_or_default();
        self.data.as_deref().is_none_or(|d| d == data) && self.prefix.as_deref().is_none_or(|p| data.starts_with(p))
    }
}

fn content_type(message: &Message) -> Option<ContentType> {
    let MessageKind::Common(common) = &message.kind else {
        return None;
    };
    Some(match &common.media_kind {
        MediaKind::Text(_) => ContentType::Text,
        MediaKind::Photo(_) => ContentType::Photo,
        MediaKind::Document(_) => ContentType::Document,
        MediaKind::Sticker(_) => ContentType::Sticker,
        MediaKind::Voice(_) => ContentType::Voice,
        MediaKind::Video(_) => ContentType::Video,
        MediaKind::Location(_) => ContentType::Location,
        MediaKind::Contact(_) => ContentType::Contact,
        _ => return None,
    })
}

fn chat_type(message: &Message) -> ChatType {
    match &message.chat.kind {
        ChatKind::Private(_) => ChatType::Private,
        ChatKind::Public(public) => match public.kind {
            PublicChatKind::Group => ChatType::Group,
            PublicChatKind::Supergroup(_) => ChatType::Supergroup,
            PublicChatKind::Channel(_) => ChatType::Channel,
        },
    }
}

/// The command in a message's text, if it starts with one for this bot: `(name, arguments)`. `/cmd@other_bot`
/// is not for us.
pub(crate) fn parse_command<'a>(text: &'a str, username: &str) -> Option<(&'a str, &'a str)> {
    let rest = text.strip_prefix('/')?;
    let (word, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let (name, target) = word.split_once('@').unwrap_or((word, ""));
    if name.is_empty() || !target.is_empty() && !target.eq_ignore_ascii_case(username) {
        return None;
    }
    Some((name, args.trim()))
}

enum Matcher {
    Command { name: String, state: StateFilter },
    Message(MessageFilter),
    EditedMessage(MessageFilter),
    Callback(CallbackFilter),
}

struct Route {
    plugin: String,
    matcher: Matcher,
    handler: HandlerFn,
    admin_only: bool,
}

/// A command a plugin registered, for `/help` and `setMyCommands`.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandInfo {
    /// Without the slash.
    pub command: String,
    /// What it does.
    pub description: String,
    /// The plugin that handles it.
    pub plugin: String,
}

/// The handlers of one bot, in registration (plugin) order.
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
    /// The plugin and handler for a command no route takes.
    unknown_command: Option<(String, HandlerFn)>,
    error_hooks: Vec<(String, ErrorHookFn)>,
    commands: Vec<CommandInfo>,
}

/// The route chosen for an update.
pub(crate) struct Chosen<'a> {
    pub(crate) plugin: &'a str,
    pub(crate) handler: &'a HandlerFn,
    /// Only the bot's `access.admin_users` may run it; others get a refusal.
    pub(crate) admin_only: bool,
}

impl Router {
    /// Adds a command handler (`/name` or `/name@bot`, any arguments).
    pub fn add_command(&mut self, plugin: &str, name: &str, description: &str, state: StateFilter, handler: HandlerFn) {
        self.add_command_route(plugin, name, description, state, handler, false);
    }

    /// Adds a command only the bot's `access.admin_users` may run (others get a short refusal); it is not listed
    /// in `/help` or the command menu.
    pub fn add_admin_command(&mut self, plugin: &str, name: &str, state: StateFilter, handler: HandlerFn) {
        self.add_command_route(plugin, name, "", state, handler, true);
    }

    fn add_command_route(
        &mut self,
        plugin: &str,
        name: &str,
        description: &str,
        state: StateFilter,
        handler: HandlerFn,
        admin_only: bool,
    ) {
        let name = name.trim_start_matches('/').to_ascii_lowercase();
        if !admin_only && !description.is_empty() && !self.commands.iter().any(|c| c.command == name) {
            self.commands.push(CommandInfo {
                command: name.clone(),
                description: description.to_owned(),
                plugin: plugin.to_owned(),
            });
        }
        let matcher = Matcher::Command { name, state };
        self.routes.push(Route { plugin: plugin.to_owned(), matcher, handler, admin_only });
    }

    /// Adds a message handler.
    pub fn add_message(&mut self, plugin: &str, filter: MessageFilter, handler: HandlerFn) {
        self.routes.push(Route {
            plugin: plugin.to_owned(),
            matcher: Matcher::Message(filter),
            handler,
            admin_only: false,
        });
    }

    /// Adds an edited-message handler.
    pub fn add_edited_message(&mut self, plugin: &str, filter: MessageFilter, handler: HandlerFn) {
        self.routes.push(Route {
            plugin: plugin.to_owned(),
            matcher: Matcher::EditedMessage(filter),
            handler,
            admin_only: false,
        });
    }

    /// Adds a callback query handler.
    pub fn add_callback(&mut self, plugin: &str, filter: CallbackFilter, handler: HandlerFn) {
        self.routes.push(Route {
            plugin: plugin.to_owned(),
            matcher: Matcher::Callback(filter),
            handler,
            admin_only: false,
        });
    }

    /// Sets the handler of commands for this bot that no route takes, tried after every route whatever the plugin
    /// order; the first plugin to set one keeps it.
    pub fn set_unknown_command(&mut self, plugin: &str, handler: HandlerFn) {
        self.unknown_command.get_or_insert_with(|| (plugin.to_owned(), handler));
    }

    /// Adds a hook that runs when a handler fails (the `error_handler` plugin's).
    pub fn add_error_hook(&mut self, plugin: &str, hook: ErrorHookFn) {
        self.error_hooks.push((plugin.to_owned(), hook));
    }

    /// The commands with descriptions, in registration order.
    pub fn commands(&self) -> &[CommandInfo] {
        &self.commands
    }

    /// The error hooks.
    pub(crate) fn error_hooks(&self) -> &[(String, ErrorHookFn)] {
        &self.error_hooks
    }

    /// The update types some handler takes, for `allowed_updates`.
    pub fn update_types(&self) -> Vec<&'static str> {
        let mut types = Vec::new();
        for route in &self.routes {
            let kind = match route.matcher {
                Matcher::Command { .. } | Matcher::Message(_) => "message",
                Matcher::EditedMessage(_) => "edited_message",
                Matcher::Callback(_) => "callback_query",
            };
            if !types.contains(&kind) {
                types.push(kind);
            }
        }
        types
    }

    /// The first route that takes the update in `cx`, loading the FSM state only if a candidate needs it. When the
    /// state cannot be loaded (Redis down), routes that filter on it are skipped so other handlers go on; if no
    /// other route takes the update, the load error is returned for `error_handler`. A command for this bot that
    /// no route takes goes to the unknown-command handler, if a plugin set one.
    pub(crate) async fn choose(&self, cx: &Ctx) -> anyhow::Result<Option<Chosen<'_>>> {
        let username = cx.bot_username();
        let mut state_error = None;
        for route in &self.routes {
            let state_filter = match (&route.matcher, &cx.update().kind) {
                (Matcher::Command { name, state }, UpdateKind::Message(m)) => {
                    let Some((command, _)) = m.text().and_then(|t| parse_command(t, username)) else {
                        continue;
                    };
                    if !command.eq_ignore_ascii_case(name) {
                        continue;
                    }
                    state
                }
                (Matcher::Message(filter), UpdateKind::Message(m)) if filter.matches(m) => &filter.state,
                (Matcher::EditedMessage(filter), UpdateKind::EditedMessage(m)) if filter.matches(m) => &filter.state,
                (Matcher::Callback(filter), UpdateKind::CallbackQuery(q)) if filter.matches(q) => &filter.state,
                _ => continue,
            };
            if state_filter.needs_state() {
                if state_error.is_some() {
                    continue;
                }
                match cx.fsm().state().await {
                    Ok(state) if state_filter.accepts(state.as_deref()) => {}
                    Ok(_) => continue,
                    Err(e) => {
                        state_error = Some(e);
                        continue;
                    }
                }
            }
            return Ok(Some(Chosen { plugin: &route.plugin, handler: &route.handler, admin_only: route.admin_only }));
        }
        if let Some(e) = state_error {
            return Err(e);
        }
        // In a group every bot sees a bare `/cmd`: only the bot it names (`/cmd@bot`) answers that it is unknown.
        let is_command = match &cx.update().kind {
            UpdateKind::Message(m) => m.text().is_some_and(|t| {
                let addressed = t.split_whitespace().next().is_some_and(|word| word.contains('@'));
                parse_command(t, username).is_some() && (m.chat.is_private() || addressed)
            }),
            _ => false,
        };
        let fallback = self.unknown_command.as_ref().filter(|_| is_command);
        Ok(fallback.map(|(plugin, handler)| Chosen { plugin, handler, admin_only: false }))
    }
}

/// A plugin's view of the router: its handlers receive the plugin instance and the update's context.
///
/// [`Plugin::setup_handlers`] registers on it. A handler is an `async fn(self: Arc<Self>, cx: Ctx) ->
/// anyhow::Result<()>`; the routes are tried in plugin order, then registration order, and the first whose filter
/// takes the update handles it.
///
/// ```rust
/// use std::sync::Arc;
///
/// use multibot::prelude::*;
/// # use multibot::{
/// #     config::{BotId, BotSettings, BotToken},
/// #     plugins::{PluginRegistry, Router},
/// #     storage::Storage,
/// #     telegram::BotApi,
/// # };
///
/// /// `config:` of the `support` plugin.
/// #[derive(Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct SupportConfig {}
///
/// /// `/ticket` asks for a description, which the next text gives.
/// struct Support;
///
/// impl Plugin for Support {
///     type Config = SupportConfig;
///
///     fn meta() -> PluginMeta {
///         PluginMeta::new("support").description("Support tickets")
///     }
///
///     fn new(_config: SupportConfig, _cx: &PluginContext) -> anyhow::Result<Support> {
///         Ok(Support)
///     }
///
///     fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
///         handlers
///             // Listed in `/help` and in the bot's command menu.
///             .command("ticket", "Open a support ticket", Support::open)
///             // The text after `/ticket`: the FSM state says the bot waits for it.
///             .message(MessageFilter::text().not_command().state("ticket"), Support::describe)
///             .callback_query(CallbackFilter::data("ticket:cancel"), Support::cancel)
///             // Only for the bot's `access.admin_users`, and not listed.
///             .admin_command("reopen", Support::reopen)
///             // When any handler of the bot fails.
///             .on_error(Support::failed);
///     }
/// }
///
/// impl Support {
///     async fn open(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
///         cx.fsm().set_state(Some("ticket")).await?;
///         let cancel = InlineKeyboardButton::callback("Cancel", "ticket:cancel");
///         cx.reply("Describe the problem.").keyboard(InlineKeyboardMarkup::new([[cancel]])).await?;
///         Ok(())
///     }
///
///     async fn describe(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
///         cx.fsm().clear().await?;
///         cx.reply("Thank you, we will answer here.").await?;
///         Ok(())
///     }
///
///     async fn cancel(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
///         cx.fsm().clear().await?;
///         cx.answer_callback(Some("Cancelled")).await?;
///         cx.delete_message().await
///     }
///
///     async fn reopen(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
///         cx.reply(format!("Reopening {}", cx.command_args())).await?;
///         Ok(())
///     }
///
///     async fn failed(self: Arc<Self>, cx: Ctx, error: HandlerError) -> anyhow::Result<()> {
///         cx.notify_admins(format!("{} failed ({}): {}", error.plugin, error.id, error.message));
///         Ok(())
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// # let mut registry = PluginRegistry::default();
/// # registry.register::<Support>();
/// # let token = BotToken::parse("123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ").expect("a well-formed token");
/// # let api_url = "http://127.0.0.1:1".parse()?;
/// # let cx = PluginContext {
/// #     bot_id: BotId::parse("helpdesk").expect("a valid id"),
/// #     plugin: "support".to_owned(),
/// #     api: BotApi::new(reqwest::Client::new(), &api_url, &token, &BotSettings::default(), None),
/// #     config: serde_json::json!({}),
/// #     shutdown: Default::default(),
/// #     db: Storage::in_memory().await?,
/// #     tasks: Default::default(),
/// # };
/// # let mut router = Router::default();
/// # registry.get("support").expect("registered").build(&cx, &mut router)?;
/// # let listed: Vec<&str> = router.commands().iter().map(|c| c.command.as_str()).collect();
/// # assert_eq!(listed, ["ticket"], "admin commands are not listed");
/// # assert_eq!(router.update_types(), ["message", "callback_query"]);
/// # Ok(())
/// # }
/// ```
pub struct Handlers<'r, P> {
    plugin: Arc<P>,
    name: String,
    router: &'r mut Router,
}

impl<'r, P: Plugin> Handlers<'r, P> {
    pub(crate) fn new(plugin: Arc<P>, name: &str, router: &'r mut Router) -> Handlers<'r, P> {
        Handlers { plugin, name: name.to_owned(), router }
    }

    fn erase<F, Fut>(&self, handler: F) -> HandlerFn
    where
        F: Fn(Arc<P>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let plugin = self.plugin.clone();
        Arc::new(move |cx| Box::pin(handler(plugin.clone(), cx)))
    }

    /// Handles `/name` (shown in `/help` and the command menu with `description`).
    pub fn command<F, Fut>(&mut self, name: &str, description: &str, handler: F) -> &mut Self
    where
        F: Fn(Arc<P>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handler = self.erase(handler);
        self.router.add_command(&self.name, name, description, StateFilter::Any, handler);
        self
    }

    /// Handles `/name` for the bot's `access.admin_users` only (others get a short refusal).
    pub fn admin_command<F, Fut>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(Arc<P>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handler = self.erase(handler);
        self.router.add_admin_command(&self.name, name, StateFilter::Any, handler);
        self
    }

    /// Handles messages that pass `filter`.
    pub fn message<F, Fut>(&mut self, filter: MessageFilter, handler: F) -> &mut Self
    where
        F: Fn(Arc<P>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handler = self.erase(handler);
        self.router.add_message(&self.name, filter, handler);
        self
    }

    /// Handles edited messages that pass `filter`.
    pub fn edited_message<F, Fut>(&mut self, filter: MessageFilter, handler: F) -> &mut Self
    where
        F: Fn(Arc<P>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handler = self.erase(handler);
        self.router.add_edited_message(&self.name, filter, handler);
        self
    }

    /// Handles callback queries that pass `filter`.
    pub fn callback_query<F, Fut>(&mut self, filter: CallbackFilter, handler: F) -> &mut Self
    where
        F: Fn(Arc<P>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handler = self.erase(handler);
        self.router.add_callback(&self.name, filter, handler);
        self
    }

    /// Handles the commands for this bot that no plugin takes (after every other handler, whatever the order).
    pub fn unknown_command<F, Fut>(&mut self, handler: F) -> &mut Self
    where
        F: Fn(Arc<P>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handler = self.erase(handler);
        self.router.set_unknown_command(&self.name, handler);
        self
    }

    /// Runs when any handler of the bot fails.
    pub fn on_error<F, Fut>(&mut self, hook: F) -> &mut Self
    where
        F: Fn(Arc<P>, Ctx, HandlerError) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let plugin = self.plugin.clone();
        let hook: ErrorHookFn = Arc::new(move |cx, error| Box::pin(hook(plugin.clone(), cx, error)));
        self.router.add_error_hook(&self.name, hook);
        self
    }

    /// The commands registered so far by every plugin loaded before this one, and this one.
    pub fn commands(&self) -> &[CommandInfo] {
        self.router.commands()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_command;

    #[test]
    fn commands_with_arguments_and_bot_names() {
        assert_eq!(parse_command("/echo hello world", "my_bot"), Some(("echo", "hello world")));
        assert_eq!(parse_command("/echo@My_Bot  hi ", "my_bot"), Some(("echo", "hi")));
        assert_eq!(parse_command("/echo@other_bot hi", "my_bot"), None);
        assert_eq!(parse_command("/start", "my_bot"), Some(("start", "")));
        assert_eq!(parse_command("echo", "my_bot"), None);
        assert_eq!(parse_command("/", "my_bot"), None);
    }
}
