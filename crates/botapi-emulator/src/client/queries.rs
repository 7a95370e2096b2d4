//! Update families a user starts outside messages: inline queries and chosen results, payment queries, poll
//! votes and reactions; and, on the bot's side, reading the answers it gave and the polls and reaction counts
//! Telegram tells it of.

use std::time::Duration;

use anyhow::anyhow;
use serde_json::{Value, json};

use super::{Queued, TestBot, TestUser};
use crate::types::Event;

impl TestUser {
    /// Types `@bot query` (an `inline_query` update); [`Queued::id`] is the inline query's id.
    pub async fn inline_query(&self, bot: &TestBot, query: &str) -> anyhow::Result<Queued> {
        self.control.post(&bot.path("/inline_queries"), json!({ "from": self.id, "query": query })).await
    }

    /// Picks result `result_id` of the bot's answer to inline query `inline_query_id` (a `chosen_inline_result`
    /// update); fails unless the bot offered that result.
    pub async fn choose_inline_result(
        &self,
        bot: &TestBot,
        inline_query_id: &str,
        result_id: &str,
    ) -> anyhow::Result<Queued> {
        let body = json!({ "from": self.id, "inline_query_id": inline_query_id, "result_id": result_id });
        self.control.post(&bot.path("/chosen_inline_results"), body).await
    }

    /// Gives a shipping address for a flexible-price invoice (a `shipping_query` update); [`Queued::id`] is the
    /// query's id.
    pub async fn shipping_query(&self, bot: &TestBot, invoice_payload: &str) -> anyhow::Result<Queued> {
        let body = json!({ "from": self.id, "invoice_payload": invoice_payload });
        self.control.post(&bot.path("/shipping_queries"), body).await
    }

    /// Confirms paying `total_amount` (in the currency's smallest units) for an invoice (a `pre_checkout_query`
    /// update); [`Queued::id`] is the query's id.
    pub async fn pre_checkout_query(
        &self,
        bot: &TestBot,
        currency: &str,
        total_amount: i64,
        invoice_payload: &str,
    ) -> anyhow::Result<Queued> {
        let body = json!({
            "from": self.id, "currency": currency, "total_amount": total_amount, "invoice_payload": invoice_payload,
        });
        self.control.post(&bot.path("/pre_checkout_queries"), body).await
    }

    /// Votes in a poll the bot sent (empty `option_ids` retracts the vote): a `poll_answer` update for a
    /// non-anonymous poll, and a `poll` update with the new counts.
    pub async fn vote(&self, bot: &TestBot, poll_id: &str, option_ids: &[u32]) -> anyhow::Result<Queued> {
        let body = json!({ "from": self.id, "poll_id": poll_id, "option_ids": option_ids });
        self.control.post(&bot.path("/poll_answers"), body).await
    }

    /// Sets the user's reaction to a message of `chat_id` to these emoji (empty removes it): a
    /// `message_reaction` update with the old reaction and the new.
    pub async fn react(&self, bot: &TestBot, chat_id: i64, message_id: i64, emoji: &[&str]) -> anyhow::Result<Queued> {
        let body = json!({ "from": self.id, "chat_id": chat_id, "message_id": message_id, "reaction": emoji });
        self.control.post(&bot.path("/reactions"), body).await
    }
}

impl TestBot {
    /// A stopped poll the bot did not send (a `poll` update); [`Queued::id`] is the poll's id.
    pub async fn closed_poll(&self, question: &str, options: &[&str]) -> anyhow::Result<Queued> {
        self.control.post(&self.path("/polls"), json!({ "question": question, "options": options })).await
    }

    /// The counts of a message's reactions, from the users' reactions so far (a `message_reaction_count`
    /// update).
    pub async fn reaction_count(&self, chat_id: i64, message_id: i64) -> anyhow::Result<Queued> {
        let body = json!({ "chat_id": chat_id, "message_id": message_id });
        self.control.post(&self.path("/reaction_counts"), body).await
    }

    /// The bot's answer to query `query_id` (callback, inline, shipping or pre-checkout), waiting up to `wait`:
    /// the `*_answer` event whose detail names the query.
    pub async fn answer_to(&self, query_id: &str, wait: Duration) -> anyhow::Result<Event> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut after = 0;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let events = self.events(after, None, None, left).await?;
            if let Some(last) = events.last() {
                after = last.seq;
            }
            let names = ["callback_query_id", "inline_query_id", "shipping_query_id", "pre_checkout_query_id"];
            let answers = |e: &Event| {
                let detail = e.detail.as_ref().unwrap_or(&Value::Null);
                e.kind.ends_with("_answer") && names.iter().any(|n| detail[n].as_str() == Some(query_id))
            };
            if let Some(event) = events.into_iter().find(answers) {
                return Ok(event);
            }
            if left.is_zero() {
                return Err(anyhow!("bot {} did not answer query {query_id} within {wait:?}", self.username));
            }
        }
    }
}
