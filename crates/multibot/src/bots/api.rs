//! [`BotApi`]: one bot's Bot API client. Every bot shares the process's HTTP client; sends apply the bot's
//! `settings` (`parse_mode`, `disable_web_page_preview`) unless the caller overrides them.

use reqwest::Url;
use teloxide_core::{
    Bot, RequestError,
    payloads::{AnswerCallbackQuerySetters, EditMessageTextSetters, SendMessageSetters},
    prelude::Requester,
    types::{
        CallbackQueryId, ChatId, InlineKeyboardMarkup, LinkPreviewOptions, Message, MessageId,
        ParseMode, ReplyMarkup,
    },
};

use crate::config::{BotSettings, BotToken};

/// Per-call overrides of the bot's defaults.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// `Some(None)` sends without a parse mode; `None` uses the bot's default.
    pub parse_mode: Option<Option<ParseMode>>,
    /// Keyboard to attach.
    pub reply_markup: Option<ReplyMarkup>,
    /// Overrides `disable_web_page_preview`.
    pub disable_preview: Option<bool>,
}

/// A bot's Bot API client.
#[derive(Clone)]
pub struct BotApi {
    bot: Bot,
    parse_mode: Option<ParseMode>,
    disable_preview: bool,
}

/// The teloxide parse mode for a YAML `parse_mode` (validated by the loader).
pub(crate) fn parse_mode(name: &str) -> Option<ParseMode> {
    match name.to_ascii_lowercase().as_str() {
        "html" => Some(ParseMode::Html),
        "markdownv2" => Some(ParseMode::MarkdownV2),
        #[allow(deprecated)]
        "markdown" => Some(ParseMode::Markdown),
        _ => None,
    }
}

impl BotApi {
    /// A client for `token` at `api_url` over the shared `http` client.
    pub fn new(
        http: reqwest::Client,
        api_url: Url,
        token: &BotToken,
        settings: &BotSettings,
    ) -> BotApi {
        BotApi {
            bot: Bot::with_client(token.expose(), http).set_api_url(api_url),
            parse_mode: settings.parse_mode.as_deref().and_then(parse_mode),
            disable_preview: settings.disable_web_page_preview,
        }
    }

    /// The full teloxide client, for methods the helpers below do not cover.
    pub fn raw(&self) -> &Bot {
        &self.bot
    }

    /// Sends a text message with the bot's defaults.
    pub async fn send_message(
        &self,
        chat: ChatId,
        text: String,
        options: SendOptions,
    ) -> Result<Message, RequestError> {
        let mut request = self.bot.send_message(chat, text);
        if let Some(mode) = options.parse_mode.unwrap_or(self.parse_mode) {
            request = request.parse_mode(mode);
        }
        if options.disable_preview.unwrap_or(self.disable_preview) {
            request = request.link_preview_options(LinkPreviewOptions {
                is_disabled: true,
                url: None,
                prefer_small_media: false,
                prefer_large_media: false,
                show_above_text: false,
            });
        }
        if let Some(markup) = options.reply_markup {
            request = request.reply_markup(markup);
        }
        request.await
    }

    /// Replaces a message's text (and keyboard; `None` removes it) with the bot's default parse mode.
    pub async fn edit_message_text(
        &self,
        chat: ChatId,
        message: MessageId,
        text: String,
        keyboard: Option<InlineKeyboardMarkup>,
    ) -> Result<Message, RequestError> {
        let mut request = self.bot.edit_message_text(chat, message, text);
        if let Some(mode) = self.parse_mode {
            request = request.parse_mode(mode);
        }
        if let Some(keyboard) = keyboard {
            request = request.reply_markup(keyboard);
        }
        request.await
    }

    /// Deletes a message.
    pub async fn delete_message(
        &self,
        chat: ChatId,
        message: MessageId,
    ) -> Result<(), RequestError> {
        self.bot.delete_message(chat, message).await.map(drop)
    }

    /// Answers a callback query.
    pub async fn answer_callback_query(
        &self,
        id: CallbackQueryId,
        text: Option<String>,
    ) -> Result<(), RequestError> {
        let mut request = self.bot.answer_callback_query(id);
        if let Some(text) = text {
            request = request.text(text);
        }
        request.await.map(drop)
    }
}
