//! The manager and the polling loop: reload, FSM strategies, backoff on errors.

use std::time::Duration;

use botapi_emulator::FaultSpec;
use multibot::{
    config::{BotId, WebhookEnv, parse_bot_file},
    fleet::BotState,
    outcomes::ReloadOutcome,
    plugins::PluginRegistry,
    prelude::*,
    telegram::SendOptions,
};

use crate::helpers::{env, eventually, spawn_app};

fn greeter(welcome: &str, token_var: &str) -> String {
    format!(
        "id: greeter\nname: Greeter\ntoken: \"${{{token_var}}}\"\nplugins:\n  - name: start\n    config:\n      welcome_message: \"{welcome}\"\n"
    )
}

#[tokio::test]
async fn reload_swaps_the_configuration_and_rolls_back_a_failed_start() {
    let app = spawn_app(&[("greeter.yaml", &greeter("v1", "TOKEN_1"))], 1, PluginRegistry::builtin()).await;
    let bot = app.bot(1).await;
    let user = app.emu.user(4001);
    let ask = || async {
        user.send(&bot, "/start").await.unwrap();
        user.next_message_from(&bot).await.unwrap().text.unwrap()
    };
    assert_eq!(ask().await, "v1");
    let registry = PluginRegistry::builtin();
    let parse =
        |text: &str| parse_bot_file("greeter.yaml".as_ref(), text, &*env(), &registry, WebhookEnv::default()).unwrap();
    assert_eq!(app.manager.reload(parse(&greeter("v1", "TOKEN_1"))).await, Ok(ReloadOutcome::Unchanged));
    assert_eq!(app.manager.reload(parse(&greeter("v2", "TOKEN_1"))).await, Ok(ReloadOutcome::Reloaded));
    assert_eq!(ask().await, "v2");
    // Bad input: a token Telegram rejects. The reload fails and the bot keeps its old behaviour.
    let failed = app.manager.reload(parse(&greeter("v3", "TOKEN_9"))).await;
    assert!(failed.is_err(), "{failed:?}");
    let id = multibot::config::BotId::parse("greeter").unwrap();
    eventually(Duration::from_secs(5), "the old bot back", || async {
        app.manager.status_of(&id).unwrap().state == BotState::Running
    })
    .await;
    assert_eq!(ask().await, "v2");
    app.manager.remove(&id).await.unwrap();
    assert!(app.manager.status_of(&id).is_none());
    app.stop().await;
}

fn form_bot(strategy: &str) -> String {
    format!(
        "id: former\nname: Former\ntoken: \"${{TOKEN_1}}\"\nfsm_strategy: \"{strategy}\"\nplugins:\n  - name: form\n"
    )
}

#[tokio::test]
async fn chat_strategy_shares_the_state_between_users_of_a_group() {
    let app = spawn_app(&[("form.yaml", &form_bot("CHAT"))], 1, PluginRegistry::builtin()).await;
    let bot = app.bot(1).await;
    let group = app.emu.control().group(-555, "Form group");
    let (alice, bob) = (app.emu.user(6001), app.emu.user(6002));
    alice.send_in(&bot, &group, "/form").await.unwrap();
    alice.next_message_in(&bot, -555, Duration::from_secs(10)).await.unwrap();
    bob.send_in(&bot, &group, "Team").await.unwrap();
    let reply = alice.next_message_in(&bot, -555, Duration::from_secs(10)).await.unwrap();
    assert_eq!(reply.text.as_deref(), Some("How old are you?"), "bob answered alice's form: the chat shares one state");
    app.stop().await;
}

#[tokio::test]
async fn global_user_strategy_follows_the_user_across_chats() {
    let app = spawn_app(&[("form.yaml", &form_bot("GLOBAL_USER"))], 1, PluginRegistry::builtin()).await;
    let bot = app.bot(1).await;
    let group = app.emu.control().group(-556, "Elsewhere");
    let alice = app.emu.user(6101);
    alice.send_in(&bot, &group, "/form").await.unwrap();
    alice.next_message_in(&bot, -556, Duration::from_secs(10)).await.unwrap();
    alice.send(&bot, "Alice").await.unwrap();
    assert_eq!(alice.next_message_from(&bot).await.unwrap().text.as_deref(), Some("How old are you?"));
    app.stop().await;
}

#[tokio::test]
async fn user_in_chat_strategy_keeps_chats_apart() {
    let app = spawn_app(&[("form.yaml", &form_bot("USER_IN_CHAT"))], 1, PluginRegistry::builtin()).await;
    let bot = app.bot(1).await;
    let group = app.emu.control().group(-557, "Apart");
    let alice = app.emu.user(6201);
    alice.send_in(&bot, &group, "/form").await.unwrap();
    alice.next_message_in(&bot, -557, Duration::from_secs(10)).await.unwrap();
    alice.send(&bot, "Alice").await.unwrap();
    assert!(
        alice.next_message_in(&bot, 6201, Duration::from_millis(300)).await.is_err(),
        "the private chat has no form running"
    );
    app.stop().await;
}

const ECHO: &str =
    "id: echoer\nname: Echoer\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: echo\n    config: { echo_all: true }\n";

#[tokio::test]
async fn polling_backs_off_on_errors_and_honours_retry_after() {
    let app = spawn_app(&[("echo.yaml", ECHO)], 1, PluginRegistry::builtin()).await;
    let bot = app.bot(1).await;
    let user = app.emu.user(7001);
    user.send(&bot, "warm up").await.unwrap();
    user.next_message_from(&bot).await.unwrap();
    // Bad input from Telegram: three 409s, then a 429 asking for 1 s, then two 502s.
    bot.inject(FaultSpec::error("getUpdates", 409).times(3)).await.unwrap();
    bot.inject(FaultSpec::too_many_requests("getUpdates", 1)).await.unwrap();
    bot.inject(FaultSpec::error("getUpdates", 502).times(2)).await.unwrap();
    // Wake the waiting long poll so the next calls meet the faults.
    user.send(&bot, "during the storm").await.unwrap();
    eventually(Duration::from_secs(20), "six failed polls", || async {
        bot.calls(Some("getUpdates")).await.unwrap().iter().filter(|c| c.status != 200).count() == 6
    })
    .await;
    user.send(&bot, "after the storm").await.unwrap();
    for text in ["You said: during the storm", "You said: after the storm"] {
        assert_eq!(
            user.next_message_in(&bot, 7001, Duration::from_secs(20)).await.unwrap().text.as_deref(),
            Some(text)
        );
    }
    let calls = bot.calls(Some("getUpdates")).await.unwrap();
    let failed: Vec<_> = calls.iter().filter(|c| c.status != 200).collect();
    assert_eq!(failed.iter().map(|c| c.status).collect::<Vec<_>>(), [409, 409, 409, 429, 502, 502]);
    let gaps: Vec<u64> = failed.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
    // Exponential backoff from 250 ms: never a tight loop; the 429 waits its full retry_after.
    assert!(gaps[0] >= 240 && gaps[1] >= 490, "{gaps:?}");
    assert!(gaps[3] >= 990, "retry_after honoured: {gaps:?}");
    app.stop().await;
}

/// A plugin whose task of the bot's (spawned with [`PluginContext::spawn`]) says goodbye to user 4100 a moment
/// after the bot is told to stop.
struct Farewell;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FarewellConfig {}

#[async_trait]
impl Plugin for Farewell {
    type Config = FarewellConfig;

    fn meta() -> PluginMeta {
        PluginMeta::new("farewell")
    }

    fn new(_config: FarewellConfig, _cx: &PluginContext) -> anyhow::Result<Farewell> {
        Ok(Farewell)
    }

    fn setup_handlers(&self, _handlers: &mut Handlers<'_, Self>) {}

    async fn on_bot_start(&self, cx: &PluginContext) -> anyhow::Result<()> {
        let (api, stopping) = (cx.api.clone(), cx.shutdown.clone());
        cx.spawn(async move {
            stopping.cancelled().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let options = SendOptions::default();
            api.send_message(ChatId(4100), "bye".to_owned(), options).await.expect("bye sent");
        });
        Ok(())
    }
}

#[tokio::test]
async fn stopping_a_bot_waits_for_its_tasks() {
    let mut registry = PluginRegistry::builtin();
    registry.register::<Farewell>();
    let file = greeter("hello", "TOKEN_1").replace("plugins:\n", "plugins:\n  - name: farewell\n");
    let app = spawn_app(&[("greeter.yaml", &file)], 1, registry).await;
    let bot = app.bot(1).await;
    let user = app.emu.user(4100);
    user.send(&bot, "/start").await.unwrap();
    assert_eq!(user.next_message_from(&bot).await.unwrap().text.as_deref(), Some("hello"));
    app.manager.stop(&BotId::parse("greeter").unwrap()).await.unwrap();
    // Nothing of the bot runs once the stop returns: its goodbye is already sent, not on its way.
    let sent: Vec<String> = user.transcript(&bot).await.unwrap().into_iter().filter_map(|m| m.raw_text).collect();
    assert_eq!(sent.last().map(String::as_str), Some("bye"), "{sent:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_bot_takes_one_place_in_its_connection_group_at_start_and_keeps_it_at_a_reload() {
    use std::sync::Arc;

    use multibot::{
        config::{BotConfig, BotToken, HttpVersion, Settings},
        fleet::BotManager,
        fsm::MemoryFsm,
        plugins::Notifier,
        runtime::{Deps, InboxWriter},
        storage::{Recorder, Storage},
        telegram::ApiClients,
    };
    use tokio_util::sync::CancellationToken;

    let emu = botapi_emulator::Emulator::start(botapi_emulator::EmulatorConfig::default()).await.unwrap();
    let token = crate::helpers::token(5001);
    emu.bot(&token).await.unwrap();
    let api_url: reqwest::Url = emu.api_url().parse().unwrap();
    // HTTP/2: bots are grouped, 50 to a group.
    let http = ApiClients::new(&api_url, HttpVersion::Http2, Duration::from_secs(40)).unwrap();
    let storage = Storage::in_memory().await.unwrap();
    let deps = Deps {
        settings: Arc::new(Settings::defaults()),
        registry: Arc::new(PluginRegistry::builtin()),
        http: http.clone(),
        api_url,
        fsm: Arc::new(MemoryFsm::default()),
        shutdown: CancellationToken::new(),
        webhooks: None,
        recorder: Recorder::spawn(storage.clone(), 16),
        inbox: InboxWriter::spawn(storage.clone()),
        storage,
        notifier: Notifier::default(),
        poll_gate: None,
    };
    let manager = BotManager::new(deps);
    let config = |welcome: &str| {
        let mut config =
            BotConfig::new(BotId::parse("placed").unwrap(), "Placed".into(), BotToken::parse(&token).unwrap());
        config.plugins = vec![multibot::config::PluginEntry::new("start")];
        config.plugins[0].config = serde_json::json!({ "welcome_message": welcome });
        config.hashed()
    };
    assert_eq!(manager.start_all(vec![config("v1")]).await, 1);
    assert_eq!(http.joined(), 1, "one place for one started bot");
    assert_eq!(manager.reload(config("v2")).await, Ok(ReloadOutcome::Reloaded));
    assert_eq!(http.joined(), 1, "a reload in place keeps the bot's place");
    manager.stop_all().await;
}
