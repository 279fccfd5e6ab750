//! Child processes of the stand-ins (echo pods, Envoy) that never outlive them: killed
//! on drop, killed by the kernel (PR_SET_PDEATHSIG) when the stand-in itself is
//! SIGKILLed, and stopped with SIGTERM (SIGKILL after a grace period) on shutdown.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// How long a child gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why a child could not be started or did not come up.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("failed to start {what} ({program})")]
    Spawn {
        what: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} exited before it said it was ready; its last output: {tail}")]
    Exited { what: String, tail: String },
}

/// Where a child's output lines go besides the stand-in's stderr: a container's log.
pub type LineSink = Arc<dyn Fn(&str) + Send + Sync>;

/// A running child, its stdout and stderr lines forwarded to the stand-in's stderr
/// (prefixed with what it is), to its [`LineSink`] if it has one, and offered to
/// [`ChildProcess::wait_for_line`].
#[derive(Debug)]
pub struct ChildProcess {
    pub what: String,
    pub pid: u32,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// The last lines seen, for the error when it exits early.
    seen: Vec<String>,
}

impl ChildProcess {
    /// Starts `program args` with exactly `env` added to an environment from which
    /// `cleared` are removed; its output lines also go to `log`.
    pub fn spawn(
        what: String,
        program: &Path,
        args: &[String],
        env: &BTreeMap<String, String>,
        cleared: &[&str],
        log: Option<LineSink>,
    ) -> Result<ChildProcess, ProcessError> {
        let mut command = Command::new(program);
        for name in cleared {
            command.env_remove(name);
        }
        command
            .envs(env)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        meshcheck::targets::local::die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|source| ProcessError::Spawn {
            what: what.clone(),
            program: program.display().to_string(),
            source,
        })?;
        let pid = child.id().unwrap_or_default();
        let (sender, lines) = mpsc::unbounded_channel();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(forward(stdout, what.clone(), sender.clone(), log.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward(stderr, what.clone(), sender, log));
        }
        Ok(ChildProcess {
            what,
            pid,
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// Waits until the child prints a line `is_ready` accepts; its exit first is an
    /// error with its last lines. Unbounded: callers bound it (with the shutdown).
    pub async fn wait_for_line(
        &mut self,
        is_ready: impl Fn(&str) -> bool,
    ) -> Result<String, ProcessError> {
        while let Some(line) = self.lines.recv().await {
            if is_ready(&line) {
                return Ok(line);
            }
            self.seen.push(line);
            if self.seen.len() > 20 {
                self.seen.remove(0);
            }
        }
        Err(ProcessError::Exited {
            what: self.what.clone(),
            tail: self.seen.join(" | "),
        })
    }

    /// Whether the child has exited, waiting for it.
    pub async fn exited(&mut self) -> String {
        match self.child.wait().await {
            Ok(status) => status.to_string(),
            Err(err) => format!("status unknown: {err}"),
        }
    }

    /// SIGTERM, then SIGKILL after [`STOP_GRACE`]; always reaps.
    pub async fn stop(mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.pid) {
            // SAFETY: kill(2) on our own unreaped child, whose pid cannot be reused
            // while it is unreaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(STOP_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Copies a pipe's lines to our stderr, the log and the line channel.
async fn forward(
    pipe: impl tokio::io::AsyncRead + Unpin,
    what: String,
    lines: mpsc::UnboundedSender<String>,
    log: Option<LineSink>,
) {
    let mut reader = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        eprintln!("[{what}] {line}");
        if let Some(log) = &log {
            log(&line);
        }
        let _ = lines.send(line);
    }
}
