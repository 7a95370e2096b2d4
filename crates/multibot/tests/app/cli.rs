//! The command line: check-config and plugins.

use std::process::Command;

use crate::helpers::{TempDir, token};

fn multibot(dir: &TempDir, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_multibot"))
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("CONFIG_DIR", dir.path())
        .env("GOOD_TOKEN", token(1))
        .output()
        .expect("multibot runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

const GOOD: &str = "id: good\nname: Good\ntoken: \"${GOOD_TOKEN}\"\nplugins:\n  - name: start\n  - name: help\n";

#[test]
fn check_config_summarises_a_valid_directory() {
    let dir = TempDir::new();
    dir.write("good.yaml", GOOD);
    let (code, text) = multibot(&dir, &["check-config"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("good (Good) polling, enabled, plugins: start, help"), "{text}");
    assert!(!text.contains(&token(1)));
}

#[test]
fn check_config_prints_every_problem_and_exits_1() {
    let dir = TempDir::new();
    dir.write("good.yaml", GOOD);
    // Bad input: an unknown key, an unset variable, and an unknown plugin, in one file.
    dir.write("bad.yaml", "id: bad\nname: Bad\ntoken: \"${MISSING_TOKEN}\"\ncolour: blue\nplugins:\n  - name: nope\n");
    let (code, text) = multibot(&dir, &["check-config"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("bad.yaml:3:8: token: environment variable MISSING_TOKEN is not set"), "{text}");
    assert!(text.contains("bad.yaml:4:1: colour: unknown field \"colour\""), "{text}");
    assert!(text.contains("bad.yaml:6:11: plugins[0].name: unknown plugin \"nope\""), "{text}");
}

#[test]
fn plugins_lists_the_builtin_plugins() {
    let dir = TempDir::new();
    let (code, text) = multibot(&dir, &["plugins"]);
    assert_eq!(code, 0);
    for name in ["start", "help", "error_handler", "echo", "form", "menu"] {
        assert!(text.lines().any(|l| l.starts_with(name)), "{name} missing from:\n{text}");
    }
    assert!(text.contains("Echoes user messages back"));
}

#[test]
fn every_subcommand_has_help() {
    let dir = TempDir::new();
    for sub in ["run", "migrate", "check-config", "plugins", "emulator", "demo"] {
        let (code, text) = multibot(&dir, &[sub, "--help"]);
        assert_eq!(code, 0, "{sub}: {text}");
        assert!(text.contains("Usage: multibot"), "{sub}: {text}");
    }
}

#[test]
fn the_demo_plays_a_conversation_with_each_example_bot() {
    let dir = TempDir::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new(env!("CARGO_BIN_EXE_multibot"))
        .args(["demo", "--once", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_clear()
        .env("CONFIG_DIR", root.join("config/bots"))
        .env("PLUGINS_DIR", root.join("plugins"))
        .output()
        .expect("multibot runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    for line in [
        "── echo_bot (Echo Bot) ──",
        "Echo Bot: You said: Nice to meet you",
        "── support_bot (Support Bot) ──",
        "Support Bot: Hello Alice, you are 30 years old!",
        "Support Bot: (notification) You selected option 2",
        "Support Bot: (edits the menu) Selected: Option 2",
        "── admin (Admin Bot) ──",
        "Summary: 3/3 running",
        "Admin Bot: (edits the question) ✅ Bot echo_bot stopped successfully",
        "Admin Bot: (edits the question) ✅ Bot echo_bot started successfully",
        "── script_bot (Script Bot) ──",
        "Script Bot: You said: Nice to meet you",
        "Script Bot: Hello Alice, you are 30 years old!",
        "Script Bot: (edits the menu) Selected: Option 2",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(!text.contains("config problem") && !text.contains("script problem"), "{text}");
    let playground = text.lines().find(|l| l.starts_with("Playground: ")).expect("the playground's address");
    assert!(
        playground.starts_with("Playground: http://127.0.0.1:") && playground.ends_with("/playground"),
        "{playground}"
    );
}

#[tokio::test]
async fn the_env_file_sets_what_the_process_reads_itself() {
    let dir = TempDir::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // RUST_LOG hides the INFO line the emulator prints when it listens; the real environment asks for DEBUG.
    dir.write(".env", &format!("EMULATOR_LISTEN=127.0.0.1:{port}\nRUST_LOG=error\n"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_multibot"))
        .arg("emulator")
        .current_dir(dir.path())
        .env_clear()
        .env("LOG_LEVEL", "DEBUG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("multibot runs");
    let url = format!("http://127.0.0.1:{port}/bot{}/getMe", token(1));
    crate::helpers::eventually(std::time::Duration::from_secs(20), "the emulator on EMULATOR_LISTEN's port", || {
        let url = url.clone();
        async move { reqwest::get(url).await.is_ok_and(|r| r.status().as_u16() == 401) }
    })
    .await;
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let _ = child.wait();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(!text.contains("listening"), "RUST_LOG from .env was ignored:\n{text}");
    // The playground's address is printed whatever the log level.
    assert!(text.contains(&format!("Playground: http://127.0.0.1:{port}/playground")), "{text}");
}
