//! Loading bot YAML files: [`parse_bot_file`] parses one file with positions (`yaml`), reads it into the
//! schema's types (`reader`, which substitutes `${VAR}` / `${VAR:-default}` in every string) and applies the
//! rules that span fields (`validate`, plugins against the [`PluginCatalog`]); [`load_dir`] loads a whole
//! directory into a [`LoadedConfig`] and adds the checks that span files (ids, tokens and webhook paths must be
//! unique). Every problem is reported as a [`ConfigError`] with file, line, column and field path, not just the
//! first one.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use super::{
    BotConfig, BotId, ConfigError, Mode, PluginCatalog,
    reader::Reader,
    validate::{self, WebhookEnv},
    yaml::{self, Node, Pos, Value},
};

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
    let reader = Reader::new(file, env, &validate::RULES);
    let config = reader.read::<BotConfig>(&root);
    if let Some(config) = &config {
        validate::check(config, &reader, catalog, webhooks);
    }
    let written = |path: &str| reader.node(path).filter(|node| node.value != Value::Null).map(|node| node.pos);
    let anchors = Anchors {
        id: written("id").unwrap_or(root.pos),
        token: written("token").unwrap_or(root.pos),
        mode: written("mode"),
        webhook_path: written("webhook.path"),
    };
    let mut errors = reader.into_errors();
    match config {
        Some(config) if errors.is_empty() => Ok((BotConfig { file: file.to_path_buf(), ..config }.hashed(), anchors)),
        _ => {
            errors.sort_by_key(|e| (e.line, e.column));
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests;
