//! YAML with positions: [`parse`] turns a file's text into a tree of [`Node`]s, each carrying the 1-based
//! line and column ([`Pos`]) where it starts, mapping keys included, so that the loader can point at the exact
//! place of every problem.

use std::path::Path;

use saphyr::{LoadableYamlNode, MarkedYaml, Marker, Scalar, YamlData};

use super::ConfigError;

/// Deeper documents are refused: the tree is walked recursively, and no bot file needs a tenth of this.
const MAX_DEPTH: usize = 128;

/// Longer runs of indentation and `- ` / `? ` indicators at the start of a line are refused before parsing:
/// saphyr recurses once per nesting level and overflows a 2 MiB stack below 1000 levels, and block nesting
/// is at most two levels per column of this run (flow nesting is capped at 255 by saphyr itself).
const MAX_INDENT: usize = 200;

/// A place in a file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Pos {
    /// 1-based line.
    pub(super) line: usize,
    /// 1-based column.
    pub(super) column: usize,
}

impl Pos {
    /// The position of a parser marker (whose column is 0-based).
    fn of(marker: &Marker) -> Pos {
        Pos { line: marker.line(), column: marker.col() + 1 }
    }
}

/// A YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    /// Where the node starts.
    pub(super) pos: Pos,
    /// What it holds.
    pub(super) value: Value,
}

/// The content of a [`Node`], with scalars resolved by the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in an `i64`.
    Int(i64),
    /// A floating-point number (including larger integers).
    Float(f64),
    /// Any other scalar, or a quoted one.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping as `(key, value)` pairs in document order; keys are nodes so that they keep their position.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// The value's kind with its article, for messages: `a string`, `an integer`, ...
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Parses `text` (the content of `file`) as a single YAML document; `None` when the file holds no document.
///
/// A syntax error is one error at the parser's position; values that the syntax allows but that cannot be
/// represented (`!!int foo`, nesting deeper than [`MAX_DEPTH`], a second document) are each an error.
pub(super) fn parse(file: &Path, text: &str) -> Result<Option<Node>, Vec<ConfigError>> {
    let error = |pos: Pos, message: String| ConfigError {
        file: file.to_path_buf(),
        line: pos.line,
        column: pos.column,
        path: String::new(),
        message,
    };
    if let Some((index, _)) = text.lines().enumerate().find(|(_, line)| indent(line) > MAX_INDENT) {
        let message = format!("line indented too deeply: more than {MAX_INDENT} columns of indentation");
        return Err(vec![error(Pos { line: index + 1, column: 1 }, message)]);
    }
    let docs = MarkedYaml::load_from_str(text)
        .map_err(|e| vec![error(Pos::of(e.marker()), format!("invalid YAML: {}", e.info()))])?;
    let mut docs = docs.into_iter();
    let Some(first) = docs.next() else {
        return Ok(None);
    };
    let mut problems = Vec::new();
    if let Some(second) = docs.next() {
        problems.push(error(Pos::of(&second.span.start), "expected one YAML document, found several".to_owned()));
    }
    let root = convert(&first, Pos::of(&first.span.start), 0, &mut |pos, message| problems.push(error(pos, message)));
    if problems.is_empty() { Ok(Some(root)) } else { Err(problems) }
}

/// The length of a line's leading run of spaces, tabs and `-` / `?` indicators.
fn indent(line: &str) -> usize {
    line.chars().take_while(|c| matches!(c, ' ' | '\t' | '-' | '?')).count()
}

/// Converts a saphyr node; `pos` is where it starts (the outer node's for a tagged one, whose inner span is empty).
fn convert(node: &MarkedYaml<'_>, pos: Pos, depth: usize, problem: &mut dyn FnMut(Pos, String)) -> Node {
    let value = if depth > MAX_DEPTH {
        problem(pos, format!("nesting deeper than {MAX_DEPTH} levels"));
        Value::Null
    } else {
        match &node.data {
            YamlData::Value(scalar) => match scalar {
                Scalar::Null => Value::Null,
                Scalar::Boolean(b) => Value::Bool(*b),
                Scalar::Integer(i) => Value::Int(*i),
                Scalar::FloatingPoint(f) => Value::Float(f.into_inner()),
                Scalar::String(s) => Value::Str(s.to_string()),
            },
            // Only produced with early parsing off; kept as the text it is.
            YamlData::Representation(s, _, _) => Value::Str(s.to_string()),
            YamlData::Sequence(items) => Value::Seq(
                items.iter().map(|item| convert(item, Pos::of(&item.span.start), depth + 1, problem)).collect(),
            ),
            YamlData::Mapping(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            convert(k, Pos::of(&k.span.start), depth + 1, problem),
                            convert(v, Pos::of(&v.span.start), depth + 1, problem),
                        )
                    })
                    .collect(),
            ),
            // Custom tags carry no meaning for a bot file: the node is read as if untagged.
            YamlData::Tagged(_, inner) => return convert(inner, pos, depth + 1, problem),
            YamlData::Alias(_) | YamlData::BadValue => {
                problem(pos, "invalid value: it does not match its tag or refers to an unknown anchor".to_owned());
                Value::Null
            }
        }
    };
    Node { pos, value }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Node {
        match parse(Path::new("t.yaml"), text) {
            Ok(Some(node)) => node,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn positions_are_one_based_for_keys_and_values() {
        let root = parse_ok("id: \"x\"\nmap:\n  a: [1, 2.5]\n  !t b: ~\n");
        let Value::Map(entries) = root.value else { panic!("not a map") };
        assert_eq!(root.pos, Pos { line: 1, column: 1 });
        assert_eq!(entries[0].0.pos, Pos { line: 1, column: 1 });
        assert_eq!(entries[0].1, Node { pos: Pos { line: 1, column: 5 }, value: Value::Str("x".into()) });
        let Value::Map(inner) = &entries[1].1.value else { panic!("not a map") };
        assert_eq!(entries[1].1.pos, Pos { line: 3, column: 3 });
        let Value::Seq(items) = &inner[0].1.value else { panic!("not a seq") };
        assert_eq!(items[1], Node { pos: Pos { line: 3, column: 10 }, value: Value::Float(2.5) });
        assert_eq!(inner[1].0, Node { pos: Pos { line: 4, column: 3 }, value: Value::Str("b".into()) });
        assert_eq!(inner[1].1.value, Value::Null);
    }

    #[test]
    fn syntax_error_is_one_error_with_position() {
        let errors = parse(Path::new("t.yaml"), "a: 1\nb: [1, 2\n").expect_err("must fail");
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].line, errors[0].column), (3, 1));
        assert!(errors[0].message.starts_with("invalid YAML: "), "{}", errors[0].message);
    }

    #[test]
    fn duplicate_keys_bad_values_and_several_documents_are_errors() {
        let dup = parse(Path::new("t.yaml"), "a: 1\na: 2\n").expect_err("dup");
        assert_eq!((dup[0].line, dup[0].column), (2, 1));
        let bad = parse(Path::new("t.yaml"), "a: !!int foo\n").expect_err("bad");
        assert_eq!((bad[0].line, bad[0].column), (1, 4));
        let docs = parse(Path::new("t.yaml"), "a: 1\n---\nb: 2\n").expect_err("docs");
        assert_eq!((docs[0].line, docs[0].column), (3, 1));
    }

    #[test]
    fn empty_file_has_no_document_and_deep_nesting_is_refused() {
        assert_eq!(parse(Path::new("t.yaml"), "# nothing\n"), Ok(None));
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(Path::new("t.yaml"), &deep).is_err());
        // saphyr itself would overflow the stack on this one.
        let deeper = format!("a: 1\nb:\n{}x\n", "- ".repeat(5000));
        let errors = parse(Path::new("t.yaml"), &deeper).expect_err("too deep");
        assert_eq!((errors[0].line, errors[0].column), (3, 1));
    }
}
