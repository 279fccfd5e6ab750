//! `meshcheck echo` as a real process: flags, responses, signals.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};

const MESHCHECK: &str = env!("CARGO_BIN_EXE_meshcheck");

/// A running echo, killed if a test fails before stopping it.
struct Echo {
    child: Child,
    address: SocketAddr,
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Echo {
    let mut child = Command::new(MESHCHECK)
        .arg("echo")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The announcement is the readiness signal: the socket is bound before it is printed.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    Echo { child, address }
}

/// One HTTP/1.1 request; returns the status line, headers (lowercased) and body.
fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: echo.test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn answers_text_on_every_path_with_http_echo_headers() {
    let echo = start(&["-text=hello from backend v1", "-listen=127.0.0.1:0"]);
    for path in ["/", "/some/deep/path?x=1"] {
        let (status, head, body) = get(echo.address, path);
        assert_eq!(status, 200);
        assert_eq!(body, "hello from backend v1\n");
        assert!(head.contains("x-app-name: http-echo"), "{head}");
        assert!(head.contains("x-app-version: "), "{head}");
    }
    let (status, _, body) = get(echo.address, "/health");
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}"));
}

#[test]
fn go_style_flags_and_status_code() {
    let echo = start(&[
        "--text",
        "down",
        "-status-code",
        "503",
        "--listen=127.0.0.1:0",
    ]);
    let (status, _, body) = get(echo.address, "/");
    assert_eq!((status, body.as_str()), (503, "down\n"));
    // Health stays 200 whatever the configured status, as in http-echo.
    assert_eq!(get(echo.address, "/health").0, 200);
}

#[test]
fn sigterm_stops_it_cleanly() {
    let mut echo = start(&["-text=x", "-listen=127.0.0.1:0"]);
    let pid = libc::pid_t::try_from(echo.child.id()).unwrap();
    // SAFETY: signalling our own live child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = echo.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn unknown_flags_fail_with_a_clear_message() {
    let output = Command::new(MESHCHECK)
        .args(["echo", "-text=x", "-colour=red"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(meshcheck::exit_codes::BAD_INPUT));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown flag `-colour=red`"), "{stderr}");
    assert!(output.stdout.is_empty());
}
