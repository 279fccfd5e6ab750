//! Child processes that can never outlive meshcheck: killed on drop, and killed by the
//! kernel (PR_SET_PDEATHSIG) even when meshcheck itself is SIGKILLed and runs no
//! destructor. Their output is kept as a short tail for error messages and
//! diagnostics.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::certificate::redact_private_keys;
use super::error::LocalError;

/// Lines of output kept per process.
const TAIL_LINES: usize = 200;

/// The last lines a process wrote, shared with the tasks that read its pipes.
#[derive(Clone, Default)]
pub(crate) struct Tail(Arc<Mutex<VecDeque<String>>>);

// Envoy may echo its configuration, private keys included, in what it prints: only
// [`Tail::last`], which redacts them, shows the lines.
impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        write!(f, "Tail({} lines)", lines.len())
    }
}

impl Tail {
    fn push(&self, line: String) {
        let mut lines = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The last `n` lines, joined, with any private key redacted.
    pub(crate) fn last(&self, n: usize) -> String {
        let lines = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let skip = lines.len().saturating_sub(n);
        let text = lines
            .iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        redact_private_keys(&text)
    }
}

/// Lines of a process's stdout that start with a prefix, kept apart from the tail so
/// that other output never pushes them out: an echo-basic process's per-request log
/// lines, the record of what it received. The most recent [`RECORD_LINES`] are kept,
/// and the count of all of them.
#[derive(Clone, Debug, Default)]
pub(crate) struct LineRecord(Arc<Mutex<RecordedLines>>);

/// Lines kept per [`LineRecord`]; older ones are counted only.
const RECORD_LINES: usize = 20_000;

#[derive(Debug, Default)]
struct RecordedLines {
    prefix: &'static str,
    lines: VecDeque<String>,
    total: u64,
}

impl LineRecord {
    /// A record of the stdout lines starting with `prefix`.
    pub(crate) fn new(prefix: &'static str) -> LineRecord {
        LineRecord(Arc::new(Mutex::new(RecordedLines {
            prefix,
            ..RecordedLines::default()
        })))
    }

    fn offer(&self, line: &str) {
        let mut record = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !line.starts_with(record.prefix) {
            return;
        }
        if record.lines.len() == RECORD_LINES {
            record.lines.pop_front();
        }
        record.lines.push_back(line.to_string());
        record.total += 1;
    }

    /// How many lines matched since the start, and the most recent ones, oldest first.
    pub(crate) fn snapshot(&self) -> (u64, Vec<String>) {
        let record = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (record.total, record.lines.iter().cloned().collect())
    }
}

/// Makes the child of `command` die with the thread that spawns it: the kernel SIGKILLs
/// it (`PR_SET_PDEATHSIG`) when its parent dies, so a SIGKILLed meshcheck (or kube tier
/// stand-in, which spawns its processes the same way) leaves nothing behind.
pub fn die_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe functions (prctl, getppid) without allocating.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// How a process is started: its environment and what of its stdout is recorded.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpawnOptions<'a> {
    /// Taken out of the inherited environment.
    pub cleared: &'a [&'a str],
    /// Set in its environment.
    pub env: Option<&'a BTreeMap<String, String>>,
    /// stdout lines to keep in [`Process::record`].
    pub record: Option<LineRecord>,
}

/// A running child with its output tail.
#[derive(Debug)]
pub(crate) struct Process {
    /// What it is, for messages: `Envoy`, `echo istio-test/backend-v1-0`.
    pub what: String,
    pub pid: u32,
    child: Child,
    pub tail: Tail,
    /// The stdout lines asked for at spawn ([`SpawnOptions::record`]).
    pub record: Option<LineRecord>,
    readers: Vec<JoinHandle<()>>,
    /// The first stdout line, when the process announces itself there.
    first_line: Option<oneshot::Receiver<String>>,
}

impl Process {
    /// Starts `program args`. With `announce`, the first stdout line is kept for
    /// [`Process::announcement`].
    pub(crate) fn spawn(
        what: String,
        program: &Path,
        args: &[String],
        announce: bool,
    ) -> Result<Process, LocalError> {
        Process::spawn_with(what, program, args, announce, SpawnOptions::default())
    }

    /// [`Process::spawn`] with its environment and record as `options` say.
    pub(crate) fn spawn_with(
        what: String,
        program: &Path,
        args: &[String],
        announce: bool,
        options: SpawnOptions<'_>,
    ) -> Result<Process, LocalError> {
        let mut command = Command::new(program);
        for name in options.cleared {
            command.env_remove(name);
        }
        if let Some(env) = options.env {
            command.envs(env);
        }
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|source| LocalError::Spawn {
            what: what.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or_default();
        let tail = Tail::default();
        let mut readers = Vec::new();
        let mut first_line = None;
        if let Some(stdout) = child.stdout.take() {
            let (sender, receiver) = oneshot::channel();
            let sender = if announce {
                first_line = Some(receiver);
                Some(sender)
            } else {
                None
            };
            readers.push(tokio::spawn(read_lines(
                stdout,
                tail.clone(),
                sender,
                options.record.clone(),
            )));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(tokio::spawn(read_lines(stderr, tail.clone(), None, None)));
        }
        Ok(Process {
            what,
            pid,
            child,
            tail,
            record: options.record,
            readers,
            first_line,
        })
    }

    /// Waits for the first stdout line; an exit or a timeout first is an error naming
    /// the process with its last output.
    pub(crate) async fn announcement(&mut self, timeout: Duration) -> Result<String, LocalError> {
        let Some(receiver) = self.first_line.take() else {
            return Err(LocalError::BadAnnouncement {
                what: self.what.clone(),
                line: String::new(),
            });
        };
        tokio::select! {
            line = receiver => match line {
                Ok(line) => Ok(line),
                // stdout closed without a line: the process is exiting.
                Err(_) => Err(self.exited_at_startup().await),
            },
            _ = tokio::time::sleep(timeout) => Err(LocalError::StartupTimeout {
                what: self.what.clone(),
                timeout,
                tail: self.tail.last(20),
            }),
        }
    }

    /// Whether the process has exited, without waiting.
    pub(crate) fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The error for a process that exited while we waited for it to come up, with
    /// all its output (the readers run to end of file first).
    pub(crate) async fn exited_at_startup(&mut self) -> LocalError {
        let status = match self.child.wait().await {
            Ok(status) => status.to_string(),
            Err(err) => format!("status unknown: {err}"),
        };
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
        LocalError::ExitedAtStartup {
            what: self.what.clone(),
            status,
            tail: self.tail.last(20),
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; always reaps. Returns how it ended.
    pub(crate) async fn terminate(mut self, grace: Duration) -> Result<String, String> {
        if let Some(status) = self.exit_status() {
            return Ok(format!(
                "{} (pid {}) had already exited: {status}",
                self.what, self.pid
            ));
        }
        if let Ok(pid) = libc::pid_t::try_from(self.pid) {
            // SAFETY: plain kill(2) on our own unreaped child: the pid cannot have been
            // reused while the child is unreaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(_)) => Ok(format!("stopped {} (pid {})", self.what, self.pid)),
            Ok(Err(err)) => Err(format!("{} (pid {}): {err}", self.what, self.pid)),
            Err(_) => match self.child.kill().await {
                Ok(()) => Ok(format!(
                    "killed {} (pid {}) after it ignored SIGTERM for {}",
                    self.what,
                    self.pid,
                    humantime::format_duration(grace)
                )),
                Err(err) => Err(format!(
                    "failed to kill {} (pid {}): {err}",
                    self.what, self.pid
                )),
            },
        }
    }
}

async fn read_lines(
    pipe: impl AsyncRead + Unpin,
    tail: Tail,
    mut first: Option<oneshot::Sender<String>>,
    record: Option<LineRecord>,
) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(record) = &record {
            record.offer(&line);
        }
        match first.take() {
            Some(sender) => {
                let _ = sender.send(line.clone());
                tail.push(line);
            }
            None => tail.push(line),
        }
    }
}
