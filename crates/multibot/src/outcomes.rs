//! Typed outcomes that cross layers as plain data: [`ReloadOutcome`], what applying a configuration did to a bot
//! (or a script plugin). The fleet produces it; the audit events, the reload report and the admin bot show it.

use std::fmt;

use serde::Serialize;

/// What a reload did to a bot or a script plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// The configuration did not change.
    Unchanged,
    /// A new bot (or script) was added and started.
    Added,
    /// The plugins and router were replaced while the bot kept polling (or a script's new version was loaded).
    Reloaded,
    /// The bot was restarted with the new configuration (a plugin does not support hot reload, or the token or
    /// mode changed).
    Restarted,
    /// The new configuration disables the bot; it was stopped.
    Disabled,
    /// The bot's file (or the script) was removed; it was stopped and forgotten.
    Removed,
}

impl ReloadOutcome {
    /// The word logs, events, the admin bot and metrics use: `added`, `reloaded`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadOutcome::Unchanged => "unchanged",
            ReloadOutcome::Added => "added",
            ReloadOutcome::Reloaded => "reloaded",
            ReloadOutcome::Restarted => "restarted",
            ReloadOutcome::Disabled => "disabled",
            ReloadOutcome::Removed => "removed",
        }
    }
}

impl fmt::Display for ReloadOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_the_serialized_names() {
        let all = [
            ReloadOutcome::Unchanged,
            ReloadOutcome::Added,
            ReloadOutcome::Reloaded,
            ReloadOutcome::Restarted,
            ReloadOutcome::Disabled,
            ReloadOutcome::Removed,
        ];
        for outcome in all {
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.as_str());
            assert_eq!(outcome.to_string(), format!("{outcome:?}").to_lowercase());
        }
    }
}
