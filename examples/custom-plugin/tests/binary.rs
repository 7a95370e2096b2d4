//! The example binary, as a user runs it: its `plugins` and `check-config` see the `greeter` plugin, and `run`
//! answers `/hello` through the Bot API emulator.

use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::Duration,
};

use botapi_emulator::{Emulator, EmulatorConfig};

const TOKEN: &str = "700123:CustomPluginExampleToken_secret";

const BOT: &str = r#"
id: greeter_bot
name: Greeter Bot
token: "${GREETER_TOKEN}"
plugins:
  - name: greeter
    config:
      greeting: Ahoy
"#;

/// A directory with `bots/greeter.yaml`, removed on drop.
struct Workdir(PathBuf);

impl Workdir {
    fn new(yaml: &str) -> Workdir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("custom-plugin-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(dir.join("bots")).unwrap();
        std::fs::write(dir.join("bots/greeter.yaml"), yaml).unwrap();
        Workdir(dir)
    }

    /// The example binary in this directory, with a clean environment.
    fn command(&self, subcommand: &str, api_url: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_custom-plugin"));
        command
            .arg(subcommand)
            .current_dir(&self.0)
            .env_clear()
            .env("TELEGRAM_API_URL", api_url)
            .env("CONFIG_DIR", self.0.join("bots"))
            .env("PLUGINS_DIR", self.0.join("plugins"))
            .env("DATA_DIR", &self.0)
            .env("GREETER_TOKEN", TOKEN)
            .env("HEALTH_CHECK_PORT", "0")
            .env("POLLING_TIMEOUT", "2")
            .env("FLOOD_CONTROL", "false");
        command
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn plugins_and_check_config_see_the_plugin() {
    let dir = Workdir::new(BOT);
    let plugins = dir.command("plugins", "http://127.0.0.1:9").output().unwrap();
    assert!(plugins.status.success(), "{}", text(&plugins));
    let listing = text(&plugins);
    let greeter = listing.lines().find(|l| l.starts_with("greeter ")).unwrap_or_else(|| panic!("{listing}"));
    assert!(greeter.contains("Greets the user by name on /hello"), "{greeter}");
    assert!(listing.lines().any(|l| l.starts_with("echo ")), "the built-ins stay: {listing}");

    let check = dir.command("check-config", "http://127.0.0.1:9").output().unwrap();
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("greeter_bot (Greeter Bot) polling, enabled, plugins: greeter"), "{}", text(&check));

    // Bad input: the plugin's own config is checked too (an unknown key).
    let bad = Workdir::new(&BOT.replace("greeting: Ahoy", "greting: Ahoy"));
    let check = bad.command("check-config", "http://127.0.0.1:9").output().unwrap();
    assert!(!check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("greting"), "{}", text(&check));
}

#[tokio::test]
async fn run_answers_with_the_plugin() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(TOKEN, "Greeter Bot", "greeter_bot").await.unwrap();
    let dir = Workdir::new(BOT);
    let mut child = dir.command("run", &emu.api_url()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let user = emu.user(4242);
    user.send(&bot, "/hello").await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(30), user.next_message_from(&bot)).await;
    let _ = child.kill();
    let _ = child.wait();
    let reply = reply.expect("a reply within 30 s").unwrap();
    assert_eq!(reply.text.as_deref(), Some("Ahoy, User 4242!"));
}
