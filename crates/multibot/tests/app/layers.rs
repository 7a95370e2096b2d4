//! The module graph of `crates/multibot/src`, read from the `use` lines and `crate::`/`super::` paths: the import
//! cycles may not grow (docs/ARCHITECTURE.md explains the layers we are heading for and
//! why a cycle hurts). When a change breaks a cycle, lower [`LARGEST_CYCLE`] and [`IN_CYCLES`] so it cannot return.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// The most modules one import cycle may hold today. (`middleware` and its two files joined the cycle when the
/// pipeline moved out of `bots::runtime`: they take the handler's `plugins::Ctx`, an arrow that points down in the
/// layers ahead; they leave it when `plugins` stops importing `bots`.)
const LARGEST_CYCLE: usize = 16;
/// The most modules that may be in some cycle today.
const IN_CYCLES: usize = 16;

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
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), ["b".to_owned()].into()),
        ("b".to_owned(), ["a".to_owned()].into()),
        ("c".to_owned(), ["a".to_owned()].into()),
    ]
    .into();
    assert_eq!(cycles(&graph), [vec!["a".to_owned(), "b".to_owned()]]);
    // The real graph is read: `app` imports `config`.
    assert!(module_graph()["app"].contains("config"));
}

#[test]
fn import_cycles_do_not_grow() {
    let cycles = cycles(&module_graph());
    let largest = cycles.iter().map(Vec::len).max().unwrap_or(0);
    let in_cycles: usize = cycles.iter().map(Vec::len).sum();
    let listing: Vec<String> = cycles.iter().map(|c| format!("{} modules: {}", c.len(), c.join(", "))).collect();
    assert!(
        largest <= LARGEST_CYCLE && in_cycles <= IN_CYCLES,
        "import cycles grew: the largest holds {largest} modules (at most {LARGEST_CYCLE}), {in_cycles} modules are \
         in one (at most {IN_CYCLES}):\n{}",
        listing.join("\n")
    );
    if largest < LARGEST_CYCLE || in_cycles < IN_CYCLES {
        // Printed past the harness's capture: the ratchet can come down.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "import cycles shrank ({largest} largest, {in_cycles} in all): lower the limits in layers.rs"
        );
    }
}
