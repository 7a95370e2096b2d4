//! `reporter`: a plugin with a handler for every update type, grouped in families its `config:` names. Each
//! handler tells the `report_to` user what it got (the payload read through `Ctx`), then answers the update as it
//! needs (inline results, shipping options, checkout, join requests).

use anyhow::Context;
use multibot::prelude::*;
use teloxide_core::types::{
    InlineQueryResult, InlineQueryResultArticle, InputMessageContent, InputMessageContentText, LabeledPrice,
    ShippingOption,
};

/// The plugin.
pub(crate) struct Reporter {
    report_to: ChatId,
    families: Vec<String>,
}

/// Its `config:` block.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReporterConfig {
    report_to: i64,
    families: Vec<String>,
}

#[async_trait]
impl Plugin for Reporter {
    type Config = ReporterConfig;

    fn meta() -> PluginMeta {
        PluginMeta::new("reporter").description("Reports every update type it gets")
    }

    fn new(config: ReporterConfig, _cx: &PluginContext) -> anyhow::Result<Reporter> {
        Ok(Reporter { report_to: ChatId(config.report_to), families: config.families })
    }

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers.command("hello", "Say hello", |_, cx| async move { cx.reply("hi").await.map(drop) });
        for family in &self.families {
            match family.as_str() {
                "channel" => channel(handlers),
                "business" => business(handlers),
                "reactions" => reactions(handlers),
                "inline" => inline(handlers),
                "payments" => payments(handlers),
                "polls" => polls(handlers),
                "members" => members(handlers),
                "boosts" => boosts(handlers),
                "edits" => edits(handlers),
                other => panic!("no family {other}"),
            }
        }
    }
}

impl Reporter {
    async fn report(&self, cx: &Ctx, text: String) -> anyhow::Result<()> {
        cx.send(self.report_to, text).plain().await?;
        Ok(())
    }
}

/// The id of the user who caused the update, 0 when it has none.
fn user(cx: &Ctx) -> u64 {
    cx.user().map_or(0, |u| u.id.0)
}

fn channel(handlers: &mut Handlers<'_, Reporter>) {
    handlers
        .on(UpdateFilter::ChannelPost(MessageFilter::command("post")), |me, cx| async move {
            let chat = cx.chat_id().context("a channel")?;
            me.report(&cx, format!("channel_post command in {chat}: {}", cx.command_args())).await
        })
        .on(UpdateFilter::ChannelPost(MessageFilter::text()), |me, cx| async move {
            me.report(&cx, format!("channel_post text: {}", cx.text().unwrap_or_default())).await
        })
        .on(UpdateFilter::EditedChannelPost(MessageFilter::any()), |me, cx| async move {
            me.report(&cx, format!("edited_channel_post: {}", cx.text().unwrap_or_default())).await
        });
}

fn business(handlers: &mut Handlers<'_, Reporter>) {
    handlers
        .on(UpdateFilter::BusinessConnection, |me, cx| async move {
            let connection = cx.business_connection().context("a connection")?;
            let chat = cx.chat_id().context("the user's chat")?;
            let text = format!("business_connection {} enabled={} chat {chat}", connection.id.0, connection.is_enabled);
            me.report(&cx, text).await
        })
        .on(UpdateFilter::BusinessMessage(MessageFilter::text()), |me, cx| async move {
            cx.reply("answered for the business").plain().await?;
            me.report(&cx, format!("business_message from {}: {}", user(&cx), cx.text().unwrap_or_default())).await
        })
        .on(UpdateFilter::EditedBusinessMessage(MessageFilter::any()), |me, cx| async move {
            me.report(&cx, format!("edited_business_message: {}", cx.text().unwrap_or_default())).await
        })
        .on(UpdateFilter::DeletedBusinessMessages, |me, cx| async move {
            let deleted = cx.deleted_business_messages().context("deleted messages")?;
            let ids: Vec<i32> = deleted.message_ids.iter().map(|id| id.0).collect();
            me.report(&cx, format!("deleted_business_messages {ids:?} via {}", deleted.business_connection_id.0)).await
        });
}

fn reactions(handlers: &mut Handlers<'_, Reporter>) {
    handlers
        .on(UpdateFilter::MessageReaction(ReactionFilter::emoji("👍")), |me, cx| async move {
            let reaction = cx.reaction().context("a reaction")?;
            me.report(&cx, format!("thumbs up from {} on {}", user(&cx), reaction.message_id.0)).await
        })
        .on(UpdateFilter::MessageReaction(ReactionFilter::any()), |me, cx| async move {
            me.report(&cx, format!("other reaction from {}", user(&cx))).await
        })
        .on(UpdateFilter::MessageReactionCount(ReactionFilter::any()), |me, cx| async move {
            let counts = cx.reaction_count().context("counts")?;
            let total: u64 = counts.reactions.iter().map(|r| r.total_count).sum();
            me.report(&cx, format!("reaction counts on {}: {total}", counts.message_id.0)).await
        });
}

fn inline(handlers: &mut Handlers<'_, Reporter>) {
    handlers
        .on(UpdateFilter::InlineQuery(QueryFilter::prefix("gif ")), |me, cx| async move {
            let query = cx.inline_query().context("a query")?.query.clone();
            me.report(&cx, format!("inline gif from {}: {query}", user(&cx))).await?;
            let text = InputMessageContent::Text(InputMessageContentText::new("cats!"));
            let article = InlineQueryResultArticle::new("cats", "Cats", text);
            cx.answer_inline_query([InlineQueryResult::Article(article)]).await
        })
        .on(UpdateFilter::InlineQuery(QueryFilter::any()), |me, cx| async move {
            let query = cx.inline_query().context("a query")?.query.clone();
            me.report(&cx, format!("inline other: {query:?}")).await?;
            cx.answer_inline_query([]).await
        })
        .on(UpdateFilter::ChosenInlineResult(QueryFilter::any()), |me, cx| async move {
            let chosen = cx.chosen_inline_result().context("a result")?;
            me.report(&cx, format!("chosen {} for {:?}", chosen.result_id, chosen.query)).await
        });
}

fn payments(handlers: &mut Handlers<'_, Reporter>) {
    handlers
        .on(UpdateFilter::ShippingQuery(PayloadFilter::prefix("order:")), |me, cx| async move {
            let query = cx.shipping_query().context("a shipping query")?;
            let text = format!("shipping {} to {}", query.invoice_payload, query.shipping_address.city);
            me.report(&cx, text).await?;
            let post = ShippingOption::new("post", "Post", [LabeledPrice::new("Post", 500)]);
            cx.answer_shipping_query(Ok(vec![post])).await
        })
        .on(UpdateFilter::PreCheckoutQuery(PayloadFilter::payload("order:sold-out")), |me, cx| async move {
            let query = cx.pre_checkout_query().context("a checkout")?;
            me.report(&cx, format!("declined {}", query.invoice_payload)).await?;
            cx.answer_pre_checkout_query(Err("Sold out")).await
        })
        .on(UpdateFilter::PreCheckoutQuery(PayloadFilter::prefix("order:")), |me, cx| async move {
            let query = cx.pre_checkout_query().context("a checkout")?;
            let text = format!("accepted {}: {} {}", query.invoice_payload, query.total_amount, query.currency);
            me.report(&cx, text).await?;
            cx.answer_pre_checkout_query(Ok(())).await
        })
        .on(UpdateFilter::PurchasedPaidMedia(PayloadFilter::any()), |me, cx| async move {
            let purchase = cx.purchased_paid_media().context("a purchase")?;
            me.report(&cx, format!("paid media {} bought by {}", purchase.paid_media_payload, user(&cx))).await
        });
}

fn polls(handlers: &mut Handlers<'_, Reporter>) {
    handlers
        .on(UpdateFilter::Poll, |me, cx| async move {
            let poll = cx.poll().context("a poll")?;
            let text = format!("poll {:?} closed={} votes={}", poll.question, poll.is_closed, poll.total_voter_count);
            me.report(&cx, text).await
        })
        .on(UpdateFilter::PollAnswer, |me, cx| async move {
            let answer = cx.poll_answer().context("an answer")?;
            me.report(&cx, format!("poll_answer {} from {}: {:?}", answer.poll_id.0, user(&cx), answer.option_ids))
                .await
        });
}

fn members(handlers: &mut Handlers<'_, Reporter>) {
    handlers
        .on(UpdateFilter::MyChatMember(MemberFilter::any().new_status(ChatMemberStatus::Member)), |me, cx| async move {
            let chat = cx.chat_id().context("a chat")?;
            me.report(&cx, format!("added to {chat} by {}", user(&cx))).await
        })
        .on(UpdateFilter::ChatMember(MemberFilter::any().new_status(ChatMemberStatus::Member)), |me, cx| async move {
            let change = cx.chat_member().context("a change")?;
            me.report(&cx, format!("joined: {} in {}", change.new_chat_member.user.id, change.chat.id)).await
        })
        .on(UpdateFilter::ChatMember(MemberFilter::any()), |me, cx| async move {
            let change = cx.chat_member().context("a change")?;
            let (old, new) = (change.old_chat_member.status(), change.new_chat_member.status());
            me.report(&cx, format!("member change: {old:?} -> {new:?}")).await
        })
        .on(UpdateFilter::ChatJoinRequest, |me, cx| async move {
            let request = cx.chat_join_request().context("a request")?;
            // Users with even ids are welcome.
            let welcome = request.from.id.0 % 2 == 0;
            let verdict = if welcome { "approved" } else { "declined" };
            me.report(&cx, format!("join request from {} to {}: {verdict}", user(&cx), request.chat.id)).await?;
            if welcome { cx.approve_chat_join_request().await } else { cx.decline_chat_join_request().await }
        });
}

fn boosts(handlers: &mut Handlers<'_, Reporter>) {
    handlers
        .on(UpdateFilter::ChatBoost, |me, cx| async move {
            let boost = cx.chat_boost().context("a boost")?;
            me.report(&cx, format!("boost {} by {}", boost.boost.boost_id.0, user(&cx))).await
        })
        .on(UpdateFilter::RemovedChatBoost, |me, cx| async move {
            let removed = cx.removed_chat_boost().context("a removed boost")?;
            me.report(&cx, format!("boost {} removed from {}", removed.boost_id.0, removed.chat.id)).await
        });
}

fn edits(handlers: &mut Handlers<'_, Reporter>) {
    handlers
        .edited_message(MessageFilter::any(), |me, cx| async move {
            me.report(&cx, format!("edited_message: {}", cx.text().unwrap_or_default())).await
        })
        .callback_query(CallbackFilter::any(), |me, cx| async move {
            me.report(&cx, format!("callback: {}", cx.callback_data().unwrap_or_default())).await
        });
}
