//! The loader's tests: every message with its place, defaults, substitution, the hash, directories.

use serde_json::{Value as Json, json};

use super::*;
use crate::{
    config::{AccessConfig, BotSettings, BotToken, FsmStrategy, PluginEntry, RateLimitConfig, WebhookConfig},
    testing::TempDir,
};

mod messages;

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const SECRET: &str = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const WEBHOOKS_ON: WebhookEnv = WebhookEnv { enabled: true, base_url_set: true };

/// start, help, error_handler and form (needing start) as in the spec; a and b need each other.
struct Catalog;

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Commands,
    Any,
}

impl PluginCatalog for Catalog {
    fn dependencies(&self, name: &str) -> Option<Vec<String>> {
        let deps: &[&str] = match name {
            "start" | "help" | "error_handler" => &[],
            "form" => &["start"],
            "a" => &["b"],
            "b" => &["a"],
            _ => return None,
        };
        Some(deps.iter().map(|d| (*d).to_owned()).collect())
    }

    fn check_config(&self, name: &str, config: &Json) -> Result<(), (String, String)> {
        let schema: &[(&str, Kind)] = match name {
            "start" => &[("welcome_message", Kind::Str), ("extra", Kind::Any)],
            "help" => &[("header", Kind::Str), ("commands", Kind::Commands)],
            "error_handler" => &[("show_error_id", Kind::Bool), ("notify_admins", Kind::Bool)],
            _ => &[],
        };
        let fail = |path: String, message: &str| Err((path, message.to_owned()));
        let Json::Object(map) = config else {
            return fail(String::new(), "expected an object");
        };
        for (key, value) in map {
            let Some(&(_, kind)) = schema.iter().find(|(field, _)| field == key) else {
                return fail(key.clone(), "unknown field");
            };
            match kind {
                Kind::Str if !value.is_string() => {
                    return fail(key.clone(), "expected a string");
                }
                Kind::Bool if !value.is_boolean() => {
                    return fail(key.clone(), "expected a boolean");
                }
                Kind::Str | Kind::Bool | Kind::Any => {}
                Kind::Commands => {
                    let Json::Array(items) = value else {
                        return fail(key.clone(), "expected a list");
                    };
                    for (i, command) in items.iter().enumerate() {
                        for field in ["command", "description"] {
                            match command.get(field) {
                                Some(Json::String(_)) => {}
                                Some(_) => {
                                    return fail(format!("{key}[{i}].{field}"), "expected a string");
                                }
                                None => {
                                    return fail(format!("{key}[{i}].{field}"), "missing field");
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn env(name: &str) -> Option<String> {
    match name {
        "BOT_TOKEN" => Some(TOKEN.to_owned()),
        "OTHER_TOKEN" => Some("987654321:ZYXwvuTSRqponMLKjihGFEdcba".to_owned()),
        "USER_NAME" => Some("Ada".to_owned()),
        "EMPTY" => Some(String::new()),
        "BAD_TOKEN" => Some("123456789:tooshort-secret".to_owned()),
        _ => None,
    }
}

fn parse_with(text: &str, webhooks: WebhookEnv) -> Result<BotConfig, Vec<ConfigError>> {
    parse_bot_file(Path::new("bots/shop.yaml"), text, &env, &Catalog, webhooks)
}

fn parse(text: &str) -> Result<BotConfig, Vec<ConfigError>> {
    parse_with(text, WEBHOOKS_ON)
}

fn parse_ok(text: &str) -> BotConfig {
    match parse(text) {
        Ok(config) => config,
        Err(errors) => panic!("unexpected errors: {errors:#?}"),
    }
}

/// `(line, column, path, message)` of each error.
fn summary(errors: &[ConfigError]) -> Vec<(usize, usize, &str, &str)> {
    errors.iter().map(|e| (e.line, e.column, e.path.as_str(), e.message.as_str())).collect()
}

fn errors_of(text: &str) -> Vec<ConfigError> {
    match parse(text) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errors) => errors,
    }
}

/// The one error a file has.
fn single_error(text: &str) -> (usize, usize, String, String) {
    let errors = errors_of(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    assert_eq!(e.file, Path::new("bots/shop.yaml"));
    (e.line, e.column, e.path.clone(), e.message.clone())
}

fn one(line: usize, column: usize, path: &str, message: &str) -> (usize, usize, String, String) {
    (line, column, path.to_owned(), message.to_owned())
}

const BASE: &str = "id: shop\nname: Shop\ntoken: ${BOT_TOKEN}\n";

const SPEC_EXAMPLE: &str = r#"# Bot identification
id: "support_bot"           # Unique identifier (required)
name: "Support Bot"         # Display name (required)
description: "Customer support bot"
token: "${BOT_TOKEN}"       # Token or env var reference (required)
enabled: true               # Whether to start this bot

# Operating mode
mode: "polling"             # "polling" or "webhook"

# Webhook settings (only for webhook mode)
webhook:
  path: "/support"          # Webhook path suffix
  max_connections: 40

# Bot settings passed to aiogram
settings:
  parse_mode: "HTML"        # Default parse mode
  disable_web_page_preview: false

# Plugins to load (order matters)
plugins:
  - name: "start"
    enabled: true
    config:
      welcome_message: "Welcome to Support!"

  - name: "help"
    config:
      header: "Available Commands"
      commands:
        - command: "/start"
          description: "Start the bot"
        - command: "/help"
          description: "Show help"
        - command: "/ticket"
          description: "Create support ticket"

  - name: "error_handler"
    config:
      show_error_id: true
      notify_admins: false

# Access control
access:
  allowed_users: []         # Empty = allow all
  blocked_users: []         # Blocked user IDs
  admin_users:              # Bot-specific admins
    - 123456789

# Rate limiting
rate_limiting:
  enabled: true
  default_rate: 30          # Requests per minute
  burst_size: 10

# FSM storage strategy
fsm_strategy: "USER_IN_CHAT"  # GLOBAL_USER, USER_IN_CHAT, CHAT
"#;

#[test]
fn the_spec_example_parses_to_every_field() {
    let config = parse_with(SPEC_EXAMPLE, WebhookEnv::default()).expect("the spec's example is valid");
    assert_eq!(config.hash.len(), 16);
    assert!(config.hash.bytes().all(|b| b.is_ascii_hexdigit()));
    let expected = BotConfig {
        id: BotId::parse("support_bot").expect("valid id"),
        name: "Support Bot".to_owned(),
        description: Some("Customer support bot".to_owned()),
        token: BotToken::parse(TOKEN).expect("valid token"),
        enabled: true,
        mode: Mode::Polling,
        webhook: WebhookConfig { path: Some("/support".to_owned()), max_connections: 40 },
        settings: BotSettings { parse_mode: Some("HTML".to_owned()), ..BotSettings::default() },
        plugins: vec![
            PluginEntry {
                name: "start".to_owned(),
                enabled: true,
                config: json!({"welcome_message": "Welcome to Support!"}),
                http: None,
            },
            PluginEntry {
                name: "help".to_owned(),
                enabled: true,
                config: json!({
                    "header": "Available Commands",
                    "commands": [
                        {"command": "/start", "description": "Start the bot"},
                        {"command": "/help", "description": "Show help"},
                        {"command": "/ticket", "description": "Create support ticket"},
                    ],
                }),
                http: None,
            },
            PluginEntry {
                name: "error_handler".to_owned(),
                enabled: true,
                config: json!({"show_error_id": true, "notify_admins": false}),
                http: None,
            },
        ],
        access: AccessConfig { allowed_users: vec![], blocked_users: vec![], admin_users: vec![123_456_789] },
        rate_limiting: RateLimitConfig { enabled: true, default_rate: 30, burst_size: 10 },
        fsm_strategy: FsmStrategy::UserInChat,
        file: PathBuf::from("bots/shop.yaml"),
        hash: config.hash.clone(),
    };
    assert_eq!(config, expected);
    assert_eq!(config.token.expose(), TOKEN);
}

#[test]
fn defaults_fill_what_is_absent_or_null() {
    let config = parse_ok(BASE);
    assert_eq!(config.description, None);
    assert!(config.enabled);
    assert_eq!(config.mode, Mode::Polling);
    assert_eq!(config.webhook, WebhookConfig::default());
    assert_eq!(config.settings, BotSettings::default());
    assert_eq!(config.plugins, vec![]);
    assert_eq!(config.access, AccessConfig::default());
    assert_eq!(config.rate_limiting, RateLimitConfig::default());
    assert_eq!(config.fsm_strategy, FsmStrategy::UserInChat);

    let nulls = format!(
        "{BASE}description: ~\nenabled:\nmode: null\nwebhook:\n  path:\nsettings: ~\nplugins:\n  - name: help\n    \
         enabled: ~\n    config: ~\naccess:\n  admin_users: ~\nrate_limiting:\n  burst_size: ~\nfsm_strategy:\n"
    );
    let config = parse_ok(&nulls);
    assert_eq!(config.plugins, vec![PluginEntry::new("help")]);
    assert_eq!(
        (config.description, config.webhook, config.rate_limiting),
        (None, WebhookConfig::default(), RateLimitConfig::default())
    );
}

#[test]
fn variables_are_substituted_in_every_string() {
    let text = r#"id: ${BOT_ID:-shop}
name: "${BOT_NAME:-Shop ${USER_NAME}}"
token: ${BOT_TOKEN}
description: "${EMPTY:-fallback} / ${EMPTY} / $${USER_NAME} / $HOME"
settings:
  parse_mode: ${PARSE_MODE:-html}
plugins:
  - name: start
    config:
      welcome_message: "Hello ${USER_NAME}!"
      extra: [{deep: "${USER_NAME:-x}"}, 3, 1.5, ~, true]
"#;
    let config = parse_ok(text);
    assert_eq!(config.id.as_str(), "shop");
    // The default ends at the first closing brace: nesting is not supported.
    assert_eq!(config.name, "Shop ${USER_NAME}");
    assert_eq!(config.description.as_deref(), Some("fallback /  / $Ada / $HOME"));
    assert_eq!(config.settings.parse_mode.as_deref(), Some("html"));
    assert_eq!(
        config.plugins[0].config,
        json!({"welcome_message": "Hello Ada!", "extra": [{"deep": "Ada"}, 3, 1.5, null, true]})
    );
    // A substituted value stays a string, whatever it looks like.
    let errors = errors_of(&format!("{BASE}enabled: ${{ENABLED:-true}}\n"));
    assert_eq!(summary(&errors), vec![(4, 10, "enabled", "expected a boolean, found a string")]);
    // Every unset variable of a scalar is named.
    let errors = errors_of("id: shop\nname: ${A} ${B:-b} ${C}\ntoken: ${BOT_TOKEN}\n");
    assert_eq!(
        summary(&errors),
        vec![(2, 7, "name", "environment variable A is not set"), (2, 7, "name", "environment variable C is not set"),]
    );
}

#[test]
fn the_token_never_shows() {
    let config = parse_ok(BASE);
    assert!(!format!("{config:?}").contains(SECRET));
    assert!(!format!("{:?}", config.token).contains(SECRET));

    let bad_secret = "not-a-token-but-secret-text";
    let texts = [
        format!("id: shop\nname: Shop\ntoken: \"123456789:{bad_secret}!\"\n"),
        format!("id: shop\nname: Shop\ntoken: \"{bad_secret}\"\n"),
        format!("id: shop\nname: Shop\ntoken: \"${{{bad_secret}\"\n"),
        format!("id: shop\nname: Shop\ntoken: \"${{NOPE:-{bad_secret}}}\"\n"),
        "id: shop\nname: Shop\ntoken: ${BAD_TOKEN}\n".to_owned(),
    ];
    for text in &texts {
        for error in errors_of(text) {
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains(bad_secret), "{shown}");
            assert!(!shown.contains("tooshort-secret"), "{shown}");
        }
    }
}

#[test]
fn the_hash_is_pinned_ignores_key_order_and_covers_every_field() {
    let base = parse_ok(SPEC_EXAMPLE);
    // The same content hashes the same in every run and on every machine.
    assert_eq!(base.hash, "2e5d88969dcc70da");
    let reordered = "fsm_strategy: USER_IN_CHAT\nrate_limiting: {burst_size: 10, default_rate: 30, enabled: true}\n\
        access: {admin_users: [123456789], blocked_users: [], allowed_users: []}\nplugins:\n  - name: start\n    \
        config: {welcome_message: Welcome to Support!}\n  - config:\n      commands:\n        - {description: Start \
        the bot, command: /start}\n        - {description: Show help, command: /help}\n        - {description: \
        Create support ticket, command: /ticket}\n      header: Available Commands\n    name: help\n  - enabled: \
        true\n    name: error_handler\n    config: {notify_admins: false, show_error_id: true}\nsettings: \
        {disable_web_page_preview: false, parse_mode: HTML}\nwebhook: {max_connections: 40, path: /support}\n\
        mode: polling\nenabled: true\ntoken: ${BOT_TOKEN}\ndescription: Customer support bot\nname: Support Bot\n\
        id: support_bot\n";
    assert_eq!(parse_ok(reordered).hash, base.hash);

    // The canonical form names every field of the schema and shows a digest of the token, not the token.
    let canonical = serde_json::to_value(&base).expect("serializes");
    let keys: Vec<&str> = canonical.as_object().expect("an object").keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 12, "{keys:?}");
    assert!(!canonical.to_string().contains(SECRET));

    let edits = [
        ("id: \"support_bot\"", "id: other_bot"),
        ("name: \"Support Bot\"", "name: Other"),
        ("description: \"Customer support bot\"", "description: Other"),
        ("token: \"${BOT_TOKEN}\"", "token: ${OTHER_TOKEN}"),
        ("enabled: true               #", "enabled: false #"),
        ("mode: \"polling\"", "mode: webhook"),
        ("path: \"/support\"", "path: /other"),
        ("max_connections: 40", "max_connections: 41"),
        ("parse_mode: \"HTML\"", "parse_mode: MarkdownV2"),
        ("disable_web_page_preview: false", "disable_web_page_preview: true"),
        ("disable_web_page_preview: false", "disable_web_page_preview: false\n  handler_timeout: 5"),
        ("  - name: \"start\"\n    enabled: true", "  - name: \"start\"\n    enabled: false"),
        ("Welcome to Support!", "Welcome!"),
        ("  - name: \"error_handler\"\n    config:\n      show_error_id: true\n      notify_admins: false\n", ""),
        ("allowed_users: []", "allowed_users: [1]"),
        ("blocked_users: []", "blocked_users: [1]"),
        ("- 123456789", "- 123456780"),
        ("  enabled: true\n  default_rate", "  enabled: false\n  default_rate"),
        ("default_rate: 30", "default_rate: 31"),
        ("burst_size: 10", "burst_size: 11"),
        ("fsm_strategy: \"USER_IN_CHAT\"", "fsm_strategy: CHAT"),
    ];
    let mut seen = vec![base.hash.clone()];
    for (from, to) in edits {
        assert!(SPEC_EXAMPLE.contains(from), "{from}");
        let hash = parse_ok(&SPEC_EXAMPLE.replacen(from, to, 1)).hash;
        assert!(!seen.contains(&hash), "{from} -> {to} left the hash at {hash}");
        seen.push(hash);
    }
}

#[test]
fn a_config_built_in_code_has_the_defaults_of_a_file() {
    let file = parse_ok(BASE);
    let id = BotId::parse("shop").expect("valid id");
    let built = BotConfig::new(id, "Shop".to_owned(), BotToken::parse(TOKEN).expect("valid token"));
    assert_eq!(BotConfig { file: file.file.clone(), ..built }, file);
}

#[test]
fn the_hash_follows_content_not_layout() {
    let a = parse_ok(SPEC_EXAMPLE);
    let relaid = SPEC_EXAMPLE
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| line.split("  #").next().unwrap_or(line).replace('"', ""))
        .collect::<Vec<_>>()
        .join("\n");
    let b = parse_ok(&relaid.replace("token: ${BOT_TOKEN}", &format!("token: {TOKEN}")));
    assert_eq!(a, b);
    assert_eq!(a.hash, b.hash);
    let reordered = parse_ok(&SPEC_EXAMPLE.replace(
        "      show_error_id: true\n      notify_admins: false",
        "      notify_admins: false\n      show_error_id: true",
    ));
    assert_eq!(reordered.hash, a.hash);
    for (from, to) in [
        ("Welcome to Support!", "Welcome!"),
        ("- 123456789", "- 123456780"),
        ("burst_size: 10", "burst_size: 11"),
        ("notify_admins: false", "notify_admins: true"),
        ("${BOT_TOKEN}", "${OTHER_TOKEN}"),
    ] {
        let changed = parse_ok(&SPEC_EXAMPLE.replace(from, to));
        assert_ne!(changed.hash, a.hash, "{from} -> {to}");
    }
}

#[test]
fn a_directory_keeps_good_bots_and_reports_the_rest() {
    let dir = TempDir::new("config-test");
    let good = dir.write("a_shop.yaml", BASE);
    let bad = dir.write("b_bad.yml", "id: bad\nname: Bad\ntoken: ${NOPE}\nmode: push\n");
    let dup = dir.write("c_dup.yaml", "name: Again\nid: shop\ntoken: ${OTHER_TOKEN}\n");
    let hook = dir.write("d_hook.yaml", "id: hook\nname: Hook\ntoken: ${OTHER_TOKEN}\nmode: webhook\n");
    let same_token = dir
        .write("e_token.yaml", "id: copy\nname: Copy\ntoken: ${BOT_TOKEN}\nmode: webhook\nwebhook:\n  path: /hook\n");
    let syntax = dir.write("f_syntax.yaml", "id: [\n");
    let binary = dir.path().join("g_binary.yaml");
    fs::write(&binary, [b'i', b'd', 0xff, 0xfe]).expect("write file");
    dir.write("notes.txt", "id: [");
    dir.write(".hidden.yaml", "id: [");
    fs::create_dir(dir.path().join("sub.yaml")).expect("create dir");

    let loaded = load_dir(dir.path(), &env, &Catalog, WEBHOOKS_ON);
    let ids: Vec<&str> = loaded.bots.iter().map(|bot| bot.id.as_str()).collect();
    assert_eq!(ids, ["shop", "hook"]);
    assert_eq!(loaded.bots[0].file, good);
    assert_eq!(loaded.files, [good, bad, dup, hook, same_token, syntax, binary]);
    let shown: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    let d = dir.path().display();
    assert_eq!(
        shown,
        [
            format!("{d}/b_bad.yml:3:8: token: environment variable NOPE is not set"),
            format!("{d}/b_bad.yml:4:7: mode: unknown mode \"push\", expected polling or webhook"),
            format!("{d}/c_dup.yaml:2:5: id: bot id \"shop\" is also defined in {d}/a_shop.yaml"),
            format!("{d}/e_token.yaml:3:8: token: this token is also used by bot \"shop\" in {d}/a_shop.yaml"),
            format!(
                "{d}/e_token.yaml:6:9: webhook.path: webhook path \"/hook\" is also used by bot \"hook\" in \
             {d}/d_hook.yaml"
            ),
            format!("{d}/f_syntax.yaml:2:1: invalid YAML: while parsing a node, did not find expected node content"),
            format!("{d}/g_binary.yaml: cannot read file: stream did not contain valid UTF-8"),
        ]
    );
    assert!(loaded.errors.iter().all(|e| !e.message.contains(SECRET)));
}

#[test]
fn a_missing_directory_is_one_error() {
    let dir = TempDir::new("config-test");
    let missing = dir.path().join("nope");
    let loaded = load_dir(&missing, &env, &Catalog, WEBHOOKS_ON);
    assert!(loaded.bots.is_empty() && loaded.files.is_empty());
    assert_eq!(loaded.errors.len(), 1);
    assert_eq!((loaded.errors[0].file.as_path(), loaded.errors[0].line), (missing.as_path(), 0));
    assert!(loaded.errors[0].message.starts_with("cannot read config directory: "));
}

#[test]
fn an_empty_file_reports_the_required_fields() {
    let errors = errors_of("# nothing yet\n");
    assert_eq!(
        summary(&errors),
        vec![
            (1, 1, "id", "missing required field \"id\""),
            (1, 1, "name", "missing required field \"name\""),
            (1, 1, "token", "missing required field \"token\""),
        ]
    );
    assert_eq!(summary(&errors_of("- id: shop\n")), vec![(1, 1, "", "expected a mapping, found a sequence")]);
}
