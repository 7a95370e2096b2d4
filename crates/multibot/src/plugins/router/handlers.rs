//! [`Handlers`]: a plugin's view of the [`Router`]. Its handlers receive the plugin instance (`Arc<Self>`) and the
//! update's [`Ctx`]; `on` takes any update type, the other methods are shorthands for the common ones.

use std::{future::Future, sync::Arc};

use super::{CallbackFilter, CommandInfo, ErrorHookFn, HandlerFn, MessageFilter, Router, StateFilter, UpdateFilter};
use crate::plugins::{Ctx, HandlerError, Plugin};

/// A plugin's view of the router: its handlers receive the plugin instance and the update's context.
///
/// [`Plugin::setup_handlers`] registers on it. A handler is an `async fn(self: Arc<Self>, cx: Ctx) ->
/// anyhow::Result<()>`; the routes are tried in plugin order, then registration order, and the first whose filter
/// takes the update handles it.
///
/// ```rust
/// # use teloxide_core::types::AllowedUpdate;
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
/// #     http_allow: Default::default(),
/// #     shutdown: Default::default(),
/// #     db: Storage::in_memory().await?,
/// #     tasks: Default::default(),
/// # };
/// # let mut router = Router::default();
/// # registry.get("support").expect("registered").build(&cx, &mut router)?;
/// # let listed: Vec<&str> = router.commands().iter().map(|c| c.command.as_str()).collect();
/// # assert_eq!(listed, ["ticket"], "admin commands are not listed");
/// # assert_eq!(router.update_types(), [AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
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

    /// Handles updates of the type `filter` names that pass it:
    /// `handlers.on(UpdateFilter::InlineQuery(QueryFilter::prefix("gif ")), Gifs::search)`. The bot asks Telegram
    /// for that update type (`allowed_updates`).
    pub fn on<F, Fut>(&mut self, filter: UpdateFilter, handler: F) -> &mut Self
    where
        F: Fn(Arc<P>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handler = self.erase(handler);
        self.router.add(&self.name, filter, handler);
        self
    }

    /// Handles messages that pass `filter` (`on(UpdateFilter::Message(filter), ..)`).
    pub fn message<F, Fut>(&mut self, filter: MessageFilter, handler: F) -> &mut Self
    where
        F: Fn(Arc<P>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.on(UpdateFilter::Message(filter), handler)
    }

    /// Handles edited messages that pass `filter` (`on(UpdateFilter::EditedMessage(filter), ..)`).
    pub fn edited_message<F, Fut>(&mut self, filter: MessageFilter, handler: F) -> &mut Self
    where
        F: Fn(Arc<P>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.on(UpdateFilter::EditedMessage(filter), handler)
    }

    /// Handles callback queries that pass `filter` (`on(UpdateFilter::CallbackQuery(filter), ..)`).
    pub fn callback_query<F, Fut>(&mut self, filter: CallbackFilter, handler: F) -> &mut Self
    where
        F: Fn(Arc<P>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.on(UpdateFilter::CallbackQuery(filter), handler)
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
