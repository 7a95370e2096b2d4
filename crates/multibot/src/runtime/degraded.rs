//! Whether a polling bot can talk to the Bot API: [`PollHealth`] turns getUpdates outcomes into a
//! [`Degraded`] state (the API unreachable for longer than [`UNREACHABLE_AFTER`], or a 409 Conflict) and says
//! when that state changes, so that it is logged, counted and shown once per change, not per failed poll.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// How long getUpdates must keep failing (network errors, 5xx) before the bot counts as unable to reach the API.
/// A blip of a second or two is normal on the internet and not worth an alert.
pub(crate) const UNREACHABLE_AFTER: Duration = Duration::from_secs(3);

/// How long after the last 409 a conflict clears. Two pollers on one token take turns (each new getUpdates ends
/// the other's with 409), so polls succeed in between; the other side backs off up to 30 s, so only a minute
/// without a 409 shows that it is gone.
pub(crate) const CONFLICT_QUIET: Duration = Duration::from_secs(60);

/// What is wrong between a bot and the Bot API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trouble {
    /// getUpdates keeps failing with network errors or 5xx.
    ApiUnreachable,
    /// getUpdates answers 409: another process polls with the token, or a webhook is set.
    Conflict,
}

impl Trouble {
    /// Every kind, for metrics that show each at zero.
    pub const ALL: [Trouble; 2] = [Trouble::ApiUnreachable, Trouble::Conflict];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Trouble::ApiUnreachable => "api_unreachable",
            Trouble::Conflict => "conflict",
        }
    }
}

/// Shows a bot's trouble (or none) in the `multibot_bot_degraded` gauges, one per kind.
pub(crate) fn show_in_metrics(bot_id: &str, trouble: Option<Trouble>) {
    let labels = Trouble::ALL.map(Trouble::label);
    crate::telemetry::metrics::bot_degraded(bot_id, trouble.map(Trouble::label), &labels);
}

/// A running bot that cannot do its work through the Bot API, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Degraded {
    /// The kind of trouble.
    pub trouble: Trouble,
    /// For people: what happened, with the Bot API's error (never the token).
    pub reason: String,
}

/// How a getUpdates call ended, as far as health is concerned.
pub(crate) enum Poll<'a> {
    /// Updates (or none) came back.
    Ok,
    /// 409 Conflict, with Telegram's description.
    Conflict(&'a str),
    /// A network error or a 5xx, described.
    Unreachable(&'a str),
    /// Anything else (429, 4xx): says nothing about reachability.
    Other,
}

/// The state machine behind a polling bot's [`Degraded`] state.
#[derive(Default)]
pub(crate) struct PollHealth {
    failing_since: Option<Instant>,
    last_conflict: Option<Instant>,
    current: Option<Degraded>,
}

impl PollHealth {
    /// Records a poll's outcome at `now`; returns the new state when it changed.
    pub(crate) fn record(&mut self, poll: Poll<'_>, now: Instant) -> Option<Option<Degraded>> {
        let trouble = self.current.as_ref().map(|d| d.trouble);
        let next = match poll {
            Poll::Ok => {
                self.failing_since = None;
                let conflict_over = self.last_conflict.is_none_or(|at| now - at >= CONFLICT_QUIET);
                match trouble {
                    Some(Trouble::Conflict) if !conflict_over => return None,
                    Some(_) => None,
                    None => return None,
                }
            }
            Poll::Conflict(description) => {
                self.failing_since = None;
                self.last_conflict = Some(now);
                if trouble == Some(Trouble::Conflict) {
                    return None;
                }
                let reason = format!("another poller uses this token, or a webhook is set (409: {description})");
                Some(Degraded { trouble: Trouble::Conflict, reason })
            }
            Poll::Unreachable(error) => {
                let since = *self.failing_since.get_or_insert(now);
                if trouble == Some(Trouble::ApiUnreachable) || now - since < UNREACHABLE_AFTER {
                    return None;
                }
                let seconds = (now - since).as_secs();
                let reason = format!("cannot reach the Bot API (getUpdates failing for {seconds} s: {error})");
                Some(Degraded { trouble: Trouble::ApiUnreachable, reason })
            }
            Poll::Other => return None,
        };
        self.current = next.clone();
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trouble(change: Option<Option<Degraded>>) -> Option<Option<Trouble>> {
        change.map(|state| state.map(|d| d.trouble))
    }

    #[test]
    fn failures_degrade_only_after_the_threshold_and_one_success_clears_them() {
        let (mut health, start) = (PollHealth::default(), Instant::now());
        assert_eq!(trouble(health.record(Poll::Unreachable("refused"), start)), None);
        assert_eq!(trouble(health.record(Poll::Unreachable("refused"), start + Duration::from_secs(2))), None);
        let at = start + UNREACHABLE_AFTER;
        let change = health.record(Poll::Unreachable("refused"), at);
        assert_eq!(trouble(change.clone()), Some(Some(Trouble::ApiUnreachable)));
        assert!(change.unwrap().unwrap().reason.ends_with("for 3 s: refused)"));
        // Once per change: more failures say nothing new.
        assert_eq!(trouble(health.record(Poll::Unreachable("refused"), at + Duration::from_secs(8))), None);
        assert_eq!(trouble(health.record(Poll::Other, at + Duration::from_secs(9))), None);
        assert_eq!(trouble(health.record(Poll::Ok, at + Duration::from_secs(10))), Some(None));
        assert_eq!(trouble(health.record(Poll::Ok, at + Duration::from_secs(11))), None);
        // A new streak starts from zero.
        assert_eq!(trouble(health.record(Poll::Unreachable("refused"), at + Duration::from_secs(12))), None);
    }

    #[test]
    fn a_conflict_shows_at_once_and_clears_after_a_quiet_minute() {
        let (mut health, start) = (PollHealth::default(), Instant::now());
        assert_eq!(trouble(health.record(Poll::Conflict("terminated"), start)), Some(Some(Trouble::Conflict)));
        // Polls succeed between the 409s while two pollers take turns: still a conflict.
        assert_eq!(trouble(health.record(Poll::Ok, start + Duration::from_secs(1))), None);
        assert_eq!(trouble(health.record(Poll::Conflict("terminated"), start + Duration::from_secs(2))), None);
        assert_eq!(trouble(health.record(Poll::Ok, start + Duration::from_secs(40))), None);
        let quiet = start + Duration::from_secs(2) + CONFLICT_QUIET;
        assert_eq!(trouble(health.record(Poll::Ok, quiet)), Some(None));
    }
}
