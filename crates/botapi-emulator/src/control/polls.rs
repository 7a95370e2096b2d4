//! Votes and reactions: users voting in the bot's polls (`poll_answer` for non-anonymous polls, `poll` with the
//! new counts), stopped polls the bot did not send (`poll`), and reactions to messages (`message_reaction`,
//! `message_reaction_count`). The world keeps the votes and reactions, so counts and old reactions are real.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::post,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, UserRef, bad, find, queued};
use crate::{
    types::{Poll, PollOption},
    world::{BotState, World, unix_now},
};

/// The routes of this topic.
pub(super) fn routes() -> Router<Arc<World>> {
    Router::new()
        .route("/bots/{bot}/poll_answers", post(poll_answer))
        .route("/bots/{bot}/polls", post(closed_poll))
        .route("/bots/{bot}/reactions", post(reaction))
        .route("/bots/{bot}/reaction_counts", post(reaction_count))
}

#[derive(Deserialize)]
struct VoteBody {
    from: UserRef,
    poll_id: String,
    /// Options chosen (0-based); empty to retract the vote.
    option_ids: Vec<u32>,
}

/// A user votes in a poll the bot sent.
async fn poll_answer(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<VoteBody>) -> Answer {
    let bot = find(&world, &bot)?;
    let user = body.from.resolve(&world)?;
    let id = body.poll_id;
    let update_id = {
        let mut st = bot.state.lock();
        let record = st.polls.get_mut(&id).ok_or_else(|| bad(format!("no poll {id} sent by this bot")))?;
        let poll = &record.poll;
        if poll.is_closed {
            return Err(bad(format!("poll {id} is closed")));
        }
        let mut options = body.option_ids.clone();
        options.sort_unstable();
        options.dedup();
        if options.len() != body.option_ids.len() || options.iter().any(|&o| o as usize >= poll.options.len()) {
            return Err(bad(format!(
                "option_ids must be distinct options of poll {id} (0-{})",
                poll.options.len() - 1
            )));
        }
        if options.len() > 1 && !poll.allows_multiple_answers {
            return Err(bad(format!("poll {id} allows one answer")));
        }
        if poll.kind == "quiz" && record.votes.contains_key(&user.id) {
            return Err(bad("a quiz answer cannot be changed"));
        }
        let anonymous = poll.is_anonymous;
        record.vote(user.id, options);
        let (poll, chat_id, message_id) = (record.poll.clone(), record.chat_id, record.message_id);
        if let Some(entry) = st.chats.get_mut(&chat_id).and_then(|log| log.get_mut(message_id)) {
            entry.message.poll = Some(poll.clone());
        }
        let answer = (!anonymous).then(|| json!({ "poll_id": id, "user": user, "option_ids": body.option_ids }));
        let update_id = answer.and_then(|answer| st.push_update("poll_answer", answer));
        st.push_update("poll", serde_json::to_value(poll).unwrap_or_default());
        update_id
    };
    bot.updates.notify_waiters();
    Ok(queued(update_id, Some(id)))
}

#[derive(Deserialize)]
struct PollBody {
    question: String,
    options: Vec<String>,
    /// Votes per option, in order.
    #[serde(default)]
    voter_counts: Vec<u32>,
    #[serde(default = "yes")]
    is_anonymous: bool,
    #[serde(rename = "type", default = "regular")]
    kind: String,
    correct_option_id: Option<u32>,
}

fn yes() -> bool {
    true
}

fn regular() -> String {
    "regular".into()
}

/// The state of a stopped poll the bot did not send (Telegram tells bots of stopped polls).
async fn closed_poll(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<PollBody>) -> Answer {
    let bot = find(&world, &bot)?;
    if body.question.is_empty() || !(2..=10).contains(&body.options.len()) {
        return Err(bad("a poll has a question and 2-10 options"));
    }
    if !matches!(body.kind.as_str(), "regular" | "quiz") {
        return Err(bad("type must be regular or quiz"));
    }
    let options: Vec<PollOption> = body
        .options
        .into_iter()
        .enumerate()
        .map(|(i, text)| PollOption { text, voter_count: body.voter_counts.get(i).copied().unwrap_or(0) })
        .collect();
    let poll = Poll {
        id: world.poll_id(),
        question: body.question,
        total_voter_count: options.iter().map(|o| o.voter_count).sum(),
        options,
        is_closed: true,
        is_anonymous: body.is_anonymous,
        correct_option_id: body.correct_option_id.filter(|_| body.kind == "quiz"),
        kind: body.kind,
        allows_multiple_answers: false,
        explanation: None,
        explanation_entities: None,
        open_period: None,
        close_date: None,
    };
    let id = poll.id.clone();
    let update_id = bot.state.lock().push_update("poll", serde_json::to_value(poll).unwrap_or_default());
    bot.updates.notify_waiters();
    Ok(queued(update_id, Some(id)))
}

#[derive(Deserialize)]
struct ReactionBody {
    from: UserRef,
    /// The chat of the message; the user's private chat unless given.
    chat_id: Option<i64>,
    message_id: i64,
    /// Emoji, or `ReactionType` objects; empty to remove the reaction.
    reaction: Vec<Value>,
}

/// A reaction as a `ReactionType` object.
fn reaction_type(value: Value) -> Result<Value, String> {
    match value {
        Value::String(emoji) if !emoji.is_empty() => Ok(json!({ "type": "emoji", "emoji": emoji })),
        Value::Object(object) => match object.get("type").and_then(Value::as_str) {
            Some("emoji") if object.get("emoji").is_some_and(Value::is_string) => Ok(Value::Object(object)),
            Some("custom_emoji") if object.get("custom_emoji_id").is_some_and(Value::is_string) => {
                Ok(Value::Object(object))
            }
            Some("paid") => Ok(Value::Object(object)),
            _ => Err(format!("not a ReactionType: {}", Value::Object(object))),
        },
        other => Err(format!("a reaction is an emoji or a ReactionType object, not {other}")),
    }
}

/// The message reacted to must exist; returns its chat.
fn reacted_message(
    st: &mut BotState,
    chat_id: i64,
    message_id: i64,
) -> Result<crate::types::Chat, super::ControlError> {
    let log = st.chats.get_mut(&chat_id).ok_or_else(|| bad(format!("no chat {chat_id}")))?;
    let chat = log.chat.clone();
    log.get_mut(message_id).ok_or_else(|| bad(format!("no message {message_id} in chat {chat_id}")))?;
    Ok(chat)
}

/// A user changes their reaction to a message.
async fn reaction(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<ReactionBody>) -> Answer {
    let bot = find(&world, &bot)?;
    let user = body.from.resolve(&world)?;
    let new = body.reaction.into_iter().map(reaction_type).collect::<Result<Vec<_>, _>>().map_err(bad)?;
    let chat_id = body.chat_id.unwrap_or(user.id);
    let update_id = {
        let mut st = bot.state.lock();
        let chat = reacted_message(&mut st, chat_id, body.message_id)?;
        let by_user = st.reactions.entry((chat_id, body.message_id)).or_default();
        let old = by_user.get(&user.id).cloned().unwrap_or_default();
        if old == new {
            return Err(bad("no change: the user already has this reaction"));
        }
        if new.is_empty() {
            by_user.remove(&user.id);
        } else {
            by_user.insert(user.id, new.clone());
        }
        let payload = json!({
            "chat": chat,
            "message_id": body.message_id,
            "user": user,
            "date": unix_now(),
            "old_reaction": old,
            "new_reaction": new,
        });
        st.push_update("message_reaction", payload)
    };
    bot.updates.notify_waiters();
    Ok(queued(update_id, None))
}

#[derive(Deserialize)]
struct CountBody {
    chat_id: i64,
    message_id: i64,
    /// `ReactionCount` objects, for anonymous reactions (channels); counted from users' reactions unless given.
    reactions: Option<Vec<Value>>,
}

/// The counts of a message's anonymous reactions, as Telegram groups them.
async fn reaction_count(
    State(world): State<Arc<World>>,
    Path(bot): Path<String>,
    Json(body): Json<CountBody>,
) -> Answer {
    let bot = find(&world, &bot)?;
    let update_id = {
        let mut st = bot.state.lock();
        let chat = reacted_message(&mut st, body.chat_id, body.message_id)?;
        let reactions = body.reactions.unwrap_or_else(|| {
            let mut counts: BTreeMap<String, (Value, u32)> = BTreeMap::new();
            let by_user = st.reactions.get(&(body.chat_id, body.message_id));
            for reaction in by_user.into_iter().flat_map(|m| m.values()).flatten() {
                counts.entry(reaction.to_string()).or_insert((reaction.clone(), 0)).1 += 1;
            }
            counts.into_values().map(|(kind, count)| json!({ "type": kind, "total_count": count })).collect()
        });
        let payload =
            json!({ "chat": chat, "message_id": body.message_id, "date": unix_now(), "reactions": reactions });
        st.push_update("message_reaction_count", payload)
    };
    bot.updates.notify_waiters();
    Ok(queued(update_id, None))
}
