//! The baseline: a bare echo loop with no framework, run as a child process (`multibot-bench bare-echo`) through
//! the same emulator on the same load as multibot, so that multibot's replies/s can be quoted as a share of what
//! the machine allows.
//!
//! Per bot, one loop: long-poll `getUpdates` from the offset, answer every text message with `You said: <text>`
//! (the chats of a batch at once, each chat's messages in order, as multibot does), then poll again from past the
//! batch, which confirms it. The same HTTP client crate as multibot (reqwest) with the same client settings, a
//! multi-threaded tokio runtime with a worker per core as multibot's, and nothing else: no storage, no flood
//! control, no plugins, no metrics.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use futures_util::future::join_all;
use multibot::telegram::BOTS_PER_CONNECTION;
use serde::Deserialize;

use super::child::token;

/// Options of the bare echo loop.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The Bot API, e.g. `http://127.0.0.1:8081`.
    #[arg(long)]
    api_url: String,
    /// How many bots: the bench's tokens `0..bots`.
    #[arg(long)]
    bots: usize,
    /// Speak HTTP/2 (prior knowledge), 50 bots to a connection, as multibot with `TELEGRAM_API_HTTP=2`.
    #[arg(long)]
    http2: bool,
}

/// The long-poll timeout, as multibot's default `POLLING_TIMEOUT`.
const POLL_SECONDS: u64 = 30;

#[derive(Deserialize)]
struct Answer<T> {
    result: Option<T>,
}

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    chat: Chat,
    text: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = || {
            let builder = reqwest::Client::builder()
                .timeout(Duration::from_secs(POLL_SECONDS + 15))
                .connect_timeout(Duration::from_secs(10))
                .tcp_nodelay(true);
            if args.http2 { builder.http2_prior_knowledge() } else { builder }
                .build()
                .context("building the HTTP client")
        };
        // One client holds one HTTP/2 connection: a client per group of bots, as multibot; over HTTP/1.1 one.
        let group = if args.http2 { BOTS_PER_CONNECTION } else { usize::MAX };
        let mut http = client()?;
        let mut loops = Vec::with_capacity(args.bots);
        for i in 0..args.bots {
            if i > 0 && i % group == 0 {
                http = client()?;
            }
            loops.push(tokio::spawn(bot_loop(http.clone(), format!("{}/bot{}/", args.api_url, token(i)))));
        }
        for task in loops {
            task.await?;
        }
        anyhow::Ok(())
    })
}

/// One bot, forever; a failed call is retried after a short pause.
async fn bot_loop(http: reqwest::Client, base: String) {
    let (get_updates, send_message) = (format!("{base}getUpdates"), format!("{base}sendMessage"));
    let mut offset = 0;
    loop {
        let body = serde_json::json!({ "offset": offset, "timeout": POLL_SECONDS });
        let updates = match call::<Vec<Update>>(&http, &get_updates, &body).await {
            Ok(updates) => updates,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut chats: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for update in &updates {
            offset = offset.max(update.update_id + 1);
        }
        for update in updates {
            if let Some(Message { chat, text: Some(text) }) = update.message {
                chats.entry(chat.id).or_default().push(text);
            }
        }
        join_all(chats.into_iter().map(|(chat, texts)| {
            let (http, url) = (&http, &send_message);
            async move {
                for text in texts {
                    let body = serde_json::json!({ "chat_id": chat, "text": format!("You said: {text}") });
                    // A reply that fails is not retried: the bench counts it as lost.
                    let _ = call::<serde::de::IgnoredAny>(http, url, &body).await;
                }
            }
        }))
        .await;
    }
}

async fn call<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> anyhow::Result<T> {
    let answer: Answer<T> = http.post(url).json(body).send().await?.error_for_status()?.json().await?;
    answer.result.context("no result")
}
