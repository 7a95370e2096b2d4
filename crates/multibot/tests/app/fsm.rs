//! FSM storage: conversations survive a restart with the database and with Redis (real servers), never mix
//! between users or bots, expire in memory after `FSM_TTL`, and Redis being down fails only the handlers that
//! need it.

use std::{sync::Arc, time::Duration};

use multibot::{plugins::PluginRegistry, prelude::*, storage::PluginStore};

use crate::{
    db::{TestDb, both_backends},
    helpers::{shared_redis, spawn_app, spawn_app_with},
};

fn form_bot(id: &str, token_var: &str) -> String {
    format!(
        "id: {id}\nname: Former\ntoken: \"${{{token_var}}}\"\nplugins:\n  - name: form\n  - name: echo\n    config: {{ echo_all: true }}\n  - name: error_handler\n"
    )
}

async fn ask(user: &botapi_emulator::TestUser, bot: &botapi_emulator::TestBot, text: &str) -> String {
    user.send(bot, text).await.unwrap();
    user.next_message_from(bot).await.unwrap().text.unwrap()
}

both_backends!(a_form_survives_a_restart_with_the_database);

async fn a_form_survives_a_restart_with_the_database(db: &TestDb) {
    let vars = [("DATABASE_URL", db.url.clone()), ("FSM_STORAGE", "database".to_owned())];
    let files = [("form.yaml", form_bot("former", "TOKEN_1"))];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let app = spawn_app_with(&files, 1, PluginRegistry::builtin(), &vars).await;
    let bot = app.bot(1).await;
    let (alice, bob) = (app.emu.user(7001), app.emu.user(7002));
    assert_eq!(ask(&alice, &bot, "/form").await, "What's your name?");
    assert_eq!(ask(&alice, &bot, "Alice").await, "How old are you?");
    assert_eq!(ask(&bob, &bot, "/form").await, "What's your name?");
    app.stop().await;

    let app = spawn_app_with(&files, 1, PluginRegistry::builtin(), &vars).await;
    let bot = app.bot(1).await;
    let (alice, bob) = (app.emu.user(7001), app.emu.user(7002));
    assert_eq!(ask(&alice, &bot, "30").await, "Hello Alice, you are 30 years old!");
    assert_eq!(ask(&bob, &bot, "Bob").await, "How old are you?", "the other user's step was kept apart");
    app.stop().await;
}

#[tokio::test]
async fn in_memory_an_idle_conversation_expires_after_fsm_ttl() {
    let vars = [("FSM_STORAGE", "memory".to_owned()), ("FSM_TTL", "2".to_owned())];
    let files = [("form.yaml", form_bot("expiring", "TOKEN_1"))];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let app = spawn_app_with(&files, 1, PluginRegistry::builtin(), &vars).await;
    let bot = app.bot(1).await;
    let alice = app.emu.user(7201);
    assert_eq!(ask(&alice, &bot, "/form").await, "What's your name?");
    assert_eq!(ask(&alice, &bot, "Alice").await, "How old are you?", "within the TTL the form goes on");
    // The state was saved before that answer came: from here the TTL has surely run out after 2 s.
    let saved_before = std::time::Instant::now();
    // Bad input: Alice answers the form's question after leaving it idle past the TTL; the bot has forgotten it.
    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(saved_before.elapsed())).await;
    assert_eq!(ask(&alice, &bot, "30").await, "You said: 30", "the idle conversation expired");
    app.stop().await;
}

/// A bot id no other test run uses, so Redis keys never collide.
fn unique_id(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

#[tokio::test]
async fn a_form_survives_a_restart_with_redis_and_bots_never_mix() {
    let Some(redis) = shared_redis().await else { return };
    let (a, b) = (unique_id("redis_a"), unique_id("redis_b"));
    let vars = [("REDIS_URL", redis.to_owned()), ("FSM_TTL", "600".to_owned())];
    let files = [("a.yaml", form_bot(&a, "TOKEN_1")), ("b.yaml", form_bot(&b, "TOKEN_2"))];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let app = spawn_app_with(&files, 2, PluginRegistry::builtin(), &vars).await;
    let (bot_a, bot_b) = (app.bot(1).await, app.bot(2).await);
    let ann = app.emu.user(7101);
    assert_eq!(ask(&ann, &bot_a, "/form").await, "What's your name?");
    assert_eq!(ask(&ann, &bot_a, "Ann").await, "How old are you?");
    // The same user in another bot has no form running there.
    assert_eq!(ask(&ann, &bot_b, "Ann").await, "You said: Ann");
    app.stop().await;

    let app = spawn_app_with(&files, 2, PluginRegistry::builtin(), &vars).await;
    let (bot_a, bot_b) = (app.bot(1).await, app.bot(2).await);
    let ann = app.emu.user(7101);
    assert_eq!(ask(&ann, &bot_b, "41").await, "You said: 41");
    assert_eq!(ask(&ann, &bot_a, "41").await, "Hello Ann, you are 41 years old!");
    app.stop().await;
    // The finished form left nothing behind.
    let client = redis::Client::open(redis).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{a}:*")).query_async(&mut connection).await.unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn redis_down_fails_only_the_fsm_handlers() {
    // Bad input: nothing listens on port 1.
    let vars = [("REDIS_URL", "redis://127.0.0.1:1".to_owned())];
    let files = [("form.yaml", form_bot("downer", "TOKEN_1"))];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let app = spawn_app_with(&files, 1, PluginRegistry::builtin(), &vars).await;
    let bot = app.bot(1).await;
    let user = app.emu.user(7201);
    let reply = ask(&user, &bot, "/form").await;
    assert!(reply.starts_with("Something went wrong (error id "), "{reply}");
    assert_eq!(ask(&user, &bot, "hello").await, "You said: hello", "handlers without the FSM go on");
    app.stop().await;
}

/// A plugin written against the names of the previous release (`cx.state()` for the store, `cx.set_state`,
/// `cx.update_data`, `cx.data`, `cx.clear_state` for the FSM) and the new ones (`cx.store()`, `cx.fsm()`).
struct Legacy {
    store: PluginStore,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyConfig {}

impl Plugin for Legacy {
    type Config = LegacyConfig;

    fn meta() -> PluginMeta {
        PluginMeta::new("legacy").description("Old and new names side by side")
    }

    #[allow(deprecated)]
    fn new(_config: LegacyConfig, cx: &PluginContext) -> anyhow::Result<Legacy> {
        Ok(Legacy { store: cx.state() })
    }

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers.command("old", "Old names", Legacy::old).command("new", "New names", Legacy::new_names);
    }
}

impl Legacy {
    #[allow(deprecated)]
    async fn old(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        cx.set_state(Some("stale")).await?;
        cx.clear_state().await?;
        cx.set_state(Some("asked")).await?;
        cx.update_data("name", cx.command_args()).await?;
        self.store.set("visits", &1).await?;
        let (state, data) = (cx.state().await?, cx.data().await?);
        cx.reply(format!("old: {} {}", state.unwrap_or_default(), data["name"])).await?;
        Ok(())
    }

    async fn new_names(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let fsm = cx.fsm();
        let (state, data) = (fsm.state().await?, fsm.data().await?);
        let visits = cx.plugin_store("legacy").get::<u64>("visits").await?;
        fsm.clear().await?;
        cx.reply(format!("new: {state:?} {:?} {visits:?}", data.get("name").and_then(|v| v.as_str()))).await?;
        Ok(())
    }
}

#[tokio::test]
async fn the_deprecated_names_reach_the_same_conversation_and_store_as_the_new_ones() {
    let mut registry = PluginRegistry::builtin();
    registry.register::<Legacy>();
    let yaml = "id: legacy\nname: Legacy\ntoken: \"${TOKEN_1}\"\nplugins:\n  - name: legacy\n";
    let app = spawn_app(&[("legacy.yaml", yaml)], 1, registry).await;
    let bot = app.bot(1).await;
    let alice = app.emu.user(7301);
    assert_eq!(ask(&alice, &bot, "/old Alice").await, "old: asked \"Alice\"");
    assert_eq!(ask(&alice, &bot, "/new").await, "new: Some(\"asked\") Some(\"Alice\") Some(1)");
    assert_eq!(ask(&alice, &bot, "/new").await, "new: None None Some(1)", "fsm().clear() emptied the conversation");
    app.stop().await;
}
