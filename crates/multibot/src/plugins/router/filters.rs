//! The filters of message-like updates and callback queries: [`MessageFilter`] (text, command, regex, content
//! type, chat type, FSM state), [`CallbackFilter`] (data), and the [`StateFilter`] both carry.

use regex::Regex;
use teloxide_core::types::{CallbackQuery, Chat, ChatKind, MediaKind, Message, MessageKind, PublicChatKind};

use super::parse_command;

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

/// The state filter of routes that do not filter on the state.
pub(super) static ANY_STATE: StateFilter = StateFilter::Any;

impl StateFilter {
    pub(super) fn needs_state(&self) -> bool {
        !matches!(self, StateFilter::Any)
    }

    pub(super) fn accepts(&self, state: Option<&str>) -> bool {
        match self {
            StateFilter::Any => true,
            StateFilter::None => state.is_none(),
            StateFilter::Is(wanted) => state == Some(wanted.as_str()),
        }
    }
}

/// A message's content type (named in scripts' filters as in snake case: `text`, `photo`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
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

impl ChatType {
    /// The type of `chat`.
    pub fn of(chat: &Chat) -> ChatType {
        match &chat.kind {
            ChatKind::Private(_) => ChatType::Private,
            ChatKind::Public(public) => match public.kind {
                PublicChatKind::Group => ChatType::Group,
                PublicChatKind::Supergroup(_) => ChatType::Supergroup,
                PublicChatKind::Channel(_) => ChatType::Channel,
            },
        }
    }
}

/// Which messages a handler takes (messages, edits, channel posts, business messages). All conditions must hold;
/// the default takes every message.
///
/// Give one to [`Handlers::message`](crate::plugins::Handlers::message) or
/// [`Handlers::edited_message`](crate::plugins::Handlers::edited_message).
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
    /// Lower case, without the slash.
    command: Option<String>,
    regex: Option<Regex>,
    content: Option<ContentType>,
    chat: Option<ChatType>,
    pub(super) state: StateFilter,
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

    /// Messages with the command `/name` (or `/name@thisbot`), any arguments. Unlike [`Handlers::command`]
    /// (messages only), it is not listed in `/help`; it serves channel posts and edits too.
    ///
    /// [`Handlers::command`]: super::Handlers::command
    pub fn command(name: &str) -> MessageFilter {
        let name = name.trim_start_matches('/').to_ascii_lowercase();
        MessageFilter { text: true, command: Some(name), ..MessageFilter::default() }
    }

    /// Text messages matching a regular expression; panics on an invalid pattern (a programming error).
    pub fn regex(pattern: &str) -> MessageFilter {
        MessageFilter::text().with_regex(compile(pattern))
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

    /// Whether `message` passes, for the bot `username` (a command for another bot does not).
    pub(super) fn matches(&self, message: &Message, username: &str) -> bool {
        let text = message.text();
        if (self.text || self.regex.is_some()) && text.is_none() {
            return false;
        }
        if self.no_commands && text.is_some_and(|t| t.starts_with('/')) {
            return false;
        }
        if let Some(name) = &self.command {
            let command = text.and_then(|t| parse_command(t, username)).map(|(command, _)| command);
            if !command.is_some_and(|c| c.eq_ignore_ascii_case(name)) {
                return false;
            }
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
        self.chat.is_none_or(|chat| ChatType::of(&message.chat) == chat)
    }
}

/// Which callback queries a callback handler takes, by the `callback_data` of the pressed button.
///
/// Give one to [`Handlers::callback_query`](crate::plugins::Handlers::callback_query).
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
    pub(super) state: StateFilter,
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

    pub(super) fn matches(&self, query: &CallbackQuery) -> bool {
        let data = query.data.as_deref().unwrap_or_default();
        self.data.as_deref().is_none_or(|d| d == data) && self.prefix.as_deref().is_none_or(|p| data.starts_with(p))
    }
}

/// Compiles a pattern given in code; panics when it is invalid (a programming error, found at startup).
pub(super) fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("invalid regex {pattern:?}: {e}"))
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
