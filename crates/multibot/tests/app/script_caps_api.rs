//! Script capabilities, part 1, through the emulator: `api.call` for any Bot API method (a photo by bytes and by
//! file id, a poll, a chat action through a 429, a reply, a pin, a ban), Telegram's errors caught with `pcall`,
//! `ctx.update` with every field and a non-message update type, and the `json`, `time` and `utf8` libraries.

use std::time::Duration;

use botapi_emulator::{FaultSpec, UserFile};
use multibot::plugins::PluginRegistry;
use serde_json::json;

use crate::helpers::{TempDir, TestApp, eventually, spawn_app_with, token};

const WAIT: Duration = Duration::from_secs(10);

/// A 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D,
    0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// The script under test; `PNG_BYTES` becomes the PNG as a Luau string.
const SCRIPT: &str = r#"
plugin { name = "caps" }

local function chat(ctx) return ctx.chat_id end
-- An error's message without the traceback after it.
local function first_line(err) return (tostring(err):match("^[^\n]*")) end

command("photo", "", function(ctx)
    local sent = api.call("sendPhoto", { chat_id = chat(ctx), photo = api.file(PNG_BYTES, "dot.png"), caption = "by bytes" })
    local id = sent.photo[#sent.photo].file_id
    api.call("sendPhoto", { chat_id = chat(ctx), photo = id, caption = "by id" })
end)

command("poll", "", function(ctx)
    api.call("sendPoll", { chat_id = chat(ctx), question = "Tea or coffee?", options = { "Tea", "Coffee" },
                           is_anonymous = false })
end)

on_update("poll_answer", function(ctx)
    local answer = ctx.update.poll_answer
    send(answer.user.id, string.format("%s: option %d", ctx.kind, answer.option_ids[1]))
end)

command("typing", "", function(ctx)
    local result = api.call("sendChatAction", { chat_id = chat(ctx), action = "typing" })
    ctx:reply("typing: " .. tostring(result))
end)

command("quote", "", function(ctx)
    local sent = api.call("sendMessage", { chat_id = chat(ctx), text = "quoted",
                                           reply_parameters = { message_id = ctx.message_id } })
    ctx:reply("replied to " .. sent.reply_to_message.text)
end)

command("pin", "", function(ctx)
    api.call("pinChatMessage", { chat_id = chat(ctx), message_id = ctx.message_id })
end)

command("ban", "", function(ctx)
    local ok, err = pcall(api.call, "banChatMember", { chat_id = chat(ctx), user_id = tonumber(ctx.args) })
    if not ok then ctx:reply("not banned: " .. api.error(err).description) end
end)

command("fail", "", function(ctx)
    local ok, err = pcall(api.call, "sendMessage", { chat_id = 42, text = "nobody" })
    local e = api.error(err)
    ctx:reply(string.format("%s %s %d %s | %s | %s", tostring(ok), e.method, e.code, e.description, first_line(err),
                            tostring(api.error("not an api error"))))
end)

command("crash", "", function(ctx)
    api.call("noSuchMethod", {})
end)

command("misuse", "", function(ctx)
    local results = {}
    for _, call in ipairs({
        function() return api.call("getUpdates", {}) end,
        function() return api.call("../getMe", {}) end,
        function() return api.call("sendMessage", { chat_id = chat(ctx), text = function() end }) end,
        function() local t = {} for _ = 1, 22 do t = { a = t, b = t } end return api.call("sendMessage", t) end,
    }) do
        local ok, err = pcall(call)
        table.insert(results, first_line(err))
    end
    ctx:reply(table.concat(results, "\n"))
end)

command("json", "", function(ctx)
    local value = json.decode(ctx.args)
    value.added = { 1, 2, "three" }
    local ok, deep = pcall(json.decode, string.rep("[", 40) .. string.rep("]", 40))
    local _, long = pcall(json.decode, "[" .. string.rep("0,", 100001) .. "0]")
    local _, bad = pcall(json.decode, "{\"a\": }")
    ctx:reply(json.encode(value) .. "\n" .. first_line(deep) .. "\n" .. first_line(long) .. "\n" .. first_line(bad))
end)

command("time", "", function(ctx)
    local d = time.date(86400 * 365)
    ctx:reply(string.format("%s|%d|%d-%d-%d wday %d|%s|%d|%s", time.format(86400 * 365 + 3661, "%Y-%m-%d %H:%M:%S"),
        time.parse("2026-11-30T12:00:00Z"), d.year, d.month, d.day, d.wday, tostring(math.abs(time.now() - now()) < 5),
        utf8.len("héllo"), first_line(select(2, pcall(time.format, 0, "%Q")))))
end)

message(function(ctx)
    local m = ctx.update.message
    if m == nil then return end
    local parts = { "update " .. ctx.update.update_id }
    if m.caption then table.insert(parts, "caption=" .. m.caption) end
    if m.photo then table.insert(parts, "photo sizes=" .. #m.photo) end
    if m.location then table.insert(parts, string.format("location=%.4f,%.4f", m.location.latitude, m.location.longitude)) end
    if m.contact then table.insert(parts, "contact=" .. m.contact.phone_number .. " " .. m.contact.first_name) end
    if m.reply_to_message then table.insert(parts, "reply_to=" .. m.reply_to_message.text) end
    local ok = pcall(function() m.text = "changed" end)
    table.insert(parts, "read_only=" .. tostring(not ok))
    ctx:reply(table.concat(parts, " "))
end)
"#;

/// The script with the PNG's bytes as a Luau string literal.
fn script() -> String {
    let bytes: String = PNG.iter().map(|b| format!("\\{b}")).collect();
    SCRIPT.replace("PNG_BYTES", &format!("\"{bytes}\""))
}

async fn spawn() -> (TestApp, TempDir) {
    let plugins = TempDir::new();
    plugins.write("caps.luau", &script());
    let settings = [("PLUGINS_DIR", plugins.path().display().to_string())];
    let yaml = "id: caps\nname: caps\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: caps\n";
    let app = spawn_app_with(&[("caps.yaml", yaml)], 1, PluginRegistry::builtin(), &settings).await;
    (app, plugins)
}

fn text(message: &botapi_emulator::types::Message) -> &str {
    message.text.as_deref().or(message.caption.as_deref()).unwrap_or_default()
}

#[tokio::test]
async fn a_script_sends_photos_polls_chat_actions_replies_pins_and_bans_with_api_call() {
    let (app, _plugins) = spawn().await;
    let bot = app.bot(1).await;
    let alice = app.emu.user(8001);

    // A photo uploaded from the script's bytes, then sent again by its file id: both are the PNG.
    alice.send(&bot, "/photo").await.unwrap();
    for caption in ["by bytes", "by id"] {
        let photo = alice.next_message_from(&bot).await.unwrap();
        assert_eq!(photo.caption.as_deref(), Some(caption));
        let file_id = &photo.photo.as_ref().and_then(|sizes| sizes.last()).expect("a photo").file_id;
        assert_eq!(app.emu.control().file_bytes(file_id).await.unwrap(), PNG, "{caption}: the PNG arrived intact");
    }
    let uploads = app.emu.control().calls(Some(&bot), Some("sendPhoto")).await.unwrap();
    assert_eq!(uploads.iter().map(|c| c.status).collect::<Vec<_>>(), [200, 200]);

    // A poll; the user's vote comes back to the script as a `poll_answer` update.
    alice.send(&bot, "/poll").await.unwrap();
    let poll = alice.next_message_from(&bot).await.unwrap();
    let poll = poll.poll.expect("a poll");
    assert_eq!(poll.question, "Tea or coffee?");
    alice.vote(&bot, &poll.id, &[1]).await.unwrap();
    let voted = alice.next_message_from(&bot).await;
    let error = app.manager.status().first().and_then(|s| s.last_error.clone());
    assert_eq!(voted.as_ref().map(text).ok(), Some("poll_answer: option 1"), "{error:?}");

    // A chat action through a 429: the bot's client waits `retry_after` and sends it again.
    bot.inject(FaultSpec::too_many_requests("sendChatAction", 1).times(1)).await.unwrap();
    alice.send(&bot, "/typing").await.unwrap();
    let action = bot.next_event(0, Some(8001), Some("chat_action"), WAIT).await.unwrap();
    assert_eq!(action.detail.unwrap()["action"], "typing");
    assert_eq!(text(&alice.next_message_from(&bot).await.unwrap()), "typing: true");
    let actions = app.emu.control().calls(Some(&bot), Some("sendChatAction")).await.unwrap();
    assert_eq!(actions.iter().map(|c| c.status).collect::<Vec<_>>(), [429, 200]);

    // A reply to the user's message, and a pin of it.
    let asked = alice.send(&bot, "/quote").await.unwrap();
    let quoted = alice.next_message_from(&bot).await.unwrap();
    assert_eq!(quoted.reply_to_message.as_ref().map(|m| m.message_id), Some(asked.message_id));
    assert_eq!(text(&alice.next_message_from(&bot).await.unwrap()), "replied to /quote");
    let asked = alice.send(&bot, "/pin").await.unwrap();
    let pin = bot.next_event(0, Some(8001), Some("pin"), WAIT).await.unwrap();
    assert_eq!(pin.message_id, Some(asked.message_id));

    // A ban in a group: refused while the bot is not an administrator, done once it is.
    let group = app.emu.control().group(-1_008_001, "Team");
    alice.add_bot_to(&bot, &group).await.unwrap();
    alice.send_in(&bot, &group, "/ban 8002").await.unwrap();
    let refused = alice.next_message_in(&bot, group.id, WAIT).await.unwrap();
    assert_eq!(text(&refused), "not banned: Bad Request: not enough rights to restrict/ban chat member");
    alice.set_member_status(&bot, &group, bot.id, "administrator").await.unwrap();
    alice.send_in(&bot, &group, "/ban 8002").await.unwrap();
    let ban = bot.next_event(0, Some(group.id), Some("ban"), WAIT).await.unwrap();
    assert_eq!(ban.detail.unwrap()["user_id"], 8002);
    app.stop().await;
}

#[tokio::test]
async fn telegrams_errors_reach_the_script_and_bad_calls_are_refused_before_sending() {
    let (app, _plugins) = spawn().await;
    let bot = app.bot(1).await;
    let bob = app.emu.user(8003);

    // Caught with pcall: `api.error` reads the method, code and description; the message says them too.
    bob.send(&bot, "/fail").await.unwrap();
    let caught = bob.next_message_from(&bot).await.unwrap();
    let caught = text(&caught);
    assert!(
        caught.starts_with("false sendMessage 400 Bad Request: chat not found | ")
            && caught.contains("api.call(sendMessage): Bad Request: chat not found (error 400)")
            && caught.ends_with("| nil"),
        "{caught}"
    );

    // Not caught: the handler fails with the same words, and the bot's token is nowhere in them.
    bob.send(&bot, "/crash").await.unwrap();
    let last_error = || app.manager.status().first().and_then(|s| s.last_error.clone()).unwrap_or_default();
    eventually(WAIT, "the handler's error", || async { !last_error().is_empty() }).await;
    let error = last_error();
    assert!(error.contains("api.call(noSuchMethod): Not Found: method not found (error 404)"), "{error}");
    assert!(!error.contains(&token(1)) && !error.contains(token(1).split(':').nth(1).unwrap()), "{error}");

    // Bad input: a method the host keeps, a name that is not a method's, a function as a parameter, and a table
    // whose conversion would expand into 2^22 values: each refused with a reason, nothing sent.
    let before = app.emu.control().calls(Some(&bot), None).await.unwrap().len();
    bob.send(&bot, "/misuse").await.unwrap();
    let refused = bob.next_message_from(&bot).await.unwrap();
    let lines: Vec<&str> = text(&refused).lines().collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[0].contains("api.call: getUpdates is the host's"), "{}", lines[0]);
    assert!(lines[1].contains("\"../getMe\" is not a Bot API method name"), "{}", lines[1]);
    assert!(lines[2].contains("api.call(sendMessage): params: a function cannot be converted to JSON"), "{}", lines[2]);
    assert!(lines[3].contains("the value is too large to convert: more than 100000 values"), "{}", lines[3]);
    let calls = app.emu.control().calls(Some(&bot), None).await.unwrap();
    let sent: Vec<&str> = calls[before..].iter().map(|c| c.method.as_str()).filter(|m| *m != "getUpdates").collect();
    assert_eq!(sent, ["sendMessage"], "only the reply went out");
    app.stop().await;
}

#[tokio::test]
async fn ctx_update_has_every_field_and_json_time_and_utf8_work() {
    let (app, _plugins) = spawn().await;
    let bot = app.bot(1).await;
    let carol = app.emu.user(8004);

    carol.send_file(&bot, UserFile::photo(PNG).caption("a dot")).await.unwrap();
    let answer = carol.next_message_from(&bot).await.unwrap();
    let answer = text(&answer);
    assert!(answer.contains(" caption=a dot photo sizes=") && answer.ends_with(" read_only=true"), "{answer}");

    let from = json!({"id": 8004, "is_bot": false, "first_name": "Carol"});
    let chat = json!({"id": 8004, "type": "private", "first_name": "Carol"});
    let message = |id: i64, extra: serde_json::Value| {
        let mut message = json!({"message_id": id, "date": 1_700_000_000, "from": from, "chat": chat});
        message.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({ "message": message })
    };
    for (update, expected) in [
        (message(900, json!({"location": {"latitude": 52.5200, "longitude": 13.4050}})), "location=52.5200,13.4050"),
        (message(901, json!({"contact": {"phone_number": "+15550100", "first_name": "Dan"}})), "contact=+15550100 Dan"),
        (
            message(
                902,
                json!({"text": "yes", "reply_to_message": {"message_id": 5, "date": 1_700_000_000,
                "chat": chat, "from": from, "text": "Coming?"}}),
            ),
            "reply_to=Coming?",
        ),
    ] {
        let id = bot.push_update(update).await.unwrap().expect("queued");
        let answer = carol.next_message_from(&bot).await.unwrap();
        let answer = text(&answer);
        assert!(answer.starts_with(&format!("update {id} ")) && answer.contains(expected), "{answer}");
        assert!(answer.ends_with(" read_only=true"), "{answer}");
    }

    carol.send(&bot, r#"/json {"name": "Carol", "tags": ["a", "b"], "n": 1.5}"#).await.unwrap();
    let answer = carol.next_message_from(&bot).await.unwrap();
    let lines: Vec<&str> = text(&answer).lines().collect();
    assert_eq!(lines[0], r#"{"added":[1,2,"three"],"n":1.5,"name":"Carol","tags":["a","b"]}"#);
    assert!(lines[1].contains("json.decode: nested deeper than 32 levels"), "{}", lines[1]);
    assert!(lines[2].contains("json.decode: more than 100000 values"), "{}", lines[2]);
    assert!(lines[3].contains("json.decode: invalid JSON: expected value at line 1 column 7"), "{}", lines[3]);

    carol.send(&bot, "/time").await.unwrap();
    let answer = carol.next_message_from(&bot).await.unwrap();
    let parts: Vec<&str> = text(&answer).split('|').collect();
    assert_eq!(parts[..5], ["1971-01-01 01:01:01", "1796040000", "1971-1-1 wday 6", "true", "5"], "{parts:?}");
    assert!(parts[5].contains("time.format: invalid format \"%Q\""), "{}", parts[5]);
    app.stop().await;
}
