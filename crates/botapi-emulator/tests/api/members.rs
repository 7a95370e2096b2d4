//! Chats and memberships as the world models them: blocking gives `my_chat_member`, statuses are remembered so
//! updates carry the real old one, a bot removed from a group cannot send there, channel posts, boosts and
//! business accounts.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Api, spawn};

/// The updates queued so far, confirmed.
async fn updates(api: &Api) -> Vec<Value> {
    let list = api.ok("getUpdates", json!({"allowed_updates": ["message", "my_chat_member", "chat_member", "chat_join_request", "channel_post", "edited_channel_post", "chat_boost", "removed_chat_boost", "business_connection", "business_message", "edited_business_message", "deleted_business_messages"]})).await;
    let list = list.as_array().unwrap().clone();
    if let Some(last) = list.last() {
        api.ok("getUpdates", json!({"offset": last["update_id"].as_i64().unwrap() + 1, "limit": 1})).await;
    }
    list
}

#[tokio::test]
async fn blocking_the_bot_is_a_my_chat_member_update() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let alice = emu.user(10);
    alice.send(&api.bot, "hi").await.unwrap();
    updates(&api).await;
    alice.block(&api.bot).await.unwrap();
    // Blocking twice changes nothing, so Telegram sends nothing.
    alice.block(&api.bot).await.unwrap();
    let blocked = updates(&api).await;
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    let change = &blocked[0]["my_chat_member"];
    assert_eq!(change["chat"], json!({"id": 10, "type": "private", "first_name": "User 10", "username": "user10"}));
    assert_eq!(change["from"]["id"], 10);
    let old = &change["old_chat_member"];
    assert_eq!(
        (old["status"].as_str(), old["user"]["id"].as_i64(), old["user"]["is_bot"].as_bool()),
        (Some("member"), Some(1000), Some(true))
    );
    assert_eq!(
        (change["new_chat_member"]["status"].as_str(), change["new_chat_member"]["until_date"].as_i64()),
        (Some("kicked"), Some(0))
    );
    assert_eq!(
        api.err("sendMessage", json!({"chat_id": 10, "text": "x"}), 403).await,
        "Forbidden: bot was blocked by the user"
    );
    // Writing again unblocks, as the Restart button does: the member update comes before the message.
    alice.send(&api.bot, "I'm back").await.unwrap();
    let back = updates(&api).await;
    assert_eq!(back[0]["my_chat_member"]["old_chat_member"]["status"], "kicked");
    assert_eq!(back[0]["my_chat_member"]["new_chat_member"]["status"], "member");
    assert_eq!(back[1]["message"]["text"], "I'm back");
    alice.block(&api.bot).await.unwrap();
    alice.unblock(&api.bot).await.unwrap();
    let statuses: Vec<_> =
        updates(&api).await.iter().map(|u| u["my_chat_member"]["new_chat_member"]["status"].clone()).collect();
    assert_eq!(statuses, ["kicked", "member"]);
}

#[tokio::test]
async fn member_statuses_are_remembered_and_a_removed_bot_cannot_send() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let group = emu.control().group(-2000, "Club");
    let (alice, bob) = (emu.user(10), emu.user(11));
    updates(&api).await;
    // Alice adds the bot: it may send to a group it never heard from.
    alice.add_bot_to(&api.bot, &group).await.unwrap();
    api.ok("sendMessage", json!({"chat_id": -2000, "text": "hello club"})).await;
    bob.join(&api.bot, &group).await.unwrap();
    alice.set_member_status(&api.bot, &group, 11, "administrator").await.unwrap();
    let list = updates(&api).await;
    let kinds: Vec<String> =
        list.iter().map(|u| u.as_object().unwrap().keys().find(|k| *k != "update_id").unwrap().clone()).collect();
    assert_eq!(kinds, ["my_chat_member", "chat_member", "chat_member"]);
    assert_eq!(list[0]["my_chat_member"]["old_chat_member"]["status"], "left");
    assert_eq!(list[0]["my_chat_member"]["new_chat_member"]["status"], "member");
    assert_eq!(list[0]["my_chat_member"]["chat"]["type"], "group");
    let promoted = &list[2]["chat_member"];
    assert_eq!(
        (promoted["old_chat_member"]["status"].as_str(), promoted["from"]["id"].as_i64()),
        (Some("member"), Some(10))
    );
    assert_eq!(promoted["new_chat_member"]["can_delete_messages"], true);
    // Bad input: a change to the status the member already has, and an unknown status.
    assert!(alice.set_member_status(&api.bot, &group, 11, "administrator").await.is_err());
    assert!(alice.set_member_status(&api.bot, &group, 11, "overlord").await.is_err());
    // Removed: sends to the group are refused; added back, they work again.
    alice.remove_bot_from(&api.bot, &group).await.unwrap();
    assert_eq!(
        api.err("sendMessage", json!({"chat_id": -2000, "text": "x"}), 403).await,
        "Forbidden: bot is not a member of the group chat"
    );
    alice.set_member_status(&api.bot, &group, api.bot.id, "kicked").await.unwrap();
    assert_eq!(
        api.err("sendMessage", json!({"chat_id": -2000, "text": "x"}), 403).await,
        "Forbidden: bot was kicked from the group chat"
    );
    alice.add_bot_to(&api.bot, &group).await.unwrap();
    api.ok("sendMessage", json!({"chat_id": -2000, "text": "back"})).await;
    // A user who writes in a group is a member there from then on.
    let other = emu.control().group(-3000, "Chat");
    emu.user(12).send_in(&api.bot, &other, "hi").await.unwrap();
    updates(&api).await;
    emu.user(12).leave(&api.bot, &other).await.unwrap();
    assert_eq!(updates(&api).await[0]["chat_member"]["old_chat_member"]["status"], "member");
}

#[tokio::test]
async fn join_requests_carry_the_user_and_the_link() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let body = json!({"from": 11, "chat": {"id": -1_000_000_000_777i64, "title": "Private club", "type": "supergroup"}, "bio": "hi", "invite_link": "https://t.me/+AbCdEf"});
    let url = format!("{}/control/bots/{}/join_requests", emu.api_url(), api.bot.id);
    let answer: Value = reqwest::Client::new().post(url).json(&body).send().await.unwrap().json().await.unwrap();
    assert!(answer["update_id"].is_i64(), "{answer}");
    let request = &updates(&api).await[0]["chat_join_request"];
    assert_eq!((request["user_chat_id"].as_i64(), request["bio"].as_str()), (Some(11), Some("hi")));
    assert_eq!(request["invite_link"]["creates_join_request"], true);
    assert_eq!(request["invite_link"]["creator"]["id"], 1000);
    // The bot approves it once; bad input: deciding it again, or a request nobody made.
    let club = -1_000_000_000_777i64;
    assert_eq!(api.ok("approveChatJoinRequest", json!({"chat_id": club, "user_id": 11})).await, json!(true));
    let missing = "Bad Request: HIDE_REQUESTER_MISSING";
    assert_eq!(api.err("declineChatJoinRequest", json!({"chat_id": club, "user_id": 11}), 400).await, missing);
    assert_eq!(api.err("approveChatJoinRequest", json!({"chat_id": club, "user_id": 12}), 400).await, missing);
    let answer = api.bot.events(0, None, Some("join_request_answer"), Duration::ZERO).await.unwrap();
    assert_eq!(answer[0].detail.as_ref().unwrap()["approved"], true);
}

#[tokio::test]
async fn channel_posts_edits_and_boosts() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let channel = emu.control().channel(-1_000_000_000_100, "News");
    let post = api.bot.channel_post(&channel, "Breaking #news").await.unwrap();
    api.bot.edit_channel_post(&channel, post.message_id, "Breaking news").await.unwrap();
    let list = updates(&api).await;
    let posted = &list[0]["channel_post"];
    assert!(posted.get("from").is_none(), "channel posts have no sender: {posted}");
    assert_eq!(
        (posted["sender_chat"]["id"].as_i64(), posted["chat"]["type"].as_str()),
        (Some(channel.id), Some("channel"))
    );
    assert_eq!(posted["entities"][0]["type"], "hashtag");
    assert_eq!(list[1]["edited_channel_post"]["text"], "Breaking news");
    // The bot may post in the channel it reads.
    api.ok("sendMessage", json!({"chat_id": channel.id, "text": "from the bot"})).await;
    // Bad input: editing a post that does not exist.
    assert!(api.bot.edit_channel_post(&channel, 99, "x").await.is_err());
    let boost = emu.user(10).boost(&api.bot, &channel).await.unwrap();
    let boost_id = boost.id.unwrap();
    api.bot.remove_boost(&boost_id).await.unwrap();
    let list = updates(&api).await;
    let added = &list[0]["chat_boost"];
    assert_eq!(
        (added["boost"]["boost_id"].as_str(), added["boost"]["source"]["source"].as_str()),
        (Some(boost_id.as_str()), Some("premium"))
    );
    assert!(added["boost"]["expiration_date"].as_i64() > added["boost"]["add_date"].as_i64());
    let removed = &list[1]["removed_chat_boost"];
    assert_eq!(
        (removed["boost_id"].as_str(), removed["source"]["user"]["id"].as_i64()),
        (Some(boost_id.as_str()), Some(10))
    );
    // Bad input: a boost removed twice.
    assert!(api.bot.remove_boost(&boost_id).await.is_err());
}

#[tokio::test]
async fn business_connections_and_their_chats() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let (owner, customer) = (emu.user(10), emu.user(20));
    let connection = owner.connect_business(&api.bot).await.unwrap().id.unwrap();
    let asked = customer.send_business(&api.bot, &connection, "Do you deliver?").await.unwrap();
    let answered = owner.send_business_to(&api.bot, &connection, 20, "Yes!").await.unwrap();
    customer.edit_business(&api.bot, &connection, &asked, "Do you deliver on Sundays?").await.unwrap();
    api.bot.delete_business_messages(&connection, 20, &[asked.message_id]).await.unwrap();
    let list = updates(&api).await;
    let connected = &list[0]["business_connection"];
    assert_eq!(
        (connected["id"].as_str(), connected["user_chat_id"].as_i64(), connected["is_enabled"].as_bool()),
        (Some(connection.as_str()), Some(10), Some(true))
    );
    assert_eq!(list[1]["business_message"]["business_connection_id"], connection.as_str());
    assert_eq!(list[1]["business_message"]["chat"]["id"], 20);
    assert_eq!(
        (list[2]["business_message"]["from"]["id"].as_i64(), list[2]["business_message"]["chat"]["id"].as_i64()),
        (Some(10), Some(20))
    );
    assert_eq!(answered.message_id, asked.message_id + 1, "one chat, ids in order");
    assert_eq!(list[3]["edited_business_message"]["text"], "Do you deliver on Sundays?");
    assert_eq!(list[4]["deleted_business_messages"]["message_ids"], json!([asked.message_id]));
    // Disconnected: no more business messages through it. Bad input: the owner writing without a chat.
    owner.disconnect_business(&api.bot, &connection).await.unwrap();
    assert_eq!(updates(&api).await[0]["business_connection"]["is_enabled"], false);
    assert!(customer.send_business(&api.bot, &connection, "hello?").await.is_err());
    let again = owner.connect_business(&api.bot).await.unwrap().id.unwrap();
    assert!(owner.send_business(&api.bot, &again, "to whom?").await.is_err());
    assert!(customer.send_business(&api.bot, "BCnope", "hi").await.is_err());
}
