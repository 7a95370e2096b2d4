//! Access control from the bot's `access:` block: `blocked_users` are dropped without a reply, a non-empty
//! `allowed_users` admits only those users, `admin_users` may use admin-only commands. An update without a
//! sender (a channel post, a reaction count) is decided by its chat's id on the same lists; one without a
//! sender or a chat (a poll) passes no allow list.

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

    /// The decision for an update's sender, or, for an update without one (a channel post, anonymous reaction
    /// counts), its chat: a channel's or group's id (`-100...`) on the lists decides as a user's would. An update
    /// with neither (a poll) is allowed only when there is no allow list.
    pub fn check(&self, user: Option<i64>, chat: Option<i64>) -> Access {
        match user.or(chat) {
            Some(id) if self.blocked.contains(&id) => Access::Blocked,
            Some(id) if !self.allowed.is_empty() && !self.allowed.contains(&id) => Access::NotAllowed,
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
    match lists.check(cx.user().map(|u| u.id.0 as i64), cx.chat_id().map(|c| c.0)) {
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
        assert_eq!(lists.check(Some(1), Some(1)), Access::Allowed);
        assert_eq!(lists.check(Some(2), Some(2)), Access::Blocked);
        assert_eq!(lists.check(Some(3), Some(3)), Access::NotAllowed);
        // Bad input: a sender not on the list, in a group whose id happens to be on it: the sender decides.
        assert_eq!(lists.check(Some(3), Some(1)), Access::NotAllowed);
        assert_eq!(lists.check(None, None), Access::NotAllowed, "a poll has neither: it passes no allow list");
        assert!(lists.is_admin(Some(1)) && !lists.is_admin(Some(2)) && !lists.is_admin(None));
        let open = AccessList::new(&AccessConfig::default());
        assert_eq!(open.check(Some(42), None), Access::Allowed);
        assert_eq!(open.check(None, None), Access::Allowed);
        let blocking = AccessList::new(&AccessConfig { blocked_users: vec![2], ..AccessConfig::default() });
        assert_eq!(blocking.check(None, None), Access::Allowed);
    }

    #[test]
    fn an_update_without_a_sender_is_decided_by_its_chat() {
        const CHANNEL: i64 = -1_001_234;
        let lists = AccessList::new(&AccessConfig {
            allowed_users: vec![1, CHANNEL],
            blocked_users: vec![-1_009_999],
            admin_users: vec![],
        });
        assert_eq!(lists.check(None, Some(CHANNEL)), Access::Allowed, "a listed channel's post");
        // Bad input: a post in a channel not on the allow list, and one in a blocked channel.
        assert_eq!(lists.check(None, Some(-1_005_678)), Access::NotAllowed);
        assert_eq!(lists.check(None, Some(-1_009_999)), Access::Blocked);
        let blocking = AccessList::new(&AccessConfig { blocked_users: vec![CHANNEL], ..AccessConfig::default() });
        assert_eq!(blocking.check(None, Some(CHANNEL)), Access::Blocked, "a blocked channel without allow list");
        assert_eq!(blocking.check(None, Some(-7)), Access::Allowed);
    }
}
