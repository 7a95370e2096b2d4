//! User tracking: each update's sender is handed to the [`Recorder`] as a [`UserSeen`] (names, language, first and
//! last seen, one more message for a message update). The recorder batches the upserts into `bot_users`; this
//! never waits for the database.

use teloxide_core::types::{Update, UpdateKind};

use crate::{
    config::BotId,
    storage::{Recorder, UserSeen, now},
};

/// Records the update's sender, unless it has none or is a bot.
pub fn track_user(recorder: &Recorder, bot_id: &BotId, update: &Update) {
    let Some(user) = update.from().filter(|u| !u.is_bot) else {
        return;
    };
    let at = now();
    recorder.user_seen(UserSeen {
        bot_id: bot_id.to_string(),
        user_id: user.id.0 as i64,
        profile: user.into(),
        first_seen: at,
        last_seen: at,
        messages: i64::from(matches!(update.kind, UpdateKind::Message(_))),
    });
}
