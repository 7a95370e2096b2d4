//! The console's actions: a confirmation page for each, then the action through [`Control`](crate::fleet::control::Control), audited, and the
//! fleet page with its outcome.

use askama::Template;
use axum::{
    extract::Path,
    response::{IntoResponse, Redirect, Response},
};
use serde_json::json;

use super::{
    Console, Outcome, Visit, auth,
    pages::{not_found, render},
};
use crate::{
    config::BotId,
    fleet::control::{Done, FleetReport, Order},
    storage::events,
};

#[derive(Template)]
#[template(path = "console/confirm.html")]
pub(super) struct ConfirmPage {
    pub(super) csrf: Option<String>,
    pub(super) question: String,
    pub(super) explanation: &'static str,
    pub(super) action: String,
    pub(super) button: String,
    pub(super) back: String,
}

fn order_of(action: &str) -> Option<Order> {
    match action {
        "start" => Some(Order::Start),
        "stop" => Some(Order::Stop),
        "restart" => Some(Order::Restart),
        _ => None,
    }
}

fn explain(action: &str) -> Option<&'static str> {
    Some(match action {
        "start" => "The bot starts receiving and handling updates.",
        "stop" => "The bot finishes the updates in hand and stops; Telegram keeps new ones until it starts again.",
        "restart" => "The bot stops, letting updates in hand finish, and starts again.",
        "reload" => {
            "The bot's file is read again; a valid change is applied, an invalid one is shown and the bot keeps running as it is."
        }
        _ => return None,
    })
}

/// `GET /console/bots/<id>/<action>`: asks before acting.
pub(super) async fn confirm(Visit { console, session }: Visit, Path((id, action)): Path<(String, String)>) -> Response {
    let (Ok(id), Some(explanation)) = (BotId::parse(&id), explain(&action)) else { return not_found("That action") };
    if console.manager.status_of(&id).is_none() && action != "reload" {
        return not_found("That bot");
    }
    let verb = format!("{}{}", action[..1].to_uppercase(), &action[1..]);
    render(&ConfirmPage {
        csrf: Some(console.keys.csrf(&session)),
        question: format!("{verb} bot {id}?"),
        explanation,
        action: format!("/console/bots/{id}/{action}"),
        button: format!("{verb} {id}"),
        back: format!("/console/bots/{id}"),
    })
}

/// `GET /console/reload`: asks before reloading every file.
pub(super) async fn confirm_reload(Visit { console, session }: Visit) -> Response {
    render(&ConfirmPage {
        csrf: Some(console.keys.csrf(&session)),
        question: "Reload every bot?".to_owned(),
        explanation: "Every file of the configuration directory is read again; valid changes are applied, problems are shown, and the bots of invalid files keep running as they are.",
        action: "/console/reload".to_owned(),
        button: "Reload all".to_owned(),
        back: "/console".to_owned(),
    })
}

fn reported(report: &FleetReport) -> Outcome {
    let ok = report.errors.is_empty() && report.failed.is_empty() && report.silent.is_empty();
    let mut lines: Vec<String> = report.applied.iter().map(|(id, what)| format!("{id}: {what}")).collect();
    lines.extend(
        report.failed.iter().map(|(id, why)| format!("{id}: {why} (the previous configuration keeps running)")),
    );
    lines.extend(report.errors.iter().cloned());
    lines.extend(report.silent.iter().map(|replica| format!("No answer yet from replica {replica}")));
    let title = match (ok, report.applied.is_empty()) {
        (true, true) => "Reload done: nothing changed",
        (true, false) => "Reload done",
        (false, _) => "Reload finished with problems; bots of invalid files keep their running configuration",
    };
    Outcome { ok, title: title.to_owned(), lines }
}

/// Audits a console action and sends the browser to the fleet page, which shows its outcome.
fn done(console: &Console, session: &auth::Session, bot: Option<&BotId>, action: &str, outcome: Outcome) -> Response {
    let result = if outcome.ok { "ok" } else { "failed" };
    let detail = json!({"via": "console", "session": &session.nonce[..8], "outcome": result});
    events::admin_action(&console.recorder, bot, None, action, detail);
    // The table the browser is sent to shows the fleet as it is now.
    *console.rows.lock() = None;
    let n = console.remember(outcome);
    Redirect::to(&format!("/console?outcome={n}#outcome")).into_response()
}

/// `POST /console/bots/<id>/<action>`.
pub(super) async fn act(Visit { console, session }: Visit, Path((id, action)): Path<(String, String)>) -> Response {
    let Ok(id) = BotId::parse(&id) else { return not_found("That bot") };
    if action == "reload" {
        let outcome = reported(&console.control.reload(Some(&id)).await);
        return done(&console, &session, Some(&id), "reload", outcome);
    }
    let Some(order) = order_of(&action) else { return not_found("That action") };
    if console.manager.status_of(&id).is_none() {
        return not_found("That bot");
    }
    let past = match order {
        Order::Start => "started",
        Order::Stop => "stopped",
        Order::Restart => "restarted",
    };
    let outcome = match console.control.order(order, &id).await {
        Ok(Done::Here) => Outcome { ok: true, title: format!("Bot {id} {past}"), lines: Vec::new() },
        Ok(Done::On(replica)) => {
            Outcome { ok: true, title: format!("Bot {id} {past} on replica {replica}"), lines: Vec::new() }
        }
        Ok(Done::Later) => Outcome {
            ok: true,
            title: format!("No replica runs {id} right now"),
            lines: vec![format!(
                "The replica that takes it next {}.",
                if order == Order::Stop { "keeps it stopped" } else { "starts it" }
            )],
        },
        Err(e) => Outcome { ok: false, title: format!("Could not {action} {id}"), lines: vec![e] },
    };
    done(&console, &session, Some(&id), order.as_str(), outcome)
}

/// `POST /console/reload`.
pub(super) async fn reload_all(Visit { console, session }: Visit) -> Response {
    let outcome = reported(&console.control.reload(None).await);
    done(&console, &session, None, "reload_all", outcome)
}
