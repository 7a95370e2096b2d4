//! Loading bot YAML files: [`parse_bot_file`] checks one file against the schema of the spec's "Bot
//! Configuration (YAML)" section, substitutes `${VAR}` / `${VAR:-default}` in every string it reads and checks
//! plugins against the [`PluginCatalog`]; [`load_dir`] loads a whole directory into a [`LoadedConfig`] and adds
//! the checks that span files (ids, tokens and webhook paths must be unique). Every problem is reported as a
//! [`ConfigError`] with file, line, column and field path, not just the first one.

use std::{
    collections::{HashMap, HashSet},
    fmt, fs,
    path::{Path, PathBuf},
};

use serde_json::{Map, Number, Value as Json};

use super::{
    AccessConfig, BotConfig, BotId, BotSettings, BotToken, ConfigError, FsmStrategy, Mode, PluginCatalog, PluginEntry,
    RateLimitConfig, WebhookConfig,
    yaml::{self, Node, Pos, Value},
};

/// What the environment says about the webhook server, which `mode: webhook` needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookEnv {
    /// `WEBHOOK_ENABLED` is true.
    pub enabled: bool,
    /// `WEBHOOK_BASE_URL` is set.
    pub base_url_set: bool,
}

/// The outcome of loading a directory: the bots that passed every check, the problems, and the files seen.
#[derive(Debug, Clone, Default)]
pub struct LoadedConfig {
    /// Valid bots, in file-name order.
    pub bots: Vec<BotConfig>,
    /// Every problem found; a file with problems contributes no bot.
    pub errors: Vec<ConfigError>,
    /// Every `*.yaml` / `*.yml` file of the directory, in file-name order.
    pub files: Vec<PathBuf>,
}

const ROOT_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "token",
    "enabled",
    "mode",
    "webhook",
    "settings",
    "plugins",
    "access",
    "rate_limiting",
    "fsm_strategy",
];
const WEBHOOK_FIELDS: &[&str] = &["path", "max_connections"];
const SETTINGS_FIELDS: &[&str] = &["parse_mode", "disable_web_page_preview"];
const PLUGIN_FIELDS: &[&str] = &["name", "enabled", "config"];
const ACCESS_FIELDS: &[&str] = &["allowed_users", "blocked_users", "admin_users"];
const RATE_LIMIT_FIELDS: &[&str] = &["enabled", "default_rate", "burst_size"];
const PARSE_MODES: &[&str] = &["HTML", "MarkdownV2", "Markdown"];

/// Parses and checks one bot file; `text` is its content, `env` looks up variables for `${VAR}`.
pub fn parse_bot_file(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    catalog: &dyn PluginCatalog,
    webhooks: WebhookEnv,
) -> Result<BotConfig, Vec<ConfigError>> {
    parse_with_anchors(file, text, env, catalog, webhooks).map(|(config, _)| config)
}

/// Loads every `*.yaml` and `*.yml` file of `dir` (not recursively, in file-name order), keeping the valid bots.
pub fn load_dir(
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    catalog: &dyn PluginCatalog,
    webhooks: WebhookEnv,
) -> LoadedConfig {
    let mut loaded = LoadedConfig::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            loaded.errors.push(whole_file(dir, format!("cannot read config directory: {e}")));
            return loaded;
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let path = entry.path();
                if is_bot_file(&path) {
                    files.push(path);
                }
            }
            Err(e) => loaded.errors.push(whole_file(dir, format!("cannot list config directory: {e}"))),
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));

    let mut taken = Taken::default();
    for path in files {
        match fs::read_to_string(&path) {
            Ok(text) => match parse_with_anchors(&path, &text, env, catalog, webhooks) {
                Ok((config, anchors)) => {
                    let clashes = taken.clashes(&config, &anchors, &loaded.bots);
                    if clashes.is_empty() {
                        taken.insert(&config, loaded.bots.len());
                        loaded.bots.push(config);
                    } else {
                        loaded.errors.extend(clashes);
                    }
                }
                Err(errors) => loaded.errors.extend(errors),
            },
            Err(e) => loaded.errors.push(whole_file(&path, format!("cannot read file: {e}"))),
        }
        loaded.files.push(path);
    }
    loaded
}

/// A regular file named `*.yaml` / `*.yml`; hidden files (editor locks and backups) are not bot files.
fn is_bot_file(path: &Path) -> bool {
    let visible = path.file_name().and_then(|name| name.to_str()).is_some_and(|name| !name.starts_with('.'));
    let yaml = path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml");
    visible && yaml && path.is_file()
}

/// An error about a whole file or directory.
fn whole_file(file: &Path, message: String) -> ConfigError {
    ConfigError { file: file.to_path_buf(), line: 0, column: 0, path: String::new(), message }
}

/// Where the values that must be unique across files were written, to report a clash there.
#[derive(Debug, Clone, Copy)]
struct Anchors {
    id: Pos,
    token: Pos,
    /// The `mode` value, when given.
    mode: Option<Pos>,
    /// The `webhook.path` value, when given.
    webhook_path: Option<Pos>,
}

/// The ids, tokens and webhook paths of the bots kept so far.
#[derive(Debug, Default)]
struct Taken {
    /// Bot id -> index in the kept bots.
    ids: HashMap<BotId, usize>,
    /// Telegram user id of the token -> indexes of the kept bots with a token for it.
    tokens: HashMap<i64, Vec<usize>>,
    /// Effective webhook path -> index of the kept bot.
    webhook_paths: HashMap<String, usize>,
}

impl Taken {
    /// The errors that keep `config` from joining `kept`, reported in `config`'s file.
    fn clashes(&self, config: &BotConfig, at: &Anchors, kept: &[BotConfig]) -> Vec<ConfigError> {
        let error = |pos: Pos, path: &str, message: String| ConfigError {
            file: config.file.clone(),
            line: pos.line,
            column: pos.column,
            path: path.to_owned(),
            message,
        };
        let mut errors = Vec::new();
        if let Some(other) = self.ids.get(&config.id).and_then(|&i| kept.get(i)) {
            errors.push(error(
                at.id,
                "id",
                format!("bot id {:?} is also defined in {}", config.id.as_str(), other.file.display()),
            ));
        }
        let same_token = self
            .tokens
            .get(&config.token.user_id())
            .into_iter()
            .flatten()
            .filter_map(|&i| kept.get(i))
            .find(|other| other.token == config.token);
        if let Some(other) = same_token {
            errors.push(error(
                at.token,
                "token",
                format!("this token is also used by bot {:?} in {}", other.id.as_str(), other.file.display()),
            ));
        }
        if let Some(path) = webhook_path(config)
            && let Some(other) = self.webhook_paths.get(&path).and_then(|&i| kept.get(i))
        {
            let (pos, field) = match (at.webhook_path, at.mode) {
                (Some(pos), _) => (pos, "webhook.path"),
                (None, Some(pos)) => (pos, "mode"),
                (None, None) => (at.id, "id"),
            };
            errors.push(error(
                pos,
                field,
                format!(
                    "webhook path {path:?} is also used by bot {:?} in {}",
                    other.id.as_str(),
                    other.file.display()
                ),
            ));
        }
        errors
    }

    /// Records `config`, kept at `index`.
    fn insert(&mut self, config: &BotConfig, index: usize) {
        self.ids.insert(config.id.clone(), index);
        self.tokens.entry(config.token.user_id()).or_default().push(index);
        if let Some(path) = webhook_path(config) {
            self.webhook_paths.insert(path, index);
        }
    }
}

/// The path a webhook bot is served at (after `/webhook`); `None` for a polling bot.
fn webhook_path(config: &BotConfig) -> Option<String> {
    (config.mode == Mode::Webhook).then(|| config.webhook.path.clone().unwrap_or_else(|| format!("/{}", config.id)))
}

/// [`parse_bot_file`], also returning where the values checked across files were written.
fn parse_with_anchors(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    catalog: &dyn PluginCatalog,
    webhooks: WebhookEnv,
) -> Result<(BotConfig, Anchors), Vec<ConfigError>> {
    // An empty file reads as an empty mapping, so that it reports the missing required fields.
    let root = yaml::parse(file, text)?.unwrap_or(Node { pos: Pos { line: 1, column: 1 }, value: Value::Null });
    let mut checker = Checker { file, env, errors: Vec::new() };
    let result = checker.bot(&root, catalog, webhooks);
    let mut errors = checker.errors;
    match result {
        Some((mut config, anchors)) if errors.is_empty() => {
            config.hash = fingerprint(&config);
            Ok((config, anchors))
        }
        _ => {
            errors.sort_by_key(|e| (e.line, e.column));
            Err(errors)
        }
    }
}

/// Walks one file's tree, collecting every problem.
struct Checker<'a> {
    file: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

/// The fields of a schema mapping that are allowed, with their values.
struct Fields<'n> {
    /// Where the mapping starts.
    pos: Pos,
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'n> Fields<'n> {
    /// The value of `name`, `None` when absent or null (which both mean the default).
    fn get(&self, name: &str) -> Option<&'n Node> {
        self.raw(name).filter(|node| node.value != Value::Null)
    }

    /// The value of `name` as written, null included.
    fn raw(&self, name: &str) -> Option<&'n Node> {
        self.entries.iter().find(|(key, _)| *key == name).map(|(_, node)| *node)
    }
}

/// `parent.key`.
fn field_path(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

/// `parent[index]`.
fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// One entry of `plugins:` as far as it could be read.
struct PluginDraft<'n> {
    /// `plugins[i]`.
    path: String,
    /// The entry's mapping.
    node: &'n Node,
    /// The `name` value and its node.
    name: Option<(String, &'n Node)>,
    enabled: bool,
    /// The `config` block, `None` when absent or null.
    config_node: Option<&'n Node>,
    /// The converted block; `None` when it has problems (already reported).
    config: Option<Json>,
}

impl Checker<'_> {
    fn error(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn type_error(&mut self, node: &Node, path: &str, expected: &str) {
        let message = format!("expected {expected}, found {}", node.value.kind());
        self.error(node.pos, path, message);
    }

    /// The allowed fields of a mapping (null reads as an empty one); other keys are reported.
    fn fields<'n>(&mut self, node: &'n Node, path: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let pairs = match &node.value {
            Value::Null => &[][..],
            Value::Map(pairs) => pairs.as_slice(),
            _ => {
                self.type_error(node, path, "a mapping");
                return None;
            }
        };
        let mut entries = Vec::new();
        for (key, value) in pairs {
            match &key.value {
                Value::Str(name) if allowed.contains(&name.as_str()) => entries.push((name.as_str(), value)),
                Value::Str(name) => {
                    let message = format!("unknown field {name:?}, expected one of: {}", allowed.join(", "));
                    self.error(key.pos, &field_path(path, name), message);
                }
                other => {
                    let message = format!("expected a field name, found {}", other.kind());
                    self.error(key.pos, path, message);
                }
            }
        }
        Some(Fields { pos: node.pos, entries })
    }

    /// A required field's node, or an error at the mapping.
    fn required<'n>(&mut self, fields: &Fields<'n>, name: &str, path: &str) -> Option<&'n Node> {
        let node = fields.raw(name);
        if node.is_none() {
            self.error(fields.pos, &field_path(path, name), format!("missing required field {name:?}"));
        }
        node
    }

    /// A string, after `${VAR}` substitution.
    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        let Value::Str(text) = &node.value else {
            self.type_error(node, path, "a string");
            return None;
        };
        match substitute(text, self.env) {
            Ok(text) => Some(text),
            Err(problems) => {
                for message in problems {
                    self.error(node.pos, path, message);
                }
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.type_error(node, path, "a boolean");
                None
            }
        }
    }

    fn integer(&mut self, node: &Node, path: &str) -> Option<i64> {
        match node.value {
            Value::Int(i) => Some(i),
            _ => {
                self.type_error(node, path, "an integer");
                None
            }
        }
    }

    /// An integer from `min` to `max`.
    fn bounded(&mut self, node: &Node, path: &str, min: u32, max: u32) -> Option<u32> {
        let value = self.integer(node, path)?;
        match u32::try_from(value) {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            _ if max == u32::MAX && value < i64::from(min) => {
                self.error(node.pos, path, format!("expected an integer of at least {min}, found {value}"));
                None
            }
            _ => {
                self.error(node.pos, path, format!("expected an integer from {min} to {max}, found {value}"));
                None
            }
        }
    }

    /// An optional field read by `read`; the default when absent, null or invalid (invalid is reported).
    fn optional<'n, T>(
        &mut self,
        fields: &Fields<'n>,
        name: &str,
        path: &str,
        default: T,
        read: impl FnOnce(&mut Self, &'n Node, &str) -> Option<T>,
    ) -> T {
        match fields.get(name) {
            Some(node) => read(self, node, &field_path(path, name)).unwrap_or(default),
            None => default,
        }
    }

    /// The whole bot; `None` when a required value is unusable (the problem is reported).
    fn bot(&mut self, root: &Node, catalog: &dyn PluginCatalog, webhooks: WebhookEnv) -> Option<(BotConfig, Anchors)> {
        let top = self.fields(root, "", ROOT_FIELDS)?;

        let id_node = self.required(&top, "id", "");
        let id = id_node.and_then(|node| {
            let text = self.string(node, "id")?;
            BotId::parse(&text).map_err(|message| self.error(node.pos, "id", message)).ok()
        });
        let name = self.required(&top, "name", "").and_then(|node| {
            let name = self.string(node, "name")?;
            if name.trim().is_empty() {
                self.error(node.pos, "name", "name must not be empty");
                return None;
            }
            Some(name)
        });
        let description = self.optional(&top, "description", "", None, |c, node, path| c.string(node, path).map(Some));
        let token_node = self.required(&top, "token", "");
        let token = token_node.and_then(|node| {
            let text = self.string(node, "token")?;
            BotToken::parse(&text).map_err(|message| self.error(node.pos, "token", message)).ok()
        });
        let enabled = self.optional(&top, "enabled", "", true, Self::boolean);
        let mode_node = top.get("mode");
        let mode = self.optional(&top, "mode", "", Mode::Polling, Self::mode);
        let (webhook, webhook_path) = match top.get("webhook") {
            Some(node) => self.webhook(node),
            None => (default_webhook(), None),
        };
        let settings = match top.get("settings") {
            Some(node) => self.settings(node),
            None => BotSettings::default(),
        };
        let plugins = match top.get("plugins") {
            Some(node) => self.plugins(node, catalog),
            None => Vec::new(),
        };
        let access = match top.get("access") {
            Some(node) => self.access(node),
            None => AccessConfig::default(),
        };
        let rate_limiting = match top.get("rate_limiting") {
            Some(node) => self.rate_limiting(node),
            None => default_rate_limiting(),
        };
        let fsm_strategy = self.optional(&top, "fsm_strategy", "", FsmStrategy::UserInChat, Self::fsm_strategy);

        if let (Mode::Webhook, Some(node)) = (mode, mode_node) {
            if !webhooks.enabled {
                self.error(node.pos, "mode", "mode is webhook but WEBHOOK_ENABLED is not true");
            }
            if !webhooks.base_url_set {
                self.error(node.pos, "mode", "mode is webhook but WEBHOOK_BASE_URL is not set");
            }
        }

        let anchors =
            Anchors { id: id_node?.pos, token: token_node?.pos, mode: mode_node.map(|node| node.pos), webhook_path };
        let config = BotConfig {
            id: id?,
            name: name?,
            description,
            token: token?,
            enabled,
            mode,
            webhook,
            settings,
            plugins,
            access,
            rate_limiting,
            fsm_strategy,
            file: self.file.to_path_buf(),
            hash: String::new(),
        };
        Some((config, anchors))
    }

    fn mode(&mut self, node: &Node, path: &str) -> Option<Mode> {
        match self.string(node, path)?.as_str() {
            "polling" => Some(Mode::Polling),
            "webhook" => Some(Mode::Webhook),
            other => {
                self.error(node.pos, path, format!("unknown mode {other:?}, expected polling or webhook"));
                None
            }
        }
    }

    fn fsm_strategy(&mut self, node: &Node, path: &str) -> Option<FsmStrategy> {
        match self.string(node, path)?.as_str() {
            "GLOBAL_USER" => Some(FsmStrategy::GlobalUser),
            "USER_IN_CHAT" => Some(FsmStrategy::UserInChat),
            "CHAT" => Some(FsmStrategy::Chat),
            other => {
                let message =
                    format!("unknown fsm_strategy {other:?}, expected one of: GLOBAL_USER, USER_IN_CHAT, CHAT");
                self.error(node.pos, path, message);
                None
            }
        }
    }

    /// `webhook:` and where its `path` was written.
    fn webhook(&mut self, node: &Node) -> (WebhookConfig, Option<Pos>) {
        let Some(fields) = self.fields(node, "webhook", WEBHOOK_FIELDS) else {
            return (default_webhook(), None);
        };
        let path = self.optional(&fields, "path", "webhook", None, |c, node, path| {
            let value = c.string(node, path)?;
            let valid = value.starts_with('/')
                && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'));
            if valid {
                Some(Some(value))
            } else {
                let message =
                    format!("invalid webhook path {value:?}: it must start with / and use only A-Z a-z 0-9 / _ - .");
                c.error(node.pos, path, message);
                None
            }
        });
        let max_connections =
            self.optional(&fields, "max_connections", "webhook", 40, |c, node, path| c.bounded(node, path, 1, 100));
        let path_pos = fields.get("path").map(|node| node.pos);
        (WebhookConfig { path, max_connections }, path_pos)
    }

    fn settings(&mut self, node: &Node) -> BotSettings {
        let Some(fields) = self.fields(node, "settings", SETTINGS_FIELDS) else {
            return BotSettings::default();
        };
        let parse_mode = self.optional(&fields, "parse_mode", "settings", None, |c, node, path| {
            let value = c.string(node, path)?;
            if PARSE_MODES.iter().any(|mode| mode.eq_ignore_ascii_case(&value)) {
                Some(Some(value))
            } else {
                let message = format!("unknown parse_mode {value:?}, expected one of: {}", PARSE_MODES.join(", "));
                c.error(node.pos, path, message);
                None
            }
        });
        let disable_web_page_preview =
            self.optional(&fields, "disable_web_page_preview", "settings", false, Self::boolean);
        BotSettings { parse_mode, disable_web_page_preview }
    }

    fn access(&mut self, node: &Node) -> AccessConfig {
        let Some(fields) = self.fields(node, "access", ACCESS_FIELDS) else {
            return AccessConfig::default();
        };
        let mut list = |name: &str| self.optional(&fields, name, "access", Vec::new(), Self::user_ids);
        AccessConfig {
            allowed_users: list("allowed_users"),
            blocked_users: list("blocked_users"),
            admin_users: list("admin_users"),
        }
    }

    /// A sequence of user ids; invalid entries are reported and left out.
    fn user_ids(&mut self, node: &Node, path: &str) -> Option<Vec<i64>> {
        let Value::Seq(items) = &node.value else {
            self.type_error(node, path, "a sequence of user ids");
            return None;
        };
        let ids = items.iter().enumerate().filter_map(|(i, item)| self.integer(item, &index_path(path, i))).collect();
        Some(ids)
    }

    fn rate_limiting(&mut self, node: &Node) -> RateLimitConfig {
        let default = default_rate_limiting();
        let Some(fields) = self.fields(node, "rate_limiting", RATE_LIMIT_FIELDS) else {
            return default;
        };
        let rate = |c: &mut Self, node: &Node, path: &str| c.bounded(node, path, 1, u32::MAX);
        RateLimitConfig {
            enabled: self.optional(&fields, "enabled", "rate_limiting", default.enabled, Self::boolean),
            default_rate: self.optional(&fields, "default_rate", "rate_limiting", default.default_rate, rate),
            burst_size: self.optional(&fields, "burst_size", "rate_limiting", default.burst_size, rate),
        }
    }

    /// `plugins:`, each entry read and then checked against the catalog and the other entries.
    fn plugins(&mut self, node: &Node, catalog: &dyn PluginCatalog) -> Vec<PluginEntry> {
        let Value::Seq(items) = &node.value else {
            self.type_error(node, "plugins", "a sequence");
            return Vec::new();
        };
        let drafts: Vec<PluginDraft<'_>> =
            items.iter().enumerate().filter_map(|(i, item)| self.plugin(item, index_path("plugins", i))).collect();

        // name -> index of its first entry, and the catalog's dependencies of known plugins.
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut dependencies: HashMap<&str, Vec<String>> = HashMap::new();
        for (index, draft) in drafts.iter().enumerate() {
            let Some((name, name_node)) = &draft.name else {
                continue;
            };
            let name_path = field_path(&draft.path, "name");
            if let Some(&earlier) = first.get(name.as_str()) {
                let message = format!("plugin {name:?} is listed twice (also at {})", drafts[earlier].path);
                self.error(name_node.pos, &name_path, message);
                continue;
            }
            first.insert(name, index);
            match catalog.dependencies(name) {
                Some(deps) => {
                    dependencies.insert(name, deps);
                    self.check_plugin_config(draft, name, catalog);
                }
                None => self.error(name_node.pos, &name_path, format!("unknown plugin {name:?}")),
            }
        }

        // Dependencies count among enabled entries only: a disabled plugin is not loaded.
        let loaded: Vec<(&str, &Node, &str)> = drafts
            .iter()
            .enumerate()
            .filter(|(_, draft)| draft.enabled)
            .filter_map(|(index, draft)| {
                let (name, node) = draft.name.as_ref()?;
                (first.get(name.as_str()) == Some(&index)).then_some((name.as_str(), *node, draft.path.as_str()))
            })
            .collect();
        let loaded_names: HashSet<&str> = loaded.iter().map(|(name, _, _)| *name).collect();
        for (name, node, path) in &loaded {
            for dep in dependencies.get(name).into_iter().flatten() {
                if !loaded_names.contains(dep.as_str()) {
                    let message = format!("plugin {name:?} depends on {dep:?}, which this bot does not load");
                    self.error(node.pos, &field_path(path, "name"), message);
                }
            }
        }
        for cycle in cycles(&loaded.iter().map(|(name, _, _)| *name).collect::<Vec<_>>(), &dependencies) {
            if let Some((_, node, path)) = loaded.iter().find(|(name, _, _)| *name == cycle[0]) {
                let message = format!("circular plugin dependency: {}", cycle.join(" -> "));
                self.error(node.pos, &field_path(path, "name"), message);
            }
        }

        drafts
            .into_iter()
            .filter_map(|draft| {
                Some(PluginEntry { name: draft.name?.0, enabled: draft.enabled, config: draft.config? })
            })
            .collect()
    }

    /// Reads one entry of `plugins:`.
    fn plugin<'n>(&mut self, node: &'n Node, path: String) -> Option<PluginDraft<'n>> {
        let fields = self.fields(node, &path, PLUGIN_FIELDS)?;
        let name = self.required(&fields, "name", &path).and_then(|name_node| {
            let name = self.string(name_node, &field_path(&path, "name"))?;
            Some((name, name_node))
        });
        let enabled = self.optional(&fields, "enabled", &path, true, Self::boolean);
        let config_node = fields.get("config");
        let config = match config_node {
            None => Some(Json::Object(Map::new())),
            Some(block) if matches!(block.value, Value::Map(_)) => self.json(block, &field_path(&path, "config")),
            Some(block) => {
                self.type_error(block, &field_path(&path, "config"), "a mapping");
                None
            }
        };
        Some(PluginDraft { path, node, name, enabled, config_node, config })
    }

    /// Asks the catalog about a plugin's `config:` and reports its verdict at the node it names.
    fn check_plugin_config(&mut self, draft: &PluginDraft<'_>, name: &str, catalog: &dyn PluginCatalog) {
        let Some(config) = &draft.config else {
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
        let pos = match draft.config_node {
            Some(block) => locate(block, &inner),
            None => draft.node.pos,
        };
        self.error(pos, &path, message);
    }

    /// A plugin config value as JSON, with `${VAR}` substituted; `None` when some part of it has a problem.
    fn json(&mut self, node: &Node, path: &str) -> Option<Json> {
        match &node.value {
            Value::Null => Some(Json::Null),
            Value::Bool(b) => Some(Json::Bool(*b)),
            Value::Int(i) => Some(Json::from(*i)),
            Value::Float(f) => {
                let number = Number::from_f64(*f);
                if number.is_none() {
                    self.error(node.pos, path, "expected a finite number, found infinity or NaN");
                }
                number.map(Json::Number)
            }
            Value::Str(_) => self.string(node, path).map(Json::String),
            Value::Seq(items) => {
                let mut values = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, element) in items.iter().enumerate() {
                    match self.json(element, &index_path(path, i)) {
                        Some(value) => values.push(value),
                        None => ok = false,
                    }
                }
                ok.then_some(Json::Array(values))
            }
            Value::Map(pairs) => {
                let mut map = Map::new();
                let mut ok = true;
                for (key, value) in pairs {
                    let Value::Str(name) = &key.value else {
                        let message = format!("expected a string key, found {}", key.value.kind());
                        self.error(key.pos, path, message);
                        ok = false;
                        continue;
                    };
                    match self.json(value, &field_path(path, name)) {
                        Some(value) => {
                            map.insert(name.clone(), value);
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(Json::Object(map))
            }
        }
    }
}

fn default_webhook() -> WebhookConfig {
    WebhookConfig { path: None, max_connections: 40 }
}

fn default_rate_limiting() -> RateLimitConfig {
    RateLimitConfig { enabled: false, default_rate: 30, burst_size: 10 }
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

/// Replaces `${NAME}` and `${NAME:-default}` (the default also when the variable is empty) in `text`.
///
/// The messages never quote `text`, which may be a token.
fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    if !text.contains("${") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            problems.push("unclosed \"${\": expected ${NAME} or ${NAME:-default}".to_owned());
            rest = "";
            break;
        };
        let reference = &after[..end];
        let (name, default) = match reference.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (reference, None),
        };
        if is_variable_name(name) {
            match (env(name), default) {
                (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => problems.push(format!("environment variable {name} is not set")),
            }
        } else {
            problems.push(
                "invalid \"${...}\" reference: expected ${NAME} or ${NAME:-default}, NAME made of A-Z a-z 0-9 _ \
                 and not starting with a digit"
                    .to_owned(),
            );
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// FNV-1a, 64 bits: a stable hash with no dependency, fed through `fmt::Write`.
struct Fnv1a(u64);

impl fmt::Write for Fnv1a {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(())
    }
}

/// The hash of a validated config's canonical rendering, hex; equal content gives an equal hash.
fn fingerprint(config: &BotConfig) -> String {
    let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
    // Writing into the hasher cannot fail.
    let _ = render(config, &mut hasher);
    format!("{:016x}", hasher.0)
}

/// Writes every value of `config` but its file and hash, strings quoted and object keys sorted, so the
/// rendering does not depend on the YAML's layout.
fn render(config: &BotConfig, out: &mut dyn fmt::Write) -> fmt::Result {
    // Destructured so that a new field cannot be forgotten here.
    let BotConfig {
        id,
        name,
        description,
        token,
        enabled,
        mode,
        webhook: WebhookConfig { path, max_connections },
        settings: BotSettings { parse_mode, disable_web_page_preview },
        plugins,
        access: AccessConfig { allowed_users, blocked_users, admin_users },
        rate_limiting: RateLimitConfig { enabled: rate_enabled, default_rate, burst_size },
        fsm_strategy,
        file: _,
        hash: _,
    } = config;
    write!(
        out,
        "{{id:{:?},name:{name:?},description:{description:?},token:{:?},enabled:{enabled},mode:{mode},",
        id.as_str(),
        token.expose()
    )?;
    write!(
        out,
        "webhook:{{path:{path:?},max_connections:{max_connections}}},settings:{{parse_mode:{parse_mode:?},\
         disable_web_page_preview:{disable_web_page_preview}}},plugins:["
    )?;
    for plugin in plugins {
        write!(out, "{{name:{:?},enabled:{},config:", plugin.name, plugin.enabled)?;
        render_json(&plugin.config, out)?;
        out.write_str("},")?;
    }
    write!(
        out,
        "],access:{{allowed_users:{allowed_users:?},blocked_users:{blocked_users:?},admin_users:{admin_users:?}}},\
         rate_limiting:{{enabled:{rate_enabled},default_rate:{default_rate},burst_size:{burst_size}}},\
         fsm_strategy:{fsm_strategy:?}}}"
    )
}

fn render_json(value: &Json, out: &mut dyn fmt::Write) -> fmt::Result {
    match value {
        Json::Null => out.write_str("null"),
        Json::Bool(b) => write!(out, "{b}"),
        Json::Number(n) => write!(out, "{n}"),
        Json::String(s) => write!(out, "{s:?}"),
        Json::Array(items) => {
            out.write_str("[")?;
            for element in items {
                render_json(element, out)?;
                out.write_str(",")?;
            }
            out.write_str("]")
        }
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.write_str("{")?;
            for (key, element) in entries {
                write!(out, "{key:?}:")?;
                render_json(element, out)?;
                out.write_str(",")?;
            }
            out.write_str("}")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;

    const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
    const SECRET: &str = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
    const WEBHOOKS_ON: WebhookEnv = WebhookEnv { enabled: true, base_url_set: true };

    /// start, help, error_handler and form (needing start) as in the spec; a and b need each other.
    struct Catalog;

    #[derive(Clone, Copy)]
    enum Kind {
        Str,
        Bool,
        Commands,
        Any,
    }

    impl PluginCatalog for Catalog {
        fn dependencies(&self, name: &str) -> Option<Vec<String>> {
            let deps: &[&str] = match name {
                "start" | "help" | "error_handler" => &[],
                "form" => &["start"],
                "a" => &["b"],
                "b" => &["a"],
                _ => return None,
            };
            Some(deps.iter().map(|d| (*d).to_owned()).collect())
        }

        fn check_config(&self, name: &str, config: &Json) -> Result<(), (String, String)> {
            let schema: &[(&str, Kind)] = match name {
                "start" => &[("welcome_message", Kind::Str), ("extra", Kind::Any)],
                "help" => &[("header", Kind::Str), ("commands", Kind::Commands)],
                "error_handler" => &[("show_error_id", Kind::Bool), ("notify_admins", Kind::Bool)],
                _ => &[],
            };
            let fail = |path: String, message: &str| Err((path, message.to_owned()));
            let Json::Object(map) = config else {
                return fail(String::new(), "expected an object");
            };
            for (key, value) in map {
                let Some(&(_, kind)) = schema.iter().find(|(field, _)| field == key) else {
                    return fail(key.clone(), "unknown field");
                };
                match kind {
                    Kind::Str if !value.is_string() => {
                        return fail(key.clone(), "expected a string");
                    }
                    Kind::Bool if !value.is_boolean() => {
                        return fail(key.clone(), "expected a boolean");
                    }
                    Kind::Str | Kind::Bool | Kind::Any => {}
                    Kind::Commands => {
                        let Json::Array(items) = value else {
                            return fail(key.clone(), "expected a list");
                        };
                        for (i, command) in items.iter().enumerate() {
                            for field in ["command", "description"] {
                                match command.get(field) {
                                    Some(Json::String(_)) => {}
                                    Some(_) => {
                                        return fail(format!("{key}[{i}].{field}"), "expected a string");
                                    }
                                    None => {
                                        return fail(format!("{key}[{i}].{field}"), "missing field");
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Ok(())
        }
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "BOT_TOKEN" => Some(TOKEN.to_owned()),
            "OTHER_TOKEN" => Some("987654321:ZYXwvuTSRqponMLKjihGFEdcba".to_owned()),
            "USER_NAME" => Some("Ada".to_owned()),
            "EMPTY" => Some(String::new()),
            "BAD_TOKEN" => Some("123456789:tooshort-secret".to_owned()),
            _ => None,
        }
    }

    fn parse_with(text: &str, webhooks: WebhookEnv) -> Result<BotConfig, Vec<ConfigError>> {
        parse_bot_file(Path::new("bots/shop.yaml"), text, &env, &Catalog, webhooks)
    }

    fn parse(text: &str) -> Result<BotConfig, Vec<ConfigError>> {
        parse_with(text, WEBHOOKS_ON)
    }

    fn parse_ok(text: &str) -> BotConfig {
        match parse(text) {
            Ok(config) => config,
            Err(errors) => panic!("unexpected errors: {errors:#?}"),
        }
    }

    /// `(line, column, path, message)` of each error.
    fn summary(errors: &[ConfigError]) -> Vec<(usize, usize, &str, &str)> {
        errors.iter().map(|e| (e.line, e.column, e.path.as_str(), e.message.as_str())).collect()
    }

    fn errors_of(text: &str) -> Vec<ConfigError> {
        match parse(text) {
            Ok(config) => panic!("expected errors, got {config:#?}"),
            Err(errors) => errors,
        }
    }

    /// The one error a file has.
    fn single_error(text: &str) -> (usize, usize, String, String) {
        let errors = errors_of(text);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        let e = &errors[0];
        assert_eq!(e.file, Path::new("bots/shop.yaml"));
        (e.line, e.column, e.path.clone(), e.message.clone())
    }

    fn one(line: usize, column: usize, path: &str, message: &str) -> (usize, usize, String, String) {
        (line, column, path.to_owned(), message.to_owned())
    }

    const BASE: &str = "id: shop\nname: Shop\ntoken: ${BOT_TOKEN}\n";

    const SPEC_EXAMPLE: &str = r#"# Bot identification
id: "support_bot"           # Unique identifier (required)
name: "Support Bot"         # Display name (required)
description: "Customer support bot"
token: "${BOT_TOKEN}"       # Token or env var reference (required)
enabled: true               # Whether to start this bot

# Operating mode
mode: "polling"             # "polling" or "webhook"

# Webhook settings (only for webhook mode)
webhook:
  path: "/support"          # Webhook path suffix
  max_connections: 40

# Bot settings passed to aiogram
settings:
  parse_mode: "HTML"        # Default parse mode
  disable_web_page_preview: false

# Plugins to load (order matters)
plugins:
  - name: "start"
    enabled: true
    config:
      welcome_message: "Welcome to Support!"

  - name: "help"
    config:
      header: "Available Commands"
      commands:
        - command: "/start"
          description: "Start the bot"
        - command: "/help"
          description: "Show help"
        - command: "/ticket"
          description: "Create support ticket"

  - name: "error_handler"
    config:
      show_error_id: true
      notify_admins: false

# Access control
access:
  allowed_users: []         # Empty = allow all
  blocked_users: []         # Blocked user IDs
  admin_users:              # Bot-specific admins
    - 123456789

# Rate limiting
rate_limiting:
  enabled: true
  default_rate: 30          # Requests per minute
  burst_size: 10

# FSM storage strategy
fsm_strategy: "USER_IN_CHAT"  # GLOBAL_USER, USER_IN_CHAT, CHAT
"#;

    #[test]
    fn the_spec_example_parses_to_every_field() {
        let config = parse_with(SPEC_EXAMPLE, WebhookEnv::default()).expect("the spec's example is valid");
        assert_eq!(config.hash.len(), 16);
        assert!(config.hash.bytes().all(|b| b.is_ascii_hexdigit()));
        let expected = BotConfig {
            id: BotId::parse("support_bot").expect("valid id"),
            name: "Support Bot".to_owned(),
            description: Some("Customer support bot".to_owned()),
            token: BotToken::parse(TOKEN).expect("valid token"),
            enabled: true,
            mode: Mode::Polling,
            webhook: WebhookConfig { path: Some("/support".to_owned()), max_connections: 40 },
            settings: BotSettings { parse_mode: Some("HTML".to_owned()), disable_web_page_preview: false },
            plugins: vec![
                PluginEntry {
                    name: "start".to_owned(),
                    enabled: true,
                    config: json!({"welcome_message": "Welcome to Support!"}),
                },
                PluginEntry {
                    name: "help".to_owned(),
                    enabled: true,
                    config: json!({
                        "header": "Available Commands",
                        "commands": [
                            {"command": "/start", "description": "Start the bot"},
                            {"command": "/help", "description": "Show help"},
                            {"command": "/ticket", "description": "Create support ticket"},
                        ],
                    }),
                },
                PluginEntry {
                    name: "error_handler".to_owned(),
                    enabled: true,
                    config: json!({"show_error_id": true, "notify_admins": false}),
                },
            ],
            access: AccessConfig { allowed_users: vec![], blocked_users: vec![], admin_users: vec![123_456_789] },
            rate_limiting: RateLimitConfig { enabled: true, default_rate: 30, burst_size: 10 },
            fsm_strategy: FsmStrategy::UserInChat,
            file: PathBuf::from("bots/shop.yaml"),
            hash: config.hash.clone(),
        };
        assert_eq!(config, expected);
        assert_eq!(config.token.expose(), TOKEN);
    }

    #[test]
    fn defaults_fill_what_is_absent_or_null() {
        let config = parse_ok(BASE);
        assert_eq!(config.description, None);
        assert!(config.enabled);
        assert_eq!(config.mode, Mode::Polling);
        assert_eq!(config.webhook, default_webhook());
        assert_eq!(config.settings, BotSettings::default());
        assert_eq!(config.plugins, vec![]);
        assert_eq!(config.access, AccessConfig::default());
        assert_eq!(config.rate_limiting, default_rate_limiting());
        assert_eq!(config.fsm_strategy, FsmStrategy::UserInChat);

        let nulls = format!(
            "{BASE}description: ~\nenabled:\nmode: null\nwebhook:\n  path:\nsettings: ~\nplugins:\n  - name: help\n    \
             enabled: ~\n    config: ~\naccess:\n  admin_users: ~\nrate_limiting:\n  burst_size: ~\nfsm_strategy:\n"
        );
        let config = parse_ok(&nulls);
        assert_eq!(config.plugins, vec![PluginEntry { name: "help".to_owned(), enabled: true, config: json!({}) }]);
        assert_eq!(
            (config.description, config.webhook, config.rate_limiting),
            (None, default_webhook(), default_rate_limiting())
        );
    }

    #[test]
    fn a_file_with_many_problems_reports_them_all() {
        let text = r#"id: "Support Bot"
token: "${MISSING_TOKEN}"
enabled: "yes"
mode: webhook
colour: blue
webhook:
  path: "support"
  max_connections: 500
settings:
  parse_mode: html
plugins:
  - name: start
    config:
      welcome_message: 42
  - name: weather
  - name: form
    enabled: maybe
  - name: help
    config:
      commands:
        - command: /start
          description: 7
access:
  admin_users: [1, "2", 3.5]
rate_limiting:
  default_rate: 0
fsm_strategy: PER_USER
"#;
        let errors = match parse_with(text, WebhookEnv::default()) {
            Ok(config) => panic!("unexpected {config:?}"),
            Err(errors) => errors,
        };
        let id_message = BotId::parse("Support Bot").expect_err("invalid id");
        assert_eq!(
            summary(&errors),
            vec![
                (1, 1, "name", "missing required field \"name\""),
                (1, 5, "id", id_message.as_str()),
                (2, 8, "token", "environment variable MISSING_TOKEN is not set"),
                (3, 10, "enabled", "expected a boolean, found a string"),
                (4, 7, "mode", "mode is webhook but WEBHOOK_ENABLED is not true"),
                (4, 7, "mode", "mode is webhook but WEBHOOK_BASE_URL is not set"),
                (
                    5,
                    1,
                    "colour",
                    "unknown field \"colour\", expected one of: id, name, description, token, enabled, mode, \
                 webhook, settings, plugins, access, rate_limiting, fsm_strategy"
                ),
                (
                    7,
                    9,
                    "webhook.path",
                    "invalid webhook path \"support\": it must start with / and use only A-Z a-z 0-9 / _ - ."
                ),
                (8, 20, "webhook.max_connections", "expected an integer from 1 to 100, found 500"),
                (14, 24, "plugins[0].config.welcome_message", "expected a string"),
                (15, 11, "plugins[1].name", "unknown plugin \"weather\""),
                (17, 14, "plugins[2].enabled", "expected a boolean, found a string"),
                (22, 24, "plugins[3].config.commands[0].description", "expected a string"),
                (24, 20, "access.admin_users[1]", "expected an integer, found a string"),
                (24, 25, "access.admin_users[2]", "expected an integer, found a float"),
                (26, 17, "rate_limiting.default_rate", "expected an integer of at least 1, found 0"),
                (
                    27,
                    15,
                    "fsm_strategy",
                    "unknown fsm_strategy \"PER_USER\", expected one of: GLOBAL_USER, USER_IN_CHAT, CHAT"
                ),
            ]
        );
        assert!(errors.iter().all(|e| e.file == Path::new("bots/shop.yaml")));
    }

    #[test]
    fn each_kind_of_problem_has_its_message_and_position() {
        let cases = [
            (
                format!("{BASE}extra: 1\n"),
                one(4, 1, "extra", &format!("unknown field \"extra\", expected one of: {}", ROOT_FIELDS.join(", "))),
            ),
            (
                format!("{BASE}webhook:\n  paht: /x\n"),
                one(5, 3, "webhook.paht", "unknown field \"paht\", expected one of: path, max_connections"),
            ),
            (
                "id: shop\nname: [Shop]\ntoken: ${BOT_TOKEN}\n".to_owned(),
                one(2, 7, "name", "expected a string, found a sequence"),
            ),
            (format!("{BASE}settings: HTML\n"), one(4, 11, "settings", "expected a mapping, found a string")),
            (format!("{BASE}plugins:\n  help: {{}}\n"), one(5, 3, "plugins", "expected a sequence, found a mapping")),
            (format!("{BASE}enabled: 1\n"), one(4, 10, "enabled", "expected a boolean, found an integer")),
            ("\n\nid: shop\nname: Shop\n".to_owned(), one(3, 1, "token", "missing required field \"token\"")),
            ("id: shop\nname: Shop\ntoken:\n".to_owned(), one(3, 6, "token", "expected a string, found null")),
            (
                "id: shop\nname: Shop\ntoken: ${NOPE}\n".to_owned(),
                one(3, 8, "token", "environment variable NOPE is not set"),
            ),
            (
                "id: shop\nname: Shop\ntoken: ${BOT_TOKEN\n".to_owned(),
                one(3, 8, "token", "unclosed \"${\": expected ${NAME} or ${NAME:-default}"),
            ),
            (
                "id: shop\nname: Shop\ntoken: ${1BOT}\n".to_owned(),
                one(
                    3,
                    8,
                    "token",
                    "invalid \"${...}\" reference: expected ${NAME} or ${NAME:-default}, NAME made of A-Z a-z 0-9 \
                     _ and not starting with a digit",
                ),
            ),
            (
                "id: shop\nname: Shop\ntoken: ${BAD_TOKEN}\n".to_owned(),
                one(3, 8, "token", "malformed token: expected <digits>:<at least 20 of A-Z a-z 0-9 _ ->"),
            ),
            (
                "id: Shop\nname: Shop\ntoken: ${BOT_TOKEN}\n".to_owned(),
                one(
                    1,
                    5,
                    "id",
                    "invalid bot id \"Shop\": use 1-64 characters of a-z, 0-9, _ and -, starting with a letter",
                ),
            ),
            (format!("{BASE}mode: push\n"), one(4, 7, "mode", "unknown mode \"push\", expected polling or webhook")),
            (
                format!("{BASE}fsm_strategy: user_in_chat\n"),
                one(
                    4,
                    15,
                    "fsm_strategy",
                    "unknown fsm_strategy \"user_in_chat\", expected one of: GLOBAL_USER, USER_IN_CHAT, CHAT",
                ),
            ),
            (
                format!("{BASE}settings:\n  parse_mode: markdown_v2\n"),
                one(
                    5,
                    15,
                    "settings.parse_mode",
                    "unknown parse_mode \"markdown_v2\", expected one of: HTML, MarkdownV2, Markdown",
                ),
            ),
            (
                format!("{BASE}webhook:\n  max_connections: 0\n"),
                one(5, 20, "webhook.max_connections", "expected an integer from 1 to 100, found 0"),
            ),
            (
                format!("{BASE}webhook:\n  max_connections: 101\n"),
                one(5, 20, "webhook.max_connections", "expected an integer from 1 to 100, found 101"),
            ),
            (
                format!("{BASE}webhook:\n  path: /a?b\n"),
                one(
                    5,
                    9,
                    "webhook.path",
                    "invalid webhook path \"/a?b\": it must start with / and use only A-Z a-z 0-9 / _ - .",
                ),
            ),
            (
                format!("{BASE}rate_limiting:\n  burst_size: -1\n"),
                one(5, 15, "rate_limiting.burst_size", "expected an integer of at least 1, found -1"),
            ),
            (
                format!("{BASE}access:\n  blocked_users:\n    - 1\n    - \"2\"\n"),
                one(7, 7, "access.blocked_users[1]", "expected an integer, found a string"),
            ),
            (
                format!("{BASE}access:\n  allowed_users: 5\n"),
                one(5, 18, "access.allowed_users", "expected a sequence of user ids, found an integer"),
            ),
            (format!("{BASE}plugins:\n  - name: echo\n"), one(5, 11, "plugins[0].name", "unknown plugin \"echo\"")),
            (
                format!("{BASE}plugins:\n  - name: help\n  - name: start\n  - name: help\n    enabled: false\n"),
                one(7, 11, "plugins[2].name", "plugin \"help\" is listed twice (also at plugins[0])"),
            ),
            (
                format!("{BASE}plugins:\n  - enabled: true\n"),
                one(5, 5, "plugins[0].name", "missing required field \"name\""),
            ),
            (format!("{BASE}plugins:\n  - help\n"), one(5, 5, "plugins[0]", "expected a mapping, found a string")),
            (
                format!("{BASE}plugins:\n  - name: help\n    config: [1]\n"),
                one(6, 13, "plugins[0].config", "expected a mapping, found a sequence"),
            ),
            (
                format!("{BASE}plugins:\n  - name: help\n    config:\n      1: x\n"),
                one(7, 7, "plugins[0].config", "expected a string key, found an integer"),
            ),
            (
                format!("{BASE}plugins:\n  - name: help\n    config:\n      header: .inf\n"),
                one(7, 15, "plugins[0].config.header", "expected a finite number, found infinity or NaN"),
            ),
            (
                format!("{BASE}plugins:\n  - name: help\n    config:\n      header: ${{NOPE}}\n"),
                one(7, 15, "plugins[0].config.header", "environment variable NOPE is not set"),
            ),
            (
                format!(
                    "{BASE}plugins:\n  - name: help\n    config:\n      commands:\n        - command: /a\n          \
                     description: A\n        - command: 3\n          description: B\n"
                ),
                one(10, 20, "plugins[0].config.commands[1].command", "expected a string"),
            ),
            // The missing field has no node: the error points at the deepest one on its path.
            (
                format!(
                    "{BASE}plugins:\n  - name: help\n    config:\n      commands:\n        - command: /a\n          \
                     description: A\n        - command: /b\n"
                ),
                one(10, 11, "plugins[0].config.commands[1].description", "missing field"),
            ),
            (
                format!("{BASE}plugins:\n  - name: help\n    config:\n      headr: x\n"),
                one(7, 14, "plugins[0].config.headr", "unknown field"),
            ),
            (
                format!("{BASE}plugins:\n  - name: form\n"),
                one(5, 11, "plugins[0].name", "plugin \"form\" depends on \"start\", which this bot does not load"),
            ),
            (
                format!("{BASE}plugins:\n  - name: start\n    enabled: false\n  - name: form\n"),
                one(7, 11, "plugins[1].name", "plugin \"form\" depends on \"start\", which this bot does not load"),
            ),
            (
                format!("{BASE}plugins:\n  - name: help\n  - name: b\n  - name: a\n"),
                one(6, 11, "plugins[1].name", "circular plugin dependency: b -> a -> b"),
            ),
            (
                "id: shop\nname: Shop\n  token: x\n".to_owned(),
                one(3, 8, "", "invalid YAML: mapping values are not allowed in this context"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(single_error(&text), expected, "for:\n{text}");
        }
    }

    #[test]
    fn webhook_mode_needs_the_webhook_server() {
        let text = format!("{BASE}mode: webhook\nwebhook: {{path: /shop}}\n");
        let only_url = WebhookEnv { enabled: false, base_url_set: true };
        let only_enabled = WebhookEnv { enabled: true, base_url_set: false };
        let errors = parse_with(&text, only_url).expect_err("server disabled");
        assert_eq!(summary(&errors), vec![(4, 7, "mode", "mode is webhook but WEBHOOK_ENABLED is not true")]);
        let errors = parse_with(&text, only_enabled).expect_err("no base url");
        assert_eq!(summary(&errors), vec![(4, 7, "mode", "mode is webhook but WEBHOOK_BASE_URL is not set")]);
        let config = parse_with(&text, WEBHOOKS_ON).expect("valid");
        assert_eq!(config.mode, Mode::Webhook);
        assert_eq!(config.webhook.path.as_deref(), Some("/shop"));
        // A webhook block beside polling is fine, as in the spec's example.
        let polling = format!("{BASE}webhook:\n  path: /shop\n  max_connections: 100\n");
        assert_eq!(parse_with(&polling, WebhookEnv::default()).expect("valid").webhook.max_connections, 100);
    }

    #[test]
    fn variables_are_substituted_in_every_string() {
        let text = r#"id: ${BOT_ID:-shop}
name: "${BOT_NAME:-Shop ${USER_NAME}}"
token: ${BOT_TOKEN}
description: "${EMPTY:-fallback} / ${EMPTY} / $${USER_NAME} / $HOME"
settings:
  parse_mode: ${PARSE_MODE:-html}
plugins:
  - name: start
    config:
      welcome_message: "Hello ${USER_NAME}!"
      extra: [{deep: "${USER_NAME:-x}"}, 3, 1.5, ~, true]
"#;
        let config = parse_ok(text);
        assert_eq!(config.id.as_str(), "shop");
        // The default ends at the first closing brace: nesting is not supported.
        assert_eq!(config.name, "Shop ${USER_NAME}");
        assert_eq!(config.description.as_deref(), Some("fallback /  / $Ada / $HOME"));
        assert_eq!(config.settings.parse_mode.as_deref(), Some("html"));
        assert_eq!(
            config.plugins[0].config,
            json!({"welcome_message": "Hello Ada!", "extra": [{"deep": "Ada"}, 3, 1.5, null, true]})
        );
        // A substituted value stays a string, whatever it looks like.
        let errors = errors_of(&format!("{BASE}enabled: ${{ENABLED:-true}}\n"));
        assert_eq!(summary(&errors), vec![(4, 10, "enabled", "expected a boolean, found a string")]);
        // Every unset variable of a scalar is named.
        let errors = errors_of("id: shop\nname: ${A} ${B:-b} ${C}\ntoken: ${BOT_TOKEN}\n");
        assert_eq!(
            summary(&errors),
            vec![
                (2, 7, "name", "environment variable A is not set"),
                (2, 7, "name", "environment variable C is not set"),
            ]
        );
    }

    #[test]
    fn the_token_never_shows() {
        let config = parse_ok(BASE);
        assert!(!format!("{config:?}").contains(SECRET));
        assert!(!format!("{:?}", config.token).contains(SECRET));

        let bad_secret = "not-a-token-but-secret-text";
        let texts = [
            format!("id: shop\nname: Shop\ntoken: \"123456789:{bad_secret}!\"\n"),
            format!("id: shop\nname: Shop\ntoken: \"{bad_secret}\"\n"),
            format!("id: shop\nname: Shop\ntoken: \"${{{bad_secret}\"\n"),
            format!("id: shop\nname: Shop\ntoken: \"${{NOPE:-{bad_secret}}}\"\n"),
            "id: shop\nname: Shop\ntoken: ${BAD_TOKEN}\n".to_owned(),
        ];
        for text in &texts {
            for error in errors_of(text) {
                let shown = format!("{error} {error:?}");
                assert!(!shown.contains(bad_secret), "{shown}");
                assert!(!shown.contains("tooshort-secret"), "{shown}");
            }
        }
    }

    #[test]
    fn the_hash_follows_content_not_layout() {
        let a = parse_ok(SPEC_EXAMPLE);
        let relaid = SPEC_EXAMPLE
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .map(|line| line.split("  #").next().unwrap_or(line).replace('"', ""))
            .collect::<Vec<_>>()
            .join("\n");
        let b = parse_ok(&relaid.replace("token: ${BOT_TOKEN}", &format!("token: {TOKEN}")));
        assert_eq!(a, b);
        assert_eq!(a.hash, b.hash);
        let reordered = parse_ok(&SPEC_EXAMPLE.replace(
            "      show_error_id: true\n      notify_admins: false",
            "      notify_admins: false\n      show_error_id: true",
        ));
        assert_eq!(reordered.hash, a.hash);
        for (from, to) in [
            ("Welcome to Support!", "Welcome!"),
            ("- 123456789", "- 123456780"),
            ("burst_size: 10", "burst_size: 11"),
            ("notify_admins: false", "notify_admins: true"),
            ("${BOT_TOKEN}", "${OTHER_TOKEN}"),
        ] {
            let changed = parse_ok(&SPEC_EXAMPLE.replace(from, to));
            assert_ne!(changed.hash, a.hash, "{from} -> {to}");
        }
    }

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let name = format!("multibot-config-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
            let path = std::env::temp_dir().join(name);
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, text).expect("write file");
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_directory_keeps_good_bots_and_reports_the_rest() {
        let dir = TempDir::new();
        let good = dir.write("a_shop.yaml", BASE);
        let bad = dir.write("b_bad.yml", "id: bad\nname: Bad\ntoken: ${NOPE}\nmode: push\n");
        let dup = dir.write("c_dup.yaml", "name: Again\nid: shop\ntoken: ${OTHER_TOKEN}\n");
        let hook = dir.write("d_hook.yaml", "id: hook\nname: Hook\ntoken: ${OTHER_TOKEN}\nmode: webhook\n");
        let same_token = dir.write(
            "e_token.yaml",
            "id: copy\nname: Copy\ntoken: ${BOT_TOKEN}\nmode: webhook\nwebhook:\n  path: /hook\n",
        );
        let syntax = dir.write("f_syntax.yaml", "id: [\n");
        let binary = dir.0.join("g_binary.yaml");
        fs::write(&binary, [b'i', b'd', 0xff, 0xfe]).expect("write file");
        dir.write("notes.txt", "id: [");
        dir.write(".hidden.yaml", "id: [");
        fs::create_dir(dir.0.join("sub.yaml")).expect("create dir");

        let loaded = load_dir(&dir.0, &env, &Catalog, WEBHOOKS_ON);
        let ids: Vec<&str> = loaded.bots.iter().map(|bot| bot.id.as_str()).collect();
        assert_eq!(ids, ["shop", "hook"]);
        assert_eq!(loaded.bots[0].file, good);
        assert_eq!(loaded.files, [good, bad, dup, hook, same_token, syntax, binary]);
        let shown: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        let d = dir.0.display();
        assert_eq!(
            shown,
            [
                format!("{d}/b_bad.yml:3:8: token: environment variable NOPE is not set"),
                format!("{d}/b_bad.yml:4:7: mode: unknown mode \"push\", expected polling or webhook"),
                format!("{d}/c_dup.yaml:2:5: id: bot id \"shop\" is also defined in {d}/a_shop.yaml"),
                format!("{d}/e_token.yaml:3:8: token: this token is also used by bot \"shop\" in {d}/a_shop.yaml"),
                format!(
                    "{d}/e_token.yaml:6:9: webhook.path: webhook path \"/hook\" is also used by bot \"hook\" in \
                 {d}/d_hook.yaml"
                ),
                format!(
                    "{d}/f_syntax.yaml:2:1: invalid YAML: while parsing a node, did not find expected node content"
                ),
                format!("{d}/g_binary.yaml: cannot read file: stream did not contain valid UTF-8"),
            ]
        );
        assert!(loaded.errors.iter().all(|e| !e.message.contains(SECRET)));
    }

    #[test]
    fn a_missing_directory_is_one_error() {
        let dir = TempDir::new();
        let missing = dir.0.join("nope");
        let loaded = load_dir(&missing, &env, &Catalog, WEBHOOKS_ON);
        assert!(loaded.bots.is_empty() && loaded.files.is_empty());
        assert_eq!(loaded.errors.len(), 1);
        assert_eq!((loaded.errors[0].file.as_path(), loaded.errors[0].line), (missing.as_path(), 0));
        assert!(loaded.errors[0].message.starts_with("cannot read config directory: "));
    }

    #[test]
    fn an_empty_file_reports_the_required_fields() {
        let errors = errors_of("# nothing yet\n");
        assert_eq!(
            summary(&errors),
            vec![
                (1, 1, "id", "missing required field \"id\""),
                (1, 1, "name", "missing required field \"name\""),
                (1, 1, "token", "missing required field \"token\""),
            ]
        );
        assert_eq!(summary(&errors_of("- id: shop\n")), vec![(1, 1, "", "expected a mapping, found a sequence")]);
    }

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
