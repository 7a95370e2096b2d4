//! The pages that show records: a bot's page (its status, plugins, configuration with secrets masked, recent
//! events and users) and the audit log, a page at a time.

use askama::Template;
use axum::{
    extract::{Path, Query},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Visit,
    pages::{Row, not_found, query_string, render},
};
use crate::{
    config::BotId,
    storage::{BotEvent, EventFilter, EventKind},
};

/// Events on one page of the audit log.
const EVENTS_PAGE: u32 = 50;

fn masked(value: &mut Value) {
    const SECRET_WORDS: &[&str] = &[
        "token",
        "secret",
        "password",
        "passwd",
        "pass",
        "key",
        "apikey",
        "auth",
        "credential",
        "credentials",
        "private",
        "dsn",
    ];
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                let lower = key.to_ascii_lowercase();
                let secret = lower.split(['_', '-', '.']).any(|word| SECRET_WORDS.contains(&word))
                    || ["token", "secret", "password", "apikey"].iter().any(|end| lower.ends_with(end));
                if secret && !value.is_null() {
                    *value = json!("••• (masked)");
                } else {
                    masked(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(masked),
        Value::String(text) => {
            // A password in a URL: `scheme://user:password@host`.
            if let Some((scheme, rest)) = text.split_once("://")
                && let Some((userinfo, host)) = rest.split_once('@')
                && let Some((user, _)) = userinfo.split_once(':')
                && !userinfo.contains('/')
            {
                *text = format!("{scheme}://{user}:•••@{host}");
            }
        }
        _ => {}
    }
}

/// An audit event as a line of the table.
struct EventLine {
    at: String,
    bot: Option<String>,
    kind: String,
    actor: String,
    detail: String,
}

impl From<BotEvent> for EventLine {
    fn from(event: BotEvent) -> EventLine {
        EventLine {
            at: event.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            bot: event.bot_id,
            kind: event.kind,
            actor: event.actor_user_id.map(|id| id.to_string()).unwrap_or_default(),
            detail: event.detail.to_string(),
        }
    }
}

struct UserLine {
    id: i64,
    name: String,
    username: String,
    messages: i64,
    last_seen: String,
    blocked: bool,
}

/// A bot page's query: the outcome of the action just done.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct BotQuery {
    outcome: Option<u64>,
}

#[derive(Template)]
#[template(path = "console/bot.html")]
struct BotPage {
    csrf: Option<String>,
    outcome: Option<super::Outcome>,
    broadcasts: Vec<super::broadcasts::BroadcastLine>,
    row: Row,
    handled: u64,
    file: String,
    plugins: Vec<String>,
    config: String,
    events: Vec<EventLine>,
    users: Vec<UserLine>,
}

/// `GET /console/bots/<id>`.
pub(super) async fn bot(
    Visit { console, session }: Visit,
    Path(id): Path<String>,
    Query(query): Query<BotQuery>,
) -> Response {
    let Ok(id) = BotId::parse(&id) else { return not_found("That bot") };
    let (Some(status), Some(row)) =
        (console.manager.status_of(&id), console.rows().await.iter().find(|row| row.id == id.as_str()).cloned())
    else {
        return not_found("That bot");
    };
    let config = match console.manager.config_of(&id).await {
        Some(config) => {
            let mut value = serde_json::to_value(&*config).unwrap_or(Value::Null);
            masked(&mut value);
            serde_json::to_string_pretty(&value).unwrap_or_default()
        }
        None => "(not loaded)".to_owned(),
    };
    let events = console.storage.events().list(Some(id.as_str()), None, 20).await.unwrap_or_default();
    let users = console.storage.users().list_recent(id.as_str(), 20).await.unwrap_or_default();
    let users = users
        .into_iter()
        .map(|user| UserLine {
            id: user.user_id,
            name: [Some(user.profile.first_name), user.profile.last_name]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
            username: user.profile.username.map(|u| format!("@{u}")).unwrap_or_default(),
            messages: user.message_count,
            last_seen: user.last_seen.format("%Y-%m-%d %H:%M").to_string(),
            blocked: user.is_blocked,
        })
        .collect();
    render(&BotPage {
        csrf: Some(console.keys.csrf(&session)),
        outcome: query.outcome.and_then(|n| console.outcome(n)),
        broadcasts: super::broadcasts::lines(&console, &id).await,
        handled: status.updates_handled,
        file: status.file.display().to_string(),
        plugins: status.plugins,
        row,
        config,
        events: events.into_iter().map(EventLine::from).collect(),
        users,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct EventsQuery {
    bot: String,
    kind: String,
    before: Option<i64>,
}

#[derive(Template)]
#[template(path = "console/events.html")]
struct EventsPage {
    csrf: Option<String>,
    bot: String,
    kind_options: Vec<(&'static str, bool, &'static str)>,
    events: Vec<EventLine>,
    newest_href: Option<String>,
    older_href: Option<String>,
}

/// `GET /console/events`: the audit log, newest first, filtered by bot and kind, a page at a time.
pub(super) async fn events(Visit { console, session }: Visit, Query(query): Query<EventsQuery>) -> Response {
    let bot = query.bot.trim();
    let kind = EventKind::ALL.iter().map(|k| k.as_str()).find(|k| *k == query.kind);
    let of = EventFilter { bot_id: Some(bot).filter(|b| !b.is_empty()), kind };
    let found = console.storage.events().page(of, query.before, EVENTS_PAGE).await;
    let found = match found {
        Ok(found) => found,
        Err(e) => {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("The database did not answer: {e}")).into_response();
        }
    };
    let href = |before: Option<i64>| {
        let before = before.map(|b| b.to_string()).unwrap_or_default();
        let pairs = [("bot", bot), ("kind", kind.unwrap_or_default()), ("before", before.as_str())];
        let query = query_string(&pairs);
        format!("/console/events?{query}")
    };
    let older_href = (found.len() == EVENTS_PAGE as usize).then(|| href(found.last().map(|e| e.id)));
    let mut kind_options = vec![("", kind.is_none(), "any")];
    kind_options.extend(EventKind::ALL.iter().map(|k| (k.as_str(), Some(k.as_str()) == kind, k.as_str())));
    render(&EventsPage {
        csrf: Some(console.keys.csrf(&session)),
        bot: bot.to_owned(),
        kind_options,
        events: found.into_iter().map(EventLine::from).collect(),
        newest_href: query.before.is_some().then(|| href(None)),
        older_href,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_a_configuration_are_masked() {
        let mut config = json!({
            "token": "123:abc", "name": "Shop",
            "plugins": [{"name": "weather", "config": {"api_key": "k-123", "keyboard": ["a"], "db_password": "pw",
                "url": "postgres://bob:hunter2@db/x", "secretToken": "s", "city": "Oslo"}}],
            "webhook": {"secret_token": "wh"}
        });
        masked(&mut config);
        let text = config.to_string();
        for secret in ["123:abc", "k-123", "pw\"", "hunter2", "\"s\"", "\"wh\""] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        for kept in ["Shop", "Oslo", "[\"a\"]", "postgres://bob:•••@db/x"] {
            assert!(text.contains(kept), "{kept} missing from {text}");
        }
    }
}
