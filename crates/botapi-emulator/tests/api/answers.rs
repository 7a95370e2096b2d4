//! The bot's side of queries, polls and reactions: answers to inline and payment queries checked and recorded,
//! polls sent, voted in and stopped, reactions with their real old values and counts.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Api, spawn};

const WAIT: Duration = Duration::from_secs(5);

/// The updates queued so far, confirmed.
async fn updates(api: &Api) -> Vec<Value> {
    let all = [
        "inline_query",
        "chosen_inline_result",
        "poll",
        "poll_answer",
        "message_reaction",
        "message_reaction_count",
        "message",
    ];
    let list = api.ok("getUpdates", json!({"allowed_updates": all})).await.as_array().unwrap().clone();
    if let Some(last) = list.last() {
        api.ok("getUpdates", json!({"offset": last["update_id"].as_i64().unwrap() + 1, "limit": 1})).await;
    }
    list
}

fn article(id: &str) -> Value {
    json!({"type": "article", "id": id, "title": "Title", "input_message_content": {"message_text": "text"}})
}

#[tokio::test]
async fn inline_answers_are_checked_recorded_and_chosen_from() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let alice = emu.user(10);
    let query = alice.inline_query(&api.bot, "cats").await.unwrap();
    let id = query.id.unwrap();
    let update = &updates(&api).await[0]["inline_query"];
    assert_eq!(
        (update["id"].as_str(), update["query"].as_str(), update["offset"].as_str()),
        (Some(id.as_str()), Some("cats"), Some(""))
    );
    let answer = |results: Value| json!({"inline_query_id": id, "results": results});
    // Bad input: results the Bot API server refuses, each with its description.
    let photo_without_file = json!({"type": "photo", "id": "p"});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"inline_query_id": id, "results": "[oops"}), "can't parse JSON encoded inline query results: "),
        (answer(json!({"type": "article"})), "expected an Array of inline query results"),
        (
            answer(Value::Array((0..51).map(|i| article(&i.to_string())).collect())),
            "too many inline query results specified",
        ),
        (answer(json!([{"id": "x", "title": "t"}])), "can't parse inline query result: Can't find field \"type\""),
        (
            answer(json!([{"type": "article", "id": "x", "title": "t"}])),
            "can't parse inline query result: Can't find field \"message_text\"",
        ),
        (answer(json!([photo_without_file])), "can't parse inline query result: Can't find field \"photo_file_id\""),
        (
            answer(json!([{"type": "hologram", "id": "x"}])),
            "can't parse inline query result: type \"hologram\" is unsupported for the inline query result",
        ),
        (answer(json!([article("a"), article("a")])), "RESULT_ID_DUPLICATE"),
        (answer(json!([article(&"x".repeat(65))])), "RESULT_ID_INVALID"),
    ];
    for (params, description) in cases {
        let got = api.err("answerInlineQuery", params.clone(), 400).await;
        assert!(got.starts_with(&format!("Bad Request: {description}")), "{params}: {got}");
    }
    let photo = json!({"type": "photo", "id": "p1", "photo_url": "https://example.com/cat.jpg", "thumbnail_url": "https://example.com/t.jpg"});
    api.ok(
        "answerInlineQuery",
        json!({"inline_query_id": id, "results": [article("a1"), photo], "cache_time": 0, "next_offset": "2"}),
    )
    .await;
    let recorded = api.bot.answer_to(&id, WAIT).await.unwrap();
    let detail = recorded.detail.unwrap();
    assert_eq!(
        (recorded.kind.as_str(), detail["next_offset"].as_str(), detail["cache_time"].as_i64()),
        ("inline_answer", Some("2"), Some(0))
    );
    assert_eq!(detail["results"][1]["id"], "p1");
    // Answered once only; an unknown id is the same error.
    let expired = "Bad Request: query is too old and response timeout expired or query ID is invalid";
    assert_eq!(api.err("answerInlineQuery", answer(json!([])), 400).await, expired);
    assert_eq!(api.err("answerInlineQuery", json!({"inline_query_id": "1", "results": []}), 400).await, expired);
    // The user picks an offered result; bad input: one never offered.
    alice.choose_inline_result(&api.bot, &id, "p1").await.unwrap();
    assert!(alice.choose_inline_result(&api.bot, &id, "zz").await.is_err());
    let chosen = &updates(&api).await[0]["chosen_inline_result"];
    assert_eq!(
        (chosen["result_id"].as_str(), chosen["query"].as_str(), chosen["from"]["id"].as_i64()),
        (Some("p1"), Some("cats"), Some(10))
    );
}

#[tokio::test]
async fn payment_answers_are_checked_and_recorded() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let alice = emu.user(10);
    let shipping = alice.shipping_query(&api.bot, "order-7").await.unwrap().id.unwrap();
    let option = json!({"id": "post", "title": "Post", "prices": [{"label": "Post", "amount": 300}]});
    // Bad input: no options, options that do not parse, a refusal without a message.
    let cases: Vec<(Value, &str)> = vec![
        (json!({"ok": true}), "parameter \"shipping_options\" is required"),
        (json!({"ok": true, "shipping_options": "[oops"}), "can't parse shipping options JSON object"),
        (json!({"ok": true, "shipping_options": []}), "there must be at least one shipping option"),
        (
            json!({"ok": true, "shipping_options": [{"id": "", "title": "x", "prices": []}]}),
            "can't parse shipping option: ShippingOption identifier must be non-empty",
        ),
        (
            json!({"ok": true, "shipping_options": [{"id": "a", "title": "x"}]}),
            "can't parse shipping option: Can't find field \"prices\"",
        ),
        (json!({"ok": false}), "parameter \"error_message\" is required"),
    ];
    for (mut params, description) in cases {
        params["shipping_query_id"] = shipping.clone().into();
        assert_eq!(
            api.err("answerShippingQuery", params.clone(), 400).await,
            format!("Bad Request: {description}"),
            "{params}"
        );
    }
    api.ok("answerShippingQuery", json!({"shipping_query_id": shipping, "ok": true, "shipping_options": [option]}))
        .await;
    let answer = api.bot.answer_to(&shipping, WAIT).await.unwrap();
    assert_eq!(
        (answer.kind.as_str(), answer.detail.unwrap()["shipping_options"][0]["id"].as_str()),
        ("shipping_answer", Some("post"))
    );
    let checkout = alice.pre_checkout_query(&api.bot, "EUR", 990, "order-7").await.unwrap().id.unwrap();
    // Bad input: answering the pre-checkout query with the shipping answer method, and twice.
    let expired = "Bad Request: query is too old and response timeout expired or query ID is invalid";
    assert_eq!(
        api.err("answerShippingQuery", json!({"shipping_query_id": checkout, "ok": false, "error_message": "x"}), 400)
            .await,
        expired
    );
    api.ok(
        "answerPreCheckoutQuery",
        json!({"pre_checkout_query_id": checkout, "ok": false, "error_message": "Sold out"}),
    )
    .await;
    assert_eq!(
        api.err("answerPreCheckoutQuery", json!({"pre_checkout_query_id": checkout, "ok": true}), 400).await,
        expired
    );
    let detail = api.bot.answer_to(&checkout, WAIT).await.unwrap().detail.unwrap();
    assert_eq!((detail["ok"].as_bool(), detail["error_message"].as_str()), (Some(false), Some("Sold out")));
    // Bad input to the control API: a currency that is not an ISO code.
    assert!(alice.pre_checkout_query(&api.bot, "euro", 990, "x").await.is_err());
}

#[tokio::test]
async fn polls_are_sent_voted_in_and_stopped() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let (alice, bob) = (emu.user(10), emu.user(11));
    alice.send(&api.bot, "hi").await.unwrap();
    // Bad input: what sendPoll refuses.
    let cases: Vec<(Value, &str)> = vec![
        (json!({"question": "", "options": ["a", "b"]}), "poll question must be non-empty"),
        (json!({"question": "q".repeat(301), "options": ["a", "b"]}), "poll question length must not exceed 300"),
        (json!({"question": "q", "options": ["a"]}), "poll must have at least 2 option"),
        (
            json!({"question": "q", "options": (0..11).map(|i| i.to_string()).collect::<Vec<_>>()}),
            "poll can't have more than 10 options",
        ),
        (json!({"question": "q", "options": ["a", ""]}), "poll options must be non-empty"),
        (json!({"question": "q", "options": "[oops"}), "can't parse options JSON object"),
        (json!({"question": "q", "options": ["a", "b"], "type": "vote"}), "unsupported poll type specified"),
        (json!({"question": "q", "options": ["a", "b"], "type": "quiz"}), "wrong correct option ID specified"),
    ];
    for (mut params, description) in cases {
        params["chat_id"] = 10.into();
        assert_eq!(api.err("sendPoll", params.clone(), 400).await, format!("Bad Request: {description}"), "{params}");
    }
    let sent = api.ok("sendPoll", json!({"chat_id": 10, "question": "Lunch?", "options": ["pizza", "sushi", "salad"], "is_anonymous": false, "allows_multiple_answers": true})).await;
    let poll_id = sent["poll"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (sent["poll"]["total_voter_count"].as_u64(), sent["poll"]["is_closed"].as_bool()),
        (Some(0), Some(false))
    );
    updates(&api).await;
    alice.vote(&api.bot, &poll_id, &[0, 2]).await.unwrap();
    bob.vote(&api.bot, &poll_id, &[0]).await.unwrap();
    // Bad input: an option the poll lacks.
    assert!(bob.vote(&api.bot, &poll_id, &[7]).await.is_err());
    let list = updates(&api).await;
    assert_eq!(
        list[0]["poll_answer"],
        json!({"poll_id": poll_id, "user": list[0]["poll_answer"]["user"], "option_ids": [0, 2]})
    );
    let counts: Vec<u64> =
        list[3]["poll"]["options"].as_array().unwrap().iter().map(|o| o["voter_count"].as_u64().unwrap()).collect();
    assert_eq!((counts, list[3]["poll"]["total_voter_count"].as_u64()), (vec![2, 0, 1], Some(2)));
    // Stopped: the final state comes back and as a `poll` update; nobody can vote any more.
    let stopped = api.ok("stopPoll", json!({"chat_id": 10, "message_id": sent["message_id"]})).await;
    assert_eq!((stopped["is_closed"].as_bool(), stopped["total_voter_count"].as_u64()), (Some(true), Some(2)));
    assert_eq!(updates(&api).await[0]["poll"]["is_closed"], true);
    assert!(alice.vote(&api.bot, &poll_id, &[1]).await.is_err());
    let transcript = api.bot.transcript(10).await.unwrap();
    assert!(transcript.last().unwrap().message.poll.as_ref().unwrap().is_closed);
    // Bad input: stopping it again, stopping a message that is no poll, or one that does not exist.
    let cases = [
        (sent["message_id"].as_i64().unwrap(), "poll has already been closed"),
        (1, "message is not a poll"),
        (99, "message with poll to stop not found"),
    ];
    for (message_id, description) in cases {
        assert_eq!(
            api.err("stopPoll", json!({"chat_id": 10, "message_id": message_id}), 400).await,
            format!("Bad Request: {description}")
        );
    }
    // An anonymous quiz: votes change the counts, no poll_answer; a quiz answer is final.
    let quiz = api
        .ok(
            "sendPoll",
            json!({"chat_id": 10, "question": "2+2?", "options": ["3", "4"], "type": "quiz", "correct_option_id": 1}),
        )
        .await;
    let quiz_id = quiz["poll"]["id"].as_str().unwrap();
    alice.vote(&api.bot, quiz_id, &[1]).await.unwrap();
    assert!(alice.vote(&api.bot, quiz_id, &[0]).await.is_err());
    let list = updates(&api).await;
    assert!(list.iter().all(|u| u.get("poll_answer").is_none()), "{list:?}");
    assert_eq!(list.last().unwrap()["poll"]["correct_option_id"], 1);
}

#[tokio::test]
async fn reactions_carry_the_old_one_and_are_counted() {
    let emu = spawn().await;
    let api = Api::new(&emu, 1000).await;
    let (alice, bob) = (emu.user(10), emu.user(11));
    let group = emu.control().group(-500, "Fans");
    let post = alice.send_in(&api.bot, &group, "a post").await.unwrap();
    updates(&api).await;
    alice.react(&api.bot, -500, post.message_id, &["👍"]).await.unwrap();
    alice.react(&api.bot, -500, post.message_id, &["🔥"]).await.unwrap();
    bob.send_in(&api.bot, &group, "me too").await.unwrap();
    bob.react(&api.bot, -500, post.message_id, &["🔥"]).await.unwrap();
    // Bad input: the same reaction again, a message that does not exist.
    assert!(bob.react(&api.bot, -500, post.message_id, &["🔥"]).await.is_err());
    assert!(bob.react(&api.bot, -500, 999, &["🔥"]).await.is_err());
    api.bot.reaction_count(-500, post.message_id).await.unwrap();
    let list = updates(&api).await;
    let reactions: Vec<&Value> = list.iter().filter_map(|u| u.get("message_reaction")).collect();
    assert_eq!(reactions[0]["old_reaction"], json!([]));
    assert_eq!(reactions[1]["old_reaction"], json!([{"type": "emoji", "emoji": "👍"}]));
    assert_eq!(reactions[1]["new_reaction"], json!([{"type": "emoji", "emoji": "🔥"}]));
    let counts = &list.last().unwrap()["message_reaction_count"];
    assert_eq!(counts["reactions"], json!([{"type": {"type": "emoji", "emoji": "🔥"}, "total_count": 2}]));
    assert_eq!(counts["chat"]["id"], -500);
}
