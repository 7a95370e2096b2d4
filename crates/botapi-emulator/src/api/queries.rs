//! Answers to queries users sent: `answerCallbackQuery`.

use serde_json::json;

use super::Answer;
use crate::{
    entities,
    error::ApiError,
    params::Params,
    world::{BotState, World},
};

pub(super) fn answer_callback(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let id = p.str("callback_query_id")?.unwrap_or_default();
    let text = p.str("text")?;
    if text.as_deref().is_some_and(|t| entities::utf16_len(t) > 200) {
        return Err(ApiError::bad_request("MESSAGE_TOO_LONG"));
    }
    let expired = || ApiError::bad_request("query is too old and response timeout expired or query ID is invalid");
    let meta = st.callbacks.get_mut(&id).filter(|m| !m.answered).ok_or_else(expired)?;
    meta.answered = true;
    let (chat_id, message_id, data) = (meta.chat_id, meta.message_id, meta.data.clone());
    let detail = json!({
        "callback_query_id": id,
        "message_id": message_id,
        "data": data,
        "text": text,
        "show_alert": p.bool("show_alert")?,
        "url": p.str("url")?,
        "cache_time": p.int("cache_time")?.unwrap_or(0),
    });
    st.stats.callback_answers += 1;
    st.emit("callback_answer", Some(chat_id), None, Some(detail), world.config.event_capacity);
    Answer::ok()
}
