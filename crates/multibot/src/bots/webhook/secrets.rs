//! Webhook secrets: the [`WebhookSecret`] Telegram sends back in `X-Telegram-Bot-Api-Secret-Token`, and where it
//! is kept ([`WebhookSecrets`]). A bot keeps its secret across restarts, so updates Telegram pushes while the
//! process restarts are still accepted. [`FileSecrets`] keeps them in a file under `DATA_DIR` readable by the
//! owner only; [`MemorySecrets`] for tests and tools.

use std::{
    collections::BTreeMap,
    fmt,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;
use async_trait::async_trait;
use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tracing::warn;

use crate::config::BotId;

/// The characters Telegram allows in a secret token.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Length of a generated secret: 64 characters of a 62-letter alphabet, about 380 bits.
const GENERATED_LEN: usize = 64;

/// A webhook secret token: 1-256 of `A-Z a-z 0-9 _ -`; never shown by `Debug`.
#[derive(Clone)]
pub struct WebhookSecret(SecretString);

impl WebhookSecret {
    /// Checks the shape of a secret; the error never quotes it.
    pub fn parse(secret: &str) -> Result<WebhookSecret, String> {
        let valid = (1..=256).contains(&secret.len())
            && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(WebhookSecret(SecretString::from(secret.to_owned())))
        } else {
            Err("malformed webhook secret: expected 1-256 of A-Z a-z 0-9 _ -".to_owned())
        }
    }

    /// A new random secret from the operating system's generator.
    pub fn generate() -> anyhow::Result<WebhookSecret> {
        let mut secret = String::with_capacity(GENERATED_LEN);
        let mut bytes = [0u8; 32];
        while secret.len() < GENERATED_LEN {
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
            // Rejection sampling keeps every character equally likely: 248 = 4 * 62.
            for b in bytes.iter().filter(|&&b| b < 248) {
                if secret.len() < GENERATED_LEN {
                    secret.push(ALPHABET[usize::from(*b) % ALPHABET.len()] as char);
                }
            }
        }
        Ok(WebhookSecret(SecretString::from(secret)))
    }

    /// The secret itself, for `setWebhook` only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether `presented` (a request's header) is this secret, compared in constant time.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.expose().as_bytes().ct_eq(presented).into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// Where bots' webhook secrets are kept.
#[async_trait]
pub trait WebhookSecrets: Send + Sync {
    /// The bot's secret; a new one is generated and stored the first time.
    async fn get_or_create(&self, bot: &BotId) -> anyhow::Result<WebhookSecret>;
}

/// Secrets in memory, lost when the process ends.
#[derive(Default)]
pub struct MemorySecrets {
    secrets: Mutex<BTreeMap<BotId, WebhookSecret>>,
}

#[async_trait]
impl WebhookSecrets for MemorySecrets {
    async fn get_or_create(&self, bot: &BotId) -> anyhow::Result<WebhookSecret> {
        let mut secrets = self.secrets.lock();
        if let Some(secret) = secrets.get(bot) {
            return Ok(secret.clone());
        }
        let secret = WebhookSecret::generate()?;
        secrets.insert(bot.clone(), secret.clone());
        Ok(secret)
    }
}

/// Secrets in a JSON file (`{"<bot_id>": "<secret>"}`) with permissions 0600, read once and rewritten whole
/// (through a temporary file and a rename) when a bot gets its first secret.
pub struct FileSecrets {
    path: PathBuf,
    cache: Mutex<Option<BTreeMap<String, String>>>,
}

impl FileSecrets {
    /// The store's file name under `DATA_DIR`.
    pub const FILE_NAME: &str = "webhook_secrets.json";

    /// A store in `data_dir`; nothing is read or created before the first webhook bot starts.
    pub fn new(data_dir: &Path) -> FileSecrets {
        FileSecrets { path: data_dir.join(Self::FILE_NAME), cache: Mutex::new(None) }
    }

    fn load(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        restrict(&self.path)?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a JSON object of secrets", self.path.display()))
    }

    fn save(&self, secrets: &BTreeMap<String, String>) -> anyhow::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let temp = self.path.with_extension("json.tmp");
        let _ = std::fs::remove_file(&temp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp).with_context(|| format!("creating {}", temp.display()))?;
        let text = serde_json::to_string_pretty(secrets).context("encoding the secrets")?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", temp.display()))?;
        std::fs::rename(&temp, &self.path).with_context(|| format!("replacing {}", self.path.display()))?;
        Ok(())
    }
}

/// Narrows a secrets file found readable by others to its owner.
fn restrict(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            warn!(file = %path.display(), "webhook secrets file was readable by others; restricting it to its owner");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {}", path.display()))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[async_trait]
impl WebhookSecrets for FileSecrets {
    async fn get_or_create(&self, bot: &BotId) -> anyhow::Result<WebhookSecret> {
        // Blocking file access under a short-held lock: the file is tiny and touched once per bot start.
        let mut cache = self.cache.lock();
        if cache.is_none() {
            *cache = Some(self.load()?);
        }
        let secrets = cache.get_or_insert_with(BTreeMap::new);
        if let Some(stored) = secrets.get(bot.as_str()) {
            match WebhookSecret::parse(stored) {
                Ok(secret) => return Ok(secret),
                Err(_) => {
                    warn!(bot_id = %bot, file = %self.path.display(), "stored webhook secret is malformed; replacing it")
                }
            }
        }
        let secret = WebhookSecret::generate()?;
        let mut updated = secrets.clone();
        updated.insert(bot.as_str().to_owned(), secret.expose().to_owned());
        self.save(&updated)?;
        *secrets = updated;
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_fit_telegram_and_differ() {
        let a = WebhookSecret::generate().unwrap();
        let b = WebhookSecret::generate().unwrap();
        assert_eq!(a.expose().len(), GENERATED_LEN);
        assert!(WebhookSecret::parse(a.expose()).is_ok());
        assert_ne!(a.expose(), b.expose());
        assert!(a.matches(a.expose().as_bytes()));
        // Bad input: the other secret, a prefix, nothing.
        assert!(!a.matches(b.expose().as_bytes()));
        assert!(!a.matches(&a.expose().as_bytes()[..10]));
        assert!(!a.matches(b""));
        assert_eq!(format!("{a:?}"), "WebhookSecret(***)");
    }

    #[test]
    fn parse_refuses_what_telegram_refuses() {
        // Bad input: empty, too long, a character outside the alphabet.
        for bad in ["", &"a".repeat(257), "has space", "slash/"] {
            assert!(WebhookSecret::parse(bad).is_err(), "{bad:?}");
        }
        assert!(!WebhookSecret::parse("has space").unwrap_err().contains("has space"), "the error never quotes it");
        assert!(WebhookSecret::parse("A-z_09").is_ok());
    }

    #[tokio::test]
    async fn the_file_store_keeps_secrets_across_instances_with_owner_only_permissions() {
        let dir = std::env::temp_dir().join(format!("multibot-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (shop, blog) = (BotId::parse("shop").unwrap(), BotId::parse("blog").unwrap());
        let first = FileSecrets::new(&dir);
        let shop_secret = first.get_or_create(&shop).await.unwrap();
        assert_eq!(first.get_or_create(&shop).await.unwrap().expose(), shop_secret.expose());
        let blog_secret = first.get_or_create(&blog).await.unwrap();
        assert_ne!(shop_secret.expose(), blog_secret.expose());
        // A new instance (a restart) reads the same secrets.
        let second = FileSecrets::new(&dir);
        assert_eq!(second.get_or_create(&shop).await.unwrap().expose(), shop_secret.expose());
        assert_eq!(second.get_or_create(&blog).await.unwrap().expose(), blog_secret.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.join(FileSecrets::FILE_NAME);
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            // Bad input: a file someone made world-readable is narrowed again on load.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            FileSecrets::new(&dir).get_or_create(&shop).await.unwrap();
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // Bad input: a file that is not JSON is an error, and is left alone.
        std::fs::write(dir.join(FileSecrets::FILE_NAME), "not json").unwrap();
        assert!(FileSecrets::new(&dir).get_or_create(&shop).await.is_err());
        assert_eq!(std::fs::read_to_string(dir.join(FileSecrets::FILE_NAME)).unwrap(), "not json");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
