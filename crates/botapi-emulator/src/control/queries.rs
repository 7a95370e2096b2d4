//! Queries users send a bot outside messages: inline queries and the result a user chose from the bot's answer
//! (`inline_query`, `chosen_inline_result`), and payment queries (`shipping_query`, `pre_checkout_query`). Each
//! query is remembered so that the bot's answer can be checked and read back as an event.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::post,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Answer, UserRef, bad, find, queued};
use crate::world::{BotCell, InlineQuery, PaymentQuery, World};

/// The routes of this topic.
pub(super) fn routes() -> Router<Arc<World>> {
    Router::new()
        .route("/bots/{bot}/inline_queries", post(inline_query))
        .route("/bots/{bot}/chosen_inline_results", post(chosen_inline_result))
        .route("/bots/{bot}/shipping_queries", post(shipping_query))
        .route("/bots/{bot}/pre_checkout_queries", post(pre_checkout_query))
}

/// A fresh query id, numeric as Telegram's are.
fn query_id(world: &World, bot: &BotCell) -> String {
    format!("{}{:012}", bot.id % 1_000_000, world.unique())
}

#[derive(Deserialize)]
struct InlineBody {
    from: UserRef,
    query: String,
    #[serde(default)]
    offset: String,
    /// `sender`, `private`, `group`, `supergroup` or `channel`.
    chat_type: Option<String>,
    location: Option<Value>,
}

/// A user types `@bot query`; the answer's `id` is the inline query's id.
async fn inline_query(
    State(world): State<Arc<World>>,
    Path(bot): Path<String>,
    Json(body): Json<InlineBody>,
) -> Answer {
    let bot = find(&world, &bot)?;
    let user = body.from.resolve(&world)?;
    if body.query.chars().count() > 256 {
        return Err(bad("an inline query is up to 256 characters"));
    }
    let chat_types = ["sender", "private", "group", "supergroup", "channel"];
    if body.chat_type.as_deref().is_some_and(|t| !chat_types.contains(&t)) {
        return Err(bad(format!("chat_type must be one of {}", chat_types.join(", "))));
    }
    let id = query_id(&world, &bot);
    let mut payload = json!({ "id": id, "from": user, "query": body.query, "offset": body.offset });
    if let Some(chat_type) = body.chat_type {
        payload["chat_type"] = chat_type.into();
    }
    if let Some(location) = body.location {
        payload["location"] = location;
    }
    let update_id = {
        let mut st = bot.state.lock();
        st.inline_queries.insert(id.clone(), InlineQuery { query: body.query, results: None });
        st.push_update("inline_query", payload)
    };
    bot.updates.notify_waiters();
    Ok(queued(update_id, Some(id)))
}

#[derive(Deserialize)]
struct ChosenBody {
    from: UserRef,
    result_id: String,
    /// The inline query answered: the result must be one the bot offered for it.
    inline_query_id: Option<String>,
    /// The query text, when no `inline_query_id` is given.
    query: Option<String>,
    inline_message_id: Option<String>,
    location: Option<Value>,
}

/// A user picks one of the results the bot offered.
async fn chosen_inline_result(
    State(world): State<Arc<World>>,
    Path(bot): Path<String>,
    Json(body): Json<ChosenBody>,
) -> Answer {
    let bot = find(&world, &bot)?;
    let user = body.from.resolve(&world)?;
    let update_id = {
        let mut st = bot.state.lock();
        let query = match &body.inline_query_id {
            Some(id) => {
                let inline = st.inline_queries.get(id).ok_or_else(|| bad(format!("no inline query {id}")))?;
                let results = inline.results.as_ref().ok_or_else(|| bad(format!("inline query {id} has no answer")))?;
                if !results.iter().any(|r| r["id"].as_str() == Some(body.result_id.as_str())) {
                    return Err(bad(format!("the answer to inline query {id} has no result {:?}", body.result_id)));
                }
                inline.query.clone()
            }
            None => body.query.ok_or_else(|| bad("give inline_query_id, or the query"))?,
        };
        let mut payload = json!({ "result_id": body.result_id, "from": user, "query": query });
        if let Some(id) = body.inline_message_id {
            payload["inline_message_id"] = id.into();
        }
        if let Some(location) = body.location {
            payload["location"] = location;
        }
        st.push_update("chosen_inline_result", payload)
    };
    bot.updates.notify_waiters();
    Ok(queued(update_id, None))
}

#[derive(Deserialize)]
struct ShippingBody {
    from: UserRef,
    invoice_payload: String,
    shipping_address: Option<Value>,
}

/// A user of a flexible-price invoice gives a shipping address; the answer's `id` is the query's id.
async fn shipping_query(
    State(world): State<Arc<World>>,
    Path(bot): Path<String>,
    Json(body): Json<ShippingBody>,
) -> Answer {
    let bot = find(&world, &bot)?;
    let user = body.from.resolve(&world)?;
    let address = body.shipping_address.unwrap_or_else(|| {
        json!({
            "country_code": "GB",
            "state": "",
            "city": "London",
            "street_line1": "1 High Street",
            "street_line2": "",
            "post_code": "SW1A 1AA",
        })
    });
    let fields = ["country_code", "state", "city", "street_line1", "street_line2", "post_code"];
    if !fields.iter().all(|f| address[f].is_string()) {
        return Err(bad(format!("a shipping address has the strings {}", fields.join(", "))));
    }
    let id = query_id(&world, &bot);
    let payload =
        json!({ "id": id, "from": user, "invoice_payload": body.invoice_payload, "shipping_address": address });
    Ok(queued(payment(&bot, &id, "shipping_query", payload), Some(id)))
}

#[derive(Deserialize)]
struct CheckoutBody {
    from: UserRef,
    currency: String,
    total_amount: i64,
    invoice_payload: String,
    shipping_option_id: Option<String>,
    order_info: Option<Value>,
}

/// A user confirms paying; the answer's `id` is the query's id.
async fn pre_checkout_query(
    State(world): State<Arc<World>>,
    Path(bot): Path<String>,
    Json(body): Json<CheckoutBody>,
) -> Answer {
    let bot = find(&world, &bot)?;
    let user = body.from.resolve(&world)?;
    if body.currency.len() != 3 || !body.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad("currency is a three-letter ISO 4217 code such as USD"));
    }
    if body.total_amount <= 0 {
        return Err(bad("total_amount is a positive amount in the currency's smallest units"));
    }
    let id = query_id(&world, &bot);
    let mut payload = json!({
        "id": id,
        "from": user,
        "currency": body.currency,
        "total_amount": body.total_amount,
        "invoice_payload": body.invoice_payload,
    });
    if let Some(option) = body.shipping_option_id {
        payload["shipping_option_id"] = option.into();
    }
    if let Some(info) = body.order_info {
        payload["order_info"] = info;
    }
    Ok(queued(payment(&bot, &id, "pre_checkout_query", payload), Some(id)))
}

/// Remembers a payment query and queues it.
fn payment(bot: &BotCell, id: &str, kind: &'static str, payload: Value) -> Option<i64> {
    let update_id = {
        let mut st = bot.state.lock();
        st.payment_queries.insert(id.to_owned(), PaymentQuery { kind, answered: false });
        st.push_update(kind, payload)
    };
    bot.updates.notify_waiters();
    update_id
}
