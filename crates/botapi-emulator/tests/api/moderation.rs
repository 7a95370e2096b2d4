//! Pins and bans, checked as Telegram checks them and recorded as events.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Api, spawn};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_pin_needs_the_message_and_in_a_group_the_rights() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let alice = emu.user(10);
    let sent = alice.send(&api.bot, "pin me").await.unwrap();
    assert_eq!(api.ok("pinChatMessage", json!({"chat_id": 10, "message_id": sent.message_id})).await, json!(true));
    let pin = api.bot.next_event(0, Some(10), Some("pin"), WAIT).await.unwrap();
    assert_eq!(pin.message.unwrap().text.as_deref(), Some("pin me"));
    // Bad input: a message that does not exist; a group where the bot is only a member.
    assert_eq!(
        api.err("pinChatMessage", json!({"chat_id": 10, "message_id": 999}), 400).await,
        "Bad Request: message to pin not found"
    );
    let group = emu.control().group(-2000, "Club");
    alice.add_bot_to(&api.bot, &group).await.unwrap();
    let in_group = alice.send_in(&api.bot, &group, "and me").await.unwrap();
    assert_eq!(
        api.err("pinChatMessage", json!({"chat_id": -2000, "message_id": in_group.message_id}), 400).await,
        "Bad Request: not enough rights to manage pinned messages in the chat"
    );
    alice.set_member_status(&api.bot, &group, 1000, "administrator").await.unwrap();
    api.ok("pinChatMessage", json!({"chat_id": -2000, "message_id": in_group.message_id})).await;
    assert!(api.bot.next_event(0, Some(-2000), Some("pin"), WAIT).await.is_ok());
}

#[tokio::test]
async fn a_ban_needs_a_group_the_rights_and_a_member_below_the_bot() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let (alice, bob) = (emu.user(10), emu.user(11));
    alice.send(&api.bot, "hi").await.unwrap();
    // Bad input: a private chat; a group where the bot is only a member; the owner; an administrator.
    assert_eq!(
        api.err("banChatMember", json!({"chat_id": 10, "user_id": 10}), 400).await,
        "Bad Request: can't remove members from private chats"
    );
    let group = emu.control().group(-2000, "Club");
    alice.add_bot_to(&api.bot, &group).await.unwrap();
    bob.join(&api.bot, &group).await.unwrap();
    assert_eq!(
        api.err("banChatMember", json!({"chat_id": -2000, "user_id": 11}), 400).await,
        "Bad Request: not enough rights to restrict/ban chat member"
    );
    alice.set_member_status(&api.bot, &group, 1000, "administrator").await.unwrap();
    alice.set_member_status(&api.bot, &group, 10, "creator").await.unwrap();
    assert_eq!(
        api.err("banChatMember", json!({"chat_id": -2000, "user_id": 10}), 400).await,
        "Bad Request: can't remove chat owner"
    );
    api.ok("banChatMember", json!({"chat_id": -2000, "user_id": 11, "until_date": 1_900_000_000})).await;
    let ban = api.bot.next_event(0, Some(-2000), Some("ban"), WAIT).await.unwrap();
    assert_eq!(ban.detail.unwrap(), json!({"user_id": 11, "until_date": 1_900_000_000, "revoke_messages": false}));
}
