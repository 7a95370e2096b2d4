//! `require("name")`: shared modules, `PLUGINS_DIR/lib/<name>.luau`, run in the requiring script's VM (its
//! sandbox, its memory, the CPU budget of the call that requires) with globals of their own, and cached per VM.
//!
//! A script version reads each module once ([`Libs`]): every bot's VM of that version runs the same text. The
//! catalog asks [`Libs::changed`] on each scan, so that editing a module reloads every script that required it.
//! A module is not a plugin: `lib/` is not scanned for plugins.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use mlua::{Lua, Table, Value};
use parking_lot::Mutex;

/// Where modules live, below `PLUGINS_DIR`.
pub(super) const LIB_DIR: &str = "lib";
/// Distinct modules one script version may ask for (found or not): the host keeps each one's text.
const MAX_MODULES: usize = 64;

/// The modules one script version has read, by name: their text, or none when the file was missing.
pub(super) struct Libs {
    dir: PathBuf,
    read: Mutex<BTreeMap<String, Option<Arc<str>>>>,
}

impl Libs {
    /// The modules of a script in `plugins_dir`.
    pub(super) fn new(plugins_dir: &Path) -> Libs {
        Libs { dir: plugins_dir.join(LIB_DIR), read: Mutex::default() }
    }

    /// A module's file.
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.luau"))
    }

    /// A module's text, as this version first read it.
    fn source(&self, name: &str) -> Result<Arc<str>, String> {
        let mut read = self.read.lock();
        if read.len() >= MAX_MODULES && !read.contains_key(name) {
            return Err(format!("a script may require at most {MAX_MODULES} different modules"));
        }
        let text = read
            .entry(name.to_owned())
            .or_insert_with(|| std::fs::read_to_string(self.file(name)).ok().map(Arc::from))
            .clone();
        text.ok_or_else(|| format!("no module {name:?}: {} cannot be read", self.file(name).display()))
    }

    /// Whether a module this version read has changed on disk since (edited, created or removed).
    pub(super) fn changed(&self) -> bool {
        let read = self.read.lock();
        read.iter().any(|(name, text)| {
            let now = std::fs::read_to_string(self.file(name)).ok();
            now.as_deref() != text.as_deref()
        })
    }
}

/// Whether a module name is one: 1-64 of `a-z`, `0-9` and `_` (no path, no dot).
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Installs `require` in a fresh VM (before it is sealed).
pub(super) fn install(lua: &Lua, libs: Arc<Libs>) -> mlua::Result<()> {
    let cache = lua.create_table()?;
    // The modules being loaded, outermost first: a name met twice is a cycle.
    let loading: Arc<Mutex<Vec<String>>> = Arc::default();
    let require = lua.create_function(move |lua, name: String| {
        if !valid_name(&name) {
            return Err(mlua::Error::runtime(format!(
                "require: invalid module name {name:?}: use 1-64 of a-z, 0-9 and _ (the file is {LIB_DIR}/<name>.luau)"
            )));
        }
        let cached: Value = cache.raw_get(name.as_str())?;
        if !cached.is_nil() {
            return Ok(cached);
        }
        {
            let mut loading = loading.lock();
            if loading.contains(&name) {
                let mut cycle = loading.clone();
                cycle.push(name.clone());
                return Err(mlua::Error::runtime(format!("require: a cycle of modules: {}", cycle.join(" -> "))));
            }
            loading.push(name.clone());
        }
        let loaded = load(lua, &libs, &name);
        loading.lock().retain(|n| n != &name);
        let value = loaded?;
        let value = if value.is_nil() { Value::Boolean(true) } else { value };
        cache.raw_set(name.as_str(), value.clone())?;
        Ok(value)
    })?;
    lua.globals().set("require", require)?;
    Ok(())
}

/// Runs a module's text with globals of its own (reading through to the VM's): its value. An error names the
/// module and its file and line; the CPU budget and the memory limit stay the errors they are.
fn load(lua: &Lua, libs: &Libs, name: &str) -> mlua::Result<Value> {
    let source = libs.source(name).map_err(|message| mlua::Error::runtime(format!("require({name:?}): {message}")))?;
    let env: Table = lua.create_table()?;
    let meta = lua.create_table()?;
    meta.raw_set("__index", lua.globals())?;
    env.set_metatable(Some(meta))?;
    let chunk = format!("{LIB_DIR}/{name}.luau");
    let run = lua
        .load(&*source)
        .set_name(format!("={chunk}"))
        .set_mode(mlua::chunk::ChunkMode::Text)
        .set_environment(env)
        .call::<Value>(());
    run.map_err(|error| match located(&error, &chunk, &libs.file(name)) {
        Some(message) => mlua::Error::runtime(format!("require({name:?}): {message}")),
        None => error,
    })
}

/// A module's error as `file:line: message`, with the module's full path; none for the limits' errors.
fn located(error: &mlua::Error, chunk: &str, file: &Path) -> Option<String> {
    let text = match error {
        mlua::Error::CallbackError { cause, .. } => return located(cause, chunk, file),
        mlua::Error::MemoryError(_) | mlua::Error::ExternalError(_) => return None,
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(message) => message.lines().next().unwrap_or_default().to_owned(),
        other => other.to_string().lines().next().unwrap_or_default().to_owned(),
    };
    Some(match text.strip_prefix(chunk) {
        Some(rest) => format!("{}{rest}", file.display()),
        None => text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    #[test]
    fn names_are_checked_and_the_modules_a_script_asks_for_are_bounded() {
        let dir = TempDir::new("modules");
        std::fs::create_dir_all(dir.path().join(LIB_DIR)).unwrap();
        dir.write(&format!("{LIB_DIR}/one.luau"), "return { n = 1 }");
        let lua = Lua::new();
        let libs = Arc::new(Libs::new(dir.path()));
        install(&lua, libs.clone()).unwrap();
        assert_eq!(lua.load("return require('one').n").eval::<i64>().unwrap(), 1);
        for bad in ["'../one'", "'One'", "'a.b'", "''"] {
            let error = lua.load(format!("require({bad})")).exec().unwrap_err().to_string();
            assert!(error.contains("invalid module name"), "{bad}: {error}");
        }
        // Bad input: a script asking for thousands of names that do not exist.
        let error = lua
            .load("for i = 1, 1000 do pcall(require, 'm' .. i) end return require('m2000')")
            .exec()
            .unwrap_err()
            .to_string();
        assert!(error.contains("at most 64 different modules"), "{error}");
        assert_eq!(libs.read.lock().len(), MAX_MODULES);
        assert!(!libs.changed());
        dir.write(&format!("{LIB_DIR}/m5.luau"), "return 5");
        assert!(libs.changed(), "a module asked for and created since counts as a change");
    }
}
