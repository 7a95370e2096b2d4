//! Lenient update decoding. teloxide's `Update` turns an update whose payload does not decode into
//! `UpdateKind::Error` without saying why, so a server that leaves out a field (an older or third-party Bot API,
//! e.g. a callback query without `chat_instance`) would make clicks vanish unanswered. [`decode_update`] logs why,
//! once per update, fills in the missing fields with empty values and decodes again, so the update is still
//! routed; a callback query that still does not decode keeps its id, to be answered ([`unreadable_callback`]).
//! Where teloxide-core reads a field otherwise than the Bot API sends it, the payload is reshaped first, without a
//! warning: the server did nothing wrong. A plain text message, the commonest update, is read by a faster path
//! first (`text`).

mod text;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use serde_path_to_error::{Error, Segment};
use teloxide_core::types::{
    BusinessConnection, BusinessMessagesDeleted, CallbackQuery, CallbackQueryId, ChatBoostRemoved, ChatBoostUpdated,
    ChatJoinRequest, ChatMemberUpdated, ChosenInlineResult, InlineQuery, Message, MessageReactionCountUpdated,
    MessageReactionUpdated, PaidMediaPurchased, Poll, PollAnswer, PreCheckoutQuery, ShippingQuery, Update, UpdateKind,
};
use tracing::warn;

/// Missing fields filled in per update before giving up.
const MAX_FILLS: usize = 8;
/// Empty values tried, in order, for a missing field.
const FILLERS: [fn() -> Value; 5] = [
    || Value::from(""),
    || Value::from(0),
    || Value::from(false),
    || Value::Array(Vec::new()),
    || Value::Object(Default::default()),
];

/// Decodes an update. A payload of a known type that does not decode is logged (warn, with `update_id`, the
/// path and the error) and decoded again with its missing fields filled in; when that fails too, or the type is
/// unknown, the update comes back as `UpdateKind::Error` (holding the id of a callback query, see
/// [`unreadable_callback`], or the unknown type's name, see [`unknown_type`]). Only a body that is not an update
/// at all is an error. Boxed: an `Update` takes about 2 KB, and it moves from the poll to the chat's queue to the
/// handler's context.
pub(crate) fn decode_update(raw: &[u8]) -> Result<Box<Update>, serde_json::Error> {
    decode(raw).map(Box::new)
}

fn decode(raw: &[u8]) -> Result<Update, serde_json::Error> {
    if let Some(update) = text::plain_text(raw) {
        // In debug builds (every test, the fuzz targets) each update read this way is read by teloxide too.
        debug_assert_eq!(
            serde_json::from_slice::<Update>(raw).ok().as_ref(),
            Some(&update),
            "the text path read {} otherwise than teloxide",
            String::from_utf8_lossy(raw)
        );
        return Ok(update);
    }
    let update: Update = serde_json::from_slice(raw)?;
    if !matches!(update.kind, UpdateKind::Error(_)) {
        return Ok(update);
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(raw) else { return Ok(update) };
    let Some((kind, mut payload)) =
        fields.iter().find(|(key, _)| *key != "update_id").map(|(k, v)| (k.clone(), v.clone()))
    else {
        return Ok(update);
    };
    let adapted = adapt_to_teloxide(&kind, &mut payload);
    let first = match check(&kind, &payload) {
        Some(Err(first)) => first,
        Some(Ok(())) if adapted => return Ok(reassemble(fields, &kind, payload).unwrap_or(update)),
        Some(Ok(())) => return Ok(update),
        None => return Ok(Update { id: update.id, kind: UpdateKind::Error(json!({ "unknown_type": kind })) }),
    };
    let callback_id = payload.get("id").and_then(Value::as_str).filter(|_| kind == "callback_query").map(str::to_owned);
    let filled = fill_missing(&kind, &mut payload);
    let repaired = filled.as_ref().and_then(|_| reassemble(fields, &kind, payload));
    let (path, error) = (first.path().to_string(), first.into_inner());
    match (repaired, filled) {
        (Some(repaired), Some(filled)) => {
            warn!(update_id = update.id.0, kind, %path, %error, filled = %filled.join(", "),
                "update does not decode as the Bot API documents it; routed with the missing fields left empty");
            Ok(repaired)
        }
        _ => {
            warn!(update_id = update.id.0, kind, %path, %error, "update does not decode; skipped");
            let kind = UpdateKind::Error(callback_id.map_or(Value::Null, |id| json!({"callback_query": {"id": id}})));
            Ok(Update { id: update.id, kind })
        }
    }
}

/// The update with `kind`'s payload replaced, decoded; `None` when it still does not decode.
fn reassemble(mut fields: Map<String, Value>, kind: &str, payload: Value) -> Option<Update> {
    fields.insert(kind.to_owned(), payload);
    // From bytes, not from the `Value`: teloxide reads the update's kind as a borrowed string.
    let bytes = serde_json::to_vec(&Value::Object(fields)).ok()?;
    serde_json::from_slice::<Update>(&bytes).ok().filter(|u| !matches!(u.kind, UpdateKind::Error(_)))
}

/// Reshapes what teloxide-core 0.13 reads otherwise than the Bot API sends it; true when something changed.
/// `deleted_business_messages.message_ids` is an array of integers, which teloxide reads as
/// `[{"message_id": n}]`.
fn adapt_to_teloxide(kind: &str, payload: &mut Value) -> bool {
    let Some(ids) =
        payload.get_mut("message_ids").and_then(Value::as_array_mut).filter(|_| kind == "deleted_business_messages")
    else {
        return false;
    };
    let mut changed = false;
    for id in ids.iter_mut().filter(|id| id.is_number()) {
        *id = json!({ "message_id": id.take() });
        changed = true;
    }
    changed
}

/// The id of a callback query that did not decode: it is still answered, so the user's button stops spinning.
pub(crate) fn unreadable_callback(update: &Update) -> Option<CallbackQueryId> {
    match &update.kind {
        UpdateKind::Error(raw) => raw["callback_query"]["id"].as_str().map(|id| CallbackQueryId(id.to_owned())),
        _ => None,
    }
}

/// The type of an update this build does not know (a type the Bot API added after teloxide's release).
pub(crate) fn unknown_type(update: &Update) -> Option<&str> {
    match &update.kind {
        UpdateKind::Error(raw) => raw["unknown_type"].as_str(),
        _ => None,
    }
}

/// Decodes the payload of an update of `kind` as its type, or `None` for a kind teloxide does not know.
fn check(kind: &str, payload: &Value) -> Option<Result<(), Error<serde_json::Error>>> {
    fn as_type<T: DeserializeOwned>(payload: &Value) -> Result<(), Error<serde_json::Error>> {
        serde_path_to_error::deserialize::<_, T>(payload).map(drop)
    }
    Some(match kind {
        "message"
        | "edited_message"
        | "channel_post"
        | "edited_channel_post"
        | "business_message"
        | "edited_business_message" => as_type::<Message>(payload),
        "callback_query" => as_type::<CallbackQuery>(payload),
        "inline_query" => as_type::<InlineQuery>(payload),
        "chosen_inline_result" => as_type::<ChosenInlineResult>(payload),
        "shipping_query" => as_type::<ShippingQuery>(payload),
        "pre_checkout_query" => as_type::<PreCheckoutQuery>(payload),
        "poll" => as_type::<Poll>(payload),
        "poll_answer" => as_type::<PollAnswer>(payload),
        "my_chat_member" | "chat_member" => as_type::<ChatMemberUpdated>(payload),
        "chat_join_request" => as_type::<ChatJoinRequest>(payload),
        "message_reaction" => as_type::<MessageReactionUpdated>(payload),
        "message_reaction_count" => as_type::<MessageReactionCountUpdated>(payload),
        "chat_boost" => as_type::<ChatBoostUpdated>(payload),
        "removed_chat_boost" => as_type::<ChatBoostRemoved>(payload),
        "business_connection" => as_type::<BusinessConnection>(payload),
        "deleted_business_messages" => as_type::<BusinessMessagesDeleted>(payload),
        "purchased_paid_media" => as_type::<PaidMediaPurchased>(payload),
        _ => return None,
    })
}

/// Fills in the fields the payload misses, trying an empty value of each JSON type in turn; the paths filled in,
/// or `None` when it still does not decode.
fn fill_missing(kind: &str, payload: &mut Value) -> Option<Vec<String>> {
    let mut filled: Vec<String> = Vec::new();
    // The field filled last and the filler it got: a type error at that field means "try the next filler".
    let mut last: Option<(String, usize)> = None;
    for _ in 0..MAX_FILLS * FILLERS.len() {
        let error = match check(kind, payload)? {
            Ok(()) => return Some(filled),
            Err(error) => error,
        };
        let at = pointer(error.path())?;
        let (pointer, filler) = match (&last, missing_field(error.inner())) {
            (Some((field, filler)), _) if *field == at => (at, filler + 1),
            (_, Some(name)) if filled.len() < MAX_FILLS => {
                let pointer = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
                filled.push(format!("{kind}{}", pointer.replace('/', ".")));
                (pointer, 0)
            }
            _ => return None,
        };
        let make = FILLERS.get(filler)?;
        let (parent, name) = pointer.rsplit_once('/')?;
        let name = name.replace("~1", "/").replace("~0", "~");
        payload.pointer_mut(parent)?.as_object_mut()?.insert(name, make());
        last = Some((pointer, filler));
    }
    None
}

/// The JSON pointer of a serde path, when it only goes through maps and lists.
fn pointer(path: &serde_path_to_error::Path) -> Option<String> {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Map { key } => out.push_str(&format!("/{}", key.replace('~', "~0").replace('/', "~1"))),
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Enum { .. } | Segment::Unknown => return None,
        }
    }
    Some(out)
}

/// The field named by serde's "missing field `name`" error.
fn missing_field(error: &serde_json::Error) -> Option<String> {
    let message = error.to_string();
    let rest = message.strip_prefix("missing field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn callback(query: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"update_id": 7, "callback_query": query})).unwrap()
    }

    #[test]
    fn a_callback_query_without_chat_instance_is_routed_with_it_empty() {
        let raw = callback(json!({"id": "q1", "from": {"id": 5, "is_bot": false, "first_name": "A"}, "data": "go"}));
        let update = decode_update(&raw).unwrap();
        let UpdateKind::CallbackQuery(query) = update.kind else { panic!("not a callback: {update:?}") };
        assert_eq!((query.id.0.as_str(), query.chat_instance.as_str(), query.data.as_deref()), ("q1", "", Some("go")));
    }

    #[test]
    fn the_repair_is_logged_once_with_the_update_id_path_and_error() {
        let raw = callback(json!({"id": "q1", "from": {"id": 5, "is_bot": false, "first_name": "A"}}));
        let (_, logged) = crate::telemetry::capture::logged_by(|| decode_update(&raw).unwrap());
        assert_eq!(logged.lines().count(), 1, "{logged}");
        for part in ["WARN", "update_id=7", "missing field `chat_instance`", "filled=callback_query.chat_instance"] {
            assert!(logged.contains(part), "{part} not in {logged}");
        }
    }

    #[test]
    fn a_missing_number_or_flag_is_filled_with_a_value_of_its_type() {
        // `from.is_bot` (a flag) and `from.id` (a number) are both missing.
        let raw = callback(json!({"id": "q2", "chat_instance": "c", "from": {"first_name": "A"}}));
        let UpdateKind::CallbackQuery(query) = decode_update(&raw).unwrap().kind else { panic!("not routed") };
        assert_eq!((query.from.id.0, query.from.is_bot), (0, false));
    }

    #[test]
    fn deleted_business_messages_decode_with_message_ids_as_the_bot_api_sends_them() {
        let chat = json!({"id": 5, "type": "private", "first_name": "A"});
        let raw = serde_json::to_vec(&json!({"update_id": 9, "deleted_business_messages":
            {"business_connection_id": "bc", "chat": chat, "message_ids": [20, 21]}}))
        .unwrap();
        let UpdateKind::DeletedBusinessMessages(deleted) = decode_update(&raw).unwrap().kind else {
            panic!("not routed")
        };
        assert_eq!(deleted.message_ids.iter().map(|id| id.0).collect::<Vec<_>>(), [20, 21]);
    }

    #[test]
    fn unknown_types_and_hopeless_payloads_stay_errors_and_non_updates_fail() {
        let unknown = serde_json::to_vec(&json!({"update_id": 8, "future_kind": {"x": 1}})).unwrap();
        let update = decode_update(&unknown).unwrap();
        assert!(matches!(update.kind, UpdateKind::Error(_)));
        assert_eq!(unknown_type(&update), Some("future_kind"));
        let hopeless = callback(json!("not an object"));
        assert!(matches!(decode_update(&hopeless).unwrap().kind, UpdateKind::Error(_)));
        let wrong_type = callback(json!({"id": "q3", "chat_instance": "c", "from": "someone"}));
        let update = decode_update(&wrong_type).unwrap();
        assert_eq!(unreadable_callback(&update), Some(CallbackQueryId("q3".into())), "{update:?}");
        assert_eq!(unknown_type(&update), None, "a known type that does not decode is not an unknown type");
        assert!(decode_update(b"[1, 2]").is_err());
    }
}
