//! The update pipeline: what runs on every update before the router, as one ordered list of steps that
//! [`Pipeline::for_bot`] builds from the bot's configuration. Each step lets the update go on
//! ([`Verdict::Pass`]) or stops it ([`Verdict::Stop`]); the runtime hands an update that passed every step to
//! the router.
//!
//! 1. `users`: [`track_user`] hands the sender to the background [`Recorder`](crate::storage::Recorder), without
//!    a database round trip on the reply path. It never stops an update.
//! 2. [`access`]: drops blocked and not-allowed users.
//! 3. [`rate_limit`]: limits each user's updates per bot with a token bucket (only when `rate_limiting` is
//!    enabled).
//!
//! A new middleware is a file here with its state and its check, one variant of `Step` with its arm in
//! `Pipeline::step`, and one line in [`Pipeline::for_bot`] at its place in the order. The steps are an enum, not
//! boxed trait objects: running the pipeline allocates nothing.

pub mod access;
pub mod rate_limit;
mod users;

use std::sync::{Arc, atomic::AtomicU64};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use users::track_user;

use self::{access::AccessList, rate_limit::RateLimiter};
use crate::{
    config::{BotConfig, BotToken},
    plugins::Ctx,
};

/// What a step decides for an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on to the next step, then the router.
    Pass,
    /// Drop the update here: no later step and no handler sees it.
    Stop,
}

/// Updates the pipeline refused, counted across a bot's restarts.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Dropped by access control (blocked or not allowed users, admin-only commands).
    pub access_denied: AtomicU64,
    /// Dropped by per-user rate limiting.
    pub rate_limited: AtomicU64,
}

/// One step of the pipeline.
enum Step {
    /// Records the sender ([`track_user`]).
    TrackUser,
    /// Drops blocked and not-allowed users.
    Access,
    /// Drops updates over the user's rate.
    RateLimit(Arc<RateLimiter>),
}

/// One bot's middleware, in the order they run.
pub struct Pipeline {
    steps: Vec<Step>,
    access: AccessList,
    refusals: Arc<Refusals>,
    /// To keep the token out of log lines.
    token: BotToken,
}

impl Pipeline {
    /// The steps a bot's configuration asks for, in order: user tracking, access, rate limit. Upkeep a step needs
    /// (forgetting idle rate-limit buckets) runs in `tasks` until `cancel`.
    pub fn for_bot(
        config: &BotConfig,
        refusals: Arc<Refusals>,
        tasks: &TaskTracker,
        cancel: &CancellationToken,
    ) -> Pipeline {
        let mut steps = vec![Step::TrackUser, Step::Access];
        if let Some(limiter) = RateLimiter::from_config(&config.rate_limiting).map(Arc::new) {
            tasks.spawn(rate_limit::evict_idle_users(limiter.clone(), cancel.clone()));
            steps.push(Step::RateLimit(limiter));
        }
        Pipeline { steps, access: AccessList::new(&config.access), refusals, token: config.token.clone() }
    }

    /// Runs the update through the steps in order; [`Verdict::Stop`] as soon as one stops it.
    pub async fn run(&self, cx: &Ctx) -> Verdict {
        for step in &self.steps {
            if self.step(step, cx).await == Verdict::Stop {
                return Verdict::Stop;
            }
        }
        Verdict::Pass
    }

    async fn step(&self, step: &Step, cx: &Ctx) -> Verdict {
        match step {
            Step::TrackUser => {
                track_user(cx.recorder(), cx.bot_id(), cx.update());
                Verdict::Pass
            }
            Step::Access => access::admit(&self.access, &self.refusals, cx),
            Step::RateLimit(limiter) => rate_limit::admit(limiter, &self.refusals, cx, &self.token).await,
        }
    }

    /// Whether the user is one of the bot's `access.admin_users`.
    pub fn is_admin(&self, user: Option<i64>) -> bool {
        self.access.is_admin(user)
    }

    /// Counts an update refused by access control after the router (`reason` `admin_only`), as the access step
    /// counts its own refusals.
    pub fn deny(&self, cx: &Ctx, reason: &str) {
        access::deny(&self.refusals, cx, reason);
    }
}
