//! Prometheus metrics: [`install`] sets up the process-wide recorder once and returns the handle `/metrics`
//! renders from; the functions below record each event, so every metric's name and labels live in this file, and
//! [`ALL`] lists them for what reads `/metrics` from outside (the Grafana dashboard's test).
//!
//! Labels stay bounded: `bot_id` (configured bots), `plugin` (registered plugins), `method` (Bot API method
//! names), `outcome` / `result` / `status` / `state` (small fixed sets or HTTP and Bot API error codes). Never a
//! chat id, a user id, a token or a secret.

use std::{
    collections::HashMap,
    sync::{LazyLock, OnceLock},
    time::Duration,
};

use metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::warn;

/// Updates a bot took in (`bot_id`).
pub const UPDATES_RECEIVED: &str = "multibot_updates_received_total";
/// Updates a bot finished (`bot_id`, `plugin`, `outcome`: `handled`, `error`, `timeout`, `unhandled`, `refused`).
pub const UPDATES_HANDLED: &str = "multibot_updates_handled_total";
/// Updates of a type this build does not know, confirmed and skipped (`bot_id`).
pub const UPDATES_UNKNOWN: &str = "multibot_updates_unknown_total";
/// Updates a bot took in and has not finished: queued behind their chat or being handled (`bot_id`).
pub const UPDATES_PENDING: &str = "multibot_updates_pending";
/// How long the longest-waiting pending update of a bot has waited, in seconds; 0 with none (`bot_id`).
pub const OLDEST_PENDING: &str = "multibot_oldest_pending_update_seconds";
/// Time to handle one update, in seconds (`bot_id`).
pub const HANDLER_DURATION: &str = "multibot_handler_duration_seconds";
/// Bot API calls (`method`, `result`: `ok`, the Bot API error code such as `429`, `network`, `decode` or `file`).
pub const API_CALLS: &str = "multibot_bot_api_calls_total";
/// Updates dropped by per-user rate limiting (`bot_id`).
pub const RATE_LIMITED: &str = "multibot_rate_limited_total";
/// Updates dropped by access control (`bot_id`, `reason`: `blocked`, `not_allowed`, `admin_only`).
pub const ACCESS_DENIED: &str = "multibot_access_denied_total";
/// Audit events (`bot_id`, empty for events about no bot; `kind`).
pub const BOT_EVENTS: &str = "multibot_bot_events_total";
/// Configured bots by state (`state`: `running`, `degraded`, `stopped`, `disabled`, `failed`).
pub const BOTS: &str = "multibot_bots";
/// 1 while a polling bot is degraded for `reason` (`api_unreachable`, `conflict`), else 0 (`bot_id`, `reason`).
pub const BOT_DEGRADED: &str = "multibot_bot_degraded";
/// Configuration reloads (`result`: `applied`, `unchanged`, `failed`).
pub const RELOADS: &str = "multibot_reloads_total";
/// Requests to the webhook server (`bot_id`, `none` when the path matches no bot; `status`: the HTTP status).
pub const WEBHOOK_REQUESTS: &str = "multibot_webhook_requests_total";
/// Database writes dropped because the recorder's buffer was full (`kind`).
pub const STORAGE_DROPPED_WRITES: &str = "multibot_storage_dropped_writes_total";
/// Batches of database writes that failed and will be retried.
pub const STORAGE_WRITE_FAILURES: &str = "multibot_storage_write_failures_total";
/// Updates dropped unhandled (`bot_id`, `reason`: `chat_backlog`).
pub const UPDATES_DROPPED: &str = "multibot_updates_dropped_total";
/// Webhook deliveries answered 503 because the durable inbox could not store them (`bot_id`).
pub const INBOX_STORE_FAILURES: &str = "multibot_inbox_store_failures_total";
/// Resident memory of the process, in bytes.
pub const RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
/// With replicas: the bots whose leases this replica holds.
pub const REPLICA_LEASES: &str = "multibot_replica_leases";
/// With replicas: the replicas alive, as this one saw them at its last lease round.
pub const REPLICAS_ALIVE: &str = "multibot_replicas_alive";
/// With replicas: 1 while this replica's leases were renewed recently enough for its bots to poll, else 0.
pub const REPLICA_FRESH: &str = "multibot_replica_leases_fresh";
/// With replicas: leases this replica took, lost, or handed over (`change`: `taken`, `lost`, `released`,
/// `fenced`: stopped because they were not renewed in time).
pub const LEASE_CHANGES: &str = "multibot_lease_changes_total";
/// Broadcast deliveries with an outcome (`bot_id`, `outcome`: `sent`, `failed`, `blocked`).
pub const BROADCAST_DELIVERIES: &str = "multibot_broadcast_deliveries_total";
/// Deliveries still to make of the broadcasts this process runs (`bot_id`).
pub const BROADCAST_REMAINING: &str = "multibot_broadcast_remaining";

/// A metric this process exports: its name and the labels its series carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The name `/metrics` shows (a histogram's series add `_bucket`, `_sum` and `_count`).
    pub name: &'static str,
    /// The labels of its series (a histogram's buckets add `le`; Prometheus adds `job` and `instance`).
    pub labels: &'static [&'static str],
}

/// Every metric above with its labels, for what reads `/metrics` from outside: the Grafana dashboard in
/// `deploy/grafana/` is tested against this list.
pub const ALL: &[Metric] = &[
    Metric { name: UPDATES_RECEIVED, labels: &["bot_id"] },
    Metric { name: UPDATES_HANDLED, labels: &["bot_id", "plugin", "outcome"] },
    Metric { name: UPDATES_UNKNOWN, labels: &["bot_id"] },
    Metric { name: UPDATES_PENDING, labels: &["bot_id"] },
    Metric { name: OLDEST_PENDING, labels: &["bot_id"] },
    Metric { name: HANDLER_DURATION, labels: &["bot_id"] },
    Metric { name: API_CALLS, labels: &["method", "result"] },
    Metric { name: RATE_LIMITED, labels: &["bot_id"] },
    Metric { name: ACCESS_DENIED, labels: &["bot_id", "reason"] },
    Metric { name: BOT_EVENTS, labels: &["bot_id", "kind"] },
    Metric { name: BOTS, labels: &["state"] },
    Metric { name: BOT_DEGRADED, labels: &["bot_id", "reason"] },
    Metric { name: RELOADS, labels: &["result"] },
    Metric { name: WEBHOOK_REQUESTS, labels: &["bot_id", "status"] },
    Metric { name: STORAGE_DROPPED_WRITES, labels: &["kind"] },
    Metric { name: STORAGE_WRITE_FAILURES, labels: &[] },
    Metric { name: UPDATES_DROPPED, labels: &["bot_id", "reason"] },
    Metric { name: INBOX_STORE_FAILURES, labels: &["bot_id"] },
    Metric { name: RESIDENT_MEMORY, labels: &[] },
    Metric { name: REPLICA_LEASES, labels: &[] },
    Metric { name: REPLICAS_ALIVE, labels: &[] },
    Metric { name: REPLICA_FRESH, labels: &[] },
    Metric { name: LEASE_CHANGES, labels: &["change"] },
    Metric { name: BROADCAST_DELIVERIES, labels: &["bot_id", "outcome"] },
    Metric { name: BROADCAST_REMAINING, labels: &["bot_id"] },
];

/// Upper bounds of the handler latency histogram's buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The installed recorder's handle.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The handles of the series every update and every reply counts in, kept by their label values: the macros
/// allocate each label and hash the whole key at each call, which a reply did five times. One level per label,
/// so that a lookup by `&str` allocates nothing; the labels are bounded (see above), and so are these maps.
#[derive(Default)]
struct Kept {
    received: ByLabel<Counter>,
    durations: ByLabel<Histogram>,
    /// By bot, then plugin, then outcome.
    handled: ByLabel<ByLabel<ByLabel<Counter>>>,
    /// By method, then result.
    api_calls: ByLabel<ByLabel<Counter>>,
}

type ByLabel<T> = HashMap<Box<str>, T>;

static KEPT: LazyLock<parking_lot::RwLock<Kept>> = LazyLock::new(Default::default);

/// The handle `find` finds, else the one `make` registers, kept by `keep` once the recorder is installed (a
/// handle taken before it would count nowhere).
fn kept<T: Clone>(find: impl Fn(&Kept) -> Option<T>, make: impl FnOnce() -> T, keep: impl FnOnce(&mut Kept, T)) -> T {
    if let Some(found) = find(&KEPT.read()) {
        return found;
    }
    let made = make();
    if HANDLE.get().is_some() {
        keep(&mut KEPT.write(), made.clone());
    }
    made
}

/// Installs the Prometheus recorder the first time it is called and returns its handle; later calls (several
/// applications in one test process) return the same handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HANDLER_DURATION.to_owned()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                // Someone else's recorder is in place: `/metrics` still answers, with what this handle sees.
                warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(UPDATES_RECEIVED, Unit::Count, "Updates a bot took in, from polling or its webhook");
    describe_counter!(UPDATES_HANDLED, Unit::Count, "Updates a bot finished, by the plugin that took it and outcome");
    describe_counter!(UPDATES_UNKNOWN, Unit::Count, "Updates of a type this build does not know, skipped");
    describe_gauge!(UPDATES_PENDING, Unit::Count, "Updates a bot took in and has not finished");
    describe_gauge!(OLDEST_PENDING, Unit::Seconds, "Age of a bot's longest-waiting unfinished update");
    describe_histogram!(HANDLER_DURATION, Unit::Seconds, "Time to handle one update");
    describe_counter!(API_CALLS, Unit::Count, "Bot API calls by method and result (ok or the error code)");
    describe_counter!(RATE_LIMITED, Unit::Count, "Updates dropped by per-user rate limiting");
    describe_counter!(ACCESS_DENIED, Unit::Count, "Updates dropped by access control, by reason");
    describe_counter!(BOT_EVENTS, Unit::Count, "Audit events by bot and kind");
    describe_gauge!(BOTS, Unit::Count, "Configured bots by state");
    describe_gauge!(BOT_DEGRADED, Unit::Count, "1 while a bot cannot work through the Bot API, by reason");
    describe_counter!(RELOADS, Unit::Count, "Configuration reloads by result");
    describe_counter!(WEBHOOK_REQUESTS, Unit::Count, "Requests to the webhook server by bot and HTTP status");
    describe_counter!(STORAGE_DROPPED_WRITES, Unit::Count, "Database writes dropped because the buffer was full");
    describe_counter!(STORAGE_WRITE_FAILURES, Unit::Count, "Database write batches that failed (and are retried)");
    describe_counter!(UPDATES_DROPPED, Unit::Count, "Updates dropped unhandled, by reason");
    describe_counter!(
        INBOX_STORE_FAILURES,
        Unit::Count,
        "Webhook deliveries refused because the inbox could not store them"
    );
    describe_gauge!(RESIDENT_MEMORY, Unit::Bytes, "Resident memory of the process");
    describe_gauge!(REPLICA_LEASES, Unit::Count, "Bots whose leases this replica holds");
    describe_gauge!(REPLICAS_ALIVE, Unit::Count, "Replicas alive at this replica's last lease round");
    describe_gauge!(REPLICA_FRESH, Unit::Count, "1 while this replica's leases are fresh enough to poll");
    describe_counter!(LEASE_CHANGES, Unit::Count, "Leases this replica took, lost, released or fenced");
    describe_counter!(BROADCAST_DELIVERIES, Unit::Count, "Broadcast deliveries by outcome (sent, failed, blocked)");
    describe_gauge!(BROADCAST_REMAINING, Unit::Count, "Deliveries left of the broadcasts this process runs");
}

/// Makes a bot's counters visible at zero as soon as it starts, so rates and alerts work from the first scrape.
pub(crate) fn bot_started(bot_id: &str) {
    counter!(UPDATES_RECEIVED, "bot_id" => bot_id.to_owned()).increment(0);
    counter!(RATE_LIMITED, "bot_id" => bot_id.to_owned()).increment(0);
    counter!(UPDATES_UNKNOWN, "bot_id" => bot_id.to_owned()).increment(0);
}

/// A bot took in an update.
pub(crate) fn update_received(bot_id: &str) {
    kept(
        |kept| kept.received.get(bot_id).cloned(),
        || counter!(UPDATES_RECEIVED, "bot_id" => bot_id.to_owned()),
        |kept, counter| drop(kept.received.insert(bot_id.into(), counter)),
    )
    .increment(1);
}

/// A bot skipped an update of a type this build does not know.
pub(crate) fn update_unknown(bot_id: &str) {
    counter!(UPDATES_UNKNOWN, "bot_id" => bot_id.to_owned()).increment(1);
}

/// How an update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A handler took it and succeeded.
    Handled,
    /// A handler (or loading its conversation state) failed or panicked.
    Error,
    /// A handler ran past the bot's time limit and was dropped.
    Timeout,
    /// No handler matched.
    Unhandled,
    /// Dropped before the router by access control or rate limiting.
    Refused,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Unhandled => "unhandled",
            Outcome::Refused => "refused",
        }
    }
}

/// A bot finished an update: `plugin` is the plugin whose handler took it (empty when none did).
pub(crate) fn update_handled(bot_id: &str, plugin: &str, outcome: Outcome, took: Duration) {
    let plugin = if plugin.is_empty() { "none" } else { plugin };
    let outcome = outcome.label();
    kept(
        |kept| kept.handled.get(bot_id)?.get(plugin)?.get(outcome).cloned(),
        || counter!(UPDATES_HANDLED, "bot_id" => bot_id.to_owned(), "plugin" => plugin.to_owned(), "outcome" => outcome),
        |kept, counter| {
            let by_outcome = kept.handled.entry(bot_id.into()).or_default().entry(plugin.into()).or_default();
            drop(by_outcome.insert(outcome.into(), counter))
        },
    )
    .increment(1);
    kept(
        |kept| kept.durations.get(bot_id).cloned(),
        || histogram!(HANDLER_DURATION, "bot_id" => bot_id.to_owned()),
        |kept, histogram| drop(kept.durations.insert(bot_id.into(), histogram)),
    )
    .record(took.as_secs_f64());
}

/// A Bot API call ended: `method` as the Bot API spells it (`sendMessage`); `result` is `ok`, the error code,
/// `network`, `decode` or `file` (a file to upload could not be read or was too large).
pub(crate) fn api_call(method: &str, result: &str) {
    kept(
        |kept| kept.api_calls.get(method)?.get(result).cloned(),
        || counter!(API_CALLS, "method" => method.to_owned(), "result" => result.to_owned()),
        |kept, counter| drop(kept.api_calls.entry(method.into()).or_default().insert(result.into(), counter)),
    )
    .increment(1);
}

/// Broadcast deliveries of `bot_id` ended with `outcome` (`sent`, `failed`, `blocked`).
pub(crate) fn broadcast_deliveries(bot_id: &str, outcome: &'static str, n: u64) {
    counter!(BROADCAST_DELIVERIES, "bot_id" => bot_id.to_owned(), "outcome" => outcome).increment(n);
}

/// Deliveries left of the broadcast of `bot_id` this process runs (0 once it ends).
pub(crate) fn broadcast_remaining(bot_id: &str, remaining: i64) {
    gauge!(BROADCAST_REMAINING, "bot_id" => bot_id.to_owned()).set(remaining as f64);
}

/// Rate limiting dropped an update of this bot.
pub fn rate_limited(bot_id: &str) {
    counter!(RATE_LIMITED, "bot_id" => bot_id.to_owned()).increment(1);
}

/// Access control dropped an update of this bot for `reason`.
pub fn access_denied(bot_id: &str, reason: &str) {
    counter!(ACCESS_DENIED, "bot_id" => bot_id.to_owned(), "reason" => reason.to_owned()).increment(1);
}

/// An audit event of `kind` was recorded (`bot_id` empty when it concerns no bot).
pub fn bot_event(bot_id: &str, kind: &'static str) {
    counter!(BOT_EVENTS, "bot_id" => bot_id.to_owned(), "kind" => kind).increment(1);
}

/// A configuration reload ended with `result` (`applied`, `unchanged` or `failed`).
pub fn reload(result: &'static str) {
    counter!(RELOADS, "result" => result).increment(1);
}

/// An update was dropped unhandled for `reason`.
pub(crate) fn update_dropped(bot_id: &str, reason: &'static str) {
    counter!(UPDATES_DROPPED, "bot_id" => bot_id.to_owned(), "reason" => reason).increment(1);
}

/// The durable inbox could not store a webhook delivery of `bot_id`.
pub(crate) fn inbox_store_failure(bot_id: &str) {
    counter!(INBOX_STORE_FAILURES, "bot_id" => bot_id.to_owned()).increment(1);
}

/// The webhook server answered `status` for `bot_id` (`None` when the path matched no bot).
pub(crate) fn webhook_request(bot_id: Option<&str>, status: u16) {
    let bot_id = bot_id.unwrap_or("none").to_owned();
    counter!(WEBHOOK_REQUESTS, "bot_id" => bot_id, "status" => status.to_string()).increment(1);
}

/// The recorder dropped a database write of `kind` (its buffer was full).
pub fn storage_dropped_write(kind: &'static str) {
    counter!(STORAGE_DROPPED_WRITES, "kind" => kind).increment(1);
}

/// A batch of database writes failed; the recorder retries it.
pub fn storage_write_failure() {
    counter!(STORAGE_WRITE_FAILURES).increment(1);
}

/// Sets how many bots are in each state.
pub(crate) fn bots_by_state(counts: &[(&'static str, usize)]) {
    for (state, count) in counts {
        gauge!(BOTS, "state" => *state).set(*count as f64);
    }
}

/// Sets a bot's degraded gauges: 1 for its `reason`, 0 for the other `reasons` (all 0 when it has none).
pub(crate) fn bot_degraded(bot_id: &str, reason: Option<&'static str>, reasons: &[&'static str]) {
    for &label in reasons {
        let value = if reason == Some(label) { 1.0 } else { 0.0 };
        gauge!(BOT_DEGRADED, "bot_id" => bot_id.to_owned(), "reason" => label).set(value);
    }
}

/// Sets a bot's pending-update gauges: how many, and the oldest one's age (zero with none).
pub(crate) fn updates_pending(bot_id: &str, count: usize, oldest: Option<Duration>) {
    gauge!(UPDATES_PENDING, "bot_id" => bot_id.to_owned()).set(count as f64);
    gauge!(OLDEST_PENDING, "bot_id" => bot_id.to_owned()).set(oldest.map_or(0.0, |age| age.as_secs_f64()));
}

/// Sets the replica gauges: leases held, replicas alive, whether the leases are fresh.
pub(crate) fn replica(leases: usize, alive: usize, fresh: bool) {
    gauge!(REPLICA_LEASES).set(leases as f64);
    gauge!(REPLICAS_ALIVE).set(alive as f64);
    gauge!(REPLICA_FRESH).set(if fresh { 1.0 } else { 0.0 });
}

/// Counts leases that changed hands (`change`: `taken`, `lost`, `released`, `fenced`).
pub(crate) fn lease_changes(change: &'static str, count: usize) {
    counter!(LEASE_CHANGES, "change" => change).increment(count as u64);
}

/// Sets the resident memory gauge.
pub(crate) fn resident_memory(bytes: u64) {
    gauge!(RESIDENT_MEMORY).set(bytes as f64);
}

/// The process's resident memory in bytes (`VmRSS` of `/proc/self/status`), where the system tells.
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The label names of a sample line from just after its `{`, read past quoted values.
    fn label_names(line: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let mut rest = line;
        while let Some((name, after)) = rest.split_once("=\"") {
            names.insert(name.trim_start_matches(',').to_owned());
            let mut chars = after.char_indices();
            let mut end = after.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    _ => {}
                }
            }
            rest = &after[end..];
            if rest.starts_with('}') {
                break;
            }
        }
        names
    }

    #[test]
    fn all_lists_every_exported_metric_with_its_labels() {
        let handle = install();
        // Every recording function once, so that every metric shows in the rendered text.
        let bot = "metrics_all_test";
        bot_started(bot);
        update_received(bot);
        update_unknown(bot);
        update_handled(bot, "echo", Outcome::Handled, Duration::from_millis(3));
        api_call("getMe", "ok");
        rate_limited(bot);
        access_denied(bot, "blocked");
        bot_event(bot, "bot_started");
        reload("applied");
        update_dropped(bot, "chat_backlog");
        inbox_store_failure(bot);
        webhook_request(Some(bot), 200);
        storage_dropped_write("event");
        storage_write_failure();
        bots_by_state(&[("running", 1)]);
        bot_degraded(bot, Some("conflict"), &["api_unreachable", "conflict"]);
        updates_pending(bot, 1, Some(Duration::from_secs(1)));
        replica(1, 1, true);
        lease_changes("taken", 1);
        resident_memory(1024);
        broadcast_deliveries(bot, "sent", 1);
        broadcast_remaining(bot, 1);

        let text = handle.render();
        let mut seen = BTreeSet::new();
        for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let end = line.find(['{', ' ']).unwrap_or_else(|| panic!("not a sample: {line}"));
            let name = &line[..end];
            let mut labels = if line[end..].starts_with('{') { label_names(&line[end + 1..]) } else { BTreeSet::new() };
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix).filter(|base| *base == HANDLER_DURATION))
                .unwrap_or(name);
            let metric = ALL.iter().find(|m| m.name == base).unwrap_or_else(|| panic!("{name} is not in ALL"));
            if name.ends_with("_bucket") {
                labels.remove("le");
            }
            let declared: BTreeSet<String> = metric.labels.iter().map(|l| (*l).to_owned()).collect();
            assert_eq!(labels, declared, "{line}");
            seen.insert(metric.name);
        }
        for metric in ALL {
            assert!(seen.contains(metric.name), "{} is in ALL but was not rendered", metric.name);
        }
        // A name defined above but left out of ALL (and of this test's calls).
        for piece in include_str!("metrics.rs").split("\npub const ").skip(1) {
            let first_line = piece.lines().next().unwrap_or_default();
            if let Some((_, rest)) = first_line.split_once(": &str = \"") {
                let name = rest.split('"').next().unwrap_or_default();
                assert!(ALL.iter().any(|m| m.name == name), "{name} is missing from ALL");
            }
        }
    }
}
