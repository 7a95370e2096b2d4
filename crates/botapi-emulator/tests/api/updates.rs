//! Every update family: produced through the control API and the client, delivered by getUpdates with and without
//! `allowed_updates` and by webhook, each payload read unchanged by a real client (teloxide-core).

use std::{collections::BTreeSet, time::Duration};

use botapi_emulator::{Emulator, UserFile};
use serde_json::{Value, json};
use teloxide_core::types::{Update, UpdateKind};

use crate::{
    files::png,
    helpers::{Api, eventually, spawn},
    webhook::Receiver,
};

/// Every update type Telegram sends that the emulator produces.
const ALL: [&str; 22] = [
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
];

/// Update types delivered only when asked for by name.
const OPT_IN: [&str; 3] = ["chat_member", "message_reaction", "message_reaction_count"];

/// The update type teloxide-core read this update as; `None` when it could not read it.
fn teloxide_kind(update: &Value) -> Option<&'static str> {
    // As from the wire: teloxide-core reads update kinds from text, not from a `Value`.
    let update: Update = serde_json::from_str(&update.to_string()).ok()?;
    Some(match update.kind {
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
        UpdateKind::Poll(_) => "poll",
        UpdateKind::PollAnswer(_) => "poll_answer",
        UpdateKind::MyChatMember(_) => "my_chat_member",
        UpdateKind::ChatMember(_) => "chat_member",
        UpdateKind::ChatJoinRequest(_) => "chat_join_request",
        UpdateKind::ChatBoost(_) => "chat_boost",
        UpdateKind::RemovedChatBoost(_) => "removed_chat_boost",
        _ => return None,
    })
}

/// The type of an update: its one field besides `update_id`.
fn kind(update: &Value) -> String {
    update.as_object().unwrap().keys().find(|k| *k != "update_id").unwrap().clone()
}

/// Produces one update of every family (and what they need first), as users and Telegram would; the bot does its
/// part over the Bot API. Returns the types produced, with whether each was queued.
async fn produce_all(emu: &Emulator, api: &Api) -> Vec<(&'static str, bool)> {
    let mut produced = Vec::new();
    let mut note = |kind: &'static str, update_id: Option<i64>| produced.push((kind, update_id.is_some()));
    let (alice, bob) = (emu.user(10), emu.user(11));
    let group = emu.control().group(-100, "Friends");
    let channel = emu.control().channel(-1_000_000_000_500, "News");
    // Messages, edits, buttons.
    let hello = alice.send(&api.bot, "hello").await.unwrap();
    note("message", hello.update_id);
    note("edited_message", alice.edit(&api.bot, hello.message_id, "hello!").await.unwrap().update_id);
    let keyboard = json!({"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]});
    let menu = api.ok("sendMessage", json!({"chat_id": 10, "text": "menu", "reply_markup": keyboard})).await;
    let menu = serde_json::from_value(menu).unwrap();
    note("callback_query", alice.click(&api.bot, &menu, "go").await.unwrap().update_id);
    note("message", alice.send_file(&api.bot, UserFile::photo(png())).await.unwrap().update_id);
    // Channels.
    let post = api.bot.channel_post(&channel, "news").await.unwrap();
    note("channel_post", post.update_id);
    note("edited_channel_post", api.bot.edit_channel_post(&channel, post.message_id, "news!").await.unwrap().update_id);
    // Business accounts.
    let connection = alice.connect_business(&api.bot).await.unwrap();
    note("business_connection", connection.update_id);
    let connection = connection.id.unwrap();
    let asked = bob.send_business(&api.bot, &connection, "open today?").await.unwrap();
    note("business_message", asked.update_id);
    note("edited_business_message", bob.edit_business(&api.bot, &connection, &asked, "open?").await.unwrap().update_id);
    let deleted = api.bot.delete_business_messages(&connection, asked.chat_id, &[asked.message_id]).await.unwrap();
    note("deleted_business_messages", deleted.update_id);
    // Reactions.
    note("message_reaction", alice.react(&api.bot, 10, hello.message_id, &["👍"]).await.unwrap().update_id);
    note("message_reaction_count", api.bot.reaction_count(10, hello.message_id).await.unwrap().update_id);
    // Inline mode.
    let query = alice.inline_query(&api.bot, "cats").await.unwrap();
    note("inline_query", query.update_id);
    let query_id = query.id.unwrap();
    let article =
        json!({"type": "article", "id": "a1", "title": "Cats", "input_message_content": {"message_text": "meow"}});
    api.ok("answerInlineQuery", json!({"inline_query_id": query_id, "results": [article]})).await;
    note("chosen_inline_result", alice.choose_inline_result(&api.bot, &query_id, "a1").await.unwrap().update_id);
    // Payments.
    note("shipping_query", alice.shipping_query(&api.bot, "order-1").await.unwrap().update_id);
    note("pre_checkout_query", alice.pre_checkout_query(&api.bot, "EUR", 1250, "order-1").await.unwrap().update_id);
    // Polls.
    let poll = api
        .ok("sendPoll", json!({"chat_id": 10, "question": "Tea?", "options": ["yes", "no"], "is_anonymous": false}))
        .await;
    let voted = alice.vote(&api.bot, poll["poll"]["id"].as_str().unwrap(), &[0]).await.unwrap();
    note("poll_answer", voted.update_id);
    note("poll", api.bot.closed_poll("Coffee?", &["yes", "no"]).await.unwrap().update_id);
    // Memberships.
    alice.block(&api.bot).await.unwrap();
    note("chat_member", bob.join(&api.bot, &group).await.unwrap().update_id);
    note("my_chat_member", alice.add_bot_to(&api.bot, &group).await.unwrap().update_id);
    note("chat_join_request", bob.join_request(&api.bot, &channel).await.unwrap().update_id);
    // Boosts.
    let boost = bob.boost(&api.bot, &channel).await.unwrap();
    note("chat_boost", boost.update_id);
    note("removed_chat_boost", api.bot.remove_boost(&boost.id.unwrap()).await.unwrap().update_id);
    produced
}

/// The updates queued for the bot, confirmed as read.
async fn drain(api: &Api) -> Vec<Value> {
    let updates = api.ok("getUpdates", json!({"limit": 100})).await;
    let list = updates.as_array().unwrap().clone();
    if let Some(last) = list.last() {
        api.ok("getUpdates", json!({"offset": last["update_id"].as_i64().unwrap() + 1, "limit": 1})).await;
    }
    list
}

/// Asserts each update reads as its own type in teloxide-core; returns the types.
fn read_kinds(updates: &[Value]) -> BTreeSet<String> {
    for update in updates {
        if let Some(deleted) = update.get("deleted_business_messages") {
            // The Bot API sends `message_ids` as an Array of Integer; teloxide-core 0.13 expects objects
            // (`{"message_id": 1}`) there and cannot read the real thing, so check the shape instead.
            assert!(deleted["message_ids"].as_array().unwrap().iter().all(Value::is_i64), "{update}");
            continue;
        }
        assert_eq!(teloxide_kind(update), Some(kind(update).as_str()), "teloxide-core reads {update}");
    }
    updates.iter().map(kind).collect()
}

#[tokio::test]
async fn by_default_every_family_but_the_opt_in_ones_is_delivered() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let produced = produce_all(&emu, &api).await;
    for (kind, queued) in &produced {
        assert_eq!(*queued, !OPT_IN.contains(kind), "{kind}");
    }
    let kinds = read_kinds(&drain(&api).await);
    let expected: BTreeSet<String> = ALL.iter().filter(|k| !OPT_IN.contains(k)).map(|k| k.to_string()).collect();
    assert_eq!(kinds, expected);
}

#[tokio::test]
async fn allowed_updates_selects_families_by_name() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    // Every type by name, the opt-in ones included.
    api.ok("getUpdates", json!({"allowed_updates": ALL})).await;
    produce_all(&emu, &api).await;
    let all: BTreeSet<String> = ALL.iter().map(|k| k.to_string()).collect();
    assert_eq!(read_kinds(&drain(&api).await), all);
    // A few: only those.
    let some = ["chat_member", "business_message", "poll_answer", "removed_chat_boost"];
    api.bot.reset().await.unwrap();
    api.ok("getUpdates", json!({"allowed_updates": some})).await;
    produce_all(&emu, &api).await;
    let only: BTreeSet<String> = some.iter().map(|k| k.to_string()).collect();
    assert_eq!(read_kinds(&drain(&api).await), only);
}

#[tokio::test]
async fn every_family_reaches_a_webhook() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let (receiver, url) = Receiver::default().start().await;
    api.ok("setWebhook", json!({"url": url, "allowed_updates": ALL})).await;
    produce_all(&emu, &api).await;
    let all: BTreeSet<String> = ALL.iter().map(|k| k.to_string()).collect();
    let received = || receiver.received.lock().iter().map(|(_, u)| u.clone()).collect::<Vec<Value>>();
    eventually(Duration::from_secs(10), "every family pushed", || async {
        received().iter().map(kind).collect::<BTreeSet<_>>() == all
    })
    .await;
    read_kinds(&received());
}
