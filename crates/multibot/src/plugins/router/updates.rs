//! [`UpdateFilter`]: which update type a handler takes, with the filter that fits that type: messages, edits,
//! channel posts and business messages by [`MessageFilter`], callback queries by [`CallbackFilter`], inline
//! queries and chosen results by their query text ([`QueryFilter`]), reactions by emoji ([`ReactionFilter`]),
//! member changes by status and chat type ([`MemberFilter`]), payments by invoice payload ([`PayloadFilter`]).
//! The other types are taken whole.

use regex::Regex;
use teloxide_core::types::{
    AllowedUpdate, ChatMemberStatus, ChatMemberUpdated, MessageReactionCountUpdated, MessageReactionUpdated,
    ReactionType, UpdateKind,
};

use super::filters::{ANY_STATE, CallbackFilter, ChatType, MessageFilter, StateFilter, compile};

/// An update type, with the filter a handler of that type applies; one variant per field of the Bot API's
/// `Update`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum UpdateFilter {
    /// `message`: a new message.
    Message(MessageFilter),
    /// `edited_message`: a new version of a message.
    EditedMessage(MessageFilter),
    /// `channel_post`: a new post in a channel the bot is in.
    ChannelPost(MessageFilter),
    /// `edited_channel_post`: a new version of a channel post.
    EditedChannelPost(MessageFilter),
    /// `business_connection`: the bot was connected to or disconnected from a business account.
    BusinessConnection,
    /// `business_message`: a new message in a connected business account's chat.
    BusinessMessage(MessageFilter),
    /// `edited_business_message`: a new version of a business message.
    EditedBusinessMessage(MessageFilter),
    /// `deleted_business_messages`: messages deleted from a business account's chat.
    DeletedBusinessMessages,
    /// `message_reaction`: a user changed their reaction to a message (the bot must be an admin).
    MessageReaction(ReactionFilter),
    /// `message_reaction_count`: the anonymous reaction counts of a message changed.
    MessageReactionCount(ReactionFilter),
    /// `inline_query`: a user typed `@bot query`.
    InlineQuery(QueryFilter),
    /// `chosen_inline_result`: a user chose a result of an inline query.
    ChosenInlineResult(QueryFilter),
    /// `callback_query`: a user pressed an inline keyboard button.
    CallbackQuery(CallbackFilter),
    /// `shipping_query`: a shipping address for a flexible-price invoice.
    ShippingQuery(PayloadFilter),
    /// `pre_checkout_query`: a user is about to pay; answer within 10 seconds.
    PreCheckoutQuery(PayloadFilter),
    /// `purchased_paid_media`: a user bought paid media the bot sent.
    PurchasedPaidMedia(PayloadFilter),
    /// `poll`: a new state of a poll the bot sent.
    Poll,
    /// `poll_answer`: a user changed their answer in a non-anonymous poll the bot sent.
    PollAnswer,
    /// `my_chat_member`: the bot's own membership changed (a private chat: the user blocked or unblocked it).
    MyChatMember(MemberFilter),
    /// `chat_member`: a member's status changed in a chat where the bot is an admin.
    ChatMember(MemberFilter),
    /// `chat_join_request`: a user asked to join a chat the bot administers.
    ChatJoinRequest,
    /// `chat_boost`: a chat was boosted.
    ChatBoost,
    /// `removed_chat_boost`: a boost was removed.
    RemovedChatBoost,
}

impl UpdateFilter {
    /// The update type, as `allowed_updates` names it.
    pub fn update_type(&self) -> AllowedUpdate {
        use UpdateFilter as F;
        match self {
            F::Message(_) => AllowedUpdate::Message,
            F::EditedMessage(_) => AllowedUpdate::EditedMessage,
            F::ChannelPost(_) => AllowedUpdate::ChannelPost,
            F::EditedChannelPost(_) => AllowedUpdate::EditedChannelPost,
            F::BusinessConnection => AllowedUpdate::BusinessConnection,
            F::BusinessMessage(_) => AllowedUpdate::BusinessMessage,
            F::EditedBusinessMessage(_) => AllowedUpdate::EditedBusinessMessage,
            F::DeletedBusinessMessages => AllowedUpdate::DeletedBusinessMessages,
            F::MessageReaction(_) => AllowedUpdate::MessageReaction,
            F::MessageReactionCount(_) => AllowedUpdate::MessageReactionCount,
            F::InlineQuery(_) => AllowedUpdate::InlineQuery,
            F::ChosenInlineResult(_) => AllowedUpdate::ChosenInlineResult,
            F::CallbackQuery(_) => AllowedUpdate::CallbackQuery,
            F::ShippingQuery(_) => AllowedUpdate::ShippingQuery,
            F::PreCheckoutQuery(_) => AllowedUpdate::PreCheckoutQuery,
            F::PurchasedPaidMedia(_) => AllowedUpdate::PurchasedPaidMedia,
            F::Poll => AllowedUpdate::Poll,
            F::PollAnswer => AllowedUpdate::PollAnswer,
            F::MyChatMember(_) => AllowedUpdate::MyChatMember,
            F::ChatMember(_) => AllowedUpdate::ChatMember,
            F::ChatJoinRequest => AllowedUpdate::ChatJoinRequest,
            F::ChatBoost => AllowedUpdate::ChatBoost,
            F::RemovedChatBoost => AllowedUpdate::RemovedChatBoost,
        }
    }

    /// When the update is of this type and passes the filter, the FSM states the handler runs in.
    pub(super) fn accepts(&self, update: &UpdateKind, username: &str) -> Option<&StateFilter> {
        use UpdateFilter as F;
        use UpdateKind as K;
        let taken = match (self, update) {
            (F::Message(f), K::Message(m))
            | (F::EditedMessage(f), K::EditedMessage(m))
            | (F::ChannelPost(f), K::ChannelPost(m))
            | (F::EditedChannelPost(f), K::EditedChannelPost(m))
            | (F::BusinessMessage(f), K::BusinessMessage(m))
            | (F::EditedBusinessMessage(f), K::EditedBusinessMessage(m)) => {
                return f.matches(m, username).then_some(&f.state);
            }
            (F::CallbackQuery(f), K::CallbackQuery(q)) => return f.matches(q).then_some(&f.state),
            (F::InlineQuery(f), K::InlineQuery(q)) => f.matches(&q.query),
            (F::ChosenInlineResult(f), K::ChosenInlineResult(r)) => f.matches(&r.query),
            (F::MessageReaction(f), K::MessageReaction(r)) => f.matches_change(r),
            (F::MessageReactionCount(f), K::MessageReactionCount(r)) => f.matches_count(r),
            (F::ShippingQuery(f), K::ShippingQuery(q)) => f.matches(&q.invoice_payload),
            (F::PreCheckoutQuery(f), K::PreCheckoutQuery(q)) => f.matches(&q.invoice_payload),
            (F::PurchasedPaidMedia(f), K::PurchasedPaidMedia(p)) => f.matches(&p.paid_media_payload),
            (F::MyChatMember(f), K::MyChatMember(m)) | (F::ChatMember(f), K::ChatMember(m)) => f.matches(m),
            (F::BusinessConnection, K::BusinessConnection(_))
            | (F::DeletedBusinessMessages, K::DeletedBusinessMessages(_))
            | (F::Poll, K::Poll(_))
            | (F::PollAnswer, K::PollAnswer(_))
            | (F::ChatJoinRequest, K::ChatJoinRequest(_))
            | (F::ChatBoost, K::ChatBoost(_))
            | (F::RemovedChatBoost, K::RemovedChatBoost(_)) => true,
            _ => false,
        };
        taken.then_some(&ANY_STATE)
    }
}

/// Which inline queries (or chosen inline results) a handler takes, by the query's text.
#[derive(Debug, Clone, Default)]
pub struct QueryFilter {
    prefix: Option<String>,
    regex: Option<Regex>,
}

impl QueryFilter {
    /// Every query, the empty one included.
    pub fn any() -> QueryFilter {
        QueryFilter::default()
    }

    /// Queries starting with `prefix` (`"gif "`).
    pub fn prefix(prefix: &str) -> QueryFilter {
        QueryFilter { prefix: Some(prefix.to_owned()), regex: None }
    }

    /// Queries matching a regular expression; panics on an invalid pattern (a programming error).
    pub fn regex(pattern: &str) -> QueryFilter {
        QueryFilter::any().with_regex(compile(pattern))
    }

    /// Adds a compiled regular expression the query must match.
    pub fn with_regex(mut self, regex: Regex) -> QueryFilter {
        self.regex = Some(regex);
        self
    }

    fn matches(&self, query: &str) -> bool {
        self.prefix.as_deref().is_none_or(|p| query.starts_with(p))
            && self.regex.as_ref().is_none_or(|r| r.is_match(query))
    }
}

/// Which reaction updates a handler takes, by emoji.
#[derive(Debug, Clone, Default)]
pub struct ReactionFilter {
    emoji: Option<String>,
}

impl ReactionFilter {
    /// Every reaction update.
    pub fn any() -> ReactionFilter {
        ReactionFilter::default()
    }

    /// `message_reaction`: the user just added this emoji (it is among the new reactions, not the old ones).
    /// `message_reaction_count`: the message has this emoji among its reactions.
    pub fn emoji(emoji: &str) -> ReactionFilter {
        ReactionFilter { emoji: Some(emoji.to_owned()) }
    }

    fn has(&self, reactions: &[ReactionType], emoji: &str) -> bool {
        reactions.iter().any(|r| matches!(r, ReactionType::Emoji { emoji: e } if e == emoji))
    }

    fn matches_change(&self, update: &MessageReactionUpdated) -> bool {
        self.emoji.as_deref().is_none_or(|e| self.has(&update.new_reaction, e) && !self.has(&update.old_reaction, e))
    }

    fn matches_count(&self, update: &MessageReactionCountUpdated) -> bool {
        self.emoji.as_deref().is_none_or(|e| {
            update
                .reactions
                .iter()
                .any(|r| r.total_count > 0 && matches!(&r.r#type, ReactionType::Emoji { emoji } if emoji == e))
        })
    }
}

/// Which member changes (`my_chat_member`, `chat_member`) a handler takes. All conditions must hold; the
/// default takes every change.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemberFilter {
    new_status: Option<ChatMemberStatus>,
    old_status: Option<ChatMemberStatus>,
    chat: Option<ChatType>,
}

impl MemberFilter {
    /// Every member change.
    pub fn any() -> MemberFilter {
        MemberFilter::default()
    }

    /// Only changes to this status (`Banned` is the Bot API's `kicked`: for `my_chat_member` in a private chat,
    /// the user blocked the bot).
    pub fn new_status(mut self, status: ChatMemberStatus) -> MemberFilter {
        self.new_status = Some(status);
        self
    }

    /// Only changes from this status.
    pub fn old_status(mut self, status: ChatMemberStatus) -> MemberFilter {
        self.old_status = Some(status);
        self
    }

    /// Only in this chat type.
    pub fn chat(mut self, chat: ChatType) -> MemberFilter {
        self.chat = Some(chat);
        self
    }

    fn matches(&self, update: &ChatMemberUpdated) -> bool {
        self.new_status.is_none_or(|s| update.new_chat_member.status() == s)
            && self.old_status.is_none_or(|s| update.old_chat_member.status() == s)
            && self.chat.is_none_or(|c| ChatType::of(&update.chat) == c)
    }
}

/// Which payment updates (`shipping_query`, `pre_checkout_query`, `purchased_paid_media`) a handler takes, by
/// the payload the bot gave the invoice or paid media.
#[derive(Debug, Clone, Default)]
pub struct PayloadFilter {
    payload: Option<String>,
    prefix: Option<String>,
}

impl PayloadFilter {
    /// Every payment update.
    pub fn any() -> PayloadFilter {
        PayloadFilter::default()
    }

    /// Updates whose payload is exactly `payload`.
    pub fn payload(payload: &str) -> PayloadFilter {
        PayloadFilter { payload: Some(payload.to_owned()), prefix: None }
    }

    /// Updates whose payload starts with `prefix`.
    pub fn prefix(prefix: &str) -> PayloadFilter {
        PayloadFilter { payload: None, prefix: Some(prefix.to_owned()) }
    }

    fn matches(&self, payload: &str) -> bool {
        self.payload.as_deref().is_none_or(|p| p == payload)
            && self.prefix.as_deref().is_none_or(|p| payload.starts_with(p))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use teloxide_core::types::{Update, UpdateKind};

    use super::*;

    fn kind(update: Value) -> UpdateKind {
        let mut update = update;
        update["update_id"] = json!(1);
        // From bytes: teloxide reads the update's type as a borrowed string.
        let update: Update = serde_json::from_slice(&serde_json::to_vec(&update).unwrap()).unwrap();
        assert!(!matches!(update.kind, UpdateKind::Error(_)), "does not decode");
        update.kind
    }

    fn user(id: i64) -> Value {
        json!({"id": id, "is_bot": false, "first_name": "U"})
    }

    fn takes(filter: &UpdateFilter, update: &UpdateKind) -> bool {
        filter.accepts(update, "my_bot").is_some()
    }

    #[test]
    fn channel_posts_filter_like_messages_and_commands_name_this_bot() {
        let channel = json!({"id": -100, "type": "channel", "title": "News"});
        let post =
            |text: &str| kind(json!({"channel_post": {"message_id": 1, "date": 0, "chat": channel, "text": text}}));
        let command = UpdateFilter::ChannelPost(MessageFilter::command("Post"));
        assert!(takes(&command, &post("/post now")));
        assert!(takes(&command, &post("/post@my_bot now")));
        // Bad input: a command for another bot, another command, plain text, and a message rather than a post.
        assert!(!takes(&command, &post("/post@other_bot now")));
        assert!(!takes(&command, &post("/postpone")));
        assert!(!takes(&command, &post("post")));
        assert!(!takes(&UpdateFilter::Message(MessageFilter::any()), &post("hi")));
        let in_channels = UpdateFilter::ChannelPost(MessageFilter::text().chat(ChatType::Channel));
        assert!(takes(&in_channels, &post("hi")));
    }

    #[test]
    fn inline_queries_by_prefix_and_regex() {
        let query = |q: &str| kind(json!({"inline_query": {"id": "1", "from": user(5), "query": q, "offset": ""}}));
        assert!(takes(&UpdateFilter::InlineQuery(QueryFilter::prefix("gif ")), &query("gif cats")));
        assert!(!takes(&UpdateFilter::InlineQuery(QueryFilter::prefix("gif ")), &query("gifs")));
        assert!(takes(&UpdateFilter::InlineQuery(QueryFilter::regex(r"^\d+$")), &query("42")));
        assert!(!takes(&UpdateFilter::InlineQuery(QueryFilter::regex(r"^\d+$")), &query("4x2")));
        assert!(takes(&UpdateFilter::InlineQuery(QueryFilter::any()), &query("")));
        assert!(!takes(&UpdateFilter::ChosenInlineResult(QueryFilter::any()), &query("")));
    }

    #[test]
    fn reactions_by_the_emoji_just_added() {
        let emoji = |e: &str| json!({"type": "emoji", "emoji": e});
        let reaction = |old: Vec<Value>, new: Vec<Value>| {
            let chat = json!({"id": -5, "type": "supergroup", "title": "G"});
            kind(json!({"message_reaction":
                {"chat": chat, "message_id": 3, "user": user(5), "date": 0, "old_reaction": old, "new_reaction": new}}))
        };
        let thumbs = UpdateFilter::MessageReaction(ReactionFilter::emoji("👍"));
        assert!(takes(&thumbs, &reaction(vec![], vec![emoji("👍")])));
        // Bad input: the thumb was already there (another emoji was added), or it was taken away.
        assert!(!takes(&thumbs, &reaction(vec![emoji("👍")], vec![emoji("👍"), emoji("🔥")])));
        assert!(!takes(&thumbs, &reaction(vec![emoji("👍")], vec![])));
        let count = kind(json!({"message_reaction_count": {"chat": {"id": -100, "type": "channel", "title": "C"},
            "message_id": 3, "date": 0, "reactions": [{"type": emoji("🔥"), "total_count": 2}]}}));
        assert!(takes(&UpdateFilter::MessageReactionCount(ReactionFilter::emoji("🔥")), &count));
        assert!(!takes(&UpdateFilter::MessageReactionCount(ReactionFilter::emoji("👍")), &count));
    }

    #[test]
    fn member_changes_by_status_and_chat_type() {
        let change = |chat: Value, old: &str, new: &str| {
            let member = |status: &str| {
                let mut member = json!({"status": status, "user": user(9)});
                if status == "kicked" {
                    member["until_date"] = json!(0);
                }
                member
            };
            kind(json!({"my_chat_member": {"chat": chat, "from": user(9), "date": 0,
                "old_chat_member": member(old), "new_chat_member": member(new)}}))
        };
        let private = json!({"id": 9, "type": "private", "first_name": "U"});
        let group = json!({"id": -7, "type": "group", "title": "G"});
        let blocked = UpdateFilter::MyChatMember(
            MemberFilter::any().new_status(ChatMemberStatus::Banned).chat(ChatType::Private),
        );
        assert!(takes(&blocked, &change(private.clone(), "member", "kicked")));
        assert!(!takes(&blocked, &change(private.clone(), "kicked", "member")));
        assert!(!takes(&blocked, &change(group, "member", "kicked")));
        let unblocked = UpdateFilter::MyChatMember(MemberFilter::any().old_status(ChatMemberStatus::Banned));
        assert!(takes(&unblocked, &change(private.clone(), "kicked", "member")));
        assert!(!takes(&UpdateFilter::ChatMember(MemberFilter::any()), &change(private, "kicked", "member")));
    }

    #[test]
    fn payments_by_invoice_payload() {
        let query = |payload: &str| {
            kind(json!({"pre_checkout_query": {"id": "p", "from": user(5), "currency": "XTR", "total_amount": 10,
                "invoice_payload": payload}}))
        };
        assert!(takes(&UpdateFilter::PreCheckoutQuery(PayloadFilter::prefix("order:")), &query("order:7")));
        assert!(!takes(&UpdateFilter::PreCheckoutQuery(PayloadFilter::prefix("order:")), &query("gift:7")));
        assert!(takes(&UpdateFilter::PreCheckoutQuery(PayloadFilter::payload("gift:7")), &query("gift:7")));
        assert!(!takes(&UpdateFilter::PreCheckoutQuery(PayloadFilter::payload("gift")), &query("gift:7")));
        assert!(!takes(&UpdateFilter::ShippingQuery(PayloadFilter::any()), &query("order:7")));
    }
}
