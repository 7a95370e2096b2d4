//! The module graph of `crates/multibot/src`, read from the `use` lines and `crate::`/`super::`/child paths: no
//! import cycle between modules, and every import between top-level modules points down the [`LAYERS`]
//! (docs/ARCHITECTURE.md tells what each layer owns). A module's own children are its parts, not imports: a parent
//! re-exporting a child's type is not an arrow back.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// The product's layers, from the bottom up: a module imports only from layers below its own. A new top-level
/// module takes its place here.
const LAYERS: &[&[&str]] = &[
    // Tests only: helpers for the unit tests of any layer.
    &["testing"],
    &["outcomes", "tls"],
    &["config"],
    &["telemetry"],
    &["telegram"],
    &["storage"],
    &["fsm"],
    &["plugins"],
    &["runtime"],
    &["fleet"],
    &["http"],
    &["app", "signals"],
    &["demo"],
    &["cli"],
    // Tests only: the fuzz targets reach into any layer.
    &["fuzz"],
];

/// The only modules that may use the Bot API emulator: the `emulator` and `demo` subcommands.
const EMULATOR_USERS: &[&str] = &["cli", "demo"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `bots/runtime.rs` -> `bots::runtime`; `lib.rs` -> `` (the crate root).
fn module_of(file: &Path) -> String {
    let relative = file.strip_prefix(src()).unwrap().with_extension("");
    let name = relative.to_string_lossy().replace('/', "::");
    if name == "lib" { String::new() } else { name }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("main.rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and `#[cfg(test)]` modules' bodies (tests may reach anywhere).
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let line = line.split("//").next().unwrap_or("");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Expands a use tree (`crate::{a::{b, c}, d}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else { return vec![tree] };
    let (prefix, rest) = tree.split_at(open);
    let inner = &rest[1..rest.len() - 1];
    let (mut depth, mut start, mut parts) = (0, 0, Vec::new());
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).flat_map(|p| expand(&format!("{prefix}{p}"))).collect()
}

/// The paths a file's code names: every `use` tree expanded, and every `crate::`/`super::` path elsewhere.
fn paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let boundary = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric() && rest.as_bytes()[at - 1] != b'_';
        let Some(end) = rest[at..].find(';') else { break };
        if boundary {
            paths.extend(expand(&rest[at + 4..at + end]));
        }
        rest = &rest[at + 4..];
    }
    for anchor in ["crate::", "super::"] {
        for (at, _) in code.match_indices(anchor) {
            let path: String =
                code[at..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            paths.push(path);
        }
    }
    paths
}

/// The module a path in `module` points into, if it is one of `known`.
fn resolve(module: &str, path: &str, known: &BTreeSet<String>) -> Option<String> {
    let mut parts: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
    let mut segments = path.split("::").filter(|s| !s.is_empty()).peekable();
    match segments.peek() {
        Some(&"crate") => {
            parts.clear();
            segments.next();
        }
        Some(&"super") | Some(&"self") => {
            while let Some(&s) = segments.peek() {
                match s {
                    "super" => drop(parts.pop()),
                    "self" => {}
                    _ => break,
                }
                segments.next();
            }
        }
        // `mod child; use child::Thing;`
        Some(first) if known.contains(&[&parts[..], &[*first]].concat().join("::")) => {}
        _ => return None,
    }
    let mut best = None;
    for segment in segments {
        parts.push(segment);
        let candidate = parts.join("::");
        if known.contains(&candidate) {
            best = Some(candidate);
        }
    }
    best
}

/// Tarjan's strongly connected components.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let low = s.low[w.as_str()].min(s.low[v]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w.as_str()) {
                let low = s.index[w.as_str()].min(s.low[v]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.out
}

/// Each module of the product and the modules it imports.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let known: BTreeSet<String> = all.iter().map(|f| module_of(f)).collect();
    let mut graph = BTreeMap::new();
    for file in &all {
        let module = module_of(file);
        let text = std::fs::read_to_string(file).unwrap();
        let edges: BTreeSet<String> = paths(&code(&text))
            .iter()
            .filter_map(|p| resolve(&module, p, &known))
            .filter(|target| *target != module && !target.is_empty())
            // A module's children are its parts: `pub use child::Thing` is not an import.
            .filter(|target| !module.is_empty() && !target.starts_with(&format!("{module}::")))
            .collect();
        graph.insert(module, edges);
    }
    graph
}

#[test]
fn the_reader_sees_imports_and_cycles() {
    assert_eq!(expand("crate::{a::{b, c}, d}"), ["crate::a::b", "crate::a::c", "crate::d"]);
    let known: BTreeSet<String> = ["bots", "bots::api", "plugins"].map(str::to_owned).into();
    assert_eq!(resolve("bots::runtime", "super::api::BotApi", &known).as_deref(), Some("bots::api"));
    assert_eq!(resolve("bots::runtime", "crate::plugins::Ctx", &known).as_deref(), Some("plugins"));
    assert_eq!(resolve("bots", "api::BotApi", &known).as_deref(), Some("bots::api"));
    assert_eq!(resolve("bots", "reqwest::Url", &known), None);
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), ["b".to_owned()].into()),
        ("b".to_owned(), ["a".to_owned()].into()),
        ("c".to_owned(), ["a".to_owned()].into()),
    ]
    .into();
    assert_eq!(cycles(&graph), [vec!["a".to_owned(), "b".to_owned()]]);
    // The real graph is read: `app` imports `config`.
    assert!(module_graph()["app"].contains("config"));
    // An arrow up is caught, one down is not.
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("telegram::api".to_owned(), ["fleet".to_owned(), "config".to_owned()].into()),
        ("fleet".to_owned(), ["telegram".to_owned()].into()),
    ]
    .into();
    assert_eq!(arrows_up(&graph), ["telegram::api imports fleet, which is not in a lower layer"]);
}

fn layer_of(module: &str) -> Option<usize> {
    let top = module.split("::").next().unwrap_or_default();
    LAYERS.iter().position(|layer| layer.contains(&top))
}

#[test]
fn no_module_imports_another_in_a_cycle() {
    let cycles = cycles(&module_graph());
    let listing: Vec<String> = cycles.iter().map(|c| format!("{} modules: {}", c.len(), c.join(", "))).collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", listing.join("\n"));
}

/// Each import that does not point to a lower layer, described.
fn arrows_up(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut wrong = Vec::new();
    // The crate root (`lib.rs`) declares the layers and the prelude: it stands above them all.
    for (module, targets) in graph.iter().filter(|(module, _)| !module.is_empty()) {
        let Some(own) = layer_of(module) else {
            wrong.push(format!("{module} is in no layer: add its top-level module to LAYERS"));
            continue;
        };
        for target in targets {
            let theirs = layer_of(target).unwrap_or(usize::MAX);
            let same_top = module.split("::").next() == target.split("::").next();
            if !same_top && theirs >= own {
                wrong.push(format!("{module} imports {target}, which is not in a lower layer"));
            }
        }
    }
    wrong
}

#[test]
fn imports_point_down_the_layers() {
    let wrong = arrows_up(&module_graph());
    assert!(wrong.is_empty(), "imports that do not point down:\n{}", wrong.join("\n"));
}

#[test]
fn only_the_demo_and_the_emulator_command_use_the_emulator() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let users: BTreeSet<String> = all
        .iter()
        .filter(|file| code(&std::fs::read_to_string(file).unwrap()).contains("botapi_emulator"))
        .map(|file| module_of(file))
        .collect();
    let allowed: BTreeSet<String> = EMULATOR_USERS.iter().map(|m| m.to_string()).collect();
    assert!(users.is_subset(&allowed), "the emulator is used by {users:?}; only {allowed:?} may use it");
}
