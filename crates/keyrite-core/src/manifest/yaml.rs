//! A YAML document as a tree of nodes that remember where they came from.
//!
//! keyrite reports every manifest problem with `file:line:column`, including problems found
//! long after parsing (a dangling reference, a cycle, a policy statement with a bad Effect).
//! Serde-based YAML crates stop at the first error and drop positions once a value is
//! deserialised, so the manifest is first turned into this small positioned tree, built from
//! the event stream of `saphyr-parser` (the maintained successor of yaml-rust). Building the
//! tree ourselves also lets us reject what a declarative manifest must never contain
//! silently: duplicate keys, and inputs so large or deep that they are an attack rather than
//! a configuration.

use std::borrow::Cow;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Nesting deeper than this is refused: no real manifest comes near it, and a recursive
/// validator must not be driven into a stack overflow by hostile input.
pub const MAX_DEPTH: usize = 64;
/// The most nodes one document may expand to, aliases included ("billion laughs").
pub const MAX_NODES: usize = 100_000;

/// A 1-based line and column in the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl Pos {
    fn from_span(span: &Span) -> Pos {
        Pos { line: span.start.line(), col: span.start.col() + 1 }
    }
}

/// One YAML node and the position of its first character.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// YAML values as the manifest sees them. Scalars keep their text and whether they were
/// quoted, so that a field can say "expected a boolean, found the string \"yes\"" instead of
/// guessing what YAML 1.1 once meant by `yes`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar { text: String, quoted: bool },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A YAML syntax or structure error, with its position.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

impl Node {
    /// The node's text if it is a scalar.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// True for `~`, `null`, or an empty plain scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false }
            if text.is_empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
    }

    /// A short name of the node's kind for error messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "null".into(),
            Value::Scalar { text, quoted } if !quoted && plain_bool(text).is_some() => {
                format!("the boolean {text}")
            }
            Value::Scalar { text, quoted } if !quoted && text.parse::<f64>().is_ok() => {
                format!("the number {text}")
            }
            Value::Scalar { text, .. } => format!("the string {text:?}"),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }

    /// Converts the node to JSON, YAML 1.2 core schema for plain scalars.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Scalar { .. } if self.is_null() => J::Null,
            Value::Scalar { text, quoted: false } => {
                if let Some(b) = plain_bool(text) {
                    J::Bool(b)
                } else if let Ok(i) = text.parse::<i64>() {
                    J::from(i)
                } else if let Some(f) = text.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                    J::Number(f)
                } else {
                    J::String(text.clone())
                }
            }
            Value::Scalar { text, quoted: true } => J::String(text.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries.iter().map(|(k, v)| (k.as_scalar().unwrap_or_default().to_owned(), v.to_json())).collect(),
            ),
        }
    }
}

/// `true` / `false` as YAML 1.2 spells them; everything else is not a boolean.
pub fn plain_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Parses a single YAML document into a [`Node`] tree.
///
/// An empty document parses to a null scalar. More than one document, duplicate mapping keys,
/// non-scalar keys, tags, nesting beyond [`MAX_DEPTH`] and expansion beyond [`MAX_NODES`]
/// are errors.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut builder = Builder { parser: Parser::new_from_str(text), anchors: Vec::new(), nodes: 0 };
    builder.document()
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: Vec<(usize, Node)>,
    nodes: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(YamlError {
                pos: Pos { line: e.marker().line(), col: e.marker().col() + 1 },
                message: format!("invalid YAML: {}", e.info()),
            }),
            None => Err(YamlError { pos: Pos::default(), message: "unexpected end of YAML".into() }),
        }
    }

    fn document(&mut self) -> Result<Node, YamlError> {
        let mut root = None;
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::DocumentStart(_) if root.is_some() => {
                    return Err(err(&span, "a manifest is one YAML document; found a second `---`"));
                }
                Event::DocumentStart(_) => root = Some(self.node(0)?),
                Event::StreamEnd => {
                    let pos = Pos::from_span(&span);
                    let empty = Node { pos, value: Value::Scalar { text: String::new(), quoted: false } };
                    return Ok(root.unwrap_or(empty));
                }
                _ => return Err(err(&span, "unexpected YAML event outside a document")),
            }
        }
    }

    fn node(&mut self, depth: usize) -> Result<Node, YamlError> {
        let (event, span) = self.next()?;
        self.node_from(event, span, depth)
    }

    fn node_from(&mut self, event: Event<'a>, span: Span, depth: usize) -> Result<Node, YamlError> {
        if depth > MAX_DEPTH {
            return Err(err(&span, &format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(err(&span, &format!("document expands to more than {MAX_NODES} nodes")));
        }
        let pos = Pos::from_span(&span);
        let (anchor, node) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                reject_tag(tag.as_ref(), &span)?;
                let quoted = !matches!(style, ScalarStyle::Plain);
                (anchor, Node { pos, value: Value::Scalar { text: text.into_owned(), quoted } })
            }
            Event::SequenceStart(anchor, tag) => {
                reject_tag(tag.as_ref(), &span)?;
                let mut items = Vec::new();
                loop {
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node_from(ev, sp, depth + 1)?);
                }
                (anchor, Node { pos, value: Value::Seq(items) })
            }
            Event::MappingStart(anchor, tag) => {
                reject_tag(tag.as_ref(), &span)?;
                (anchor, Node { pos, value: Value::Map(self.mapping(depth)?) })
            }
            Event::Alias(id) => {
                let target = self.anchors.iter().rev().find(|(a, _)| *a == id).map(|(_, n)| n.clone());
                let mut node = target.ok_or_else(|| err(&span, "alias to an unknown anchor"))?;
                self.nodes += count(&node);
                if self.nodes > MAX_NODES {
                    return Err(err(&span, &format!("document expands to more than {MAX_NODES} nodes")));
                }
                node.pos = pos;
                return Ok(node);
            }
            _ => return Err(err(&span, "unexpected YAML structure")),
        };
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
        Ok(node)
    }

    fn mapping(&mut self, depth: usize) -> Result<Vec<(Node, Node)>, YamlError> {
        let mut entries: Vec<(Node, Node)> = Vec::new();
        loop {
            let (ev, sp) = self.next()?;
            if matches!(ev, Event::MappingEnd) {
                return Ok(entries);
            }
            let key = self.node_from(ev, sp, depth + 1)?;
            let Some(name) = key.as_scalar() else {
                return Err(YamlError { pos: key.pos, message: "mapping keys must be plain strings".into() });
            };
            if let Some((first, _)) = entries.iter().find(|(k, _)| k.as_scalar() == Some(name)) {
                return Err(YamlError {
                    pos: key.pos,
                    message: format!("duplicate key {name:?} (first defined at {})", first.pos),
                });
            }
            let value = self.node(depth + 1)?;
            entries.push((key, value));
        }
    }
}

fn count(node: &Node) -> usize {
    match &node.value {
        Value::Scalar { .. } => 1,
        Value::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Value::Map(entries) => 1 + entries.iter().map(|(k, v)| count(k) + count(v)).sum::<usize>(),
    }
}

fn reject_tag(tag: Option<&Cow<'_, saphyr_parser::Tag>>, span: &Span) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(tag) => {
            Err(err(span, &format!("YAML tags are not supported here (found `{}{}`)", tag.handle, tag.suffix)))
        }
    }
}

fn err(span: &Span, message: &str) -> YamlError {
    YamlError { pos: Pos::from_span(span), message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let doc = parse("a: 1\nb:\n  c: x\n").unwrap();
        let Value::Map(entries) = &doc.value else { panic!("not a map") };
        assert_eq!(entries[1].0.pos, Pos { line: 2, col: 1 });
        let Value::Map(inner) = &entries[1].1.value else { panic!("not a map") };
        assert_eq!(inner[0].1.pos, Pos { line: 3, col: 6 });
    }

    #[test]
    fn duplicate_keys_are_rejected_with_both_positions() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 3, col: 1 });
        assert!(e.message.contains("duplicate key \"a\" (first defined at 1:1)"), "{}", e.message);
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
        assert!(e.pos.line >= 2, "{:?}", e.pos);
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let doc = parse("a: 'true'\nb: true\nc: 7\nd: \"7\"\ne: ~\n").unwrap();
        assert_eq!(doc.to_json(), serde_json::json!({"a": "true", "b": true, "c": 7, "d": "7", "e": null}));
    }

    #[test]
    fn aliases_expand_and_deep_nesting_is_refused() {
        let doc = parse("x: &t {a: 1}\ny: *t\n").unwrap();
        assert_eq!(doc.to_json(), serde_json::json!({"x": {"a": 1}, "y": {"a": 1}}));
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&deep).unwrap_err().message.contains("nesting deeper"));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = if i == 0 { "a".to_string() } else { format!("l{}", i - 1) };
            text.push_str(&format!("l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        assert!(parse(&text).unwrap_err().message.contains("more than"));
    }

    #[test]
    fn tags_and_second_documents_are_refused() {
        assert!(parse("a: !!python/object x\n").unwrap_err().message.contains("tags are not supported"));
        assert!(parse("a: 1\n---\nb: 2\n").unwrap_err().message.contains("second"));
    }
}
