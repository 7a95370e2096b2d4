//! The plugins compiled in, one file each; the file name is the name bots use in their YAML. Each declares its
//! struct and `impl Plugin` with `builtin_plugin!`, which writes what they all share (`meta`, `new`).

/// Declares a built-in plugin, its struct and `impl Plugin`: its name and description, and an instance made of its
/// config (kept in its `config` field) or of nothing (`NoConfig`); then the items that differ, its handlers.
macro_rules! builtin_plugin {
    ($plugin:ident { config: $config:ty }, $name:literal, $description:literal; $($handlers:tt)*) => {
        #[doc = concat!("The `", $name, "` plugin.")]
        pub struct $plugin {
            config: $config,
        }

        impl $crate::plugins::Plugin for $plugin {
            type Config = $config;

            fn meta() -> $crate::plugins::PluginMeta {
                $crate::plugins::PluginMeta::new($name).description($description)
            }

            fn new(config: $config, _cx: &$crate::plugins::PluginContext) -> anyhow::Result<$plugin> {
                Ok($plugin { config })
            }

            $($handlers)*
        }
    };
    ($plugin:ident, $name:literal, $description:literal; $($handlers:tt)*) => {
        #[doc = concat!("The `", $name, "` plugin.")]
        pub struct $plugin;

        impl $crate::plugins::Plugin for $plugin {
            type Config = $crate::plugins::NoConfig;

            fn meta() -> $crate::plugins::PluginMeta {
                $crate::plugins::PluginMeta::new($name).description($description)
            }

            fn new(_config: Self::Config, _cx: &$crate::plugins::PluginContext) -> anyhow::Result<$plugin> {
                Ok($plugin)
            }

            $($handlers)*
        }
    };
}

mod echo;
mod error_handler;
mod form;
mod help;
mod menu;
mod start;

pub use echo::Echo;
pub use error_handler::ErrorHandler;
pub use form::Form;
pub use help::Help;
pub use menu::Menu;
pub use start::Start;

use super::PluginRegistry;

/// Registers every built-in plugin.
pub(crate) fn register_all(registry: &mut PluginRegistry) {
    registry.register::<Start>();
    registry.register::<Help>();
    registry.register::<ErrorHandler>();
    registry.register::<Echo>();
    registry.register::<Form>();
    registry.register::<Menu>();
}
