//! Typed access to the payload of each update type (`cx.inline_query()`, `cx.chat_member()`, ...), as
//! teloxide-core types, and the answers those updates need (`answer_inline_query`, `answer_shipping_query`,
//! `answer_pre_checkout_query`, `approve_chat_join_request`, `decline_chat_join_request`), each one Bot API call.

use anyhow::anyhow;
use teloxide_core::{
    payloads::{
        AnswerInlineQuery, AnswerPreCheckoutQuery, AnswerPreCheckoutQuerySetters, AnswerShippingQuery,
        AnswerShippingQuerySetters, ApproveChatJoinRequest, DeclineChatJoinRequest,
    },
    types::{
        BusinessConnection, BusinessMessagesDeleted, ChatBoostRemoved, ChatBoostUpdated, ChatJoinRequest,
        ChatMemberUpdated, ChosenInlineResult, InlineQuery, InlineQueryResult, MessageReactionCountUpdated,
        MessageReactionUpdated, PaidMediaPurchased, Poll, PollAnswer, PreCheckoutQuery, ShippingOption, ShippingQuery,
        True, UpdateKind,
    },
};

use super::Ctx;

/// A getter for the payload of the update types listed (variants of `UpdateKind` carrying `$payload`).
macro_rules! payload {
    ($(#[$doc:meta])* $name:ident -> $payload:ty: $($kind:ident)|+) => {
        $(#[$doc])*
        pub fn $name(&self) -> Option<&$payload> {
            match &self.update().kind {
                $(UpdateKind::$kind(payload))|+ => Some(payload),
                _ => None,
            }
        }
    };
}

impl Ctx {
    payload!(
        /// The inline query, for `inline_query` updates.
        inline_query -> InlineQuery: InlineQuery
    );
    payload!(
        /// The chosen result, for `chosen_inline_result` updates.
        chosen_inline_result -> ChosenInlineResult: ChosenInlineResult
    );
    payload!(
        /// The shipping query, for `shipping_query` updates.
        shipping_query -> ShippingQuery: ShippingQuery
    );
    payload!(
        /// The pre-checkout query, for `pre_checkout_query` updates.
        pre_checkout_query -> PreCheckoutQuery: PreCheckoutQuery
    );
    payload!(
        /// The purchase, for `purchased_paid_media` updates.
        purchased_paid_media -> PaidMediaPurchased: PurchasedPaidMedia
    );
    payload!(
        /// The poll's new state, for `poll` updates.
        poll -> Poll: Poll
    );
    payload!(
        /// The answer, for `poll_answer` updates.
        poll_answer -> PollAnswer: PollAnswer
    );
    payload!(
        /// The membership change, for `my_chat_member` (the bot's own) and `chat_member` updates.
        chat_member -> ChatMemberUpdated: MyChatMember | ChatMember
    );
    payload!(
        /// The request, for `chat_join_request` updates.
        chat_join_request -> ChatJoinRequest: ChatJoinRequest
    );
    payload!(
        /// The user's reaction change, for `message_reaction` updates.
        reaction -> MessageReactionUpdated: MessageReaction
    );
    payload!(
        /// The anonymous reaction counts, for `message_reaction_count` updates.
        reaction_count -> MessageReactionCountUpdated: MessageReactionCount
    );
    payload!(
        /// The boost, for `chat_boost` updates.
        chat_boost -> ChatBoostUpdated: ChatBoost
    );
    payload!(
        /// The removed boost, for `removed_chat_boost` updates.
        removed_chat_boost -> ChatBoostRemoved: RemovedChatBoost
    );
    payload!(
        /// The connection, for `business_connection` updates.
        business_connection -> BusinessConnection: BusinessConnection
    );
    payload!(
        /// The deleted messages, for `deleted_business_messages` updates.
        deleted_business_messages -> BusinessMessagesDeleted: DeletedBusinessMessages
    );

    /// Answers the inline query with `results` (`answerInlineQuery`; for `cache_time`, `next_offset` and the
    /// like, call `cx.api().call(&AnswerInlineQuery::new(..)..)`).
    pub async fn answer_inline_query(
        &self,
        results: impl IntoIterator<Item = InlineQueryResult>,
    ) -> anyhow::Result<()> {
        let query = self.inline_query().ok_or_else(|| anyhow!("not an inline query"))?;
        let True = self.api().call(&AnswerInlineQuery::new(query.id.clone(), results)).await?;
        Ok(())
    }

    /// Answers the shipping query: `Ok(options)` offers these shipping options, `Err(reason)` says why the
    /// address cannot be served (`answerShippingQuery`).
    pub async fn answer_shipping_query(&self, answer: Result<Vec<ShippingOption>, &str>) -> anyhow::Result<()> {
        let query = self.shipping_query().ok_or_else(|| anyhow!("not a shipping query"))?;
        let payload = match answer {
            Ok(options) => AnswerShippingQuery::new(query.id.clone(), true).shipping_options(options),
            Err(reason) => AnswerShippingQuery::new(query.id.clone(), false).error_message(reason),
        };
        let True = self.api().call(&payload).await?;
        Ok(())
    }

    /// Answers the pre-checkout query: `Ok(())` lets the payment go on, `Err(reason)` stops it and shows the
    /// user why (`answerPreCheckoutQuery`). Telegram waits 10 seconds for it.
    pub async fn answer_pre_checkout_query(&self, answer: Result<(), &str>) -> anyhow::Result<()> {
        let query = self.pre_checkout_query().ok_or_else(|| anyhow!("not a pre-checkout query"))?;
        let payload = match answer {
            Ok(()) => AnswerPreCheckoutQuery::new(query.id.clone(), true),
            Err(reason) => AnswerPreCheckoutQuery::new(query.id.clone(), false).error_message(reason),
        };
        let True = self.api().call(&payload).await?;
        Ok(())
    }

    /// Lets the user of the join request into the chat (`approveChatJoinRequest`).
    pub async fn approve_chat_join_request(&self) -> anyhow::Result<()> {
        let request = self.chat_join_request().ok_or_else(|| anyhow!("not a chat join request"))?;
        let True = self.api().call(&ApproveChatJoinRequest::new(request.chat.id, request.from.id)).await?;
        Ok(())
    }

    /// Turns down the join request (`declineChatJoinRequest`).
    pub async fn decline_chat_join_request(&self) -> anyhow::Result<()> {
        let request = self.chat_join_request().ok_or_else(|| anyhow!("not a chat join request"))?;
        let True = self.api().call(&DeclineChatJoinRequest::new(request.chat.id, request.from.id)).await?;
        Ok(())
    }
}
