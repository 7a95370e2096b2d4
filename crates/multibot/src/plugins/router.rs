//! The [`Router`]: handlers in plugin order, each behind an [`UpdateFilter`]; the first that takes an update
//! handles it. Native plugins register through [`Handlers`] (their handlers receive `Arc<Self>`); script plugins
//! register on the `Router` directly.
//!
//! - `filters`: [`MessageFilter`], [`CallbackFilter`], [`StateFilter`], [`ContentType`], [`ChatType`].
//! - `updates`: [`UpdateFilter`], one variant per update type, and the filters of the other types
//!   ([`QueryFilter`], [`ReactionFilter`], [`MemberFilter`], [`PayloadFilter`]).
//! - `handlers`: [`Handlers`].

mod filters;
mod handlers;
mod updates;

use std::sync::Arc;

pub use filters::{CallbackFilter, ChatType, ContentType, MessageFilter, StateFilter};
use futures_util::future::BoxFuture;
pub use handlers::Handlers;
use teloxide_core::types::{AllowedUpdate, UpdateKind};
pub use updates::{MemberFilter, PayloadFilter, QueryFilter, ReactionFilter, UpdateFilter};

use super::{Ctx, HandlerError};

/// A handler, type-erased.
pub type HandlerFn = Arc<dyn Fn(Ctx) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// An error hook, type-erased.
pub type ErrorHookFn = Arc<dyn Fn(Ctx, HandlerError) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

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

struct Route {
    plugin: String,
    filter: UpdateFilter,
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
        let filter = UpdateFilter::Message(MessageFilter::command(&name).with_state(state));
        self.routes.push(Route { plugin: plugin.to_owned(), filter, handler, admin_only });
    }

    /// Adds a handler for the updates `filter` takes.
    pub fn add(&mut self, plugin: &str, filter: UpdateFilter, handler: HandlerFn) {
        self.routes.push(Route { plugin: plugin.to_owned(), filter, handler, admin_only: false });
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

    /// The update types some handler takes, in registration order, for `allowed_updates`; a handler of unknown
    /// commands takes messages.
    pub fn update_types(&self) -> Vec<AllowedUpdate> {
        let unknown_command = self.unknown_command.as_ref().map(|_| AllowedUpdate::Message);
        let mut types = Vec::new();
        for kind in self.routes.iter().map(|r| r.filter.update_type()).chain(unknown_command) {
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
            let Some(state_filter) = route.filter.accepts(&cx.update().kind, username) else {
                continue;
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
