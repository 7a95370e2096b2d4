//! Channels: posts and their edits (`channel_post`, `edited_channel_post`), and boosts of channels and
//! supergroups (`chat_boost`, `removed_chat_boost`).

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, post},
};
use serde::Deserialize;
use serde_json::json;

use super::{
    Answer, ChatSpec, ControlError, UserRef, bad, find,
    messages::{Sent, deliver, detected},
    queued, shared_chat,
};
use crate::{
    types::Message,
    world::{Boost, World, unix_now},
};

/// How long a boost lasts unless removed, as a Premium subscription's month.
const BOOST_SECONDS: i64 = 30 * 24 * 3600;

/// The routes of this topic.
pub(super) fn routes() -> Router<Arc<World>> {
    Router::new()
        .route("/bots/{bot}/channel_posts", post(channel_post))
        .route("/bots/{bot}/channel_posts/edits", post(edit_channel_post))
        .route("/bots/{bot}/boosts", post(boost))
        .route("/bots/{bot}/boosts/{boost_id}", delete(remove_boost))
}

#[derive(Deserialize)]
struct PostBody {
    chat: Option<ChatSpec>,
    chat_id: Option<i64>,
    text: String,
    author_signature: Option<String>,
}

/// A post in a channel the bot is in: no `from`, `sender_chat` the channel.
async fn channel_post(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<PostBody>) -> Answer {
    let bot = find(&world, &bot)?;
    let chat = shared_chat(&world, body.chat, body.chat_id, &["channel"])?;
    if body.text.is_empty() {
        return Err(bad("text must not be empty"));
    }
    let message = Message {
        sender_chat: Some(chat.clone()),
        chat: chat.clone(),
        date: unix_now(),
        entities: detected(&body.text),
        text: Some(body.text),
        author_signature: body.author_signature,
        ..Message::default()
    };
    let sent = {
        let mut st = bot.state.lock();
        let (message_id, update_id) = deliver(&world, &mut st, message, "channel_post");
        Sent::message(chat.id, message_id, update_id)
    };
    bot.updates.notify_waiters();
    Ok(Json(serde_json::to_value(sent).unwrap_or_default()))
}

#[derive(Deserialize)]
struct PostEditBody {
    chat_id: i64,
    message_id: i64,
    text: String,
}

async fn edit_channel_post(
    State(world): State<Arc<World>>,
    Path(bot): Path<String>,
    Json(body): Json<PostEditBody>,
) -> Answer {
    let bot = find(&world, &bot)?;
    let sent = {
        let mut st = bot.state.lock();
        let entry = st.chats.get_mut(&body.chat_id).and_then(|log| log.get_mut(body.message_id));
        let entry = entry.ok_or_else(|| bad(format!("no message {} in chat {}", body.message_id, body.chat_id)))?;
        if entry.message.chat.kind != "channel" || entry.from_bot {
            return Err(bad("only a channel's own posts are edited here"));
        }
        let previous = entry.message.clone();
        entry.edits.push(previous);
        entry.message.entities = detected(&body.text);
        entry.message.text = Some(body.text);
        entry.message.edit_date = Some(unix_now());
        let payload = serde_json::to_value(&entry.message).unwrap_or_default();
        let update_id = st.push_update("edited_channel_post", payload);
        Sent::message(body.chat_id, body.message_id, update_id)
    };
    bot.updates.notify_waiters();
    Ok(Json(serde_json::to_value(sent).unwrap_or_default()))
}

#[derive(Deserialize)]
struct BoostBody {
    chat: Option<ChatSpec>,
    chat_id: Option<i64>,
    from: UserRef,
    /// `premium` (the default) or `gift_code`.
    source: Option<String>,
}

/// A user boosts a channel or supergroup; the answer's `id` is the boost's id.
async fn boost(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<BoostBody>) -> Answer {
    let bot = find(&world, &bot)?;
    let chat = shared_chat(&world, body.chat, body.chat_id, &["channel", "supergroup"])?;
    let user = body.from.resolve(&world)?;
    let kind = body.source.unwrap_or_else(|| "premium".into());
    if !matches!(kind.as_str(), "premium" | "gift_code") {
        return Err(bad("source must be premium or gift_code"));
    }
    let source = json!({ "source": kind, "user": user });
    let boost_id = format!("{:032x}", u128::from(world.unique()) * 0x9E37_79B9_7F4A_7C15);
    let now = unix_now();
    let update_id = {
        let mut st = bot.state.lock();
        let boost = json!({
            "boost_id": boost_id,
            "add_date": now,
            "expiration_date": now + BOOST_SECONDS,
            "source": source,
        });
        st.boosts.insert(boost_id.clone(), Boost { chat: chat.clone(), source });
        st.push_update("chat_boost", json!({ "chat": chat, "boost": boost }))
    };
    bot.updates.notify_waiters();
    Ok(queued(update_id, Some(boost_id)))
}

/// A boost ends before its time (the user cancelled it).
async fn remove_boost(State(world): State<Arc<World>>, Path((bot, boost_id)): Path<(String, String)>) -> Answer {
    let bot = find(&world, &bot)?;
    let update_id = {
        let mut st = bot.state.lock();
        let boost = st
            .boosts
            .remove(&boost_id)
            .ok_or_else(|| ControlError(StatusCode::NOT_FOUND, format!("no boost {boost_id}")))?;
        let payload =
            json!({ "chat": boost.chat, "boost_id": boost_id, "remove_date": unix_now(), "source": boost.source });
        st.push_update("removed_chat_boost", payload)
    };
    bot.updates.notify_waiters();
    Ok(queued(update_id, Some(boost_id)))
}
