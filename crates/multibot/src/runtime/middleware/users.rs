//! User tracking: each update's sender is handed to the [`Recorder`] as a [`UserSeen`] (names, language, first and
//! last seen, one more message for a message update). A `my_chat_member` update in a private chat tells whether
//! the user blocked the bot (new status `kicked`) or unblocked it (`member`), and marks the user so in
//! `bot_users`. The recorder batches the writes; this never waits for the database.

use teloxide_core::types::{ChatMemberStatus, Update, UpdateKind};

use crate::{
    config::BotId,
    storage::{Recorder, UserSeen, now},
};

/// Records the update's sender, unless it has none or is a bot, and whether a user blocked the bot.
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
    // After the upsert above, so the row exists when the flag is written (the recorder keeps the order).
    if let UpdateKind::MyChatMember(change) = &update.kind
        && change.chat.is_private()
    {
        match change.new_chat_member.status() {
            ChatMemberStatus::Banned => recorder.user_blocked(bot_id.as_str(), user.id.0 as i64, true),
            ChatMemberStatus::Member => recorder.user_blocked(bot_id.as_str(), user.id.0 as i64, false),
            _ => {}
        }
    }
}
