//! Polls: `sendPoll` (a regular poll or a quiz, remembered so users can vote) and `stopPoll` (closes it, answers
//! the final state and tells the bot with a `poll` update, as Telegram does).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    Answer,
    messages::{format_with, record_sent, reply_markup, reply_target, send_options, target_chat},
};
use crate::{
    error::ApiError,
    params::Params,
    types::{Message, Poll, PollOption},
    world::{BotState, PollRecord, World, unix_now},
};

/// The answer options of `sendPoll`: strings, or `InputPollOption` objects with a `text`.
fn options(p: &Params) -> Result<Vec<String>, ApiError> {
    let value = p.json("options", "can't parse options JSON object")?;
    let value = value.ok_or_else(|| ApiError::bad_request("parameter \"options\" is required"))?;
    let items = value.as_array().ok_or_else(|| ApiError::bad_request("expected an Array of String as options"))?;
    let options = items
        .iter()
        .map(|item| item.as_str().or_else(|| item["text"].as_str()).map(str::to_owned))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| ApiError::bad_request("expected an option to be of type String"))?;
    if options.len() < 2 {
        return Err(ApiError::bad_request("poll must have at least 2 option"));
    }
    if options.len() > 10 {
        return Err(ApiError::bad_request("poll can't have more than 10 options"));
    }
    if options.iter().any(|o| o.trim().is_empty()) {
        return Err(ApiError::bad_request("poll options must be non-empty"));
    }
    if options.iter().any(|o| o.chars().count() > 100) {
        return Err(ApiError::bad_request("poll options length must not exceed 100"));
    }
    Ok(options)
}

/// `sendPoll`.
pub(super) fn send_poll(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let chat = target_chat(world, st, p)?;
    let question = p.str("question")?.unwrap_or_default();
    if question.trim().is_empty() {
        return Err(ApiError::bad_request("poll question must be non-empty"));
    }
    if question.chars().count() > 300 {
        return Err(ApiError::bad_request("poll question length must not exceed 300"));
    }
    let options = options(p)?;
    let kind = p.str("type")?.filter(|t| !t.is_empty()).unwrap_or_else(|| "regular".into());
    if !matches!(kind.as_str(), "regular" | "quiz") {
        return Err(ApiError::bad_request("unsupported poll type specified"));
    }
    let quiz = kind == "quiz";
    let correct_option_id = match p.int("correct_option_id")? {
        Some(id) if quiz && (0..options.len() as i64).contains(&id) => Some(id as u32),
        None if !quiz => None,
        _ if !quiz => None,
        _ => return Err(ApiError::bad_request("wrong correct option ID specified")),
    };
    let explanation = p.str("explanation")?.filter(|e| quiz && !e.is_empty());
    let explanation = match explanation {
        Some(raw) => Some(format_with(world, &raw, p.str("explanation_parse_mode")?)?),
        None => None,
    };
    if explanation.as_ref().is_some_and(|e| e.text.chars().count() > 200) {
        return Err(ApiError::bad_request("poll explanation length must not exceed 200"));
    }
    let open_period = p.int("open_period")?.filter(|&s| s > 0).map(|s| s.clamp(5, 600) as u32);
    let close_date = p.int("close_date")?.filter(|&d| d > 0);
    let markup = reply_markup(p)?;
    let reply_to_message = reply_target(st, &chat, p)?;
    if world.flood() {
        st.check_flood(&chat)?;
    }
    let is_anonymous = p.get("is_anonymous").is_none() || p.bool("is_anonymous")?;
    let (explanation, explanation_entities) = explanation.map_or((None, None), |e| (Some(e.text), e.entities));
    let poll = Poll {
        id: world.poll_id(),
        question,
        options: options.into_iter().map(|text| PollOption { text, voter_count: 0 }).collect(),
        total_voter_count: 0,
        is_closed: p.bool("is_closed")?,
        is_anonymous,
        kind,
        allows_multiple_answers: !quiz && p.bool("allows_multiple_answers")?,
        correct_option_id,
        explanation,
        explanation_entities,
        open_period,
        close_date: close_date.or_else(|| open_period.map(|s| unix_now() + i64::from(s))),
    };
    let chat_id = chat.id;
    let message = Message {
        from: Some(st.me.clone()),
        chat,
        date: unix_now(),
        reply_to_message,
        poll: Some(poll.clone()),
        reply_markup: markup,
        ..Message::default()
    };
    let options = send_options(p, &["question", "options"]);
    let sent = record_sent(world, st, message, None, None, options);
    let message_id = sent["message_id"].as_i64().unwrap_or_default();
    let id = poll.id.clone();
    st.polls.insert(id, PollRecord { poll, chat_id, message_id, votes: BTreeMap::new() });
    Ok(Answer::Json(sent))
}

/// `stopPoll`: closes a poll the bot sent and answers its final state.
pub(super) fn stop_poll(world: &World, st: &mut BotState, p: &Params) -> Result<Answer, ApiError> {
    let chat_id = p.int("chat_id")?.ok_or_else(|| ApiError::bad_request("chat_id is empty"))?;
    let message_id =
        p.int("message_id")?.ok_or_else(|| ApiError::bad_request("message identifier is not specified"))?;
    let markup = reply_markup(p)?;
    let not_found = || ApiError::bad_request("message with poll to stop not found");
    let entry = st.chats.get_mut(&chat_id).and_then(|log| log.get_mut(message_id)).ok_or_else(not_found)?;
    let poll_id = entry.message.poll.as_ref().map(|poll| poll.id.clone());
    let poll_id = poll_id.ok_or_else(|| ApiError::bad_request("message is not a poll"))?;
    if !entry.from_bot {
        return Err(ApiError::bad_request("poll can't be stopped"));
    }
    let record = st.polls.get_mut(&poll_id).ok_or_else(|| ApiError::bad_request("poll can't be stopped"))?;
    if record.poll.is_closed {
        return Err(ApiError::bad_request("poll has already been closed"));
    }
    record.poll.is_closed = true;
    let poll = record.poll.clone();
    let entry = st.chats.get_mut(&chat_id).and_then(|log| log.get_mut(message_id)).ok_or_else(not_found)?;
    entry.message.poll = Some(poll.clone());
    entry.message.reply_markup = markup;
    let stopped = entry.clone();
    st.emit("poll_stop", Some(chat_id), Some(&stopped), None, world.config.event_capacity);
    let value = serde_json::to_value(&poll).unwrap_or(Value::Null);
    st.push_update("poll", value.clone());
    Ok(Answer::Json(value))
}
