//! [`BotApi`]: one bot's Bot API client. Every bot shares the process's HTTP client. Requests are teloxide's
//! typed payloads, sent by our own [`BotApi::call`] so that errors, timeouts and retries are ours to decide
//! (teloxide's own sender sleeps 10 s on every 5xx). Method names go out as the Bot API spells them (`sendMessage`),
//! the HTTP status decides a retry before the body is read, and answers are read leniently ([`Me`] has only what we
//! use; an edit may answer `true`). Sends apply the bot's `settings` (`parse_mode`, `disable_web_page_preview`)
//! unless the caller overrides them.
//!
//! - `answer`: an answer read, its result or how the call failed ([`ApiCallError`], [`CallFailure`]), [`Sent`], [`Me`].
//! - `split`: a text over 4096 characters sent as several messages.

mod answer;
mod split;

use std::{future::Future, marker::PhantomData, sync::Arc, time::Duration};

use bytes::Bytes;
use reqwest::{RequestBuilder, Url};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, value::RawValue};
use teloxide_core::{
    payloads::{
        AnswerCallbackQuery, AnswerCallbackQuerySetters, DeleteMessage, EditMessageText, EditMessageTextSetters, GetMe,
        SendMessage, SendMessageSetters, SetMyCommands,
    },
    requests::Payload,
    types::{
        AllowedUpdate, BotCommand, BusinessConnectionId, CallbackQueryId, ChatId, InlineKeyboardMarkup,
        LinkPreviewOptions, Message, MessageId, ParseMode, ReplyMarkup, True,
    },
};

use tracing::warn;

use super::{
    clients::ApiClient,
    flood::{FloodLimits, Lane, Pacer},
    line::{Line, LineError},
};
use crate::{
    config::{BotSettings, BotToken},
    telemetry::metrics,
};
pub(crate) use answer::read_answer;
use answer::send;
pub use answer::{ApiCallError, CallFailure, Me, Sent};

/// 429s retried before giving up (each waits its `retry_after`, all of them together at most `FLOOD_MAX_WAIT`).
const MAX_FLOOD_RETRIES: u32 = 20;
/// 5xx answers and network errors retried before giving up.
const MAX_ERROR_RETRIES: u32 = 3;
/// The default of [`BotApi::with_flood_max_wait`] (`FLOOD_MAX_WAIT`).
const FLOOD_MAX_WAIT: Duration = Duration::from_secs(60);

/// How long to wait before retrying after `error`, or `None` to give up. A 429 is retried only while its wait
/// fits in `flood_budget`, what is left of the call's total for 429 waits.
fn retry_pause(error: &ApiCallError, attempt: u32, flood_budget: Duration) -> Option<Duration> {
    match error {
        ApiCallError::Api { code: 429, retry_after, .. } if attempt < MAX_FLOOD_RETRIES => {
            Some(Duration::from_secs(u64::from(retry_after.unwrap_or(1).max(1)))).filter(|wait| *wait <= flood_budget)
        }
        ApiCallError::Api { code, .. } if *code >= 500 && attempt < MAX_ERROR_RETRIES => {
            Some(Duration::from_millis(500 << attempt))
        }
        ApiCallError::Network(_) if attempt < MAX_ERROR_RETRIES => Some(Duration::from_millis(500 << attempt)),
        _ => None,
    }
}

/// The methods whose URL each bot builds once.
const HOT_METHODS: [&str; 2] = ["getUpdates", "sendMessage"];

/// Methods that post into a chat and count against Telegram's flood limits.
fn paced(method: &str) -> bool {
    ["send", "editMessage", "copyMessage", "forwardMessage"].iter().any(|p| method.starts_with(p))
}

/// A method's name as the Bot API spells it (`sendMessage`) from teloxide's payload name (`SendMessage`):
/// Telegram ignores case, but case-sensitive gateways and proxies do not.
fn method_name(payload_name: &str) -> String {
    let mut chars = payload_name.chars();
    chars.next().map(|c| c.to_ascii_lowercase()).into_iter().chain(chars).collect()
}

/// A payload whose answer is read as `O` rather than the payload's own output: `getMe` as our own [`Me`], and
/// `editMessageText` loosely as a [`Value`] (Telegram answers the edited message, or `true` for an inline
/// message, and some servers always answer `true`).
#[derive(Serialize)]
#[serde(transparent)]
struct Lenient<P, O> {
    payload: P,
    #[serde(skip)]
    output: PhantomData<fn() -> O>,
}

impl<P, O> Lenient<P, O> {
    fn new(payload: P) -> Self {
        Lenient { payload, output: PhantomData }
    }
}

impl<P: Payload, O: DeserializeOwned> Payload for Lenient<P, O> {
    type Output = O;
    const NAME: &'static str = P::NAME;
}

/// The numeric `chat_id` of a serialized payload.
fn chat_of(body: &[u8]) -> Option<i64> {
    #[derive(Deserialize)]
    struct Target {
        chat_id: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Target>(body).ok()?.chat_id?.as_i64()
}

/// Per-call overrides of the bot's defaults.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// `Some(None)` sends without a parse mode; `None` uses the bot's default.
    pub parse_mode: Option<Option<ParseMode>>,
    /// Keyboard to attach.
    pub reply_markup: Option<ReplyMarkup>,
    /// Overrides `disable_web_page_preview`.
    pub disable_preview: Option<bool>,
    /// Sends on behalf of the business account of this connection (a reply to a business message).
    pub business_connection_id: Option<BusinessConnectionId>,
}

/// Counts one attempt at `method` by its outcome.
fn count<T>(method: &str, result: &Result<T, ApiCallError>) {
    let code;
    let outcome = match result {
        Ok(_) => "ok",
        Err(ApiCallError::Api { code: number, .. }) => {
            code = number.to_string();
            &code
        }
        Err(ApiCallError::Network(_)) => "network",
        Err(ApiCallError::Decode(_)) => "decode",
        Err(ApiCallError::File(_)) => "file",
    };
    metrics::api_call(method, outcome);
}

/// A bot's Bot API client.
///
/// In a handler it is [`Ctx::api`](crate::plugins::Ctx::api); on its own, for a script or a tool:
///
/// ```rust,no_run
/// use multibot::{
///     config::{BotSettings, BotToken},
///     prelude::*,
///     telegram::{BotApi, FloodLimits, SendOptions},
/// };
///
/// #[tokio::main]
/// async fn main() -> anyhow::Result<()> {
///     let token = BotToken::parse(&std::env::var("BOT_TOKEN")?).map_err(anyhow::Error::msg)?;
///     // The defaults of a bot's YAML `settings:` block, applied to every send unless overridden.
///     let settings = BotSettings { parse_mode: Some("HTML".to_owned()), ..BotSettings::default() };
///     let api_url = "https://api.telegram.org".parse()?;
///     let api = BotApi::new(reqwest::Client::new(), &api_url, &token, &settings, Some(FloodLimits::default()));
///
///     let me = api.get_me().await?;
///     let chat = ChatId(123456789);
///     let sent = api.send_message(chat, "<b>Deploy finished</b>".to_owned(), SendOptions::default()).await?;
///     println!("@{} sent message {}", me.username.unwrap_or_default(), sent.id.0);
///     // Without the default parse mode: the text goes out as typed.
///     let plain = SendOptions { parse_mode: Some(None), ..SendOptions::default() };
///     api.send_message(chat, "Tags like <b> stay as typed".to_owned(), plain).await?;
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct BotApi {
    pub(super) http: reqwest::Client,
    /// `<api_url>/bot<token>/`; never logged.
    base: Url,
    /// `base` joined with each of [`HOT_METHODS`], in that order, built once: every poll and every reply needs one.
    hot: Arc<[Option<Url>]>,
    pub(super) parse_mode: Option<ParseMode>,
    disable_preview: bool,
    /// `None` when flood control is off.
    pacer: Option<Arc<Pacer>>,
    /// Which lane of the pacer this client's sends take.
    lane: Lane,
    /// Whether a failure after which the request may have reached Telegram (a network error, a 5xx answer) is
    /// retried.
    retry_uncertain: bool,
    /// The most one call waits out 429 answers in total.
    flood_max_wait: Duration,
    /// `<api_url>/file/bot<token>/`, where files are downloaded from; never logged.
    pub(super) files: Url,
    /// The HTTP/2 connection of the bot's group, where HTTP/2 may be spoken ([`super::line`]).
    line: Option<Arc<Line>>,
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
    /// A client for `token` at `api_url` over the shared `http` client; `flood` paces sends within those limits.
    pub fn new(
        http: reqwest::Client,
        api_url: &Url,
        token: &BotToken,
        settings: &BotSettings,
        flood: Option<FloodLimits>,
    ) -> BotApi {
        let root = api_url.path().trim_end_matches('/');
        let mut base = api_url.clone();
        base.set_path(&format!("{root}/bot{}/", token.expose()));
        let mut files = api_url.clone();
        files.set_path(&format!("{root}/file/bot{}/", token.expose()));
        let hot = HOT_METHODS.iter().map(|method| base.join(method).ok()).collect();
        BotApi {
            http,
            hot,
            base,
            parse_mode: settings.parse_mode.as_deref().and_then(parse_mode),
            disable_preview: settings.disable_web_page_preview,
            pacer: flood.map(|limits| Arc::new(Pacer::new(limits))),
            lane: Lane::Reply,
            retry_uncertain: true,
            flood_max_wait: FLOOD_MAX_WAIT,
            files,
            line: None,
        }
    }

    /// The connections this client uses, for another client of the same bot.
    pub(crate) fn client(&self) -> ApiClient {
        ApiClient { http: self.http.clone(), line: self.line.clone() }
    }

    /// The same client, calling over `line` (its group's HTTP/2 connection) while the server speaks HTTP/2 there.
    pub(crate) fn with_line(mut self, line: Option<Arc<Line>>) -> BotApi {
        self.line = line;
        self
    }

    /// The same client, with `cap` as the most one call waits out Telegram's 429 answers in total (default 60 s):
    /// a 429 whose `retry_after` no longer fits fails the call with that 429.
    pub fn with_flood_max_wait(mut self, cap: Duration) -> BotApi {
        self.flood_max_wait = cap;
        self
    }

    /// The same client for bulk sends (a broadcast): they share the bot's flood control with its replies but may
    /// fill only part of its window ([`Lane::Bulk`]), and the caller waits for each send's turn with
    /// [`BotApi::pace`] before the call (so that it can give up waiting); a 429 is returned at once, for the caller
    /// to wait out, and a network error or a 5xx answer is returned without a retry (the request may have arrived,
    /// and a retry could deliver it twice).
    pub fn bulk(&self) -> BotApi {
        BotApi { lane: Lane::Bulk, flood_max_wait: Duration::ZERO, retry_uncertain: false, ..self.clone() }
    }

    /// Waits until a message to `chat` fits in the bot's flood control, in this client's lane, and counts it: a
    /// [`BotApi::bulk`] client's sends are paced here by the caller, not in the call. No wait when flood control
    /// is off.
    pub async fn pace(&self, chat: i64) {
        if let Some(pacer) = &self.pacer {
            pacer.acquire_in(chat, self.lane).await;
        }
    }

    /// Calls any JSON Bot API method with a teloxide payload, e.g. `api.call(&SendDice::new(chat))`. Sends are
    /// paced within Telegram's limits; a 429 is retried after its `retry_after` (in order: the caller waits) while
    /// the call's 429 waits stay within [`BotApi::with_flood_max_wait`], then returned; 5xx and network errors
    /// are retried with a bounded backoff, other errors (400, 403) are returned at once.
    /// `getUpdates` is never retried here: the polling loop has its own policy.
    pub async fn call<P>(&self, payload: &P) -> Result<P::Output, ApiCallError>
    where
        P: Payload + Serialize,
        P::Output: DeserializeOwned,
    {
        let body = Bytes::from(serde_json::to_vec(payload).map_err(|e| ApiCallError::Decode(e.to_string()))?);
        let method = method_name(P::NAME);
        // Only a paced send needs its chat, read back from the body.
        let chat = if self.pacer.is_some() && paced(&method) { chat_of(&body) } else { None };
        self.request_json(&method, chat, payload.timeout_hint(), body).await
    }

    /// Calls `method` with the JSON `body`, paced for `chat` and retried as [`BotApi::call`] says; over the
    /// group's HTTP/2 [`Line`] where there is one, else through reqwest.
    pub(super) async fn request_json<T: DeserializeOwned>(
        &self,
        method: &str,
        chat: Option<i64>,
        timeout: Option<Duration>,
        body: Bytes,
    ) -> Result<T, ApiCallError> {
        let timeout = timeout.map(|hint| hint + Duration::from_secs(10));
        self.request(method, chat, |url| {
            let body = body.clone();
            async move {
                if let Some(line) = self.line.as_ref().filter(|line| line.speaks_http2()) {
                    match line.post_json(&url, body.clone(), timeout.unwrap_or(line.timeout())).await {
                        Ok(answer) => return read_answer(answer.status, answer.content_type.as_deref(), &answer.body),
                        Err(LineError::Network(e)) => return Err(ApiCallError::Network(e)),
                        // Found out now: this and every later call of the group go through reqwest.
                        Err(LineError::NotHttp2) => {}
                    }
                }
                let request = self.http.post(url).header(reqwest::header::CONTENT_TYPE, "application/json");
                let request = request.body(body);
                send(match timeout {
                    Some(timeout) => request.timeout(timeout),
                    None => request,
                })
                .await
            }
        })
        .await
    }

    /// Calls `method` with the multipart form `form` makes afresh for each attempt, paced for `chat` and retried
    /// as [`BotApi::call`] says.
    pub(super) async fn request_form<T, F, Fut>(
        &self,
        method: &str,
        chat: Option<i64>,
        form: F,
    ) -> Result<T, ApiCallError>
    where
        T: DeserializeOwned,
        F: Fn(RequestBuilder) -> Fut,
        Fut: Future<Output = Result<RequestBuilder, ApiCallError>>,
    {
        self.request(method, chat, |url| {
            let request = form(self.http.post(url));
            async move { send(request.await?).await }
        })
        .await
    }

    /// Calls `method` by `once` (one attempt, given the method's URL), paced for `chat` and retried as
    /// [`BotApi::call`] says.
    async fn request<T, A, Fut>(&self, method: &str, chat: Option<i64>, once: A) -> Result<T, ApiCallError>
    where
        A: Fn(Url) -> Fut,
        Fut: Future<Output = Result<T, ApiCallError>>,
    {
        if let Some(pacer) = &self.pacer
            && self.lane == Lane::Reply
            && paced(method)
            && let Some(chat) = chat
        {
            pacer.acquire_in(chat, Lane::Reply).await;
        }
        let url = match HOT_METHODS.iter().position(|hot| *hot == method).and_then(|i| self.hot[i].as_ref()) {
            Some(url) => url.clone(),
            None => self.base.join(method).map_err(|e| ApiCallError::Decode(e.to_string()))?,
        };
        let mut attempt: u32 = 0;
        let mut flood_waited = Duration::ZERO;
        loop {
            let result = once(url.clone()).await;
            // Every attempt is counted, so 429s and 5xx show even when a retry then succeeds.
            count(method, &result);
            let pause = match &result {
                Err(ApiCallError::Network(_)) if !self.retry_uncertain => None,
                Err(e) if !self.retry_uncertain && e.code().is_some_and(|code| code >= 500) => None,
                Err(e) if method != "getUpdates" => {
                    let pause = retry_pause(e, attempt, self.flood_max_wait.saturating_sub(flood_waited));
                    if pause.is_none() && e.code() == Some(429) && attempt < MAX_FLOOD_RETRIES {
                        let (asked, waited) = (e.retry_after().unwrap_or(1), flood_waited.as_secs());
                        warn!(
                            method,
                            retry_after = asked,
                            waited_s = waited,
                            "Bot API call failed with 429: waiting \
                            again would pass FLOOD_MAX_WAIT"
                        );
                    }
                    pause
                }
                _ => None,
            };
            let Some(pause) = pause else { return result };
            if result.as_ref().err().and_then(ApiCallError::code) == Some(429) {
                flood_waited += pause;
            }
            let error = result.err().map(|e| e.to_string()).unwrap_or_default();
            warn!(method, attempt, pause_ms = pause.as_millis() as u64, %error, "Bot API call failed; retrying");
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    /// `getMe`.
    pub async fn get_me(&self) -> Result<Me, ApiCallError> {
        self.call(&Lenient::<_, Me>::new(GetMe::new())).await
    }

    /// `getUpdates` from `offset`, waiting up to `timeout` for the first; never retried (the polling loop has its
    /// own policy). A GET with the parameters in the query: without a body the client keeps no body stream for
    /// the long poll, which is most of what an idle bot holds. An empty `allowed` is left out, so Telegram keeps
    /// the types asked for before (the reference: an empty list would ask for the default types instead), as the
    /// poll that only confirms wants.
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        limit: u8,
        timeout: Duration,
        allowed: &[AllowedUpdate],
    ) -> Result<Vec<Box<RawValue>>, ApiCallError> {
        let mut url = match &self.hot[0] {
            Some(url) => url.clone(),
            None => self.base.join("getUpdates").map_err(|e| ApiCallError::Decode(e.to_string()))?,
        };
        {
            let mut query = url.query_pairs_mut();
            if let Some(offset) = offset {
                query.append_pair("offset", &offset.to_string());
            }
            query.append_pair("limit", &limit.to_string()).append_pair("timeout", &timeout.as_secs().to_string());
            if !allowed.is_empty() {
                let allowed = serde_json::to_string(allowed).map_err(|e| ApiCallError::Decode(e.to_string()))?;
                query.append_pair("allowed_updates", &allowed);
            }
        }
        let deadline = timeout + Duration::from_secs(10);
        let result = match self.line.as_ref().filter(|line| line.speaks_http2()) {
            Some(line) => match line.get(&url, deadline).await {
                Ok(answer) => read_answer(answer.status, answer.content_type.as_deref(), &answer.body),
                Err(LineError::Network(e)) => Err(ApiCallError::Network(e)),
                // Found out now: this and every later poll of the group go through reqwest.
                Err(LineError::NotHttp2) => send(self.http.get(url).timeout(deadline)).await,
            },
            None => send(self.http.get(url).timeout(deadline)).await,
        };
        count("getUpdates", &result);
        result
    }

    /// `setMyCommands`.
    pub async fn set_my_commands(&self, commands: Vec<BotCommand>) -> Result<(), ApiCallError> {
        self.call(&SetMyCommands::new(commands)).await.map(|True| ())
    }

    /// Sends a text message with the bot's defaults. A text over Telegram's 4096 characters goes out as several
    /// messages, in order, cut at line ends (else spaces), with the keyboard on the last; gives the last one
    /// ([`Sent::message`] parses it in full).
    pub async fn send_message(&self, chat: ChatId, text: String, options: SendOptions) -> Result<Sent, ApiCallError> {
        let mode = options.parse_mode.unwrap_or(self.parse_mode);
        // A UTF-16 unit takes at least one UTF-8 byte, so a short text needs no measuring.
        if text.len() > split::MESSAGE_LIMIT {
            let mut pieces = split::split_text(&text, split::MESSAGE_LIMIT, mode);
            if let Some(last) = pieces.pop() {
                for piece in pieces {
                    let options = SendOptions { reply_markup: None, ..options.clone() };
                    self.send_piece(chat, piece, mode, options).await?;
                }
                return self.send_piece(chat, last, mode, options).await;
            }
        }
        self.send_piece(chat, text, mode, options).await
    }

    /// Sends one message of at most 4096 characters.
    async fn send_piece(
        &self,
        chat: ChatId,
        text: String,
        mode: Option<ParseMode>,
        options: SendOptions,
    ) -> Result<Sent, ApiCallError> {
        let mut payload = SendMessage::new(chat, text);
        if let Some(mode) = mode {
            payload = payload.parse_mode(mode);
        }
        if options.disable_preview.unwrap_or(self.disable_preview) {
            payload = payload.link_preview_options(LinkPreviewOptions {
                is_disabled: true,
                url: None,
                prefer_small_media: false,
                prefer_large_media: false,
                show_above_text: false,
            });
        }
        if let Some(markup) = options.reply_markup {
            payload = payload.reply_markup(markup);
        }
        if let Some(connection) = options.business_connection_id {
            payload = payload.business_connection_id(connection);
        }
        self.call(&Lenient::<_, Sent>::new(payload)).await
    }

    /// Replaces a message's text (and keyboard; `None` removes it) with the bot's default parse mode. Gives the
    /// edited message, or `None` when the server answered `true` (or a message we cannot read): the edit was made
    /// either way.
    pub async fn edit_message_text(
        &self,
        chat: ChatId,
        message: MessageId,
        text: String,
        keyboard: Option<InlineKeyboardMarkup>,
    ) -> Result<Option<Message>, ApiCallError> {
        let mut payload = EditMessageText::new(chat, message, text);
        if let Some(mode) = self.parse_mode {
            payload = payload.parse_mode(mode);
        }
        if let Some(keyboard) = keyboard {
            payload = payload.reply_markup(keyboard);
        }
        let result = self.call(&Lenient::<_, Value>::new(payload)).await?;
        Ok(serde_json::from_value(result).ok())
    }

    /// Deletes a message.
    pub async fn delete_message(&self, chat: ChatId, message: MessageId) -> Result<(), ApiCallError> {
        self.call(&DeleteMessage::new(chat, message)).await.map(|True| ())
    }

    /// Answers a callback query.
    pub async fn answer_callback_query(&self, id: CallbackQueryId, text: Option<String>) -> Result<(), ApiCallError> {
        let mut payload = AnswerCallbackQuery::new(id);
        if let Some(text) = text {
            payload = payload.text(text);
        }
        self.call(&payload).await.map(|True| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_is_retried_only_while_its_wait_fits_in_what_is_left_of_the_cap() {
        let flood = |retry_after| ApiCallError::Api { code: 429, description: String::new(), retry_after };
        let secs = Duration::from_secs;
        assert_eq!(retry_pause(&flood(Some(3)), 0, secs(60)), Some(secs(3)));
        assert_eq!(retry_pause(&flood(Some(3)), 0, secs(3)), Some(secs(3)), "a wait that exactly fits");
        // Bad input: Telegram asks for more than is left.
        assert_eq!(retry_pause(&flood(Some(61)), 0, secs(60)), None);
        assert_eq!(retry_pause(&flood(None), 0, Duration::ZERO), None, "FLOOD_MAX_WAIT=0 retries no 429");
        assert_eq!(retry_pause(&flood(Some(1)), MAX_FLOOD_RETRIES, secs(60)), None);
        // Other errors do not spend the budget and are retried as before.
        let unavailable = ApiCallError::Api { code: 502, description: String::new(), retry_after: None };
        assert_eq!(retry_pause(&unavailable, 0, Duration::ZERO), Some(Duration::from_millis(500)));
    }

    #[test]
    fn the_base_url_keeps_a_path_prefix() {
        let token = BotToken::parse("123:AAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let settings = BotSettings::default();
        let api = BotApi::new(reqwest::Client::new(), &"http://h:1/proxy/".parse().unwrap(), &token, &settings, None);
        assert_eq!(api.base.join("getMe").unwrap().as_str(), "http://h:1/proxy/bot123:AAAAAAAAAAAAAAAAAAAAAAAA/getMe");
        let api =
            BotApi::new(reqwest::Client::new(), &"https://api.telegram.org".parse().unwrap(), &token, &settings, None);
        assert_eq!(
            api.base.join("getMe").unwrap().as_str(),
            "https://api.telegram.org/bot123:AAAAAAAAAAAAAAAAAAAAAAAA/getMe"
        );
    }
}
