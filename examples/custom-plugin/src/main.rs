//! A `multibot` binary of your own: every subcommand (`run`, `check-config`, `plugins`, `migrate`, `demo`, ...) and
//! the built-in plugins, plus `greeter`, a plugin written here. Bots use it in their YAML like any other:
//!
//! ```yaml
//! plugins:
//!   - name: greeter
//!     config:
//!       greeting: "Ahoy"
//! ```

use std::{process::ExitCode, sync::Arc};

use multibot::{plugins::PluginRegistry, prelude::*};

/// `config:` of the `greeter` plugin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GreeterConfig {
    /// The word `/hello` starts its answer with.
    #[serde(default = "default_greeting")]
    greeting: String,
}

fn default_greeting() -> String {
    "Hello".to_owned()
}

/// `/hello` greets the user by name.
struct Greeter {
    config: GreeterConfig,
}

impl Plugin for Greeter {
    type Config = GreeterConfig;

    fn meta() -> PluginMeta {
        PluginMeta::new("greeter").description("Greets the user by name on /hello").author("You")
    }

    fn new(config: GreeterConfig, _cx: &PluginContext) -> anyhow::Result<Greeter> {
        Ok(Greeter { config })
    }

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers.command("hello", "Say hello", Greeter::hello);
    }
}

impl Greeter {
    async fn hello(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let name = cx.user().map_or("stranger".to_owned(), |user| user.first_name.clone());
        cx.reply(format!("{}, {name}!", self.config.greeting)).plain().await?;
        Ok(())
    }
}

fn main() -> anyhow::Result<ExitCode> {
    let mut registry = PluginRegistry::builtin();
    registry.register::<Greeter>();
    multibot::cli::run(registry)
}
