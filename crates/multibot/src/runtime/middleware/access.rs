//! Access control from the bot's `access:` block: `blocked_users` are dropped without a reply, a non-empty
//! `allowed_users` admits only those users (and no update without a sender), `admin_users` may use admin-only
//! commands.

use std::{collections::HashSet, sync::atomic::Ordering};

use tracing::debug;

use super::{Refusals, Verdict};
use crate::{config::AccessConfig, plugins::Ctx, storage::events};

/// The bot's access lists, as sets.
#[derive(Debug, Default)]
pub struct AccessList {
    allowed: HashSet<i64>,
    blocked: HashSet<i64>,
    admins: HashSet<i64>,
}

/// What access control decides for an update's sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Handle the update.
    Allowed,
    /// The user is in `blocked_users`.
    Blocked,
    /// `allowed_users` is not empty and the user is not in it.
    NotAllowed,
}

impl AccessList {
    /// The lists of an `access:` block.
    pub fn new(config: &AccessConfig) -> AccessList {
        AccessList {
            allowed: config.allowed_users.iter().copied().collect(),
            blocked: config.blocked_users.iter().copied().collect(),
            admins: config.admin_users.iter().copied().collect(),
        }
    }

    /// The decision for a sender. An update without one (a channel post, a poll, anonymous reaction counts) is
    /// allowed only when there is no allow list: the list admits users, and such an update has none to check.
    pub fn check(&self, user: Option<i64>) -> Access {
        match user {
            Some(user) if self.blocked.contains(&user) => Access::Blocked,
            Some(user) if !self.allowed.is_empty() && !self.allowed.contains(&user) => Access::NotAllowed,
            None if !self.allowed.is_empty() => Access::NotAllowed,
            _ => Access::Allowed,
        }
    }

    /// Whether the user is one of the bot's admins.
    pub fn is_admin(&self, user: Option<i64>) -> bool {
        user.is_some_and(|u| self.admins.contains(&u))
    }
}

/// The access step: stops updates from blocked and not-allowed users.
pub(crate) fn admit(lists: &AccessList, refusals: &Refusals, cx: &Ctx) -> Verdict {
    match lists.check(cx.user().map(|u| u.id.0 as i64)) {
        Access::Allowed => Verdict::Pass,
        Access::Blocked => {
            deny(refusals, cx, "blocked");
            Verdict::Stop
        }
        Access::NotAllowed => {
            deny(refusals, cx, "not_allowed");
            Verdict::Stop
        }
    }
}

/// Counts an update refused by access control; the first refusal and every hundredth become events.
pub(crate) fn deny(refusals: &Refusals, cx: &Ctx, reason: &str) {
    let count = refusals.access_denied.fetch_add(1, Ordering::Relaxed);
    debug!(bot_id = %cx.bot_id(), reason, "update dropped by access control");
    let user = cx.user().map(|u| u.id.0 as i64);
    events::access_denied(cx.recorder(), cx.bot_id(), user, reason, count.is_multiple_of(100));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_wins_then_the_allow_list_applies() {
        let lists =
            AccessList::new(&AccessConfig { allowed_users: vec![1, 2], blocked_users: vec![2], admin_users: vec![1] });
        assert_eq!(lists.check(Some(1)), Access::Allowed);
        assert_eq!(lists.check(Some(2)), Access::Blocked);
        assert_eq!(lists.check(Some(3)), Access::NotAllowed);
        assert_eq!(lists.check(None), Access::NotAllowed, "an update without a sender passes no allow list");
        assert!(lists.is_admin(Some(1)) && !lists.is_admin(Some(2)) && !lists.is_admin(None));
        let open = AccessList::new(&AccessConfig::default());
        assert_eq!(open.check(Some(42)), Access::Allowed);
        assert_eq!(open.check(None), Access::Allowed);
        let blocking = AccessList::new(&AccessConfig { blocked_users: vec![2], ..AccessConfig::default() });
        assert_eq!(blocking.check(None), Access::Allowed);
    }
}
