//! Reading a YAML tree into the schema's types ([`Reader`]): a serde deserializer over [`Node`]s that never
//! stops at a problem. Each one (a wrong type, an unknown or missing key, an unknown variant, a value that
//! breaks its rule in `validate.rs`, an unset `${VAR}`) is recorded with its file, line, column and field path,
//! and reading goes on with a stand-in value, so that one pass reports every problem of a file. The stand-ins
//! never escape: a file with problems yields no config. The reader also keeps every node it read by field
//! path, for the checks that span fields.

use std::{cell::RefCell, collections::HashMap, fmt, path::Path};

use serde::de::{self, DeserializeSeed, Deserializer, Expected, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::{
    ConfigError,
    yaml::{Node, Pos, Value},
};

/// The rule of one value, checked as it is read.
pub(super) enum Rule {
    /// A string: `check` returns the message of a bad one; `stand_in` is a value its type accepts, read in its
    /// place once the problem is reported.
    Text { check: fn(&str) -> Result<(), String>, stand_in: &'static str },
    /// An integer from `min` to `max`.
    Int { min: i64, max: i64 },
}

/// What the reader checks beyond the types: the rule of a value at a path, and whether a field is required.
pub(super) struct Rules {
    /// The rule of the value at a path (`plugins[].name` style), if it has one beyond its type.
    pub(super) rule: fn(&str) -> Option<Rule>,
    /// Whether the field at a path must be present.
    pub(super) required: fn(&str) -> bool,
}

/// One file being read: where problems go and the nodes read so far.
pub(super) struct Reader<'a> {
    file: &'a Path,
    rules: &'a Rules,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: RefCell<Vec<ConfigError>>,
    nodes: RefCell<HashMap<String, &'a Node>>,
}

impl<'a> Reader<'a> {
    /// A reader for `file`, substituting `${VAR}` from `env` and checking `rules`.
    pub(super) fn new(file: &'a Path, env: &'a dyn Fn(&str) -> Option<String>, rules: &'a Rules) -> Reader<'a> {
        Reader { file, rules, env, errors: RefCell::default(), nodes: RefCell::default() }
    }

    /// Reads `root` as a `T`; `None` only if `T` refused it in a way the reader could not stand in for
    /// (the problem is recorded too).
    pub(super) fn read<T: de::DeserializeOwned>(&self, root: &'a Node) -> Option<T> {
        self.nodes.borrow_mut().insert(String::new(), root);
        match T::deserialize(NodeReader { reader: self, node: Some(root), path: String::new() }) {
            Ok(value) => Some(value),
            Err(Error(message)) => {
                self.error(root.pos, "", message);
                None
            }
        }
    }

    /// Records a problem.
    pub(super) fn error(&self, pos: Pos, path: &str, message: impl Into<String>) {
        self.errors.borrow_mut().push(ConfigError {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// The node read at `path`, null included; `None` when the file has none there.
    pub(super) fn node(&self, path: &str) -> Option<&'a Node> {
        self.nodes.borrow().get(path).copied()
    }

    /// Whether a problem was recorded at `path` or inside it.
    pub(super) fn failed(&self, path: &str) -> bool {
        self.errors
            .borrow()
            .iter()
            .any(|e| e.path.strip_prefix(path).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '['])))
    }

    /// Every problem recorded, in the order found.
    pub(super) fn into_errors(self) -> Vec<ConfigError> {
        self.errors.into_inner()
    }

    fn remember(&self, path: &str, node: &'a Node) {
        self.nodes.borrow_mut().insert(path.to_owned(), node);
    }
}

/// `parent.key`.
pub(super) fn field_path(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

/// `parent[index]`.
pub(super) fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// A problem the schema's own `Deserialize` code raised (the reader records its own and never fails).
#[derive(Debug)]
pub(super) struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Error {
        Error(message.to_string())
    }
}

/// The deserializer of one node; `node` is `None` for a missing required field (already reported), which
/// reads as a stand-in without a further problem.
struct NodeReader<'r, 'a> {
    reader: &'r Reader<'a>,
    node: Option<&'a Node>,
    path: String,
}

impl<'r, 'a> NodeReader<'r, 'a> {
    fn child(&self, path: String, node: Option<&'a Node>) -> NodeReader<'r, 'a> {
        if let Some(node) = node {
            self.reader.remember(&path, node);
        }
        NodeReader { reader: self.reader, node, path }
    }

    /// Records "expected X, found Y".
    fn mistyped(&self, node: &Node, expected: &dyn fmt::Display) {
        self.reader.error(node.pos, &self.path, format!("expected {expected}, found {}", node.value.kind()));
    }

    /// The string, after `${VAR}` substitution and its rule; `None` after a recorded problem.
    fn text(&self) -> Option<String> {
        let node = self.node?;
        let Value::Str(raw) = &node.value else {
            self.mistyped(node, &"a string");
            return None;
        };
        let text = match substitute(raw, self.reader.env) {
            Ok(text) => text,
            Err(problems) => {
                for message in problems {
                    self.reader.error(node.pos, &self.path, message);
                }
                return None;
            }
        };
        if let Some(Rule::Text { check, .. }) = (self.reader.rules.rule)(&self.path)
            && let Err(message) = check(&text)
        {
            self.reader.error(node.pos, &self.path, message);
            return None;
        }
        Some(text)
    }

    /// An integer within `min..=max` (the target type's range) and its rule; `None` after a recorded problem.
    fn integer(&self, min: i64, max: i64) -> Option<i64> {
        let node = self.node?;
        let Value::Int(value) = node.value else {
            self.mistyped(node, &"an integer");
            return None;
        };
        let (min, max) = match (self.reader.rules.rule)(&self.path) {
            Some(Rule::Int { min, max }) => (min, max),
            _ => (min, max),
        };
        if (min..=max).contains(&value) {
            return Some(value);
        }
        // A rule with no upper bound says so with the largest u32, the type of such fields.
        let message = if max == i64::from(u32::MAX) {
            format!("expected an integer of at least {min}, found {value}")
        } else {
            format!("expected an integer from {min} to {max}, found {value}")
        };
        self.reader.error(node.pos, &self.path, message);
        None
    }

    /// The stand-in for a string that could not be read: one its type accepts.
    fn stand_in(&self) -> String {
        match (self.reader.rules.rule)(&self.path) {
            Some(Rule::Text { stand_in, .. }) => stand_in.to_owned(),
            _ => String::new(),
        }
    }

    /// A mapping's entries; `None` (recorded) when the node is something else. Null reads as empty.
    fn entries(&self, expected: &str) -> Option<&'a [(Node, Node)]> {
        match self.node.map(|node| &node.value) {
            None | Some(Value::Null) => Some(&[]),
            Some(Value::Map(pairs)) => Some(pairs),
            Some(_) => {
                self.mistyped(self.node?, &expected);
                None
            }
        }
    }
}

macro_rules! integers {
    ($($method:ident: $ty:ty => $visit:ident,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            // Every integer type's range fits in i64 here, up to u32.
            let value = self.integer(i64::from(<$ty>::MIN), i64::from(<$ty>::MAX)).unwrap_or_default();
            visitor.$visit(<$ty>::try_from(value).unwrap_or_default())
        }
    )*};
}

impl<'de> Deserializer<'de> for NodeReader<'_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let Some(node) = self.node else {
            return visitor.visit_unit();
        };
        match &node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) if f.is_finite() => visitor.visit_f64(*f),
            Value::Float(_) => {
                self.reader.error(node.pos, &self.path, "expected a finite number, found infinity or NaN");
                visitor.visit_unit()
            }
            Value::Str(_) => visitor.visit_string(self.text().unwrap_or_default()),
            Value::Seq(_) => self.deserialize_seq(visitor),
            Value::Map(_) => self.deserialize_map(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Some(Node { value: Value::Bool(b), .. }) => visitor.visit_bool(*b),
            Some(node) => {
                self.mistyped(node, &"a boolean");
                visitor.visit_bool(false)
            }
            None => visitor.visit_bool(false),
        }
    }

    integers! {
        deserialize_i8: i8 => visit_i8,
        deserialize_i16: i16 => visit_i16,
        deserialize_i32: i32 => visit_i32,
        deserialize_u8: u8 => visit_u8,
        deserialize_u16: u16 => visit_u16,
        deserialize_u32: u32 => visit_u32,
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i64(self.integer(i64::MIN, i64::MAX).unwrap_or_default())
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(self.integer(0, i64::MAX).and_then(|i| u64::try_from(i).ok()).unwrap_or_default())
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let text = self.text().unwrap_or_else(|| self.stand_in());
        visitor.visit_string(text)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node.map(|node| &node.value) {
            None | Some(Value::Null) => visitor.visit_none(),
            Some(_) => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let items: &[Node] = match self.node {
            Some(Node { value: Value::Seq(items), .. }) => items,
            Some(node) => {
                self.mistyped(node, &(&visitor as &dyn Expected).to_string());
                &[]
            }
            None => &[],
        };
        visitor.visit_seq(Items { parent: &self, items: items.iter().enumerate() })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let entries = self.entries("a mapping").unwrap_or_default();
        visitor.visit_map(Entries::new(&self, entries, None, false))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.entries("a mapping") {
            Some(entries) => visitor.visit_map(Entries::new(&self, entries, Some(fields), true)),
            // A stand-in: its required fields are not missing, the mapping is.
            None => visitor.visit_map(Entries::new(&self, &[], Some(fields), false)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let text = self.text();
        let known = text.as_deref().and_then(|text| variants.iter().find(|v| **v == text));
        if let (Some(text), None, Some(node)) = (&text, known, self.node) {
            let key = self.path.rsplit('.').next().unwrap_or_default();
            let expected = match variants {
                [a, b] => format!("{a} or {b}"),
                _ => format!("one of: {}", variants.join(", ")),
            };
            self.reader.error(node.pos, &self.path, format!("unknown {key} {text:?}, expected {expected}"));
        }
        let variant = known.or(variants.first()).copied().unwrap_or_default();
        visitor.visit_enum(variant.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        i128 u128 f32 f64 char bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

/// The elements of a sequence.
struct Items<'p, 'r, 'a> {
    parent: &'p NodeReader<'r, 'a>,
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
}

impl<'de> SeqAccess<'de> for Items<'_, '_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        let Some((index, item)) = self.items.next() else {
            return Ok(None);
        };
        seed.deserialize(self.parent.child(index_path(&self.parent.path, index), Some(item))).map(Some)
    }
}

/// The entries of a mapping: a struct's known fields (`fields`), or any string key.
struct Entries<'p, 'r, 'a> {
    parent: &'p NodeReader<'r, 'a>,
    entries: std::slice::Iter<'a, (Node, Node)>,
    fields: Option<&'static [&'static str]>,
    /// Required fields the mapping lacks, handed out after its entries as stand-ins.
    missing: Vec<&'static str>,
    /// Whether to report `missing` once the entries are read (not for a stand-in mapping).
    report: bool,
    /// The value of the key just handed out: its path and node.
    value: Option<(String, Option<&'a Node>)>,
}

impl<'p, 'r, 'a> Entries<'p, 'r, 'a> {
    /// The entries of `parent`'s mapping; with `report`, the required fields it lacks are reported after the
    /// problems of its keys.
    fn new(
        parent: &'p NodeReader<'r, 'a>,
        entries: &'a [(Node, Node)],
        fields: Option<&'static [&'static str]>,
        report: bool,
    ) -> Entries<'p, 'r, 'a> {
        let present = |field: &str| entries.iter().any(|(key, _)| matches!(&key.value, Value::Str(k) if k == field));
        let mut missing: Vec<&'static str> = fields
            .unwrap_or_default()
            .iter()
            .filter(|field| (parent.reader.rules.required)(&field_path(&parent.path, field)) && !present(field))
            .copied()
            .collect();
        missing.reverse();
        Entries { parent, entries: entries.iter(), fields, missing, report, value: None }
    }
}

impl<'de> MapAccess<'de> for Entries<'_, '_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let (reader, parent) = (self.parent.reader, &self.parent.path);
        for (key, value) in self.entries.by_ref() {
            let Value::Str(name) = &key.value else {
                let what = if self.fields.is_some() { "a field name" } else { "a string key" };
                reader.error(key.pos, parent, format!("expected {what}, found {}", key.value.kind()));
                continue;
            };
            let path = field_path(parent, name);
            if let Some(fields) = self.fields {
                if !fields.contains(&name.as_str()) {
                    let message = format!("unknown field {name:?}, expected one of: {}", fields.join(", "));
                    reader.error(key.pos, &path, message);
                    continue;
                }
                // Null means the default, as absent does; a required field gets its "found null".
                if value.value == Value::Null && !(self.parent.reader.rules.required)(&path) {
                    reader.remember(&path, value);
                    continue;
                }
            }
            self.value = Some((path, Some(value)));
            return seed.deserialize(name.as_str().into_deserializer()).map(Some);
        }
        if let (Some(node), true) = (self.parent.node, self.report) {
            for field in self.missing.iter().rev() {
                reader.error(node.pos, &field_path(parent, field), format!("missing required field {field:?}"));
            }
        }
        self.report = false;
        let Some(field) = self.missing.pop() else {
            return Ok(None);
        };
        self.value = Some((field_path(parent, field), None));
        seed.deserialize(field.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (path, node) = self.value.take().unwrap_or_default();
        seed.deserialize(self.parent.child(path, node))
    }
}

/// Replaces `${NAME}` and `${NAME:-default}` (the default also when the variable is empty) in `text`.
///
/// The messages never quote `text`, which may be a token.
fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    if !text.contains("${") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            problems.push("unclosed \"${\": expected ${NAME} or ${NAME:-default}".to_owned());
            rest = "";
            break;
        };
        let reference = &after[..end];
        let (name, default) = match reference.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (reference, None),
        };
        if is_variable_name(name) {
            match (env(name), default) {
                (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => problems.push(format!("environment variable {name} is not set")),
            }
        } else {
            problems.push(
                "invalid \"${...}\" reference: expected ${NAME} or ${NAME:-default}, NAME made of A-Z a-z 0-9 _ \
                 and not starting with a digit"
                    .to_owned(),
            );
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
