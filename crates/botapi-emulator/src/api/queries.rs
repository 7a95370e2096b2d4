//! Answers to queries users sent: `answerCallbackQuery`, `answerInlineQuery`, `answerShippingQuery`,
//! `answerPreCheckoutQuery`. Each query is answered once; the answer is checked as the Bot API server checks it
//! and kept as an event (`callback_answer`, `inline_answer`, `shipping_answer`, `pre_checkout_answer`) so a test
//! can read what the bot answered.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::Answer;
use crate::{
    entities,
    error::ApiError,
    params::Params,
    world::{BotState, World},
};

/// Most results one answer to an inline query may carry.
const MAX_RESULTS: usize = 50;

fn expired() -> ApiError {
    ApiError::bad_request("query is too old and response timeout expired or query ID is invalid")
}

pub(super) fn answer_callback(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let id = p.str("callback_query_id")?.unwrap_or_default();
    let text = p.str("text")?;
    if text.as_deref().is_some_and(|t| entities::utf16_len(t) > 200) {
        return Err(ApiError::bad_request("MESSAGE_TOO_LONG"));
    }
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

/// A string field of a JSON object, with TDLib's errors.
fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("Field \"{name}\" must be of type String")),
    }
}

fn required<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    field(object, name)?.ok_or_else(|| format!("Can't find field \"{name}\""))
}

fn number(object: &Map<String, Value>, name: &str) -> Result<(), String> {
    match object.get(name) {
        Some(Value::Number(_)) => Ok(()),
        Some(_) => Err(format!("Field \"{name}\" must be of type Number")),
        None => Err(format!("Can't find field \"{name}\"")),
    }
}

/// A file given by URL or, when there is none, by file id, with what the URL form also requires.
fn url_or_file(object: &Map<String, Value>, url: &str, with_url: &[&str], file_id: &str) -> Result<(), String> {
    if field(object, url)?.is_some_and(|u| !u.is_empty()) {
        return with_url.iter().try_for_each(|name| required(object, name).map(drop));
    }
    required(object, file_id).map(drop)
}

/// Checks one `InlineQueryResult` as the Bot API server reads it; `Err` is the detail after
/// `can't parse inline query result: `. Returns the result's id.
fn check_result(value: &Value) -> Result<String, String> {
    let object = value.as_object().ok_or("Inline query result must be an object")?;
    let kind = required(object, "type")?.to_ascii_lowercase();
    let id = required(object, "id")?.to_owned();
    let content = match object.get("input_message_content") {
        None | Some(Value::Null) => None,
        Some(Value::Object(content)) => Some(content),
        Some(_) => return Err("Field \"input_message_content\" must be of type Object".into()),
    };
    match kind.as_str() {
        "article" => {
            match content {
                Some(content) => {
                    let known = ["message_text", "latitude", "phone_number", "payload"];
                    if !known.iter().any(|k| content.contains_key(*k)) {
                        return Err("Input message content is not specified".into());
                    }
                }
                None => {
                    required(object, "message_text")?;
                }
            }
            required(object, "title")?;
        }
        "audio" => url_or_file(object, "audio_url", &["title"], "audio_file_id")?,
        "contact" => {
            required(object, "phone_number")?;
            required(object, "first_name")?;
        }
        "document" => {
            required(object, "title")?;
            url_or_file(object, "document_url", &["mime_type"], "document_file_id")?;
        }
        "game" => drop(required(object, "game_short_name")?),
        "gif" => url_or_file(object, "gif_url", &[], "gif_file_id")?,
        "location" | "venue" => {
            number(object, "latitude")?;
            number(object, "longitude")?;
            required(object, "title")?;
            if kind == "venue" {
                required(object, "address")?;
            }
        }
        "mpeg4_gif" => url_or_file(object, "mpeg4_url", &[], "mpeg4_file_id")?,
        "photo" => url_or_file(object, "photo_url", &[], "photo_file_id")?,
        "sticker" => drop(required(object, "sticker_file_id")?),
        "video" => {
            required(object, "title")?;
            url_or_file(object, "video_url", &["mime_type"], "video_file_id")?;
        }
        "voice" => {
            required(object, "title")?;
            url_or_file(object, "voice_url", &[], "voice_file_id")?;
        }
        _ => return Err(format!("type \"{kind}\" is unsupported for the inline query result")),
    }
    Ok(id)
}

/// `answerInlineQuery`: up to 50 results, each checked, with unique ids of 1-64 bytes.
pub(super) fn answer_inline(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let id = p.str("inline_query_id")?.unwrap_or_default();
    let results = match p.get("results") {
        None => Vec::new(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => {
            let value: Value = serde_json::from_str(s)
                .map_err(|e| ApiError::bad_request(format!("can't parse JSON encoded inline query results: {e}")))?;
            results_list(value)?
        }
        Some(value) => results_list(value.clone())?,
    };
    let mut ids = HashSet::new();
    for result in &results {
        let result_id =
            check_result(result).map_err(|e| ApiError::bad_request(format!("can't parse inline query result: {e}")))?;
        if result_id.is_empty() || result_id.len() > 64 {
            return Err(ApiError::bad_request("RESULT_ID_INVALID"));
        }
        if !ids.insert(result_id) {
            return Err(ApiError::bad_request("RESULT_ID_DUPLICATE"));
        }
    }
    let next_offset = p.str("next_offset")?.unwrap_or_default();
    if next_offset.len() > 64 {
        return Err(ApiError::bad_request("NEXT_OFFSET_INVALID"));
    }
    let button = p.json("button", "can't parse inline query results button JSON object")?;
    let query = st.inline_queries.get_mut(&id).filter(|q| q.results.is_none()).ok_or_else(expired)?;
    query.results = Some(results.clone());
    let detail = json!({
        "inline_query_id": id,
        "results": results,
        "cache_time": p.int("cache_time")?.unwrap_or(300).clamp(0, 86_400),
        "is_personal": p.bool("is_personal")?,
        "next_offset": next_offset,
        "button": button,
    });
    st.emit("inline_answer", None, None, Some(detail), world.config.event_capacity);
    Answer::ok()
}

fn results_list(value: Value) -> Result<Vec<Value>, ApiError> {
    let results = match value {
        Value::Null => Vec::new(),
        Value::Array(results) => results,
        _ => return Err(ApiError::bad_request("expected an Array of inline query results")),
    };
    if results.len() > MAX_RESULTS {
        return Err(ApiError::bad_request("too many inline query results specified"));
    }
    Ok(results)
}

/// The payment query `id` of `kind`, not answered yet; marks it answered.
fn take_payment(st: &mut BotState, id: &str, kind: &str) -> Result<(), ApiError> {
    let query = st.payment_queries.get_mut(id).filter(|q| q.kind == kind && !q.answered).ok_or_else(expired)?;
    query.answered = true;
    Ok(())
}

/// The `error_message` a refusal must carry.
fn error_message(p: &Params) -> Result<String, ApiError> {
    let message = p.str("error_message")?.filter(|m| !m.is_empty());
    message.ok_or_else(|| ApiError::bad_request("parameter \"error_message\" is required"))
}

/// One `ShippingOption`; `Err` is the detail after `can't parse shipping option: `.
fn check_shipping_option(value: &Value) -> Result<(), String> {
    let object = value.as_object().ok_or("ShippingOption must be an Object")?;
    if required(object, "id")?.is_empty() {
        return Err("ShippingOption identifier must be non-empty".into());
    }
    if required(object, "title")?.is_empty() {
        return Err("ShippingOption title must be non-empty".into());
    }
    let prices = match object.get("prices") {
        Some(Value::Array(prices)) => prices,
        Some(_) => return Err("Field \"prices\" must be of type Array".into()),
        None => return Err("Can't find field \"prices\"".into()),
    };
    for price in prices {
        let price = price.as_object().ok_or("Can't parse shipping option prices: LabeledPrice must be an Object")?;
        required(price, "label").map_err(|e| format!("Can't parse shipping option prices: {e}"))?;
        number(price, "amount").map_err(|e| format!("Can't parse shipping option prices: {e}"))?;
    }
    Ok(())
}

/// `answerShippingQuery`: shipping options when delivery is possible, else an error message for the user.
pub(super) fn answer_shipping(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let id = p.str("shipping_query_id")?.unwrap_or_default();
    let ok = p.bool("ok")?;
    let (options, message) = if ok {
        let options = p.json("shipping_options", "can't parse shipping options JSON object")?;
        let options = options.ok_or_else(|| ApiError::bad_request("parameter \"shipping_options\" is required"))?;
        let list = options.as_array().ok_or_else(|| ApiError::bad_request("expected an Array of shipping options"))?;
        for option in list {
            check_shipping_option(option)
                .map_err(|e| ApiError::bad_request(format!("can't parse shipping option: {e}")))?;
        }
        if list.is_empty() {
            return Err(ApiError::bad_request("there must be at least one shipping option"));
        }
        (options, None)
    } else {
        (Value::Null, Some(error_message(p)?))
    };
    take_payment(st, &id, "shipping_query")?;
    let detail = json!({ "shipping_query_id": id, "ok": ok, "shipping_options": options, "error_message": message });
    st.emit("shipping_answer", None, None, Some(detail), world.config.event_capacity);
    Answer::ok()
}

/// `answerPreCheckoutQuery`: go ahead with the payment, or refuse it with an error message for the user.
pub(super) fn answer_pre_checkout(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let id = p.str("pre_checkout_query_id")?.unwrap_or_default();
    let ok = p.bool("ok")?;
    let message = if ok { None } else { Some(error_message(p)?) };
    take_payment(st, &id, "pre_checkout_query")?;
    let detail = json!({ "pre_checkout_query_id": id, "ok": ok, "error_message": message });
    st.emit("pre_checkout_answer", None, None, Some(detail), world.config.event_capacity);
    Answer::ok()
}

/// `approveChatJoinRequest` / `declineChatJoinRequest`: decides a pending request once; an approved user becomes
/// a member of the chat. A request that is not pending is Telegram's `HIDE_REQUESTER_MISSING`.
pub(super) fn decide_join_request(
    world: &World,
    st: &mut BotState,
    p: &Params,
    approve: bool,
) -> Result<Answer, ApiError> {
    let chat_id = p.int("chat_id")?.ok_or_else(|| ApiError::bad_request("chat_id is empty"))?;
    let user_id = p.int("user_id")?.ok_or_else(|| ApiError::bad_request("user_id is empty"))?;
    if !st.join_requests.remove(&(chat_id, user_id)) {
        return Err(ApiError::bad_request("HIDE_REQUESTER_MISSING"));
    }
    if approve {
        let user = world.user(user_id);
        st.members.insert((chat_id, user_id), json!({ "status": "member", "user": user }));
    }
    let detail = json!({ "chat_id": chat_id, "user_id": user_id, "approved": approve });
    st.emit("join_request_answer", Some(chat_id), None, Some(detail), world.config.event_capacity);
    Answer::ok()
}
