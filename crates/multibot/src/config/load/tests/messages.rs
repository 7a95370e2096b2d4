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

/// One case per kind of problem, in `problems.txt` (its first lines say how it is written).
#[test]
fn each_kind_of_problem_has_its_message_and_position() {
    let mut cases: Vec<(String, String)> = Vec::new();
    for line in include_str!("problems.txt").split_inclusive('\n') {
        if line.starts_with("## ") || (cases.is_empty() && line.trim().is_empty()) {
            continue;
        }
        match line.strip_prefix("--- ") {
            Some(expected) => cases.push((expected.trim_end().to_owned(), String::new())),
            None => cases.last_mut().expect("a case starts with ---").1.push_str(line),
        }
    }
    assert_eq!(cases.len(), 42, "cases read");
    for (expected, text) in cases {
        let (position, error) = expected.split_once(' ').expect("LINE:COLUMN FIELD | MESSAGE");
        let (line, column) = position.split_once(':').expect("LINE:COLUMN");
        let (field, message) = error.split_once('|').expect("FIELD | MESSAGE");
        let expected = one(line.parse().unwrap(), column.parse().unwrap(), field.trim(), message.trim());
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
