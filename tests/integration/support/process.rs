//! Shared by the reliability tests: the process tree of a run, waiting for processes
//! to exit, and a `meshcheck run` child whose stderr can be waited on line by line.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The Envoy binary the local target uses, installed into the cache if needed, so the
/// child run does not spend its time installing.
pub fn envoy() -> PathBuf {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(meshcheck::targets::local::ensure_envoy(|dir| {
            eprintln!("{}", meshcheck::targets::local::installing_message(dir));
        }))
        .expect("the local target needs Envoy")
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The parent pid of `pid`, from /proc (None once it is gone).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields follow the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every live descendant of `root`, found by walking /proc.
pub fn descendants(root: u32) -> Vec<u32> {
    let all: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|(_, p)| *p == parent).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// Waits, with bounded polling and backoff (nothing announces it), until `root` has
/// at least `count` live descendants; returns them.
pub fn wait_for_descendants(root: u32, count: usize, timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        let found = descendants(root);
        if found.len() >= count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{root} has {} descendants after {timeout:?}, expected {count}",
            found.len()
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Live processes whose command line mentions `needle` (e.g. a run's temp dir).
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            (cmdline.contains(needle) && !is_zombie(pid)).then_some((pid, cmdline))
        })
        .collect()
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Waits until `pid` has exited (a zombie counts) using a pidfd, which becomes
/// readable on exit: no polling, no sleeps.
///
/// A signal handler interrupts the wait, and other tests of this process make that
/// routine: once one of them uses tokio's process support, every child that exits
/// anywhere in the process runs tokio's SIGCHLD handler. poll(2) is never restarted
/// after a handler, so an interrupted wait goes on for the time that is left.
pub fn wait_exit(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        // ESRCH: already gone and reaped.
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    // SAFETY: fd is a fresh pidfd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let millis = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut poll, 1, millis) } {
            1 => return true,
            -1 if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return false,
        }
    }
}

pub fn send_signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on our own unreaped child.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
}

/// A `meshcheck` child with its stderr read line by line on a thread, and a private
/// TMPDIR so whatever it leaves behind can be found.
pub struct Run {
    pub child: Child,
    pub tmp: tempfile::TempDir,
    lines: mpsc::Receiver<String>,
    pub stderr: Vec<String>,
    pub stdout: std::thread::JoinHandle<String>,
}

impl Run {
    pub fn start(args: &[&str], envs: &[(&str, &Path)]) -> Run {
        let tmp = tempfile::Builder::new()
            .prefix("meshcheck-reliability-")
            .tempdir()
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_meshcheck"));
        command
            .args(args)
            .current_dir(repo())
            .env("TMPDIR", tmp.path())
            .env_remove("MESHCHECK_ENVOY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut text).ok();
            text
        });
        Run {
            child,
            tmp,
            lines,
            stderr: Vec::new(),
            stdout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads stderr until a line contains `needle`; panics with everything read so far
    /// if stderr ends or `timeout` passes first.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(err) => panic!(
                    "no stderr line with `{needle}` ({err}); stderr so far:\n{}",
                    self.stderr.join("\n")
                ),
            }
        }
    }

    /// Waits for the process to exit within `timeout` and returns its exit code and
    /// the whole of stderr.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let pid = self.pid();
        let exited = wait_exit(pid, timeout);
        if !exited {
            let _ = self.child.kill();
        }
        let status = self.child.wait().unwrap();
        // stderr's writer is gone now, so this ends.
        for line in self.lines.iter() {
            self.stderr.push(line);
        }
        assert!(
            exited,
            "meshcheck did not exit within {timeout:?}; stderr:\n{}",
            self.stderr.join("\n")
        );
        Finished {
            code: status.code(),
            stderr: self.stderr.join("\n"),
            stdout: self.stdout.join().unwrap(),
            tmp: self.tmp,
        }
    }
}

pub struct Finished {
    pub code: Option<i32>,
    pub stderr: String,
    pub stdout: String,
    pub tmp: tempfile::TempDir,
}

impl Finished {
    /// What the run left in its private TMPDIR.
    pub fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

/// After a run: every child it had has exited, no process mentions its temporary
/// directory `tmp`, and nothing of it is left in TMPDIR.
pub fn assert_nothing_remains(children: &[u32], tmp: &str, finished: &Finished) {
    for &pid in children {
        assert!(
            wait_exit(pid, Duration::from_secs(10)),
            "child {pid} outlived the run"
        );
    }
    assert_eq!(
        processes_mentioning(tmp),
        Vec::new(),
        "processes of the run remain"
    );
    assert_eq!(finished.leftovers(), Vec::<String>::new(), "left in TMPDIR");
}
