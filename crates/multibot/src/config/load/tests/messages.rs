//! Every kind of problem in a bot file, with its message and place, and all of a file's problems at once.

use super::*;

#[test]
fn a_file_with_many_problems_reports_them_all() {
    let text = r#"id: "Support Bot"
token: "${MISSING_TOKEN}"
enabled: "yes"
mode: webhook
colour: blue
webhook:
  path: "support"
  max_connections: 500
settings:
  parse_mode: html
plugins:
  - name: start
    config:
      welcome_message: 42
  - name: weather
  - name: form
    enabled: maybe
  - name: help
    config:
      commands:
        - command: /start
          description: 7
access:
  admin_users: [1, "2", 3.5]
rate_limiting:
  default_rate: 0
fsm_strategy: PER_USER
"#;
    let errors = match parse_with(text, WebhookEnv::default()) {
        Ok(config) => panic!("unexpected {config:?}"),
        Err(errors) => errors,
    };
    let id_message = BotId::parse("Support Bot").expect_err("invalid id");
    assert_eq!(
        summary(&errors),
        vec![
            (1, 1, "name", "missing required field \"name\""),
            (1, 5, "id", id_message.as_str()),
            (2, 8, "token", "environment variable MISSING_TOKEN is not set"),
            (3, 10, "enabled", "expected a boolean, found a string"),
            (4, 7, "mode", "mode is webhook but WEBHOOK_ENABLED is not true"),
            (4, 7, "mode", "mode is webhook but WEBHOOK_BASE_URL is not set"),
            (
                5,
                1,
                "colour",
                "unknown field \"colour\", expected one of: id, name, description, token, enabled, mode, \
             webhook, settings, plugins, access, rate_limiting, fsm_strategy"
            ),
            (
                7,
                9,
                "webhook.path",
                "invalid webhook path \"support\": it must start with / and use only A-Z a-z 0-9 / _ - ."
            ),
            (8, 20, "webhook.max_connections", "expected an integer from 1 to 100, found 500"),
            (14, 24, "plugins[0].config.welcome_message", "expected a string"),
            (15, 11, "plugins[1].name", "unknown plugin \"weather\""),
            (17, 14, "plugins[2].enabled", "expected a boolean, found a string"),
            (22, 24, "plugins[3].config.commands[0].description", "expected a string"),
            (24, 20, "access.admin_users[1]", "expected an integer, found a string"),
            (24, 25, "access.admin_users[2]", "expected an integer, found a float"),
            (26, 17, "rate_limiting.default_rate", "expected an integer of at least 1, found 0"),
            (
                27,
                15,
                "fsm_strategy",
                "unknown fsm_strategy \"PER_USER\", expected one of: GLOBAL_USER, USER_IN_CHAT, CHAT"
            ),
        ]
    );
    assert!(errors.iter().all(|e| e.file == Path::new("bots/shop.yaml")));
}

#[test]
fn each_kind_of_problem_has_its_message_and_position() {
    let cases = [
        (
            format!("{BASE}extra: 1\n"),
            one(
                4,
                1,
                "extra",
                "unknown field \"extra\", expected one of: id, name, description, token, enabled, mode, webhook, \
                 settings, plugins, access, rate_limiting, fsm_strategy",
            ),
        ),
        (
            format!("{BASE}webhook:\n  paht: /x\n"),
            one(5, 3, "webhook.paht", "unknown field \"paht\", expected one of: path, max_connections"),
        ),
        (
            "id: shop\nname: [Shop]\ntoken: ${BOT_TOKEN}\n".to_owned(),
            one(2, 7, "name", "expected a string, found a sequence"),
        ),
        (format!("{BASE}settings: HTML\n"), one(4, 11, "settings", "expected a mapping, found a string")),
        (format!("{BASE}plugins:\n  help: {{}}\n"), one(5, 3, "plugins", "expected a sequence, found a mapping")),
        (format!("{BASE}enabled: 1\n"), one(4, 10, "enabled", "expected a boolean, found an integer")),
        ("\n\nid: shop\nname: Shop\n".to_owned(), one(3, 1, "token", "missing required field \"token\"")),
        ("id: shop\nname: Shop\ntoken:\n".to_owned(), one(3, 6, "token", "expected a string, found null")),
        (
            "id: shop\nname: Shop\ntoken: ${NOPE}\n".to_owned(),
            one(3, 8, "token", "environment variable NOPE is not set"),
        ),
        (
            "id: shop\nname: Shop\ntoken: ${BOT_TOKEN\n".to_owned(),
            one(3, 8, "token", "unclosed \"${\": expected ${NAME} or ${NAME:-default}"),
        ),
        (
            "id: shop\nname: Shop\ntoken: ${1BOT}\n".to_owned(),
            one(
                3,
                8,
                "token",
                "invalid \"${...}\" reference: expected ${NAME} or ${NAME:-default}, NAME made of A-Z a-z 0-9 \
                 _ and not starting with a digit",
            ),
        ),
        (
            "id: shop\nname: Shop\ntoken: ${BAD_TOKEN}\n".to_owned(),
            one(3, 8, "token", "malformed token: expected <digits>:<at least 20 of A-Z a-z 0-9 _ ->"),
        ),
        (
            "id: Shop\nname: Shop\ntoken: ${BOT_TOKEN}\n".to_owned(),
            one(
                1,
                5,
                "id",
                "invalid bot id \"Shop\": use 1-64 characters of a-z, 0-9, _ and -, starting with a letter",
            ),
        ),
        (format!("{BASE}mode: push\n"), one(4, 7, "mode", "unknown mode \"push\", expected polling or webhook")),
        (
            format!("{BASE}fsm_strategy: user_in_chat\n"),
            one(
                4,
                15,
                "fsm_strategy",
                "unknown fsm_strategy \"user_in_chat\", expected one of: GLOBAL_USER, USER_IN_CHAT, CHAT",
            ),
        ),
        (
            format!("{BASE}settings:\n  parse_mode: markdown_v2\n"),
            one(
                5,
                15,
                "settings.parse_mode",
                "unknown parse_mode \"markdown_v2\", expected one of: HTML, MarkdownV2, Markdown",
            ),
        ),
        // Bad input: a handler time limit past a day, below zero, or not a number.
        (
            format!("{BASE}settings:\n  handler_timeout: 86401\n"),
            one(5, 20, "settings.handler_timeout", "expected an integer from 0 to 86400, found 86401"),
        ),
        (
            format!("{BASE}settings:\n  handler_timeout: -1\n"),
            one(5, 20, "settings.handler_timeout", "expected an integer from 0 to 86400, found -1"),
        ),
        (
            format!("{BASE}settings:\n  handler_timeout: 1m\n"),
            one(5, 20, "settings.handler_timeout", "expected an integer, found a string"),
        ),
        (
            format!("{BASE}webhook:\n  max_connections: 0\n"),
            one(5, 20, "webhook.max_connections", "expected an integer from 1 to 100, found 0"),
        ),
        (
            format!("{BASE}webhook:\n  max_connections: 101\n"),
            one(5, 20, "webhook.max_connections", "expected an integer from 1 to 100, found 101"),
        ),
        (
            format!("{BASE}webhook:\n  path: /a?b\n"),
            one(
                5,
                9,
                "webhook.path",
                "invalid webhook path \"/a?b\": it must start with / and use only A-Z a-z 0-9 / _ - .",
            ),
        ),
        (
            format!("{BASE}rate_limiting:\n  burst_size: -1\n"),
            one(5, 15, "rate_limiting.burst_size", "expected an integer of at least 1, found -1"),
        ),
        (
            format!("{BASE}access:\n  blocked_users:\n    - 1\n    - \"2\"\n"),
            one(7, 7, "access.blocked_users[1]", "expected an integer, found a string"),
        ),
        (
            format!("{BASE}access:\n  allowed_users: 5\n"),
            one(5, 18, "access.allowed_users", "expected a sequence of user ids, found an integer"),
        ),
        (format!("{BASE}plugins:\n  - name: echo\n"), one(5, 11, "plugins[0].name", "unknown plugin \"echo\"")),
        // Bad input: the admin bot's id and its plugin in a bot file.
        (
            "id: admin\nname: Shop\ntoken: ${BOT_TOKEN}\n".to_owned(),
            one(1, 5, "id", "the id \"admin\" is reserved for the admin bot (ADMIN_BOT_TOKEN); choose another"),
        ),
        (
            format!("{BASE}plugins:\n  - name: admin\n"),
            one(
                5,
                11,
                "plugins[0].name",
                "the admin plugin runs only in the admin bot (ADMIN_BOT_TOKEN); a bot file may not list it",
            ),
        ),
        (
            format!("{BASE}plugins:\n  - name: help\n  - name: start\n  - name: help\n    enabled: false\n"),
            one(7, 11, "plugins[2].name", "plugin \"help\" is listed twice (also at plugins[0])"),
        ),
        (
            format!("{BASE}plugins:\n  - enabled: true\n"),
            one(5, 5, "plugins[0].name", "missing required field \"name\""),
        ),
        (format!("{BASE}plugins:\n  - help\n"), one(5, 5, "plugins[0]", "expected a mapping, found a string")),
        (
            format!("{BASE}plugins:\n  - name: help\n    config: [1]\n"),
            one(6, 13, "plugins[0].config", "expected a mapping, found a sequence"),
        ),
        (
            format!("{BASE}plugins:\n  - name: help\n    config:\n      1: x\n"),
            one(7, 7, "plugins[0].config", "expected a string key, found an integer"),
        ),
        (
            format!("{BASE}plugins:\n  - name: help\n    config:\n      header: .inf\n"),
            one(7, 15, "plugins[0].config.header", "expected a finite number, found infinity or NaN"),
        ),
        (
            format!("{BASE}plugins:\n  - name: help\n    config:\n      header: ${{NOPE}}\n"),
            one(7, 15, "plugins[0].config.header", "environment variable NOPE is not set"),
        ),
        (
            format!(
                "{BASE}plugins:\n  - name: help\n    config:\n      commands:\n        - command: /a\n          \
                 description: A\n        - command: 3\n          description: B\n"
            ),
            one(10, 20, "plugins[0].config.commands[1].command", "expected a string"),
        ),
        // The missing field has no node: the error points at the deepest one on its path.
        (
            format!(
                "{BASE}plugins:\n  - name: help\n    config:\n      commands:\n        - command: /a\n          \
                 description: A\n        - command: /b\n"
            ),
            one(10, 11, "plugins[0].config.commands[1].description", "missing field"),
        ),
        (
            format!("{BASE}plugins:\n  - name: help\n    config:\n      headr: x\n"),
            one(7, 14, "plugins[0].config.headr", "unknown field"),
        ),
        (
            format!("{BASE}plugins:\n  - name: form\n"),
            one(5, 11, "plugins[0].name", "plugin \"form\" depends on \"start\", which this bot does not load"),
        ),
        (
            format!("{BASE}plugins:\n  - name: start\n    enabled: false\n  - name: form\n"),
            one(7, 11, "plugins[1].name", "plugin \"form\" depends on \"start\", which this bot does not load"),
        ),
        (
            format!("{BASE}plugins:\n  - name: help\n  - name: b\n  - name: a\n"),
            one(6, 11, "plugins[1].name", "circular plugin dependency: b -> a -> b"),
        ),
        (
            "id: shop\nname: Shop\n  token: x\n".to_owned(),
            one(3, 8, "", "invalid YAML: mapping values are not allowed in this context"),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(single_error(&text), expected, "for:\n{text}");
    }
}

#[test]
fn webhook_mode_needs_the_webhook_server() {
    let text = format!("{BASE}mode: webhook\nwebhook: {{path: /shop}}\n");
    let only_url = WebhookEnv { enabled: false, base_url_set: true };
    let only_enabled = WebhookEnv { enabled: true, base_url_set: false };
    let errors = parse_with(&text, only_url).expect_err("server disabled");
    assert_eq!(summary(&errors), vec![(4, 7, "mode", "mode is webhook but WEBHOOK_ENABLED is not true")]);
    let errors = parse_with(&text, only_enabled).expect_err("no base url");
    assert_eq!(summary(&errors), vec![(4, 7, "mode", "mode is webhook but WEBHOOK_BASE_URL is not set")]);
    let config = parse_with(&text, WEBHOOKS_ON).expect("valid");
    assert_eq!(config.mode, Mode::Webhook);
    assert_eq!(config.webhook.path.as_deref(), Some("/shop"));
    // A webhook block beside polling is fine, as in the spec's example.
    let polling = format!("{BASE}webhook:\n  path: /shop\n  max_connections: 100\n");
    assert_eq!(parse_with(&polling, WebhookEnv::default()).expect("valid").webhook.max_connections, 100);
}

#[test]
fn the_problems_of_keys_come_before_the_missing_fields_at_the_same_place() {
    let errors = errors_of("colour: blue\nname: Shop\ntoken: ${BOT_TOKEN}\n");
    assert_eq!(
        summary(&errors),
        vec![
            (
                1,
                1,
                "colour",
                "unknown field \"colour\", expected one of: id, name, description, token, enabled, mode, webhook, \
                 settings, plugins, access, rate_limiting, fsm_strategy"
            ),
            (1, 1, "id", "missing required field \"id\""),
        ]
    );
}
