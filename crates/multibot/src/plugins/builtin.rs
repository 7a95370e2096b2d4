//! The plugins compiled in, one file each; the file name is the name bots use in their YAML.

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
