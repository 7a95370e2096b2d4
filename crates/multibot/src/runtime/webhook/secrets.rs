//! Webhook secrets: the [`WebhookSecret`] Telegram sends back in `X-Telegram-Bot-Api-Secret-Token`, and where it
//! is kept ([`WebhookSecrets`]). A bot keeps its secret across restarts, so updates Telegram pushes while the
//! process restarts are still accepted. [`StorageSecrets`] keeps them in the database; [`MemorySecrets`] for
//! tests and tools.

use std::{collections::BTreeMap, fmt};

use anyhow::Context;
use async_trait::async_trait;
use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tracing::warn;

use crate::{config::BotId, storage::Storage};

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

/// Secrets in the database, so every replica and every restart uses the same one: `plugin_state` rows under the
/// reserved plugin name [`StorageSecrets::PLUGIN`], which no plugin should take.
pub struct StorageSecrets {
    storage: Storage,
    /// Two starts of one bot in this process must not make two secrets.
    creating: tokio::sync::Mutex<()>,
}

impl StorageSecrets {
    /// The `plugin` column of the secrets' rows.
    pub const PLUGIN: &str = "multibot:webhook";
    /// The `key` column of the secrets' rows.
    pub const KEY: &str = "secret";

    /// A store in `storage`.
    pub fn new(storage: Storage) -> StorageSecrets {
        StorageSecrets { storage, creating: tokio::sync::Mutex::new(()) }
    }
}

#[async_trait]
impl WebhookSecrets for StorageSecrets {
    async fn get_or_create(&self, bot: &BotId) -> anyhow::Result<WebhookSecret> {
        let _one_at_a_time = self.creating.lock().await;
        let store = self.storage.plugin_store(bot.as_str(), Self::PLUGIN);
        if let Some(stored) = store.get::<String>(Self::KEY).await.context("reading the webhook secret")? {
            match WebhookSecret::parse(&stored) {
                Ok(secret) => return Ok(secret),
                Err(_) => warn!(bot_id = %bot, "stored webhook secret is malformed; replacing it"),
            }
        }
        let secret = WebhookSecret::generate()?;
        store.set(Self::KEY, secret.expose()).await.context("storing the webhook secret")?;
        // Another replica may have stored one at the same moment: use what the database kept.
        let stored = store.get::<String>(Self::KEY).await.context("reading the webhook secret")?;
        Ok(stored.and_then(|s| WebhookSecret::parse(&s).ok()).unwrap_or(secret))
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
    async fn the_database_store_keeps_one_secret_per_bot_across_instances() {
        let storage = Storage::in_memory().await.unwrap();
        let (shop, blog) = (BotId::parse("shop").unwrap(), BotId::parse("blog").unwrap());
        let first = StorageSecrets::new(storage.clone());
        let shop_secret = first.get_or_create(&shop).await.unwrap();
        assert_eq!(first.get_or_create(&shop).await.unwrap().expose(), shop_secret.expose());
        let blog_secret = first.get_or_create(&blog).await.unwrap();
        assert_ne!(shop_secret.expose(), blog_secret.expose());
        // A new store on the same database (a restart) reads the same secrets.
        let second = StorageSecrets::new(storage.clone());
        assert_eq!(second.get_or_create(&shop).await.unwrap().expose(), shop_secret.expose());
        // Bad input: a malformed stored value is replaced by a fresh secret.
        storage.plugin_store("blog", StorageSecrets::PLUGIN).set(StorageSecrets::KEY, "not valid!").await.unwrap();
        let replaced = second.get_or_create(&blog).await.unwrap();
        assert!(WebhookSecret::parse(replaced.expose()).is_ok());
        assert_ne!(replaced.expose(), blog_secret.expose());
    }
}
