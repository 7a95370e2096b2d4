//! [`BotApi::call_method`]: any Bot API method by its name, with JSON parameters and a JSON answer, for callers
//! without a typed payload (a script's `api.call`). Paced, retried and capped by `FLOOD_MAX_WAIT` like every
//! other call, through the same request path.

use serde_json::{Map, Value};

use super::{ApiCallError, BotApi, InputFile, files};

/// Whether `method` can be a Bot API method name: 1-64 ASCII letters and digits, starting with a letter. Nothing
/// else reaches the URL (which holds the token).
pub(crate) fn is_method_name(method: &str) -> bool {
    (1..=64).contains(&method.len())
        && method.starts_with(|c: char| c.is_ascii_alphabetic())
        && method.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl BotApi {
    /// Calls `method` with `params`, answering Telegram's `result` as JSON. With `uploads` (form field name and
    /// file), the call goes out as a multipart form: each parameter a text field (strings as they are, other
    /// values as JSON, as Telegram reads forms), each upload a file part that a parameter names as
    /// `attach://<field>`. A name that is not a method's is Telegram's 404 without a request.
    pub async fn call_method(
        &self,
        method: &str,
        params: Map<String, Value>,
        uploads: Vec<(String, InputFile)>,
    ) -> Result<Value, ApiCallError> {
        if !is_method_name(method) {
            return Err(ApiCallError::Api { code: 404, description: "Not Found".to_owned(), retry_after: None });
        }
        let chat = params.get("chat_id").and_then(Value::as_i64);
        if uploads.is_empty() {
            let body = serde_json::to_vec(&params).map_err(|e| ApiCallError::Decode(e.to_string()))?;
            return self.request_json(method, chat, None, body.into()).await;
        }
        let fields = params
            .into_iter()
            .filter(|(_, value)| !value.is_null())
            .map(|(name, value)| match value {
                Value::String(text) => (name, text),
                other => (name, other.to_string()),
            })
            .collect();
        files::check(&uploads).await?;
        self.request_form(method, chat, files::form(fields, uploads)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_method_names() {
        for good in ["sendMessage", "getMe", "sendPhoto", "setMyCommands"] {
            assert!(is_method_name(good), "{good}");
        }
        for bad in ["", "../getMe", "sendMessage?x=1", "send/Message", "9lives", "sendMessage#", &"a".repeat(65)] {
            assert!(!is_method_name(bad), "{bad}");
        }
    }
}
