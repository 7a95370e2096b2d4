//! The rules a bot file must follow beyond the types of `schema.rs`: which fields are required
//! ([`required`]), the rule of a single value by its field path ([`rule`], applied while reading), and the
//! checks that span fields ([`check`]): webhook mode needs the webhook server, and plugins must exist, be
//! listed once, have their dependencies loaded without cycles and a `config:` their plugin accepts.

use std::collections::{HashMap, HashSet};

use super::{
    BotConfig, BotId, BotToken, Mode, PluginCatalog,
    reader::{Reader, Rule, Rules, field_path, index_path},
    yaml::{Node, Pos, Value},
};

/// What the environment says about the webhook server, which `mode: webhook` needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookEnv {
    /// `WEBHOOK_ENABLED` is true.
    pub enabled: bool,
    /// `WEBHOOK_BASE_URL` is set.
    pub base_url_set: bool,
}

/// The rules the reader checks.
pub(super) const RULES: Rules = Rules { rule, required };

const PARSE_MODES: &[&str] = &["HTML", "MarkdownV2", "Markdown"];

/// Whether the field at `path` (e.g. `plugins[2].name`) must be written.
pub(super) fn required(path: &str) -> bool {
    matches!(generic(path).as_str(), "id" | "name" | "token" | "plugins[].name")
}

/// The rule of the value at `path`, if it has one beyond its type.
pub(super) fn rule(path: &str) -> Option<Rule> {
    let rule = match generic(path).as_str() {
        "id" => Rule::Text { check: bot_id, stand_in: "stand-in" },
        "name" => Rule::Text { check: non_empty, stand_in: "stand-in" },
        "token" => {
            Rule::Text { check: |token| BotToken::parse(token).map(drop), stand_in: "1:stand-in-for-a-malformed-token" }
        }
        "webhook.path" => Rule::Text { check: webhook_path, stand_in: "/" },
        "webhook.max_connections" => Rule::Int { min: 1, max: 100 },
        "settings.parse_mode" => Rule::Text { check: parse_mode, stand_in: "HTML" },
        "settings.handler_timeout" => Rule::Int { min: 0, max: 86_400 },
        "rate_limiting.default_rate" | "rate_limiting.burst_size" => Rule::Int { min: 1, max: u32::MAX.into() },
        "plugins[].http.allow[]" => Rule::Text { check: super::http_allow::check_pattern, stand_in: "example.com" },
        _ => return None,
    };
    Some(rule)
}

/// `path` without its indexes: `plugins[2].name` -> `plugins[].name`.
fn generic(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            c => out.push(c),
        }
    }
    out
}

/// The id the admin bot runs under (`ADMIN_BOT_ID` in `fleet::admin`, a layer above).
const ADMIN: &str = "admin";

fn bot_id(id: &str) -> Result<(), String> {
    BotId::parse(id)?;
    if id == ADMIN {
        return Err("the id \"admin\" is reserved for the admin bot (ADMIN_BOT_TOKEN); choose another".to_owned());
    }
    Ok(())
}

fn non_empty(name: &str) -> Result<(), String> {
    if name.trim().is_empty() { Err("name must not be empty".to_owned()) } else { Ok(()) }
}

fn webhook_path(path: &str) -> Result<(), String> {
    let valid = path.starts_with('/')
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(format!("invalid webhook path {path:?}: it must start with / and use only A-Z a-z 0-9 / _ - ."))
    }
}

fn parse_mode(mode: &str) -> Result<(), String> {
    if PARSE_MODES.iter().any(|known| known.eq_ignore_ascii_case(mode)) {
        Ok(())
    } else {
        Err(format!("unknown parse_mode {mode:?}, expected one of: {}", PARSE_MODES.join(", ")))
    }
}

/// The checks that span fields, on a config read by `reader` (problems go to the reader).
pub(super) fn check(config: &BotConfig, reader: &Reader<'_>, catalog: &dyn PluginCatalog, webhooks: WebhookEnv) {
    if let (Mode::Webhook, Some(node)) = (config.mode, reader.node("mode")) {
        if !webhooks.enabled {
            reader.error(node.pos, "mode", "mode is webhook but WEBHOOK_ENABLED is not true");
        }
        if !webhooks.base_url_set {
            reader.error(node.pos, "mode", "mode is webhook but WEBHOOK_BASE_URL is not set");
        }
    }
    plugins(config, reader, catalog);
}

/// One entry of `plugins:` that was a mapping.
struct Draft<'a> {
    /// `plugins[i]`.
    path: String,
    /// The entry's mapping.
    node: &'a Node,
    /// The name and its node, when it was read without a problem.
    name: Option<(&'a str, &'a Node)>,
    enabled: bool,
    /// The `config` block when it was read without a problem, and its node (`None` when absent or null).
    config: Option<(&'a serde_json::Value, Option<&'a Node>)>,
}

/// `plugins:`, each entry checked against the catalog and the other entries.
fn plugins(config: &BotConfig, reader: &Reader<'_>, catalog: &dyn PluginCatalog) {
    let drafts: Vec<Draft<'_>> = config
        .plugins
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            let path = index_path("plugins", i);
            let node = reader.node(&path).filter(|node| matches!(node.value, Value::Map(_) | Value::Null))?;
            let (name_path, config_path) = (field_path(&path, "name"), field_path(&path, "config"));
            let name = reader.node(&name_path).filter(|_| !reader.failed(&name_path)).map(|n| (entry.name.as_str(), n));
            let block = reader.node(&config_path).filter(|node| node.value != Value::Null);
            let config = (!reader.failed(&config_path)).then_some((&entry.config, block));
            Some(Draft { path, node, name, enabled: entry.enabled, config })
        })
        .collect();

    // name -> index of its first entry, and the catalog's dependencies of known plugins.
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut dependencies: HashMap<&str, Vec<String>> = HashMap::new();
    for (index, draft) in drafts.iter().enumerate() {
        let Some((name, name_node)) = draft.name else {
            continue;
        };
        let name_path = field_path(&draft.path, "name");
        if let Some(&earlier) = first.get(name) {
            let message = format!("plugin {name:?} is listed twice (also at {})", drafts[earlier].path);
            reader.error(name_node.pos, &name_path, message);
            continue;
        }
        first.insert(name, index);
        if name == ADMIN {
            let message = "the admin plugin runs only in the admin bot (ADMIN_BOT_TOKEN); a bot file may not list it";
            reader.error(name_node.pos, &name_path, message.to_owned());
            continue;
        }
        match catalog.dependencies(name) {
            Some(deps) => {
                dependencies.insert(name, deps);
                check_plugin_config(reader, draft, name, catalog);
            }
            None => reader.error(name_node.pos, &name_path, format!("unknown plugin {name:?}")),
        }
    }

    // Dependencies count among enabled entries only: a disabled plugin is not loaded.
    let loaded: Vec<(&str, &Node, &str)> = drafts
        .iter()
        .enumerate()
        .filter(|(_, draft)| draft.enabled)
        .filter_map(|(index, draft)| {
            let (name, node) = draft.name?;
            (first.get(name) == Some(&index)).then_some((name, node, draft.path.as_str()))
        })
        .collect();
    let loaded_names: HashSet<&str> = loaded.iter().map(|(name, _, _)| *name).collect();
    for (name, node, path) in &loaded {
        for dep in dependencies.get(name).into_iter().flatten() {
            if !loaded_names.contains(dep.as_str()) {
                let message = format!("plugin {name:?} depends on {dep:?}, which this bot does not load");
                reader.error(node.pos, &field_path(path, "name"), message);
            }
        }
    }
    for cycle in cycles(&loaded.iter().map(|(name, _, _)| *name).collect::<Vec<_>>(), &dependencies) {
        if let Some((_, node, path)) = loaded.iter().find(|(name, _, _)| *name == cycle[0]) {
            let message = format!("circular plugin dependency: {}", cycle.join(" -> "));
            reader.error(node.pos, &field_path(path, "name"), message);
        }
    }
}

/// Asks the catalog about a plugin's `config:` and reports its verdict at the node it names.
fn check_plugin_config(reader: &Reader<'_>, draft: &Draft<'_>, name: &str, catalog: &dyn PluginCatalog) {
    let Some((config, block)) = draft.config else {
        return;
    };
    let Err((inner, message)) = catalog.check_config(name, config) else {
        return;
    };
    let config_path = field_path(&draft.path, "config");
    let path = if inner.is_empty() {
        config_path
    } else if inner.starts_with('[') {
        format!("{config_path}{inner}")
    } else {
        format!("{config_path}.{inner}")
    };
    let pos = match block {
        Some(block) => locate(block, &inner),
        None => draft.node.pos,
    };
    reader.error(pos, &path, message);
}

/// The node that an inner path (`commands[1].command`) names inside `block`, or the deepest one that exists.
fn locate(block: &Node, inner: &str) -> Pos {
    let mut node = block;
    for segment in inner.split('.') {
        let (key, indexes) = segment.split_once('[').map_or((segment, ""), |(key, rest)| (key, rest));
        if !key.is_empty() {
            let Value::Map(pairs) = &node.value else {
                return node.pos;
            };
            match pairs.iter().find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key)) {
                Some((_, value)) => node = value,
                None => return node.pos,
            }
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let element = index.trim_end_matches(']').parse::<usize>().ok().and_then(|i| match &node.value {
                Value::Seq(items) => items.get(i),
                _ => None,
            });
            match element {
                Some(element) => node = element,
                None => return node.pos,
            }
        }
    }
    node.pos
}
/// The dependency cycles among `plugins` (in the order given), each starting at its earliest plugin and
/// ending where it started: `[a, b, a]`.
fn cycles<'a>(plugins: &[&'a str], dependencies: &HashMap<&str, Vec<String>>) -> Vec<Vec<&'a str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(at: usize, edges: &[Vec<usize>], marks: &mut [Mark], stack: &mut Vec<usize>, found: &mut Vec<Vec<usize>>) {
        marks[at] = Mark::Open;
        stack.push(at);
        for &next in &edges[at] {
            match marks[next] {
                Mark::New => visit(next, edges, marks, stack, found),
                Mark::Open => {
                    if let Some(start) = stack.iter().position(|&i| i == next) {
                        let mut cycle = stack[start..].to_vec();
                        // Rotate so the earliest plugin comes first: one cycle, one spelling.
                        if let Some(min) = cycle.iter().enumerate().min_by_key(|(_, i)| **i).map(|(k, _)| k) {
                            cycle.rotate_left(min);
                        }
                        if !found.contains(&cycle) {
                            found.push(cycle);
                        }
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[at] = Mark::Done;
    }

    let index: HashMap<&str, usize> = plugins.iter().enumerate().map(|(i, name)| (*name, i)).collect();
    let edges: Vec<Vec<usize>> = plugins
        .iter()
        .map(|name| {
            dependencies.get(name).into_iter().flatten().filter_map(|dep| index.get(dep.as_str()).copied()).collect()
        })
        .collect();
    let mut marks = vec![Mark::New; plugins.len()];
    let mut found = Vec::new();
    for start in 0..plugins.len() {
        if marks[start] == Mark::New {
            visit(start, &edges, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|cycle| {
            let mut names: Vec<&str> = cycle.iter().map(|&i| plugins[i]).collect();
            names.push(plugins[cycle[0]]);
            names
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_found_once_each_from_their_earliest_plugin() {
        let deps: HashMap<&str, Vec<String>> = [
            ("v", vec!["x".to_owned()]),
            ("x", vec!["y".to_owned()]),
            ("y", vec!["z".to_owned(), "gone".to_owned()]),
            ("z", vec!["x".to_owned()]),
            ("w", vec!["w".to_owned()]),
        ]
        .into_iter()
        .collect();
        assert_eq!(cycles(&["v", "z", "y", "x", "w"], &deps), vec![vec!["z", "x", "y", "z"], vec!["w", "w"]]);
        assert!(cycles(&["v", "x", "y"], &deps).is_empty());
    }
}
