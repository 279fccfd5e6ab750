//! Stand-in programs (shell scripts) that a test writes and then has meshcheck run.
//!
//! Every integration test shares one process. Writing a file here holds it open for
//! writing for a moment, and a fork by any other test thread in that moment copies the
//! descriptor into a child that keeps it until its own exec (O_CLOEXEC closes it only
//! then); an exec of the script meanwhile fails with ETXTBSY, "Text file busy"
//! (rust-lang/rust#114554, golang/go#22315). So a short-lived child process writes the
//! script: this process never has a descriptor open for writing it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Writes `text` to `path` as an executable file (mode 755).
pub fn write_executable(path: &Path, text: &str) {
    let mut writer = Command::new("/bin/sh")
        .args(["-c", r#"cat > "$1" && chmod 755 "$1""#, "sh"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("sh starts to write the script");
    // Dropped at the end of the statement: cat sees the end of its input.
    writer
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("sh reads the script");
    let status = writer.wait().expect("sh ends");
    assert!(
        status.success(),
        "writing {} failed: {status}",
        path.display()
    );
}
