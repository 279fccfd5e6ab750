//! Finding the external tools bring-up needs (kind, istioctl, cloud-provider-kind,
//! docker) and running them with errors that say what to install.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::error::ClusterError;

/// Where tools are looked up: the project-local directory `scripts/install-tools.sh`
/// fills first, then `PATH`.
#[derive(Clone, Debug)]
pub struct Toolbox {
    pub tools_dir: PathBuf,
    pub search_path: OsString,
}

/// One tool: its name and what to tell a user who does not have it.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    pub name: &'static str,
    pub install_hint: &'static str,
}

pub const KIND: Tool = Tool {
    name: "kind",
    install_hint: "run scripts/install-tools.sh (pinned, SHA-256 checked) or see https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
};
pub const ISTIOCTL: Tool = Tool {
    name: "istioctl",
    install_hint: "run scripts/install-tools.sh (pinned, SHA-256 checked) or see https://istio.io/latest/docs/setup/getting-started/#download",
};
pub const CLOUD_PROVIDER_KIND: Tool = Tool {
    name: "cloud-provider-kind",
    install_hint: "run scripts/install-tools.sh (pinned, SHA-256 checked) or see https://github.com/kubernetes-sigs/cloud-provider-kind; it gives LoadBalancer Services (the Gateway's) an address on the kind network",
};
pub const DOCKER: Tool = Tool {
    name: "docker",
    install_hint: "install Docker Engine (https://docs.docker.com/engine/install/) and start it; kind runs its nodes as containers",
};

impl Toolbox {
    pub fn from_env(tools_dir: PathBuf) -> Toolbox {
        Toolbox {
            tools_dir,
            search_path: std::env::var_os("PATH").unwrap_or_default(),
        }
    }

    /// The tool's path: the tools directory first (pinned versions win over whatever is
    /// on PATH), then PATH.
    pub fn find(&self, tool: Tool) -> Result<PathBuf, ClusterError> {
        std::iter::once(self.tools_dir.clone())
            .chain(std::env::split_paths(&self.search_path))
            .map(|dir| dir.join(tool.name))
            .find(|candidate| is_executable(candidate))
            .ok_or_else(|| ClusterError::MissingTool {
                tool: tool.name,
                tools_dir: self.tools_dir.clone(),
                hint: tool.install_hint,
            })
    }

    /// Runs a tool to completion and returns its stdout; a non-zero exit becomes an error
    /// carrying the tail of its stderr.
    pub async fn run(&self, tool: Tool, args: &[&str]) -> Result<String, ClusterError> {
        let program = self.find(tool)?;
        run_program(&program, args).await
    }
}

pub async fn run_program(program: &Path, args: &[&str]) -> Result<String, ClusterError> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| ClusterError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        return Err(ClusterError::Command {
            program: program.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            status: output.status.code(),
            stderr_tail: tail(&String::from_utf8_lossy(&output.stderr), 20),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The last `lines` lines of a tool's output, for error messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn tools_dir_wins_over_path_and_missing_tools_say_what_to_install() {
        let local = tempfile::tempdir().unwrap();
        let on_path = tempfile::tempdir().unwrap();
        script(local.path(), "kind", "echo local");
        script(on_path.path(), "kind", "echo path");
        script(on_path.path(), "istioctl", "echo path");
        // Present but not executable: not a tool.
        std::fs::write(on_path.path().join("docker"), "").unwrap();
        let tools = Toolbox {
            tools_dir: local.path().to_path_buf(),
            search_path: on_path.path().as_os_str().to_owned(),
        };
        assert_eq!(tools.find(KIND).unwrap(), local.path().join("kind"));
        assert_eq!(
            tools.find(ISTIOCTL).unwrap(),
            on_path.path().join("istioctl")
        );
        let err = tools.find(DOCKER).unwrap_err().to_string();
        assert!(err.starts_with("docker not found on PATH or in "), "{err}");
        assert!(err.contains("install Docker Engine"), "{err}");
    }

    #[tokio::test]
    async fn failing_commands_carry_their_stderr_tail() {
        let dir = tempfile::tempdir().unwrap();
        script(
            dir.path(),
            "kind",
            "echo ok-out; echo 'ERROR: failed to create cluster' >&2; exit 3",
        );
        let tools = Toolbox {
            tools_dir: dir.path().to_path_buf(),
            search_path: OsString::new(),
        };
        let err = tools
            .run(KIND, &["create", "cluster"])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("create cluster") && err.contains("exit status 3"),
            "{err}"
        );
        assert!(err.ends_with("ERROR: failed to create cluster"), "{err}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("", 2), "");
    }
}
