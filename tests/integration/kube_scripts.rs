//! The tool install scripts' checksum handling, run for real with bash on local files
//! (no downloads): a match installs, a mismatch or a missing checksum fails closed.

use std::path::PathBuf;
use std::process::Command;

use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `snippet` after sourcing install-tools.sh without running its main.
fn with_functions(snippet: &str) -> std::process::Output {
    let script = root().join("scripts/install-tools.sh");
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -euo pipefail; MESHCHECK_SOURCE_ONLY=1 source {}; {snippet}",
            script.display()
        ))
        .output()
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn matching_checksum_passes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kind");
    std::fs::write(&file, b"pretend binary").unwrap();
    let out = with_functions(&format!(
        "verify_sha256 {} {}",
        file.display(),
        hex(b"pretend binary")
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(file.exists());
}

#[test]
fn mismatch_deletes_the_download_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kind");
    std::fs::write(&file, b"tampered binary").unwrap();
    let out = with_functions(&format!(
        "verify_sha256 {} {}",
        file.display(),
        hex(b"pretend binary")
    ));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("checksum mismatch for kind"), "{stderr}");
    assert!(!file.exists());
}

#[test]
fn missing_checksum_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("istioctl.tar.gz");
    std::fs::write(&file, b"x").unwrap();
    let out = with_functions(&format!("verify_sha256 {} ''", file.display()));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no checksum to verify istioctl.tar.gz against")
    );
    assert!(!file.exists());
}

#[test]
fn kind_is_pinned_and_unknown_versions_are_not() {
    let out = with_functions(
        "pinned_sha256 kind-v0.29.0-linux-amd64; echo \"[$(pinned_sha256 kind-v9.9.9-linux-amd64)]\"",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "c72eda46430f065fb45c5f70e7c957cc9209402ef309294821978677c8fb3284\n[]\n"
    );
}

#[test]
fn vendored_gateway_api_matches_its_pin() {
    let text = std::fs::read(root().join("crds/gateway-api-v1.3.0-standard-install.yaml")).unwrap();
    let script = std::fs::read_to_string(root().join("scripts/fetch-gateway-api.sh")).unwrap();
    assert!(
        script.contains(&format!("v1.3.0-standard) echo {}", hex(&text))),
        "pin out of date"
    );
}

#[test]
fn fetch_without_checksum_fails_before_downloading() {
    let out = Command::new("bash")
        .arg(root().join("scripts/fetch-gateway-api.sh"))
        .arg("v9.9.9")
        .env_remove("GATEWAY_API_SHA256")
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no checksum for v9.9.9 standard; set GATEWAY_API_SHA256")
    );
}
