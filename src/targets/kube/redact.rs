//! Keeps kubeconfig credentials out of anything we print or store. Every message that
//! came from the cluster or the client library passes through a [`Redactor`] before it
//! lands in an error or a diagnostic, since an API server or proxy may echo a header.

use std::sync::Arc;

use serde_json::Value;

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// The secrets of one kubeconfig (tokens, passwords, client keys), plus generic rules
/// for bearer tokens and key blocks we did not read ourselves (exec plugins).
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

// Debug must not print the secrets it guards.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

/// Kubeconfig fields whose values are credentials.
const SECRET_FIELDS: &[&str] = &[
    "token",
    "password",
    "client-key-data",
    "client-certificate-data",
    "id-token",
    "refresh-token",
    "access-token",
    "client-secret",
];

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            // Very short values would redact ordinary words; real tokens are long.
            .filter(|s| s.len() >= 8)
            .collect();
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            secrets: Arc::new(secrets),
        }
    }

    /// Collects every credential value from a kubeconfig rendered as JSON (kube's
    /// `Kubeconfig` serializes its secret strings in the clear).
    pub fn from_kubeconfig_json(kubeconfig: &Value) -> Self {
        let mut found = Vec::new();
        collect(kubeconfig, &mut found);
        Redactor::new(found)
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in self.secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        redact_bearer(&out)
    }
}

fn collect(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (SECRET_FIELDS.contains(&key.as_str()), v) {
                    (true, Value::String(s)) => found.push(s.clone()),
                    _ => collect(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, found)),
        _ => {}
    }
}

/// Replaces whatever follows `Bearer ` or `Basic ` up to the next whitespace or quote.
fn redact_bearer(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = ["Bearer ", "bearer ", "Basic "]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, p.len())))
            .min();
        let Some((at, len)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at + len]);
        let after = &rest[at + len..];
        let end = after
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
            .unwrap_or(after.len());
        if end > 0 {
            out.push_str(REDACTED);
        }
        rest = &after[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_secrets_and_bearer_tokens_are_replaced() {
        let r = Redactor::from_kubeconfig_json(&json!({
            "users": [{"name": "u", "user": {"token": "sentinel-token-123456", "client-key-data": "LS0tLS1CRUdJTiBLRVk="}}],
            "clusters": [{"name": "c", "cluster": {"server": "https://1.2.3.4"}}],
        }));
        let text =
            r.redact("denied sentinel-token-123456 key LS0tLS1CRUdJTiBLRVk= at https://1.2.3.4");
        assert_eq!(text, "denied <redacted> key <redacted> at https://1.2.3.4");
        assert_eq!(
            r.redact("header Authorization: Bearer abc.def.ghi, next"),
            "header Authorization: Bearer <redacted>, next"
        );
        assert!(!format!("{r:?}").contains("sentinel"));
    }

    #[test]
    fn short_values_are_not_treated_as_secrets() {
        let r = Redactor::new(["ab".to_owned()]);
        assert_eq!(r.redact("about"), "about");
    }
}
