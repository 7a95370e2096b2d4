//! Memberships: a user blocking or unblocking the bot (`my_chat_member` in the private chat), members of groups
//! and channels changing status (`chat_member`, or `my_chat_member` when the member is the bot), and requests to
//! join (`chat_join_request`). The world remembers each status, so an update carries the real old one.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::post,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Answer, ChatSpec, UserRef, bad, find, queued, shared_chat};
use crate::{
    types::{Chat, User},
    world::{BotCell, BotState, STATUSES, World, chat_member, unix_now},
};

/// The routes of this topic.
pub(super) fn routes() -> Router<Arc<World>> {
    Router::new()
        .route("/bots/{bot}/block", post(block))
        .route("/bots/{bot}/unblock", post(unblock))
        .route("/bots/{bot}/chat_members", post(member_change))
        .route("/bots/{bot}/join_requests", post(join_request))
}

#[derive(Deserialize)]
struct BlockBody {
    user_id: i64,
}

/// Marks that `user` blocked (or unblocked) the bot and, when that changed anything, queues the `my_chat_member`
/// update Telegram sends for it; returns the update's id.
pub(super) fn set_blocked(st: &mut BotState, user: &User, blocked: bool) -> Option<i64> {
    if !st.set_blocked(user.id, blocked) {
        return None;
    }
    let (old, new) = if blocked { ("member", "kicked") } else { ("kicked", "member") };
    let none = Map::new();
    let payload = json!({
        "chat": Chat::private(user),
        "from": user,
        "date": unix_now(),
        "old_chat_member": chat_member(&st.me, old, 0, &none),
        "new_chat_member": chat_member(&st.me, new, 0, &none),
    });
    st.push_update("my_chat_member", payload)
}

async fn block(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<BlockBody>) -> Answer {
    blocking(&world, &bot, body.user_id, true)
}

async fn unblock(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<BlockBody>) -> Answer {
    blocking(&world, &bot, body.user_id, false)
}

fn blocking(world: &World, bot: &str, user_id: i64, blocked: bool) -> Answer {
    let bot = find(world, bot)?;
    let user = UserRef::Id(user_id).resolve(world)?;
    let update_id = set_blocked(&mut bot.state.lock(), &user, blocked);
    bot.updates.notify_waiters();
    Ok(Json(json!({ "ok": true, "update_id": update_id })))
}

/// A status change: who (`user`, the bot's id for the bot itself) becomes what in which chat, done by whom.
#[derive(Deserialize)]
struct MemberBody {
    chat: Option<ChatSpec>,
    chat_id: Option<i64>,
    /// Who made the change; the member themselves unless given.
    from: Option<UserRef>,
    user: UserRef,
    status: String,
    #[serde(default)]
    until_date: i64,
    /// Fields of the new `ChatMember` besides its status (`can_*`, `is_anonymous`, `custom_title`).
    #[serde(default)]
    rights: Map<String, Value>,
    /// The invite link used to join.
    invite_link: Option<String>,
}

/// The member `reference` names: the bot itself when it is the bot's id.
fn member(world: &World, bot: &BotCell, reference: UserRef) -> Result<User, super::ControlError> {
    match reference {
        UserRef::Id(id) if id == bot.id => Ok(bot.state.lock().me.clone()),
        other => other.resolve(world),
    }
}

/// The `ChatInviteLink` object for a link the bot's chat uses.
fn invite_link(link: &str, creator: &User, join_request: bool) -> Value {
    json!({
        "invite_link": link,
        "creator": creator,
        "creates_join_request": join_request,
        "is_primary": false,
        "is_revoked": false,
    })
}

async fn member_change(
    State(world): State<Arc<World>>,
    Path(bot): Path<String>,
    Json(body): Json<MemberBody>,
) -> Answer {
    let bot = find(&world, &bot)?;
    let chat = shared_chat(&world, body.chat, body.chat_id, &["group", "supergroup", "channel"])?;
    let user = member(&world, &bot, body.user)?;
    let from = match body.from {
        Some(reference) => member(&world, &bot, reference)?,
        None => user.clone(),
    };
    if !STATUSES.contains(&body.status.as_str()) {
        return Err(bad(format!("status must be one of {}", STATUSES.join(", "))));
    }
    let new = chat_member(&user, &body.status, body.until_date, &body.rights).unwrap_or_default();
    let update_id = {
        let mut st = bot.state.lock();
        let none = Map::new();
        let old = st.members.get(&(chat.id, user.id)).cloned().unwrap_or_else(|| {
            let present = st.chats.get(&chat.id).is_some_and(|log| {
                user.id == bot.id
                    || log.messages().iter().any(|m| m.message.from.as_ref().map(|u| u.id) == Some(user.id))
            });
            chat_member(&user, if present { "member" } else { "left" }, 0, &none).unwrap_or_default()
        });
        if old == new {
            return Err(bad(format!("no change: user {} is already {} in chat {}", user.id, body.status, chat.id)));
        }
        let mut payload = json!({
            "chat": chat,
            "from": from,
            "date": unix_now(),
            "old_chat_member": old,
            "new_chat_member": new,
        });
        if let Some(link) = &body.invite_link {
            payload["invite_link"] = invite_link(link, &st.me, false);
        }
        st.members.insert((chat.id, user.id), new);
        let kind = if user.id == bot.id { "my_chat_member" } else { "chat_member" };
        st.push_update(kind, payload)
    };
    bot.updates.notify_waiters();
    Ok(queued(update_id, None))
}

#[derive(Deserialize)]
struct JoinBody {
    from: UserRef,
    chat: Option<ChatSpec>,
    chat_id: Option<i64>,
    bio: Option<String>,
    invite_link: Option<String>,
}

async fn join_request(State(world): State<Arc<World>>, Path(bot): Path<String>, Json(body): Json<JoinBody>) -> Answer {
    let bot = find(&world, &bot)?;
    let chat = shared_chat(&world, body.chat, body.chat_id, &["supergroup", "channel", "group"])?;
    let user = body.from.resolve(&world)?;
    let update_id = {
        let mut st = bot.state.lock();
        let mut payload = json!({ "chat": chat, "from": user, "user_chat_id": user.id, "date": unix_now() });
        if let Some(bio) = body.bio {
            payload["bio"] = bio.into();
        }
        if let Some(link) = &body.invite_link {
            payload["invite_link"] = invite_link(link, &st.me, true);
        }
        st.join_requests.insert((chat.id, user.id));
        st.push_update("chat_join_request", payload)
    };
    bot.updates.notify_waiters();
    Ok(queued(update_id, None))
}
