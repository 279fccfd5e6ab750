//! Kubernetes manifests as read from fixture files: kind, name and namespace pulled
//! out, the body kept with positions for located errors.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::error::ManifestError;
use super::kind::GroupKind;
use super::location::SourceLocation;
use super::yaml::{Located, Node, Position, parse_dotted_path, parser_options};

/// Fixture and suite files are small; anything beyond this is a mistake (or an attack on
/// the parser) and is refused before parsing.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// kind/namespace/name: how objects are named in messages and looked up.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// Kubernetes puts a namespaced object that names no namespace in `default`.
pub const DEFAULT_NAMESPACE: &str = "default";

impl ObjectKey {
    /// The namespace a namespaced object lives in: its own, or [`DEFAULT_NAMESPACE`].
    pub fn namespace_or_default(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One Kubernetes object from a fixture file.
#[derive(Clone)]
pub struct Manifest {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub file: Arc<Path>,
    pub root: Located,
}

/// Debug output ends up in test failures and logs: a Secret's contents (a gateway's
/// private key) are left out of it.
impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("Manifest");
        out.field("api_version", &self.api_version)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("file", &self.file);
        if self.is(GroupKind::SECRET) {
            out.field("root", &format_args!("<Secret contents redacted>"));
        } else {
            out.field("root", &self.root);
        }
        out.finish()
    }
}

impl Manifest {
    /// The namespace a namespaced object lives in: its own, or [`DEFAULT_NAMESPACE`].
    pub fn namespace_or_default(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// `Kind name`, as messages name objects.
    pub fn object_name(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }

    /// The API group: `""` for the core group (`apiVersion: v1`).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// The API group and kind: how a type is recognised (`Gateway` alone could be
    /// Istio's).
    pub fn group_kind(&self) -> GroupKind<'_> {
        GroupKind::new(self.group(), &self.kind)
    }

    /// Whether the object is of this group and kind.
    pub fn is(&self, kind: GroupKind<'_>) -> bool {
        self.group_kind() == kind
    }

    pub fn version(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or(self.api_version.as_str(), |(_, v)| v)
    }

    pub fn location(&self) -> SourceLocation {
        SourceLocation {
            file: self.file.clone(),
            position: self.root.position,
        }
    }

    /// Location of a field given as `spec.rules[0].backendRefs`; falls back to the
    /// nearest existing parent.
    pub fn location_of(&self, field: &str) -> SourceLocation {
        SourceLocation {
            file: self.file.clone(),
            position: self.root.position_of(&parse_dotted_path(field)),
        }
    }

    /// The node at a dotted path, when present.
    pub fn field(&self, field: &str) -> Option<&Located> {
        let mut here = &self.root;
        for segment in parse_dotted_path(field) {
            here = match (segment, &here.node) {
                (super::yaml::PathSegment::Key(k), Node::Map(_)) => here.get(&k)?,
                (super::yaml::PathSegment::Index(i), Node::Seq(items)) => items.get(i)?,
                _ => return None,
            };
        }
        Some(here)
    }

    pub fn to_json(&self) -> serde_json::Value {
        self.root.to_json()
    }

    /// Decodes the object into a typed model (k8s-openapi, gateway-api, or ours). A
    /// failure names the field and points at it.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ManifestError> {
        decode_located(&self.root, &self.file).map_err(|failure| ManifestError::Decode {
            location: failure.location,
            object: self.object_name(),
            field: failure.field,
            message: failure.message,
        })
    }

    /// The error a target returns for a field it cannot honour. It points at the key
    /// itself, where the user has to change or delete it.
    pub fn unsupported(
        &self,
        field: &str,
        target: &'static str,
        detail: Option<String>,
    ) -> ManifestError {
        ManifestError::Unsupported {
            location: SourceLocation {
                file: self.file.clone(),
                position: self.root.key_position_of(&parse_dotted_path(field)),
            },
            object: self.object_name(),
            field: field.to_string(),
            target,
            detail: detail.map(String::into_boxed_str),
        }
    }

    /// Builds a manifest from one parsed YAML document.
    pub fn from_document(file: Arc<Path>, root: Located) -> Result<Manifest, ManifestError> {
        let invalid = |position: Position, message: String| ManifestError::Invalid {
            location: SourceLocation {
                file: file.clone(),
                position,
            },
            message,
        };
        if !matches!(root.node, Node::Map(_)) {
            return Err(invalid(
                root.position,
                "a manifest must be a mapping with apiVersion, kind and metadata".into(),
            ));
        }
        let required_str = |key: &str, parent: &Located| -> Result<String, ManifestError> {
            match parent.get(key) {
                Some(Located {
                    node: Node::Str(s), ..
                }) if !s.is_empty() => Ok(s.clone()),
                Some(other) => Err(invalid(
                    other.position,
                    format!("`{key}` must be a non-empty string"),
                )),
                None => Err(invalid(parent.position, format!("missing `{key}`"))),
            }
        };
        let api_version = required_str("apiVersion", &root)?;
        let kind = required_str("kind", &root)?;
        let metadata = root
            .get("metadata")
            .ok_or_else(|| invalid(root.position, format!("{kind} has no `metadata`")))?;
        let name = required_str("name", metadata)?;
        let namespace = match metadata.get("namespace") {
            None
            | Some(Located {
                node: Node::Null, ..
            }) => None,
            Some(Located {
                node: Node::Str(s), ..
            }) => Some(s.clone()),
            Some(other) => {
                return Err(invalid(
                    other.position,
                    "`metadata.namespace` must be a string".into(),
                ));
            }
        };
        Ok(Manifest {
            api_version,
            kind,
            name,
            namespace,
            file,
            root,
        })
    }
}

/// A typed decoding failure: which field, where, and what was wrong with it.
#[derive(Debug)]
pub struct DecodeFailure {
    pub field: String,
    pub location: SourceLocation,
    pub message: String,
}

/// Decodes a located tree into `T` through JSON, mapping the failing path back to a
/// position.
pub fn decode_located<T: DeserializeOwned>(
    root: &Located,
    file: &Arc<Path>,
) -> Result<T, DecodeFailure> {
    serde_path_to_error::deserialize(root.to_json()).map_err(|err| {
        let field = err.path().to_string();
        let message = err.into_inner().to_string();
        let path = parse_dotted_path(&field);
        // serde_path_to_error's path already ends in an unknown key; point at the key
        // itself rather than at its value.
        let position = if message.starts_with("unknown field") {
            root.key_position_of(&path)
        } else {
            root.position_of(&path)
        };
        DecodeFailure {
            location: SourceLocation {
                file: file.clone(),
                position,
            },
            field: if field.is_empty() { ".".into() } else { field },
            message,
        }
    })
}

/// Reads a file with the size and encoding checks every input gets.
pub fn read_source(path: &Path) -> Result<String, ManifestError> {
    let metadata = std::fs::metadata(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if metadata.len() > MAX_FILE_BYTES {
        return Err(ManifestError::TooLarge {
            location: SourceLocation::file_start(path),
            size: metadata.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|err| {
        let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
        let text = String::from_utf8_lossy(valid);
        let line = text.matches('\n').count() + 1;
        let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ManifestError::NotUtf8 {
            location: SourceLocation::new(path, Position { line, column }),
        }
    })
}

/// Parses YAML text (one or more documents) into located trees. Empty documents, such
/// as a trailing `---`, are dropped.
pub fn parse_documents(text: &str, file: &Path) -> Result<Vec<Located>, ManifestError> {
    let docs: Vec<Located> = serde_saphyr::from_multiple_with_options(text, parser_options())
        .map_err(|err| {
            let position = err
                .location()
                .map_or(Position { line: 1, column: 1 }, |l| Position {
                    line: l.line() as usize,
                    column: l.column() as usize,
                });
            ManifestError::Yaml {
                location: SourceLocation::new(file, position),
                message: err.without_snippet().to_string(),
            }
        })?;
    Ok(docs
        .into_iter()
        .filter(|d| !matches!(d.node, Node::Null))
        .collect())
}

/// Loads every manifest in a file.
pub fn load_file(path: &Path) -> Result<Vec<Manifest>, ManifestError> {
    let text = read_source(path)?;
    load_str(&text, path)
}

pub fn load_str(text: &str, path: &Path) -> Result<Vec<Manifest>, ManifestError> {
    let file: Arc<Path> = Arc::from(path.to_path_buf().into_boxed_path());
    parse_documents(text, path)?
        .into_iter()
        .map(|doc| Manifest::from_document(file.clone(), doc))
        .collect()
}

/// Where an object has to go when applied: CRDs before anything that might use them,
/// Namespaces before namespaced objects; otherwise the order of the fixtures.
pub fn apply_order(manifests: &[Manifest]) -> Vec<&Manifest> {
    let rank = |m: &Manifest| match m.group_kind() {
        GroupKind::CUSTOM_RESOURCE_DEFINITION => 0,
        GroupKind::NAMESPACE => 1,
        _ => 2,
    };
    let mut ordered: Vec<&Manifest> = manifests.iter().collect();
    ordered.sort_by_key(|m| rank(m));
    ordered
}

/// Refuses two objects with the same kind, namespace and name in one fixture set.
pub fn check_unique(manifests: &[Manifest]) -> Result<(), ManifestError> {
    let mut seen: std::collections::HashMap<ObjectKey, &Manifest> = Default::default();
    for m in manifests {
        if let Some(first) = seen.insert(m.key(), m) {
            return Err(ManifestError::Duplicate {
                location: m.location(),
                first: first.location(),
                object: m.object_name(),
            });
        }
    }
    Ok(())
}

/// A located error for one field of `manifest`, worded the same wherever the fixtures
/// are read: `Gateway gw: field `spec.listeners[0].port`: <message>`.
pub fn invalid_field(manifest: &Manifest, field: &str, message: String) -> ManifestError {
    ManifestError::Invalid {
        location: manifest.location_of(field),
        message: format!(
            "{} {}: field `{field}`: {message}",
            manifest.kind, manifest.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn path() -> PathBuf {
        PathBuf::from("fixtures/test.yaml")
    }

    #[test]
    fn reads_multi_document_files_with_positions() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: a\nspec:\n  replicas: 3\n---\n";
        let ms = load_str(text, &path()).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[1].key().to_string(), "Deployment a/d");
        assert_eq!(ms[1].group(), "apps");
        assert_eq!(ms[0].group(), "");
        assert_eq!(ms[1].location_of("spec.replicas").position.line, 12);
    }

    #[test]
    fn secret_contents_stay_out_of_debug_output() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {tls.key: SENTINEL-KEY}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {visible: SENTINEL-DATA}\n";
        let ms = load_str(text, &path()).unwrap();
        let secret = format!("{:?}", ms[0]);
        assert!(!secret.contains("SENTINEL-KEY"), "{secret}");
        assert!(secret.contains("<Secret contents redacted>"), "{secret}");
        // Other kinds keep their whole tree, so a failing test shows what it parsed.
        assert!(format!("{:?}", ms[1]).contains("SENTINEL-DATA"));
    }

    #[test]
    fn missing_kind_is_located() {
        let err = load_str("apiVersion: v1\nmetadata:\n  name: x\n", &path()).unwrap_err();
        assert_eq!(err.to_string(), "fixtures/test.yaml:1:1: missing `kind`");
    }

    #[test]
    fn broken_yaml_is_located() {
        let err = load_str("a: [1, 2\nb: c\n", &path()).unwrap_err();
        let ManifestError::Yaml { location, .. } = &err else {
            panic!("{err}")
        };
        assert!(location.position.line >= 1, "{err}");
    }

    #[test]
    fn decode_errors_name_the_field_and_line() {
        #[derive(serde::Deserialize, Debug)]
        #[expect(dead_code, reason = "only decoding is under test")]
        struct Spec {
            replicas: u32,
        }
        #[derive(serde::Deserialize, Debug)]
        #[expect(dead_code, reason = "only decoding is under test")]
        struct Obj {
            spec: Spec,
        }
        let ms = load_str(
            "apiVersion: v1\nkind: X\nmetadata:\n  name: x\nspec:\n  replicas: three\n",
            &path(),
        )
        .unwrap();
        let err = ms[0].decode::<Obj>().unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("fixtures/test.yaml:6:13: X x: field `spec.replicas`"),
            "{text}"
        );
    }

    #[test]
    fn apply_order_puts_crds_and_namespaces_first() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: c}\n";
        let ms = load_str(text, &path()).unwrap();
        let kinds: Vec<_> = apply_order(&ms).iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(kinds, ["CustomResourceDefinition", "Namespace", "Service"]);
    }

    #[test]
    fn duplicates_are_refused() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n";
        let ms = load_str(text, &path()).unwrap();
        assert!(matches!(
            check_unique(&ms),
            Err(ManifestError::Duplicate { .. })
        ));
    }

    #[test]
    fn real_upstream_crds_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
        let ms = load_file(&dir.join("gateway-api-v1.3.0-standard-install.yaml")).unwrap();
        let names: Vec<_> = ms.iter().map(|m| m.name.as_str()).collect();
        assert!(
            names.contains(&"httproutes.gateway.networking.k8s.io"),
            "{names:?}"
        );
        let istio = load_file(&dir.join("istio-crd-all.gen.yaml")).unwrap();
        assert!(
            istio
                .iter()
                .any(|m| m.name == "destinationrules.networking.istio.io")
        );
    }
}
