//! A YAML tree that remembers where every node came from.
//!
//! Typed decoding (k8s-openapi, gateway-api, our own suite model) goes through
//! `serde_json::Value`, which has no positions. We keep this parallel tree so that
//! an error found later, by a typed decoder or by a target that cannot honour a
//! field, can still point at `file:line:column`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A 1-based line and column inside one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One YAML node with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Located {
    pub position: Position,
    pub node: Node,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Located>),
    /// Keys keep document order and their own position (an unknown key is reported
    /// where the key is written).
    Map(Vec<Entry>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_position: Position,
    pub value: Located,
}

/// One step of a path into a document: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

impl Located {
    /// Converts to JSON for typed decoding. Non-finite floats become null, as JSON has no
    /// representation for them.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.node {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::from(*i),
            Node::UInt(u) => Value::from(*u),
            Node::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Node::Str(s) => Value::String(s.clone()),
            Node::Seq(items) => Value::Array(items.iter().map(Located::to_json).collect()),
            Node::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// Looks up a child of a mapping.
    pub fn get(&self, key: &str) -> Option<&Located> {
        match &self.node {
            Node::Map(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.value),
            _ => None,
        }
    }

    /// The position of the deepest node along `path` that exists. An error about a
    /// missing field then points at its parent, which is where the user has to add it.
    pub fn position_of(&self, path: &[PathSegment]) -> Position {
        let mut here = self;
        for segment in path {
            let next = match (segment, &here.node) {
                (PathSegment::Key(key), Node::Map(_)) => here.get(key),
                (PathSegment::Index(i), Node::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(child) => here = child,
                None => break,
            }
        }
        here.position
    }

    /// Like [`Located::position_of`], but when the path ends in a mapping key that
    /// exists, the key's own position.
    pub fn key_position_of(&self, path: &[PathSegment]) -> Position {
        if let Some((PathSegment::Key(key), parent)) = path.split_last() {
            let mut here = self;
            for segment in parent {
                let next = match (segment, &here.node) {
                    (PathSegment::Key(k), Node::Map(_)) => here.get(k),
                    (PathSegment::Index(i), Node::Seq(items)) => items.get(*i),
                    _ => None,
                };
                match next {
                    Some(child) => here = child,
                    None => return self.position_of(path),
                }
            }
            if let Node::Map(entries) = &here.node
                && let Some(entry) = entries.iter().find(|e| &e.key == key)
            {
                return entry.key_position;
            }
        }
        self.position_of(path)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.node {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The parser options every meshcheck input is read with: YAML 1.2 booleans (as
/// Kubernetes reads them) and serde-saphyr's default resource budget, which bounds
/// alias expansion and nesting so hostile input fails instead of exhausting memory.
pub fn parser_options() -> serde_saphyr::Options {
    serde_saphyr::options! { strict_booleans: true }
}

/// Parses a single YAML document.
pub fn parse_one(text: &str) -> Result<Located, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, parser_options())
}

/// Parses a path like `spec.rules[0].backendRefs[1].weight` as produced by
/// `serde_path_to_error` into segments.
pub fn parse_dotted_path(path: &str) -> Vec<PathSegment> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        if part.is_empty() || part == "?" {
            continue;
        }
        let mut rest = part;
        if let Some(bracket) = rest.find('[') {
            let key = &rest[..bracket];
            if !key.is_empty() {
                segments.push(PathSegment::Key(key.to_string()));
            }
            rest = &rest[bracket..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else { break };
                if let Ok(i) = stripped[..end].parse() {
                    segments.push(PathSegment::Index(i));
                }
                rest = &stripped[end + 1..];
            }
        } else {
            segments.push(PathSegment::Key(rest.to_string()));
        }
    }
    segments
}

impl<'de> Deserialize<'de> for Located {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Node>::deserialize(deserializer)?;
        Ok(Located {
            position: Position {
                line: spanned.referenced.line() as usize,
                column: spanned.referenced.column() as usize,
            },
            node: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(i64::try_from(v).map_or(Node::UInt(v), Node::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Located>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<Entry> = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyString>>()? {
            let value = map.next_value::<Located>()?;
            let key_text = key.value.0;
            if entries.iter().any(|e| e.key == key_text) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key `{key_text}`"
                )));
            }
            entries.push(Entry {
                key: key_text,
                key_position: Position {
                    line: key.referenced.line() as usize,
                    column: key.referenced.column() as usize,
                },
                value,
            });
        }
        Ok(Node::Map(entries))
    }
}

/// Mapping keys: Kubernetes and suite keys are strings, but YAML allows `80: x` or
/// `true: y`; we accept scalars and keep their text.
struct KeyString(String);

impl<'de> Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_point_at_nodes() {
        let doc = parse_one("a: 1\nb:\n  - x\n  - y: 2\n").unwrap();
        let path = parse_dotted_path("b[1].y");
        assert_eq!(path.len(), 3);
        assert_eq!(doc.position_of(&path).line, 4);
        assert_eq!(
            doc.to_json(),
            serde_json::json!({"a": 1, "b": ["x", {"y": 2}]})
        );
    }

    #[test]
    fn missing_path_points_at_deepest_parent() {
        let doc = parse_one("spec:\n  rules: []\n").unwrap();
        let pos = doc.position_of(&parse_dotted_path("spec.missing.deeper"));
        assert_eq!(pos.line, 2);
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        assert!(parse_one("a: 1\na: 2\n").is_err());
    }

    #[test]
    fn only_true_and_false_are_booleans() {
        // YAML 1.1 reads `n` and `no` as false; Kubernetes (YAML 1.2) does not, and a
        // namespace called `n` must stay a string.
        let doc = parse_one(
            "namespace: n
flag: true
",
        )
        .unwrap();
        assert_eq!(
            doc.to_json(),
            serde_json::json!({"namespace": "n", "flag": true})
        );
    }
}
