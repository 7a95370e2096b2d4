//! The Grafana dashboard (`deploy/grafana/`) and the Compose profile `monitoring`, checked without Grafana: every
//! query names only metrics and labels multibot exports ([`multibot::telemetry::metrics::ALL`]) and every exported
//! metric has a panel; every panel has a title and a data source; Compose starts Prometheus and Grafana only with
//! the profile, Prometheus scrapes multibot's `/metrics` and Grafana is provisioned with both. Where `promtool` is
//! found (`PROMTOOL`, or on `PATH`), it checks the Prometheus configuration and that every query parses.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::Command,
};

use multibot::{
    config::Settings,
    telemetry::metrics::{ALL, Metric},
};
use saphyr::Yaml;
use serde_json::Value;

use crate::{
    deploy::{get, lookup, manifest, read, root},
    helpers::TempDir,
};

const DASHBOARD: &str = "deploy/grafana/dashboards/multibot.json";

/// Labels Prometheus adds to every series it scrapes.
const SCRAPE_LABELS: &[&str] = &["job", "instance"];

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

/// Every panel of a `panels` list, those inside rows (collapsed rows keep theirs) included.
fn panels<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
    for panel in list.as_array().expect("a panels array") {
        out.push(panel);
        if let Some(inner) = panel.get("panels") {
            panels(inner, out);
        }
    }
}

/// One query of a panel.
struct Query {
    panel: String,
    expr: String,
    legend: String,
}

fn queries(dashboard: &Value) -> Vec<Query> {
    let mut all = Vec::new();
    panels(&dashboard["panels"], &mut all);
    let mut queries = Vec::new();
    for panel in all.into_iter().filter(|p| p["type"] != "row") {
        for target in panel["targets"].as_array().unwrap_or_else(|| panic!("{} has no targets", panel["title"])) {
            queries.push(Query {
                panel: panel["title"].as_str().unwrap_or_default().to_owned(),
                expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                legend: target["legendFormat"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    queries
}

/// The exported metric a series name stands for: itself, or a histogram's `_bucket`, `_sum` or `_count`.
fn exported(series: &str) -> Option<&'static Metric> {
    ALL.iter().find(|m| m.name == series).or_else(|| {
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| series.strip_suffix(suffix))?;
        ALL.iter().find(|m| m.name == base)
    })
}

/// What a PromQL expression names: each series selector's metric with the labels it matches on, and the labels
/// of its `by`, `without`, `on` and `ignoring` clauses. Enough PromQL for a dashboard's queries, not a parser.
#[derive(Debug, Default)]
struct Names {
    selectors: Vec<(String, Vec<String>)>,
    grouping: Vec<String>,
}

fn names(expr: &str) -> Names {
    let chars: Vec<char> = expr.chars().collect();
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_spaces = |i: &mut usize| {
        while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
            *i += 1;
        }
    };
    let word = |i: &mut usize| {
        let start = *i;
        while chars.get(*i).copied().is_some_and(is_part) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let skip_string = |i: &mut usize| {
        let quote = chars[*i];
        *i += 1;
        while let Some(&c) = chars.get(*i) {
            *i += if c == '\\' { 2 } else { 1 };
            if c == quote {
                break;
            }
        }
    };
    let mut found = Names::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            skip_string(&mut i);
        } else if c == '$' {
            // A Grafana variable: `$bot_id`, `$__rate_interval`.
            i += 1;
            word(&mut i);
        } else if c.is_ascii_digit() {
            // A number or a duration (`0.95`, `5m`).
            while chars.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.') {
                i += 1;
            }
        } else if is_start(c) {
            let name = word(&mut i);
            skip_spaces(&mut i);
            if name.starts_with("multibot_") || name.starts_with("process_") {
                let mut labels = Vec::new();
                if chars.get(i) == Some(&'{') {
                    i += 1;
                    loop {
                        skip_spaces(&mut i);
                        match chars.get(i) {
                            Some('}') | None => break,
                            Some(',') => i += 1,
                            Some(_) => {
                                labels.push(word(&mut i));
                                skip_spaces(&mut i);
                                while chars.get(i).is_some_and(|c| matches!(c, '=' | '!' | '~')) {
                                    i += 1;
                                }
                                skip_spaces(&mut i);
                                assert!(matches!(chars.get(i), Some('"' | '\'')), "a matcher without a value: {expr}");
                                skip_string(&mut i);
                            }
                        }
                    }
                    i += 1;
                }
                found.selectors.push((name, labels));
            } else if ["by", "without", "on", "ignoring"].contains(&name.as_str()) && chars.get(i) == Some(&'(') {
                i += 1;
                loop {
                    skip_spaces(&mut i);
                    match chars.get(i) {
                        Some(')') | None => break,
                        Some(',') => i += 1,
                        Some(_) => found.grouping.push(word(&mut i)),
                    }
                }
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    found
}

/// The `{{label}}` names of a legend format.
fn legend_labels(legend: &str) -> Vec<String> {
    legend.split("{{").skip(1).filter_map(|piece| piece.split_once("}}")).map(|(l, _)| l.trim().to_owned()).collect()
}

#[test]
fn the_query_reader_sees_metrics_selectors_and_grouping() {
    // A quoted `}` does not end the selector; `$__rate_interval` is no metric.
    let bucket = r#"multibot_handler_duration_seconds_bucket{bot_id=~"$bot_id", x="a}b"}[$__rate_interval]"#;
    let found = names(&format!("histogram_quantile(0.95, sum by (bot_id, le) (rate({bucket}))) or vector(0)"));
    assert_eq!(
        found.selectors,
        [("multibot_handler_duration_seconds_bucket".to_owned(), vec!["bot_id".to_owned(), "x".to_owned()])]
    );
    assert_eq!(found.grouping, ["bot_id", "le"]);
    assert!(names("process_resident_memory_bytes").selectors[0].1.is_empty());
    assert_eq!(legend_labels("{{bot_id}} dropped: {{ reason }}"), ["bot_id", "reason"]);
}

#[test]
fn the_dashboards_queries_name_only_exported_metrics_and_labels() {
    let dashboard = dashboard();
    let queries = queries(&dashboard);
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let mut problems = Vec::new();
    let mut shown = BTreeSet::new();
    for query in &queries {
        let found = names(&query.expr);
        let at = format!("panel {:?}, query {}", query.panel, query.expr);
        if found.selectors.is_empty() {
            problems.push(format!("{at}: no multibot metric"));
        }
        // The labels any part of the query may use: its metrics', Prometheus's, and a histogram bucket's `le`.
        let mut known: BTreeSet<&str> = SCRAPE_LABELS.iter().copied().collect();
        for (series, labels) in &found.selectors {
            let Some(metric) = exported(series) else {
                problems.push(format!("{at}: {series} is not exported (telemetry::metrics::ALL)"));
                continue;
            };
            shown.insert(metric.name);
            let bucket = series.ends_with("_bucket");
            known.extend(metric.labels);
            known.extend(bucket.then_some("le"));
            for label in labels {
                let exists = metric.labels.contains(&label.as_str())
                    || SCRAPE_LABELS.contains(&label.as_str())
                    || (bucket && label == "le");
                if !exists {
                    problems.push(format!("{at}: {series} has no label {label}"));
                }
            }
        }
        for label in found.grouping.iter().filter(|l| !known.contains(l.as_str())) {
            problems.push(format!("{at}: groups by {label}, which none of its metrics has"));
        }
        // A legend names what the query's result keeps: its outermost grouping, or all labels without one.
        for label in legend_labels(&query.legend) {
            if !known.contains(label.as_str()) {
                problems.push(format!("{at}: legend {{{{{label}}}}} names a label none of its metrics has"));
            }
        }
    }
    for metric in ALL.iter().filter(|m| !shown.contains(m.name)) {
        problems.push(format!("{} is exported but no panel shows it", metric.name));
    }
    // The bot filter lists the bots by a label they have.
    let variables = dashboard["templating"]["list"].as_array().expect("templating.list");
    let bot = variables.iter().find(|v| v["name"] == "bot_id").expect("a bot_id variable");
    let definition = bot["definition"].as_str().expect("bot_id's definition");
    let (series, label) = definition
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|args| args.split_once(','))
        .unwrap_or_else(|| panic!("bot_id is not label_values(metric, label): {definition}"));
    let metric = exported(series.trim()).unwrap_or_else(|| panic!("bot_id lists {series}, which is not exported"));
    assert!(metric.labels.contains(&label.trim()), "{} has no label {label}", metric.name);
    assert_eq!(bot["query"]["query"].as_str(), Some(definition), "bot_id's query and definition differ");
    assert!(bot["multi"] == true && bot["includeAll"] == true, "bot_id is a multi-select with All");
    assert!(problems.is_empty(), "{DASHBOARD}:\n{}", problems.join("\n"));
}

#[test]
fn every_panel_has_a_title_and_the_dashboards_data_source() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion");
    assert_eq!(dashboard["uid"], "multibot");
    let variables = dashboard["templating"]["list"].as_array().expect("templating.list");
    let source = variables.iter().find(|v| v["name"] == "datasource").expect("a datasource variable");
    assert_eq!((&source["type"], &source["query"]), (&Value::from("datasource"), &Value::from("prometheus")));
    let mut all = Vec::new();
    panels(&dashboard["panels"], &mut all);
    let mut ids = BTreeSet::new();
    for panel in all {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.trim().is_empty(), "a panel without a title: {panel}");
        assert!(ids.insert(panel["id"].as_u64().expect("a panel id")), "two panels have id {}", panel["id"]);
        if panel["type"] == "row" {
            continue;
        }
        let prometheus = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
        assert_eq!(panel["datasource"], prometheus, "{title}: data source");
        for target in panel["targets"].as_array().expect("targets") {
            assert!(target["datasource"].is_null() || target["datasource"] == prometheus, "{title}: data source");
            assert!(target["refId"].is_string(), "{title}: a target without refId");
        }
    }
}

/// The one service of the base Compose file named `name`.
fn service<'a>(compose: &'a Yaml<'static>, name: &str) -> &'a Yaml<'static> {
    get(get(compose, "services"), name)
}

/// `(host path, container path)` of a service's read-only bind mounts; a named volume is left out.
fn bind_mounts(service: &Yaml<'static>) -> Vec<(PathBuf, String)> {
    let mut mounts = Vec::new();
    for volume in get(service, "volumes").as_sequence().expect("volumes") {
        let volume = volume.as_str().expect("a short volume syntax");
        let parts: Vec<&str> = volume.split(':').collect();
        if !parts[0].starts_with('.') {
            continue;
        }
        assert_eq!(parts.get(2), Some(&"ro"), "{volume} is not read-only");
        mounts.push((root().join("docker").join(parts[0]), parts[1].to_owned()));
    }
    mounts
}

#[test]
fn the_monitoring_profile_scrapes_multibot_and_provisions_grafana() {
    let compose = manifest("docker/docker-compose.yml");
    let profiles = |name: &str| -> Vec<String> {
        lookup(service(&compose, name), "profiles")
            .and_then(Yaml::as_sequence)
            .map(|p| p.iter().map(|p| p.as_str().expect("a profile").to_owned()).collect())
            .unwrap_or_default()
    };
    // `docker compose up` starts the application alone; `--profile monitoring` adds Prometheus and Grafana.
    for name in ["multibot", "postgres", "redis"] {
        assert!(profiles(name).is_empty(), "{name} must start without a profile");
    }
    for name in ["prometheus", "grafana"] {
        assert_eq!(profiles(name), ["monitoring"], "{name}");
        let image = get(service(&compose, name), "image").as_str().unwrap();
        let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or_default();
        assert!(tag.chars().next().is_some_and(|c| c.is_ascii_digit() || c == 'v'), "{image} is not pinned");
        for (host, _) in bind_mounts(service(&compose, name)) {
            assert!(host.exists(), "{name} mounts {}, which does not exist", host.display());
        }
    }

    // Prometheus reads deploy/prometheus/prometheus.yml, which scrapes multibot's /metrics on its health port.
    let mounts = bind_mounts(service(&compose, "prometheus"));
    let (config, _) = mounts.iter().find(|(_, inside)| inside == "/etc/prometheus/prometheus.yml").expect("config");
    assert_eq!(config.canonicalize().unwrap(), root().join("deploy/prometheus/prometheus.yml").canonicalize().unwrap());
    let prometheus = manifest("deploy/prometheus/prometheus.yml");
    let jobs = get(&prometheus, "scrape_configs").as_sequence().expect("scrape_configs");
    let job = jobs.iter().find(|j| get(j, "job_name").as_str() == Some("multibot")).expect("a multibot job");
    assert_eq!(get(job, "metrics_path").as_str(), Some("/metrics"));
    let health = Settings::from_env(&|_| None).unwrap().health_check_port;
    let discovery = &get(job, "dns_sd_configs").as_sequence().expect("dns_sd_configs")[0];
    let names = get(discovery, "names").as_sequence().expect("names");
    assert!(names.iter().any(|n| n.as_str() == Some("multibot")), "Prometheus looks up {names:?}");
    assert_eq!(get(discovery, "port").as_integer(), Some(i64::from(health)));
    let environment = get(service(&compose, "multibot"), "environment");
    assert_eq!(get(environment, "HEALTH_CHECK_PORT").as_str(), Some(health.to_string().as_str()));

    // Grafana: its data source is that Prometheus, its dashboards folder is this repository's.
    let grafana = service(&compose, "grafana");
    let environment = get(grafana, "environment");
    assert_eq!(get(environment, "GF_AUTH_ANONYMOUS_ENABLED").as_str(), Some("false"));
    let password = get(environment, "GF_SECURITY_ADMIN_PASSWORD").as_str().unwrap();
    assert!(password.starts_with("${GRAFANA_ADMIN_PASSWORD:-"), "{password}");
    let ports = get(grafana, "ports").as_sequence().expect("ports");
    assert!(ports.iter().any(|p| p.as_str() == Some("3000:3000")), "{ports:?}");
    let mounted: BTreeMap<String, PathBuf> = bind_mounts(grafana)
        .into_iter()
        .map(|(host, inside)| (inside, host.canonicalize().expect("a mounted path")))
        .collect();
    let provisioning = root().join("deploy/grafana/provisioning").canonicalize().unwrap();
    for kind in ["datasources", "dashboards"] {
        assert_eq!(mounted.get(&format!("/etc/grafana/provisioning/{kind}")), Some(&provisioning.join(kind)), "{kind}");
    }
    let sources = manifest("deploy/grafana/provisioning/datasources/prometheus.yml");
    let source = &get(&sources, "datasources").as_sequence().expect("datasources")[0];
    assert_eq!(get(source, "type").as_str(), Some("prometheus"));
    assert_eq!(get(source, "url").as_str(), Some("http://prometheus:9090"));
    let providers = manifest("deploy/grafana/provisioning/dashboards/multibot.yml");
    let provider = &get(&providers, "providers").as_sequence().expect("providers")[0];
    let folder = get(get(provider, "options"), "path").as_str().expect("options.path");
    let dashboards = root().join("deploy/grafana/dashboards").canonicalize().unwrap();
    assert_eq!(mounted.get(folder), Some(&dashboards), "Grafana's {folder} is not deploy/grafana/dashboards");
    assert!(dashboards.join("multibot.json").is_file());
}

/// `promtool` from `PROMTOOL` or `PATH`, if there is one.
fn promtool() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PROMTOOL").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join("promtool")).find(|p| p.is_file())
}

#[test]
fn promtool_accepts_the_prometheus_config_and_every_query() {
    // .ci/run fetches promtool; elsewhere the check is skipped, loudly.
    let found = promtool();
    if !crate::helpers::service_available("promtool (PROMTOOL or PATH)", found.is_some()) {
        return;
    }
    let Some(promtool) = found else { return };
    let check = |args: &[&str]| {
        let output = Command::new(&promtool).args(args).output().expect("promtool runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "promtool {args:?}:\n{text}");
    };
    let config = root().join("deploy/prometheus/prometheus.yml");
    check(&["check", "config", "--syntax-only", config.to_str().unwrap()]);

    // Each query as a recording rule, with Grafana's variables replaced by what Grafana would put there.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, query) in queries(&dashboard()).iter().enumerate() {
        let expr = query.expr.replace("$__rate_interval", "1m").replace("$__range", "3h").replace("$bot_id", ".*");
        assert!(!expr.contains('$'), "a Grafana variable promtool would not understand: {expr}");
        // A JSON string is a YAML double-quoted scalar.
        let expr = serde_json::to_string(&expr).unwrap();
        rules.push_str(&format!("      - record: dashboard:query_{index}\n        expr: {expr}\n"));
    }
    let dir = TempDir::new();
    let file = dir.write("dashboard.rules.yml", &rules);
    check(&["check", "rules", file.to_str().unwrap()]);
}
