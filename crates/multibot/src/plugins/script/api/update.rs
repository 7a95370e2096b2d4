//! The whole update for scripts: `ctx.update`, every field of the update as the Bot API names it, read-only, made
//! on first use (a handler that does not read it costs nothing); `ctx.kind` for every update type; and
//! `on_update(kind, [filter,] handler)`, a handler for any update type the router supports, with that type's
//! filter.

use mlua::{AnyUserData, Function, Lua, Table, Value};
use regex::Regex;
use serde_json::Value as Json;
use teloxide_core::types::{MaybeAnonymousUser, Update, UpdateKind};

use super::{
    super::vm::to_lua_frozen, LuaCtx, RouteDecl, bot_api::fits, callback_filter, filter_and_handler, message_filter,
    named, only_keys, registering, runtime,
};
use crate::plugins::{MemberFilter, PayloadFilter, QueryFilter, ReactionFilter, UpdateFilter};

/// The name of the update's type, as the Bot API's `Update` names its field (`"other"` for a type this version
/// does not know).
pub(super) fn kind_name(kind: &UpdateKind) -> &'static str {
    match kind {
        UpdateKind::Message(_) => "message",
        UpdateKind::EditedMessage(_) => "edited_message",
        UpdateKind::ChannelPost(_) => "channel_post",
        UpdateKind::EditedChannelPost(_) => "edited_channel_post",
        UpdateKind::BusinessConnection(_) => "business_connection",
        UpdateKind::BusinessMessage(_) => "business_message",
        UpdateKind::EditedBusinessMessage(_) => "edited_business_message",
        UpdateKind::DeletedBusinessMessages(_) => "deleted_business_messages",
        UpdateKind::MessageReaction(_) => "message_reaction",
        UpdateKind::MessageReactionCount(_) => "message_reaction_count",
        UpdateKind::InlineQuery(_) => "inline_query",
        UpdateKind::ChosenInlineResult(_) => "chosen_inline_result",
        UpdateKind::CallbackQuery(_) => "callback_query",
        UpdateKind::ShippingQuery(_) => "shipping_query",
        UpdateKind::PreCheckoutQuery(_) => "pre_checkout_query",
        UpdateKind::PurchasedPaidMedia(_) => "purchased_paid_media",
        UpdateKind::Poll(_) => "poll",
        UpdateKind::PollAnswer(_) => "poll_answer",
        UpdateKind::MyChatMember(_) => "my_chat_member",
        UpdateKind::ChatMember(_) => "chat_member",
        UpdateKind::ChatJoinRequest(_) => "chat_join_request",
        UpdateKind::ChatBoost(_) => "chat_boost",
        UpdateKind::RemovedChatBoost(_) => "removed_chat_boost",
        UpdateKind::Error(_) => "other",
    }
}

/// `ctx.update`: the update as Bot API JSON, converted once per handler call and kept on the `ctx`.
pub(super) fn field(lua: &Lua, ctx: AnyUserData) -> mlua::Result<Value> {
    if let Value::Table(table) = ctx.named_user_value::<Value>("update")? {
        return Ok(Value::Table(table));
    }
    let json = bot_api_json(ctx.borrow::<LuaCtx>()?.0.update())
        .map_err(|e| runtime(format!("ctx.update: the update cannot be read: {e}")))?;
    if !fits(&json) {
        return Err(runtime("ctx.update: the update is too large for a script"));
    }
    let table = to_lua_frozen(lua, &json)?;
    ctx.set_named_user_value("update", &table)?;
    Ok(table)
}

/// The update as the Bot API sends it. teloxide-core writes its types back as the Bot API names them, but for
/// two: the voter of a `poll_answer` and the actor of a `message_reaction`, which it flattens into the object
/// instead of `user` / `voter_chat` and `user` / `actor_chat`; those are put back.
fn bot_api_json(update: &Update) -> serde_json::Result<Json> {
    let mut json = serde_json::to_value(update)?;
    let (field, who) = match &update.kind {
        UpdateKind::PollAnswer(answer) => ("poll_answer", &answer.voter),
        UpdateKind::MessageReaction(reaction) => ("message_reaction", &reaction.actor),
        _ => return Ok(json),
    };
    let (name, flattened) = match who {
        MaybeAnonymousUser::User(user) => ("user", serde_json::to_value(user)?),
        MaybeAnonymousUser::Chat(chat) if field == "poll_answer" => ("voter_chat", serde_json::to_value(chat)?),
        MaybeAnonymousUser::Chat(chat) => ("actor_chat", serde_json::to_value(chat)?),
    };
    if let (Some(object), Json::Object(keys)) = (json.get_mut(field).and_then(Json::as_object_mut), &flattened) {
        for key in keys.keys() {
            object.remove(key);
        }
        object.insert(name.to_owned(), flattened);
    }
    Ok(json)
}

/// The update types `on_update` takes, with the filter each reads from the script's table.
type FilterOf = fn(Option<Table>) -> mlua::Result<UpdateFilter>;

const KINDS: &[(&str, FilterOf)] = &[
    ("message", |f| Ok(UpdateFilter::Message(message_filter(f, "on_update filter")?))),
    ("edited_message", |f| Ok(UpdateFilter::EditedMessage(message_filter(f, "on_update filter")?))),
    ("channel_post", |f| Ok(UpdateFilter::ChannelPost(message_filter(f, "on_update filter")?))),
    ("edited_channel_post", |f| Ok(UpdateFilter::EditedChannelPost(message_filter(f, "on_update filter")?))),
    ("business_message", |f| Ok(UpdateFilter::BusinessMessage(message_filter(f, "on_update filter")?))),
    ("edited_business_message", |f| Ok(UpdateFilter::EditedBusinessMessage(message_filter(f, "on_update filter")?))),
    ("callback_query", |f| Ok(UpdateFilter::CallbackQuery(callback_filter(f)?))),
    ("inline_query", |f| Ok(UpdateFilter::InlineQuery(query_filter(f)?))),
    ("chosen_inline_result", |f| Ok(UpdateFilter::ChosenInlineResult(query_filter(f)?))),
    ("message_reaction", |f| Ok(UpdateFilter::MessageReaction(reaction_filter(f)?))),
    ("message_reaction_count", |f| Ok(UpdateFilter::MessageReactionCount(reaction_filter(f)?))),
    ("my_chat_member", |f| Ok(UpdateFilter::MyChatMember(member_filter(f)?))),
    ("chat_member", |f| Ok(UpdateFilter::ChatMember(member_filter(f)?))),
    ("shipping_query", |f| Ok(UpdateFilter::ShippingQuery(payload_filter(f)?))),
    ("pre_checkout_query", |f| Ok(UpdateFilter::PreCheckoutQuery(payload_filter(f)?))),
    ("purchased_paid_media", |f| Ok(UpdateFilter::PurchasedPaidMedia(payload_filter(f)?))),
    ("business_connection", |f| whole(f, UpdateFilter::BusinessConnection)),
    ("deleted_business_messages", |f| whole(f, UpdateFilter::DeletedBusinessMessages)),
    ("poll", |f| whole(f, UpdateFilter::Poll)),
    ("poll_answer", |f| whole(f, UpdateFilter::PollAnswer)),
    ("chat_join_request", |f| whole(f, UpdateFilter::ChatJoinRequest)),
    ("chat_boost", |f| whole(f, UpdateFilter::ChatBoost)),
    ("removed_chat_boost", |f| whole(f, UpdateFilter::RemovedChatBoost)),
];

/// The `on_update` global.
pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    let register = lua.create_function(|lua, (kind, first, second): (String, Value, Option<Function>)| {
        let Some((_, filter_of)) = KINDS.iter().find(|(name, _)| *name == kind) else {
            let known: Vec<&str> = KINDS.iter().map(|(name, _)| *name).collect();
            return Err(runtime(format!(
                "on_update: unknown update type {kind:?} (expected one of: {})",
                known.join(", ")
            )));
        };
        let (filter, handler) = filter_and_handler(first, second, "on_update")?;
        let route = RouteDecl::Update(filter_of(filter)?);
        registering(lua, "on_update", |r| r.routes.push((route, handler)))
    })?;
    lua.globals().set("on_update", register)
}

fn whole(filter: Option<Table>, update: UpdateFilter) -> mlua::Result<UpdateFilter> {
    match filter {
        None => Ok(update),
        Some(_) => Err(runtime("on_update filter: this update type takes no filter")),
    }
}

fn query_filter(filter: Option<Table>) -> mlua::Result<QueryFilter> {
    let Some(filter) = filter else { return Ok(QueryFilter::any()) };
    only_keys(&filter, "on_update filter", &["prefix", "regex"])?;
    let mut result = match filter.get::<Option<String>>("prefix")? {
        Some(prefix) => QueryFilter::prefix(&prefix),
        None => QueryFilter::any(),
    };
    if let Some(pattern) = filter.get::<Option<String>>("regex")? {
        let regex =
            Regex::new(&pattern).map_err(|e| runtime(format!("on_update filter: invalid regex {pattern:?}: {e}")))?;
        result = result.with_regex(regex);
    }
    Ok(result)
}

fn reaction_filter(filter: Option<Table>) -> mlua::Result<ReactionFilter> {
    let Some(filter) = filter else { return Ok(ReactionFilter::any()) };
    only_keys(&filter, "on_update filter", &["emoji"])?;
    Ok(filter.get::<Option<String>>("emoji")?.map_or_else(ReactionFilter::any, |e| ReactionFilter::emoji(&e)))
}

fn member_filter(filter: Option<Table>) -> mlua::Result<MemberFilter> {
    let Some(filter) = filter else { return Ok(MemberFilter::any()) };
    let what = "on_update filter";
    only_keys(&filter, what, &["new_status", "old_status", "chat"])?;
    let mut result = MemberFilter::any();
    if let Some(status) = named(&filter, what, "new_status")? {
        result = result.new_status(status);
    }
    if let Some(status) = named(&filter, what, "old_status")? {
        result = result.old_status(status);
    }
    if let Some(chat) = named(&filter, what, "chat")? {
        result = result.chat(chat);
    }
    Ok(result)
}

fn payload_filter(filter: Option<Table>) -> mlua::Result<PayloadFilter> {
    let Some(filter) = filter else { return Ok(PayloadFilter::any()) };
    only_keys(&filter, "on_update filter", &["payload", "prefix"])?;
    match (filter.get::<Option<String>>("payload")?, filter.get::<Option<String>>("prefix")?) {
        (Some(_), Some(_)) => Err(runtime("on_update filter: give payload or prefix, not both")),
        (Some(payload), None) => Ok(PayloadFilter::payload(&payload)),
        (None, Some(prefix)) => Ok(PayloadFilter::prefix(&prefix)),
        (None, None) => Ok(PayloadFilter::any()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn round_trip(update: Json) -> Json {
        let parsed: Update = serde_json::from_slice(&serde_json::to_vec(&update).unwrap()).unwrap();
        assert!(!matches!(parsed.kind, UpdateKind::Error(_)), "does not decode");
        bot_api_json(&parsed).unwrap()
    }

    #[test]
    fn voters_and_actors_are_written_as_the_bot_api_names_them() {
        let user = json!({"id": 7, "is_bot": false, "first_name": "Ann"});
        let answer = json!({"update_id": 1, "poll_answer": {"poll_id": "p1", "user": user, "option_ids": [1]}});
        assert_eq!(round_trip(answer.clone()), answer);
        let chat = json!({"id": -100, "type": "channel", "title": "News"});
        let anonymous = json!({"update_id": 2, "poll_answer": {"poll_id": "p1", "voter_chat": chat, "option_ids": []}});
        assert_eq!(round_trip(anonymous.clone()), anonymous);
        let group = json!({"id": -5, "type": "supergroup", "title": "G"});
        let reaction = json!({"update_id": 3, "message_reaction": {"chat": group, "message_id": 4, "user": user,
            "date": 1_700_000_000, "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "👍"}]}});
        assert_eq!(round_trip(reaction.clone()), reaction);
        // Every other type as teloxide-core writes it: a message with its location and reply.
        let message = json!({"update_id": 4, "message": {"message_id": 9, "date": 1_700_000_000, "chat":
            {"id": 7, "type": "private", "first_name": "Ann"}, "from": user, "location": {"latitude": 1.5,
            "longitude": 2.5}}});
        assert_eq!(round_trip(message.clone())["message"]["location"], message["message"]["location"]);
    }

    #[test]
    fn filter_names_are_the_bot_apis_and_a_wrong_one_lists_the_right_ones() {
        use teloxide_core::types::ChatMemberStatus;

        use crate::plugins::{ChatType, ContentType};
        let lua = Lua::new();
        let filter = lua.create_table().unwrap();
        for (key, name) in [("new_status", "kicked"), ("chat", "supergroup"), ("content", "picture"), ("old", "Banned")]
        {
            filter.set(key, name).unwrap();
        }
        assert_eq!(named(&filter, "f", "new_status").unwrap(), Some(ChatMemberStatus::Banned));
        assert_eq!(named(&filter, "f", "chat").unwrap(), Some(ChatType::Supergroup));
        assert_eq!(named::<ChatType>(&filter, "f", "absent").unwrap(), None);
        // A wrong name, and a variant's Rust name where the Bot API spells it otherwise.
        let wrong = named::<ContentType>(&filter, "on_message filter", "content").unwrap_err().to_string();
        assert!(
            wrong.contains("on_message filter: content: unknown variant `picture`, expected one of `text`, `photo`")
        );
        assert!(named::<ChatMemberStatus>(&filter, "f", "old").is_err());
    }
}
