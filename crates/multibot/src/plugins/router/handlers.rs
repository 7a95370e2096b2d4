//! [`Handlers`]: a plugin's view of the [`Router`]. Its handlers receive the plugin instance (`Arc<Self>`) and the
//! update's [`Ctx`]; `on` takes any update type, the other methods are shorthands for the common ones.

use std::{future::Future, sync::Arc};

use super::{CallbackFilter, CommandInfo, ErrorHookFn, HandlerFn, MessageFilter, Router, StateFilter, UpdateFilter};
use crate::plugins::{Ctx, HandlerError, Plugin};

/// A plugin's view of the router: its handlers receive the plugin instance and the update's context.
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
