//! Every update type reaches plugins: the emulator delivers each family (its raw update route), the `reporter`
//! plugin's handler for it runs and tells a user what it read, answers go out as Bot API calls, and `getUpdates`
//! asks Telegram for exactly the types the plugins registered (plus `my_chat_member`, which the runtime reads to
//! learn that a user blocked the bot). Also: `my_chat_member` marks users blocked, an allow list decides updates
//! without a sender by their chat, and an update of a type this build does not know is skipped and counted.
//!
//! The JSON follows the Bot API reference (`../shared/reference/api.txt`, Bot API 6.9) for the types it has, and
//! teloxide-core's types (the current Bot API) for the newer ones: business, reactions, boosts, paid media.

mod reporter;

use std::time::Duration;

use botapi_emulator::{TestBot, TestUser, types::CallRecord};
use multibot::{config::BotId, plugins::PluginRegistry};
use serde_json::{Value, json};
use teloxide_core::types::{Update, UpdateKind};

use self::reporter::Reporter;
use crate::helpers::{TempDir, TestApp, Web, emulator, eventually, param_json, serve, spawn_app, token};

/// The user the reporter tells what it got.
const REPORTER: i64 = 4001;
/// Another user, with an even id (the reporter approves their join requests).
const ALICE: i64 = 4002;
/// A user with an odd id.
const BOB: i64 = 4003;
const DATE: i64 = 1_700_000_000;

fn registry() -> PluginRegistry {
    let mut registry = PluginRegistry::builtin();
    registry.register::<Reporter>();
    registry
}

/// A bot `id` with the reporter handling `families`; `access` is an `access:` block or empty.
fn bot_yaml(id: &str, families: &[&str], access: &str) -> String {
    format!(
        "id: \"{id}\"\nname: \"{id}\"\ntoken: \"${{TOKEN_1}}\"\n{access}plugins:\n  - name: reporter\n    config:\n      \
         report_to: {REPORTER}\n      families: {families:?}\n"
    )
}

/// The update types a family's handlers take.
fn types_of(family: &str) -> &'static [&'static str] {
    match family {
        "channel" => &["channel_post", "edited_channel_post"],
        "business" => {
            &["business_connection", "business_message", "edited_business_message", "deleted_business_messages"]
        }
        "reactions" => &["message_reaction", "message_reaction_count"],
        "inline" => &["inline_query", "chosen_inline_result"],
        "payments" => &["shipping_query", "pre_checkout_query", "purchased_paid_media"],
        "polls" => &["poll", "poll_answer"],
        "members" => &["my_chat_member", "chat_member", "chat_join_request"],
        "boosts" => &["chat_boost", "removed_chat_boost"],
        "edits" => &["edited_message", "callback_query"],
        other => panic!("no family {other}"),
    }
}

/// A running bot with the reporter for `families`, polling: the reporter said `/hello` and got `hi`, so the bot has
/// polled with its `allowed_updates` and the report chat exists.
struct Reporting {
    app: TestApp,
    bot: TestBot,
    reporter: TestUser,
}

impl Reporting {
    async fn start(families: &[&str], access: &str) -> Reporting {
        let yaml = bot_yaml("reporting", families, access);
        let app = spawn_app(&[("reporting.yaml", &yaml)], 1, registry()).await;
        let bot = app.bot(1).await;
        let reporter = app.emu.user(REPORTER);
        reporter.send(&bot, "/hello").await.unwrap();
        assert_eq!(reporter.next_message_from(&bot).await.unwrap().text.as_deref(), Some("hi"));
        Reporting { app, bot, reporter }
    }

    /// Queues an update (after checking that it decodes as teloxide reads it, so nothing is repaired on the way)
    /// and asserts the emulator delivers it.
    async fn push(&self, update: Value) {
        // teloxide-core reads its `message_ids` otherwise than the Bot API sends them; the decoder adapts them.
        if update.get("deleted_business_messages").is_none() {
            Reporting::check_decodes(&update);
        }
        let id = self.bot.push_update(update.clone()).await.unwrap();
        assert!(id.is_some(), "the emulator held back {update}: not in the bot's allowed_updates");
    }

    fn check_decodes(update: &Value) {
        let mut whole = update.clone();
        whole["update_id"] = json!(1);
        // From bytes: teloxide reads the update's type as a borrowed string.
        let bytes = serde_json::to_vec(&whole).unwrap();
        let decoded: Update = serde_json::from_slice(&bytes).unwrap();
        assert!(!matches!(decoded.kind, UpdateKind::Error(_)), "the test's update does not decode: {update}");
    }

    /// The next text the bot sent to the reporter.
    async fn next(&self) -> String {
        self.reporter.next_message_from(&self.bot).await.unwrap().text.unwrap_or_default()
    }

    /// The sorted `allowed_updates` of every `getUpdates` so far (all the same).
    async fn allowed_updates(&self) -> Vec<String> {
        let polls = self.bot.calls(Some("getUpdates")).await.unwrap();
        assert!(!polls.is_empty());
        let lists: Vec<Vec<String>> = polls
            .iter()
            .map(|call| {
                let mut list: Vec<String> =
                    serde_json::from_value(param_json(&call.params["allowed_updates"])).unwrap();
                list.sort();
                list
            })
            .collect();
        assert!(lists.windows(2).all(|w| w[0] == w[1]), "{lists:?}");
        lists[0].clone()
    }

    /// The first call of `method`, once the bot made it.
    async fn call(&self, method: &str) -> CallRecord {
        eventually(Duration::from_secs(10), method, || async {
            !self.bot.calls(Some(method)).await.unwrap().is_empty()
        })
        .await;
        self.bot.calls(Some(method)).await.unwrap().remove(0)
    }

    async fn stop(self) {
        self.app.stop().await;
    }
}

/// What `allowed_updates` must list for the reporter with `families`: its types, `message` (for `/hello`) and
/// `my_chat_member` (the runtime's), sorted.
fn expected(families: &[&str]) -> Vec<String> {
    let mut types: Vec<String> = ["message", "my_chat_member"].into_iter().map(str::to_owned).collect();
    for family in families {
        types.extend(types_of(family).iter().map(|t| (*t).to_owned()).filter(|t| t != "my_chat_member"));
    }
    types.sort();
    types
}

fn user(id: i64) -> Value {
    json!({"id": id, "is_bot": false, "first_name": format!("User {id}")})
}

fn private(id: i64) -> Value {
    json!({"id": id, "type": "private", "first_name": format!("User {id}")})
}

fn channel() -> Value {
    json!({"id": -1_001_234, "type": "channel", "title": "News"})
}

fn supergroup() -> Value {
    json!({"id": -1_005_678, "type": "supergroup", "title": "Team"})
}

fn member(status: &str, who: Value) -> Value {
    match status {
        "kicked" => json!({"status": status, "user": who, "until_date": 0}),
        _ => json!({"status": status, "user": who}),
    }
}

fn bot_user() -> Value {
    json!({"id": 700_001, "is_bot": true, "first_name": "Bot 1", "username": "bot1_bot"})
}

#[tokio::test]
async fn channel_posts_and_their_edits_route_like_messages() {
    let run = Reporting::start(&["channel"], "").await;
    assert_eq!(run.allowed_updates().await, expected(&["channel"]));
    let post =
        |text: &str| json!({"message_id": 10, "sender_chat": channel(), "date": DATE, "chat": channel(), "text": text});
    run.push(json!({"channel_post": post("/post Big news")})).await;
    assert_eq!(run.next().await, "channel_post command in -1001234: Big news");
    // A command for another bot is plain text here.
    run.push(json!({"channel_post": post("/post@other_bot hi")})).await;
    assert_eq!(run.next().await, "channel_post text: /post@other_bot hi");
    let mut edited = post("Bigger news");
    edited["edit_date"] = json!(DATE + 60);
    run.push(json!({"edited_channel_post": edited})).await;
    assert_eq!(run.next().await, "edited_channel_post: Bigger news");
    run.stop().await;
}

#[tokio::test]
async fn business_updates_reach_the_plugin_and_replies_go_through_the_connection() {
    let run = Reporting::start(&["business"], "").await;
    assert_eq!(run.allowed_updates().await, expected(&["business"]));
    let connection = json!({"id": "bc1", "user": user(ALICE), "user_chat_id": ALICE, "date": DATE, "can_reply": true,
        "is_enabled": true});
    run.push(json!({"business_connection": connection})).await;
    assert_eq!(run.next().await, format!("business_connection bc1 enabled=true chat {ALICE}"));
    // A customer (the reporter) writes to the business account; the chat is theirs.
    let message = |text: &str| {
        json!({"message_id": 20, "from": user(REPORTER), "chat": private(REPORTER), "date": DATE,
        "text": text, "business_connection_id": "bc1"})
    };
    run.push(json!({"business_message": message("Do you ship?")})).await;
    assert_eq!(run.next().await, "answered for the business");
    assert_eq!(run.next().await, format!("business_message from {REPORTER}: Do you ship?"));
    let sends = run.bot.calls(Some("sendMessage")).await.unwrap();
    let reply = sends.iter().find(|c| c.params["text"] == "answered for the business").expect("the reply");
    assert_eq!(reply.params["business_connection_id"], "bc1", "{:?}", reply.params);
    let mut edited = message("Do you ship to Utrecht?");
    edited["edit_date"] = json!(DATE + 5);
    run.push(json!({"edited_business_message": edited})).await;
    assert_eq!(run.next().await, "edited_business_message: Do you ship to Utrecht?");
    run.push(json!({"deleted_business_messages": {"business_connection_id": "bc1", "chat": private(REPORTER),
        "message_ids": [20, 21]}}))
        .await;
    assert_eq!(run.next().await, "deleted_business_messages [20, 21] via bc1");
    run.stop().await;
}

#[tokio::test]
async fn reactions_route_by_the_emoji_added() {
    let run = Reporting::start(&["reactions"], "").await;
    assert_eq!(run.allowed_updates().await, expected(&["reactions"]), "Telegram sends reactions only when asked");
    let emoji = |e: &str| json!({"type": "emoji", "emoji": e});
    let reaction = |old: Value, new: Value| {
        json!({"message_reaction": {"chat": supergroup(), "message_id": 5,
        "user": user(ALICE), "date": DATE, "old_reaction": old, "new_reaction": new}})
    };
    run.push(reaction(json!([]), json!([emoji("👍")]))).await;
    assert_eq!(run.next().await, format!("thumbs up from {ALICE} on 5"));
    // The thumb was already there: adding a heart is another reaction.
    run.push(reaction(json!([emoji("👍")]), json!([emoji("👍"), emoji("❤")]))).await;
    assert_eq!(run.next().await, format!("other reaction from {ALICE}"));
    run.push(json!({"message_reaction_count": {"chat": channel(), "message_id": 7, "date": DATE,
        "reactions": [{"type": emoji("👍"), "total_count": 3}, {"type": emoji("🔥"), "total_count": 2}]}}))
        .await;
    assert_eq!(run.next().await, "reaction counts on 7: 5");
    run.stop().await;
}

#[tokio::test]
async fn inline_queries_route_by_text_and_are_answered() {
    let run = Reporting::start(&["inline"], "").await;
    assert_eq!(run.allowed_updates().await, expected(&["inline"]));
    let alice = run.app.emu.user(ALICE);
    let first = alice.inline_query(&run.bot, "gif cats").await.unwrap().id.expect("a query id");
    assert_eq!(run.next().await, format!("inline gif from {ALICE}: gif cats"));
    // The emulator checks the answer as Telegram does (a known, fresh query; valid results) and records it.
    let answer = run.bot.answer_to(&first, Duration::from_secs(10)).await.unwrap();
    assert_eq!(answer.detail.expect("the answer")["results"][0]["id"], "cats");
    alice.inline_query(&run.bot, "gifs").await.unwrap();
    assert_eq!(run.next().await, "inline other: \"gifs\"");
    alice.choose_inline_result(&run.bot, &first, "cats").await.unwrap();
    assert_eq!(run.next().await, "chosen cats for \"gif cats\"");
    // The user who asked is tracked like a message's sender.
    let users = run.app.storage.users();
    eventually(Duration::from_secs(10), "the inline user tracked", || async {
        users.get("reporting", ALICE).await.unwrap().is_some()
    })
    .await;
    run.stop().await;
}

#[tokio::test]
async fn payments_route_by_payload_and_are_answered() {
    let run = Reporting::start(&["payments"], "").await;
    assert_eq!(run.allowed_updates().await, expected(&["payments"]));
    let alice = run.app.emu.user(ALICE);
    let shipping = alice.shipping_query(&run.bot, "order:42").await.unwrap().id.expect("a query id");
    assert!(run.next().await.starts_with("shipping order:42 to "));
    let answer = run.bot.answer_to(&shipping, Duration::from_secs(10)).await.unwrap().detail.expect("the answer");
    assert_eq!((&answer["ok"], &answer["shipping_options"][0]["id"]), (&json!(true), &json!("post")));
    // Bad input for the shop: an order it cannot fill.
    let sold_out = alice.pre_checkout_query(&run.bot, "EUR", 1500, "order:sold-out").await.unwrap().id.unwrap();
    assert_eq!(run.next().await, "declined order:sold-out");
    let fine = alice.pre_checkout_query(&run.bot, "EUR", 1500, "order:42").await.unwrap().id.unwrap();
    assert_eq!(run.next().await, "accepted order:42: 1500 EUR");
    for (id, ok) in [(sold_out, false), (fine, true)] {
        let answer = run.bot.answer_to(&id, Duration::from_secs(10)).await.unwrap().detail.expect("the answer");
        assert_eq!(answer["ok"], json!(ok), "{answer}");
        assert_eq!(answer.get("error_message").is_some_and(|m| !m.is_null()), !ok, "{answer}");
    }
    run.push(json!({"purchased_paid_media": {"from": user(ALICE), "paid_media_payload": "album:7"}})).await;
    assert_eq!(run.next().await, format!("paid media album:7 bought by {ALICE}"));
    run.stop().await;
}

#[tokio::test]
async fn polls_and_poll_answers_reach_the_plugin() {
    let run = Reporting::start(&["polls"], "").await;
    assert_eq!(run.allowed_updates().await, expected(&["polls"]));
    run.push(json!({"poll": {"id": "p1", "question": "Lunch?", "options": [{"text": "Yes", "voter_count": 2},
        {"text": "No", "voter_count": 1}], "total_voter_count": 3, "is_closed": true, "is_anonymous": false,
        "type": "regular", "allows_multiple_answers": false}}))
        .await;
    assert_eq!(run.next().await, "poll \"Lunch?\" closed=true votes=3");
    run.push(json!({"poll_answer": {"poll_id": "p1", "user": user(ALICE), "option_ids": [0]}})).await;
    assert_eq!(run.next().await, format!("poll_answer p1 from {ALICE}: [0]"));
    run.stop().await;
}

#[tokio::test]
async fn member_changes_route_by_status_and_join_requests_are_decided() {
    let run = Reporting::start(&["members"], "").await;
    assert_eq!(run.allowed_updates().await, expected(&["members"]), "Telegram sends chat_member only when asked");
    run.push(json!({"my_chat_member": {"chat": supergroup(), "from": user(ALICE), "date": DATE,
        "old_chat_member": member("left", bot_user()), "new_chat_member": member("member", bot_user())}}))
        .await;
    assert_eq!(run.next().await, format!("added to -1005678 by {ALICE}"));
    let change = |old: &str, new: &str| {
        json!({"chat_member": {"chat": supergroup(), "from": user(BOB), "date": DATE,
        "old_chat_member": member(old, user(BOB)), "new_chat_member": member(new, user(BOB))}})
    };
    run.push(change("left", "member")).await;
    assert_eq!(run.next().await, format!("joined: {BOB} in -1005678"));
    run.push(change("member", "left")).await;
    assert_eq!(run.next().await, "member change: Member -> Left");
    for (who, verdict, method) in
        [(ALICE, "approved", "approveChatJoinRequest"), (BOB, "declined", "declineChatJoinRequest")]
    {
        // Through the emulator's control API, so that it knows the request and checks the decision.
        let team = run.app.emu.control().group(-1_005_678, "Team");
        run.app.emu.user(who).join_request(&run.bot, &team).await.unwrap();
        assert_eq!(run.next().await, format!("join request from {who} to -1005678: {verdict}"));
        let call = run.call(method).await;
        assert_eq!(call.status, 200, "{call:?}");
        assert_eq!((&call.params["chat_id"], &call.params["user_id"]), (&json!(-1_005_678), &json!(who)));
    }
    run.stop().await;
}

#[tokio::test]
async fn boosts_and_removed_boosts_reach_the_plugin() {
    let run = Reporting::start(&["boosts"], "").await;
    assert_eq!(run.allowed_updates().await, expected(&["boosts"]));
    let source = json!({"source": "premium", "user": user(ALICE)});
    run.push(json!({"chat_boost": {"chat": channel(), "boost": {"boost_id": "b1", "add_date": DATE,
        "expiration_date": DATE + 86_400, "source": source}}}))
        .await;
    assert_eq!(run.next().await, format!("boost b1 by {ALICE}"));
    run.push(json!({"removed_chat_boost": {"chat": channel(), "boost_id": "b1", "remove_date": DATE + 10,
        "source": source}}))
        .await;
    assert_eq!(run.next().await, "boost b1 removed from -1001234");
    run.stop().await;
}

#[tokio::test]
async fn with_every_family_the_bot_asks_for_every_update_type() {
    let families = ["channel", "business", "reactions", "inline", "payments", "polls", "members", "boosts", "edits"];
    let run = Reporting::start(&families, "").await;
    // The fields of the Bot API's `Update`, but `update_id`.
    let mut every: Vec<String> = botapi_emulator::UPDATE_TYPES.iter().map(|t| (*t).to_owned()).collect();
    every.sort();
    assert_eq!(run.allowed_updates().await, every);
    assert_eq!(expected(&families), every);
    // The user edits a message: the plugin's edited_message handler takes it.
    let sent = run.reporter.send(&run.bot, "typo").await.unwrap();
    run.reporter.edit(&run.bot, sent.message_id, "fixed").await.unwrap();
    assert_eq!(run.next().await, "edited_message: fixed");
    run.stop().await;
}

const GUARDED: &str = r#"
id: "guarded"
name: "Guarded"
token: "${TOKEN_1}"
plugins:
  - name: "echo"
"#;

#[tokio::test]
async fn a_user_blocking_and_unblocking_the_bot_is_marked_in_bot_users() {
    // No plugin of this bot handles my_chat_member: the runtime asks for it anyway and reads it.
    let app = spawn_app(&[("guarded.yaml", GUARDED)], 1, registry()).await;
    let bot = app.bot(1).await;
    let carol = app.emu.user(7001);
    carol.send(&bot, "/echo hi").await.unwrap();
    assert_eq!(carol.next_message_from(&bot).await.unwrap().text.as_deref(), Some("hi"));
    let polls = bot.calls(Some("getUpdates")).await.unwrap();
    assert_eq!(param_json(&polls[0].params["allowed_updates"]), json!(["message", "my_chat_member"]));
    let change = |old: &str, new: &str| {
        json!({"my_chat_member": {"chat": private(7001), "from": user(7001),
        "date": DATE, "old_chat_member": member(old, bot_user()), "new_chat_member": member(new, bot_user())}})
    };
    let users = app.storage.users();
    let blocked = || async { users.get("guarded", 7001).await.unwrap().map(|u| u.is_blocked) };
    eventually(Duration::from_secs(10), "the user tracked", || async { blocked().await == Some(false) }).await;
    assert!(bot.push_update(change("member", "kicked")).await.unwrap().is_some());
    eventually(Duration::from_secs(10), "the user marked blocked", || async { blocked().await == Some(true) }).await;
    assert!(bot.push_update(change("kicked", "member")).await.unwrap().is_some());
    eventually(Duration::from_secs(10), "the user unmarked", || async { blocked().await == Some(false) }).await;
    app.stop().await;
}

#[tokio::test]
async fn an_allow_list_admits_its_users_and_decides_updates_without_a_sender_by_chat() {
    // The list holds the reporter and the News channel (-1001234), not the Team supergroup.
    let access = format!("access:\n  allowed_users: [{REPORTER}, -1001234]\n");
    let run = Reporting::start(&["channel", "inline"], &access).await;
    let id = BotId::parse("reporting").unwrap();
    let denied = || run.app.manager.status_of(&id).unwrap().access_denied;
    let post = |chat: Value, text: &str| {
        json!({"channel_post": {"message_id": 1, "sender_chat": chat.clone(), "date": DATE, "chat": chat,
            "text": text}})
    };
    // Bad input: a post without a sender in a chat not on the list, and Alice, who is not on it.
    run.push(post(json!({"id": -1_005_678, "type": "channel", "title": "Team"}), "/post from an unlisted chat")).await;
    run.push(json!({"inline_query": {"id": "iq1", "from": user(ALICE), "query": "gif dogs", "offset": ""}})).await;
    eventually(Duration::from_secs(10), "two updates refused", || async { denied() == 2 }).await;
    run.push(post(channel(), "/post Listed news")).await;
    assert_eq!(run.next().await, "channel_post command in -1001234: Listed news", "the listed channel passes");
    run.push(json!({"inline_query": {"id": "iq2", "from": user(REPORTER), "query": "gif cats", "offset": ""}})).await;
    assert_eq!(run.next().await, format!("inline gif from {REPORTER}: gif cats"));
    let said: Vec<_> = run.reporter.transcript(&run.bot).await.unwrap().into_iter().filter(|m| m.from_bot).collect();
    assert_eq!(said.len(), 3, "only hi, the listed channel's post and the allowed user's query: {said:?}");
    assert_eq!(denied(), 2);
    run.stop().await;
}

#[tokio::test]
async fn an_update_of_an_unknown_type_is_confirmed_skipped_and_counted() {
    let emu = emulator(1).await;
    let bot = emu.bot(&token(1)).await.unwrap();
    // Queued before the bot first polls, while the emulator delivers every type: a type from a newer Bot API.
    for update in [json!({"future_kind": {"x": 1}}), json!({"future_kind": {"x": 2}}), json!({"another_kind": {}})] {
        assert!(bot.push_update(update).await.unwrap().is_some());
    }
    let carol = emu.user(7101);
    carol.send(&bot, "/echo after them").await.unwrap();
    let dir = TempDir::new();
    dir.write("futurist.yaml", &GUARDED.replace("guarded", "futurist"));
    let app = serve(&emu, dir.path(), Web::Off, &[], registry()).await;
    // The bot goes on: the message queued after the unknown updates is answered, and all four are confirmed.
    assert_eq!(carol.next_message_from(&bot).await.unwrap().text.as_deref(), Some("after them"));
    eventually(Duration::from_secs(10), "every update confirmed", || async {
        let stats = bot.stats().await.unwrap();
        stats.pending == 0 && stats.updates_confirmed == 4
    })
    .await;
    // Confirmed once stored (the durable inbox): the skipping may still be under way.
    let unknown = || async {
        let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
        let line = metrics.lines().find(|l| l.starts_with("multibot_updates_unknown_total{bot_id=\"futurist\"}"));
        line.and_then(|l| l.rsplit(' ').next()).map(str::to_owned)
    };
    eventually(Duration::from_secs(10), "three unknown updates counted", || async {
        unknown().await.as_deref() == Some("3")
    })
    .await;
    let status = app.manager.status_of(&BotId::parse("futurist").unwrap()).unwrap();
    assert_eq!((status.updates_handled, status.errors), (1, 0), "only the message was handled");
    app.stop().await;
}
