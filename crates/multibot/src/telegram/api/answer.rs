//! What a Bot API call answers, read: the result, or how it failed ([`ApiCallError`], and [`CallFailure`] in the
//! words of logs and status); a sent message with only its id and chat read ([`Sent`]); the bot's own account
//! ([`Me`]).

use reqwest::RequestBuilder;
use serde::{
    Deserialize,
    de::{DeserializeOwned, IgnoredAny},
};
use serde_json::value::RawValue;
use teloxide_core::types::{ChatId, Message, MessageId};

use crate::config::BotToken;

/// A failed Bot API call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiCallError {
    /// Telegram answered with an error.
    #[error("{description} (error {code})")]
    Api {
        /// `error_code`.
        code: u16,
        /// `description`.
        description: String,
        /// `parameters.retry_after`, for 429.
        retry_after: Option<u32>,
    },
    /// The request did not get an answer (connection refused, reset, timed out).
    #[error("network error: {0}")]
    Network(String),
    /// The answer was not the Bot API's JSON.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// A file to upload or download could not be read, or is over a size limit; nothing was sent.
    #[error("{0}")]
    File(String),
}

impl ApiCallError {
    /// The HTTP/Bot API error code, for Telegram's errors.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiCallError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether Telegram said the user blocked the bot (403).
    pub fn is_blocked_by_user(&self) -> bool {
        matches!(self, ApiCallError::Api { code: 403, description, .. } if description.contains("blocked by the user"))
    }

    /// Seconds to wait before retrying, for 429.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiCallError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A failed Bot API call, in the words for logs and status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    /// Telegram answered 401: the token is wrong or revoked.
    #[error("token rejected by Telegram (401 Unauthorized)")]
    TokenRejected,
    /// Telegram answered with another error.
    #[error("Telegram answered: {0}")]
    Refused(String),
    /// The Bot API could not be reached.
    #[error("cannot reach the Bot API: {0}")]
    Unreachable(String),
    /// The Bot API answered something that is not a Bot API answer.
    #[error("unexpected answer from the Bot API: {0}")]
    BadAnswer(String),
}

impl CallFailure {
    /// Classifies `error`, the bot's `token` removed from what it says.
    pub fn of(error: &ApiCallError, token: &BotToken) -> CallFailure {
        let redact = |text: String| token.redact(text);
        match error {
            ApiCallError::Api { code: 401, .. } => CallFailure::TokenRejected,
            ApiCallError::Api { .. } => CallFailure::Refused(redact(error.to_string())),
            ApiCallError::Network(e) => CallFailure::Unreachable(redact(e.clone())),
            ApiCallError::Decode(e) => CallFailure::BadAnswer(redact(e.clone())),
            ApiCallError::File(e) => CallFailure::Refused(redact(e.clone())),
        }
    }
}

#[derive(Deserialize)]
struct Answer<T> {
    ok: bool,
    result: Option<T>,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<AnswerParameters>,
}

#[derive(Deserialize)]
struct AnswerParameters {
    retry_after: Option<u32>,
}

/// Telegram's error answer; `status` stands in for a missing `error_code`.
fn api_error<T>(answer: Answer<T>, status: u16) -> ApiCallError {
    ApiCallError::Api {
        code: answer.error_code.unwrap_or(status),
        description: answer.description.unwrap_or_default(),
        retry_after: answer.parameters.and_then(|p| p.retry_after),
    }
}

/// A message the bot sent, as Telegram answered: its id and chat are read at once; the rest of the message is
/// parsed only when asked for ([`Sent::message`]), since most senders never look at it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The message's id.
    pub id: MessageId,
    /// The chat it went to.
    pub chat: ChatId,
    raw: Box<RawValue>,
}

impl Sent {
    /// The whole message, as Telegram answered it.
    pub fn message(&self) -> Result<Message, ApiCallError> {
        serde_json::from_str(self.raw.get()).map_err(|e| ApiCallError::Decode(e.to_string()))
    }
}

impl<'de> Deserialize<'de> for Sent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Sent, D::Error> {
        #[derive(Deserialize)]
        struct Chat {
            id: i64,
        }
        #[derive(Deserialize)]
        struct Head {
            message_id: i32,
            chat: Chat,
        }
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let head: Head = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
        Ok(Sent { id: MessageId(head.message_id), chat: ChatId(head.chat.id), raw })
    }
}

/// The bot's own account, from `getMe`: only the fields we use, so that a server older or newer than teloxide's
/// types (e.g. without `has_main_web_app`, added in Bot API 8.0) still works.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    /// The bot's user id.
    pub id: u64,
    /// The bot's username, without `@`.
    #[serde(default)]
    pub username: Option<String>,
}

/// Sends one attempt and reads the Bot API's answer.
pub(super) async fn send<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, ApiCallError> {
    // `without_url`: the URL holds the token.
    let network = |e: reqwest::Error| ApiCallError::Network(crate::tls::describe(&e.without_url()));
    let response = request.send().await.map_err(network)?;
    let status = response.status();
    let content_type = response.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    let body = response.bytes().await.map_err(network)?;
    read_answer(status, content_type.as_ref().and_then(|t| t.to_str().ok()), &body)
}

/// Reads a Bot API answer: its result, or how the call failed. Whatever the bytes, an error, never a panic (the
/// fuzz tests feed it mutated answers).
pub(crate) fn read_answer<T: DeserializeOwned>(
    status: reqwest::StatusCode,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<T, ApiCallError> {
    if !status.is_success() {
        // The status decides before the body: a proxy's HTML 502 page is retried like Telegram's JSON 502.
        return Err(match serde_json::from_slice::<Answer<IgnoredAny>>(body) {
            Ok(answer) if !answer.ok => api_error(answer, status.as_u16()),
            _ => ApiCallError::Api {
                code: status.as_u16(),
                description: format!(
                    "HTTP {status} with a {} body instead of a Bot API answer",
                    content_type.unwrap_or("non-JSON")
                ),
                retry_after: None,
            },
        });
    }
    let answer: Answer<T> = serde_json::from_slice(body).map_err(|e| ApiCallError::Decode(e.to_string()))?;
    if !answer.ok {
        return Err(api_error(answer, status.as_u16()));
    }
    answer.result.ok_or_else(|| ApiCallError::Decode("ok without a result".to_owned()))
}
