//! Broadcasts in the console: a bot's page lists its broadcasts with their progress and starts a new one (a text,
//! previewed and confirmed first); a running one can be paused, resumed, or cancelled after a confirmation. Each goes
//! through the fleet's [`Broadcasts`](crate::fleet::broadcasts::Broadcasts), which records it as a `broadcast` event.

use std::sync::Arc;

use askama::Template;
use axum::{
    Form,
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{
    Console, Outcome, Visit,
    actions::ConfirmPage,
    pages::{not_found, render},
};
use crate::{
    config::BotId,
    fleet::broadcasts::{BroadcastAction, average_rate, progress},
    storage::{Broadcast, BroadcastMessage, BroadcastState, NewBroadcast},
};

/// Broadcasts listed on a bot's page.
const LISTED: u32 = 10;
/// Telegram's limit on a message's text.
const MAX_TEXT: usize = 4096;

/// A broadcast as a line of a bot's page.
pub(super) struct BroadcastLine {
    pub(super) id: i64,
    pub(super) state: &'static str,
    /// What it sends: `text "…"`, `photo with a caption`.
    pub(super) message: String,
    pub(super) progress: String,
    pub(super) actions: Vec<&'static str>,
}

/// The broadcasts of `bot`, newest first, as its page lists them.
pub(super) async fn lines(console: &Console, bot: &BotId) -> Vec<BroadcastLine> {
    let found = console.storage.broadcasts().list(Some(bot.as_str()), LISTED).await.unwrap_or_default();
    found.iter().map(line).collect()
}

fn line(b: &Broadcast) -> BroadcastLine {
    let actions = match b.state {
        BroadcastState::Running => vec!["pause", "cancel"],
        BroadcastState::Paused => vec!["resume", "cancel"],
        BroadcastState::Cancelled | BroadcastState::Done => Vec::new(),
    };
    let progress = progress(b, average_rate(b)).lines().collect::<Vec<_>>().join("; ");
    BroadcastLine { id: b.id, state: b.state.as_str(), message: b.message.summary(), progress, actions }
}

/// The form of a new broadcast.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Draft {
    text: String,
    parse_mode: String,
    active_days: String,
}

impl Draft {
    /// The broadcast it asks for, or what is wrong with it.
    fn checked(&self, bot: &BotId) -> Result<NewBroadcast, String> {
        let text = self.text.trim();
        if text.is_empty() {
            return Err("The message is empty.".to_owned());
        }
        if text.chars().count() > MAX_TEXT {
            return Err(format!("The message is longer than Telegram's {MAX_TEXT} characters."));
        }
        let parse_mode = match self.parse_mode.as_str() {
            "" => None,
            mode @ ("HTML" | "MarkdownV2") => Some(mode.to_owned()),
            _ => return Err("The format must be plain text, HTML or MarkdownV2.".to_owned()),
        };
        let active_days = match self.active_days.trim() {
            "" => None,
            days => match days.parse::<u32>() {
                Ok(days @ 1..=3650) => Some(days),
                _ => return Err("Active days must be a whole number from 1 to 3650, or empty for everyone.".to_owned()),
            },
        };
        let message = BroadcastMessage::Text { text: text.to_owned(), parse_mode, entities: None };
        Ok(NewBroadcast { bot_id: bot.to_string(), message, active_days, created_by: None })
    }
}

#[derive(Template)]
#[template(path = "console/broadcast_preview.html")]
struct Preview {
    csrf: Option<String>,
    bot: String,
    text: String,
    parse_mode: String,
    active_days: String,
    audience: String,
    error: Option<String>,
}

/// `POST /console/bots/<id>/broadcast/preview`: the message as it will go out, the audience, and the button that
/// starts it (or what is wrong with the form).
pub(super) async fn preview(
    Visit { console, session }: Visit,
    Path(id): Path<String>,
    Form(draft): Form<Draft>,
) -> Response {
    let Some(bot) = console.bot(&id) else { return not_found("That bot") };
    let users = console.storage.users().get_user_count(bot.as_str()).await.unwrap_or(0);
    let within = match draft.active_days.trim() {
        "" => String::new(),
        days => format!(", seen in the last {days} days"),
    };
    render(&Preview {
        csrf: Some(console.keys.csrf(&session)),
        error: draft.checked(&bot).err(),
        bot: bot.to_string(),
        text: draft.text.trim().to_owned(),
        parse_mode: draft.parse_mode,
        active_days: draft.active_days.trim().to_owned(),
        audience: format!("{bot} has {users} users; those who blocked it are left out{within}."),
    })
}

/// `POST /console/bots/<id>/broadcast`: starts it.
pub(super) async fn start(
    State(console): State<Arc<Console>>,
    Path(id): Path<String>,
    Form(draft): Form<Draft>,
) -> Response {
    let Some(bot) = console.bot(&id) else { return not_found("That bot") };
    let outcome = match draft.checked(&bot) {
        Err(why) => Outcome { ok: false, title: "The broadcast was not started".to_owned(), lines: vec![why] },
        Ok(new) => match console.broadcasts.start(new).await {
            Ok(b) => Outcome {
                ok: true,
                title: format!("Broadcast #{} of {bot} started to {} users", b.id, b.total),
                lines: Vec::new(),
            },
            Err(e) => {
                Outcome { ok: false, title: "The broadcast was not started".to_owned(), lines: vec![e.to_string()] }
            }
        },
    };
    shown(&console, &bot, outcome)
}

/// The bot's page with `outcome` above it.
fn shown(console: &Console, bot: &BotId, outcome: Outcome) -> Response {
    let n = console.remember(outcome);
    Redirect::to(&format!("/console/bots/{bot}?outcome={n}#outcome")).into_response()
}

fn action_of(word: &str) -> Option<BroadcastAction> {
    [BroadcastAction::Pause, BroadcastAction::Resume, BroadcastAction::Cancel].into_iter().find(|a| a.as_str() == word)
}

/// `GET /console/broadcasts/<n>/cancel`: asks before cancelling.
pub(super) async fn confirm_cancel(Visit { console, session }: Visit, Path(n): Path<i64>) -> Response {
    let Ok(Some(found)) = console.storage.broadcasts().get(n).await else { return not_found("That broadcast") };
    render(&ConfirmPage {
        csrf: Some(console.keys.csrf(&session)),
        question: format!("Cancel broadcast #{n} of {}?", found.bot_id),
        explanation: "No more users get the message; those who got it keep it. A cancelled broadcast cannot be resumed.",
        action: format!("/console/broadcasts/{n}/cancel"),
        button: format!("Cancel broadcast #{n}"),
        back: format!("/console/bots/{}", found.bot_id),
    })
}

/// `POST /console/broadcasts/<n>/<action>`: pause, resume or cancel.
pub(super) async fn act(State(console): State<Arc<Console>>, Path((n, action)): Path<(i64, String)>) -> Response {
    let Some(action) = action_of(&action) else { return not_found("That action") };
    let Ok(Some(found)) = console.storage.broadcasts().get(n).await else { return not_found("That broadcast") };
    let Ok(bot) = BotId::parse(&found.bot_id) else { return not_found("That broadcast") };
    let outcome = match console.broadcasts.control(n, action, None).await {
        Ok(b) => Outcome { ok: true, title: format!("Broadcast #{n} is {}", b.state.as_str()), lines: Vec::new() },
        Err(e) => Outcome {
            ok: false,
            title: format!("Could not {} broadcast #{n}", action.as_str()),
            lines: vec![e.to_string()],
        },
    };
    shown(&console, &bot, outcome)
}

/// `POST /console/broadcasts/<n>/cancel`, the form of the confirmation page.
pub(super) async fn cancel(console: State<Arc<Console>>, Path(n): Path<i64>) -> Response {
    act(console, Path((n, "cancel".to_owned()))).await
}
