//! The bring-up and tear-down steps, in order. Each step says what it does through
//! `progress`, and each failure says what to install or run.

use std::path::{Path, PathBuf};

use super::error::ClusterError;
use super::tools::{CLOUD_PROVIDER_KIND, DOCKER, ISTIOCTL, KIND, Toolbox};
use super::{DownArgs, UpArgs};
use crate::manifest::{ObjectKey, load_file};
use crate::targets::kube::{KubeEnvironment, KubeOptions, KubeTimeouts};

/// The kubeconfig `cluster up` writes for a cluster: the runner and `--kubeconfig` use it,
/// so the user's own `~/.kube/config` is neither needed nor changed by meshcheck itself.
pub fn kubeconfig_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(format!("kubeconfig-{name}"))
}

fn pid_file(state_dir: &Path) -> PathBuf {
    state_dir.join("cloud-provider-kind.pid")
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Docker must answer before kind can do anything; say so plainly when it does not.
async fn check_docker(toolbox: &Toolbox) -> Result<(), ClusterError> {
    match toolbox
        .run(DOCKER, &["info", "--format", "{{.ServerVersion}}"])
        .await
    {
        Ok(_) => Ok(()),
        Err(ClusterError::Command {
            stderr_tail,
            status,
            ..
        }) => Err(ClusterError::DockerUnavailable {
            detail: if stderr_tail.is_empty() {
                format!("`docker info` exited with {status:?}")
            } else {
                stderr_tail
            },
        }),
        Err(other) => Err(other),
    }
}

pub async fn cluster_up(
    args: &UpArgs,
    toolbox: &Toolbox,
    progress: &dyn Fn(&str),
) -> Result<(), ClusterError> {
    // Find every tool first, so a missing one is reported before anything is created.
    toolbox.find(DOCKER)?;
    toolbox.find(KIND)?;
    let istioctl = toolbox.find(ISTIOCTL)?;
    if !args.no_load_balancer {
        toolbox.find(CLOUD_PROVIDER_KIND)?;
    }
    let crds = args.crds_dir.join(format!(
        "gateway-api-{}-{}-install.yaml",
        args.gateway_api_version, args.gateway_api_channel
    ));
    if !crds.is_file() {
        return Err(ClusterError::GatewayApiManifestMissing {
            version: args.gateway_api_version.clone(),
            channel: args.gateway_api_channel.clone(),
            path: crds,
        });
    }
    check_istioctl_version(&istioctl, &args.istio_version).await?;
    check_docker(toolbox).await?;
    std::fs::create_dir_all(&args.state_dir).map_err(io_error(&args.state_dir))?;

    let clusters = toolbox.run(KIND, &["get", "clusters"]).await?;
    if clusters.lines().any(|line| line.trim() == args.name) {
        progress(&format!("reusing kind cluster {}", args.name));
    } else {
        if !args.config.is_file() {
            return Err(ClusterError::Io {
                path: args.config.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "kind config not found"),
            });
        }
        progress(&format!(
            "creating kind cluster {} from {}",
            args.name,
            args.config.display()
        ));
        let config = args.config.to_string_lossy();
        toolbox
            .run(
                KIND,
                &[
                    "create", "cluster", "--name", &args.name, "--config", &config, "--wait",
                    "120s",
                ],
            )
            .await?;
    }
    let kubeconfig = kubeconfig_path(&args.state_dir, &args.name);
    let text = toolbox
        .run(KIND, &["get", "kubeconfig", "--name", &args.name])
        .await?;
    write_private(&kubeconfig, &text)?;

    if !args.no_load_balancer {
        start_cloud_provider(toolbox, &args.state_dir, progress).await?;
    }

    let options = KubeOptions {
        kubeconfig: Some(kubeconfig.clone()),
        context: None,
        // Bring-up installs infrastructure that outlives this command.
        keep: true,
        keep_on_failure: false,
        // Not a run's objects: `meshcheck cleanup` must never select them.
        run_id: None,
        timeouts: KubeTimeouts::uniform(args.timeout),
    };
    let mut env = KubeEnvironment::connect(options).await?;
    progress(&format!(
        "applying Gateway API {} {} CRDs",
        args.gateway_api_version, args.gateway_api_channel
    ));
    let manifests = load_file(&crds)?;
    env.apply(&manifests).await?;

    progress(&format!(
        "installing Istio {} ({} profile)",
        args.istio_version, args.istio_profile
    ));
    let profile = format!("profile={}", args.istio_profile);
    let kubeconfig_arg = kubeconfig.to_string_lossy();
    super::tools::run_program(
        &istioctl,
        &[
            "install",
            "-y",
            "--set",
            &profile,
            "--kubeconfig",
            &kubeconfig_arg,
        ],
    )
    .await?;

    progress("waiting for istiod");
    let istiod = ObjectKey {
        kind: "Deployment".into(),
        namespace: Some("istio-system".into()),
        name: "istiod".into(),
    };
    env.wait_for("apps/v1", &istiod, args.timeout).await?;
    progress("waiting for GatewayClass istio to be Accepted");
    let class = ObjectKey {
        kind: "GatewayClass".into(),
        namespace: None,
        name: "istio".into(),
    };
    env.wait_for("gateway.networking.k8s.io/v1", &class, args.timeout)
        .await?;
    progress(&format!(
        "cluster {} is ready: meshcheck run --target kube --kubeconfig {}",
        args.name,
        kubeconfig.display()
    ));
    Ok(())
}

/// istioctl installs its own version of Istio; make sure it is the requested one.
async fn check_istioctl_version(istioctl: &Path, wanted: &str) -> Result<(), ClusterError> {
    let out = super::tools::run_program(istioctl, &["version", "--remote=false"]).await?;
    // Output is "1.26.2" or "client version: 1.26.2" depending on the release.
    let found = out
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .last()
                .filter(|t| t.chars().next().is_some_and(|c| c.is_ascii_digit()))
        })
        .unwrap_or("")
        .to_owned();
    if found != wanted.trim_start_matches('v') {
        return Err(ClusterError::IstioVersionMismatch {
            path: istioctl.to_path_buf(),
            found,
            wanted: wanted.to_owned(),
        });
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> Result<(), ClusterError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // A kubeconfig holds a client key: readable by this user only.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(text.as_bytes()).map_err(io_error(path))
}

fn running(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn read_pid(state_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(pid_file(state_dir))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Starts cloud-provider-kind in the background unless the one we started before is
/// still running. It watches every kind cluster and gives LoadBalancer Services an
/// address on the kind network, which is what the seed's Gateway needs.
async fn start_cloud_provider(
    toolbox: &Toolbox,
    state_dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<(), ClusterError> {
    if let Some(pid) = read_pid(state_dir)
        && running(pid)
    {
        progress(&format!("cloud-provider-kind already running (pid {pid})"));
        return Ok(());
    }
    let program = toolbox.find(CLOUD_PROVIDER_KIND)?;
    let log_path = state_dir.join("cloud-provider-kind.log");
    let log = std::fs::File::create(&log_path).map_err(io_error(&log_path))?;
    let err_log = log.try_clone().map_err(io_error(&log_path))?;
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new(&program)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err_log)
        // Its own process group, so a Ctrl-C on `cluster up` does not take it down.
        .process_group(0)
        .spawn()
        .map_err(|source| ClusterError::Spawn {
            program: program.clone(),
            source,
        })?;
    let pid_path = pid_file(state_dir);
    std::fs::write(&pid_path, child.id().to_string()).map_err(io_error(&pid_path))?;
    progress(&format!(
        "started cloud-provider-kind (pid {}, log {})",
        child.id(),
        log_path.display()
    ));
    Ok(())
}

pub async fn cluster_down(
    args: &DownArgs,
    toolbox: &Toolbox,
    progress: &dyn Fn(&str),
) -> Result<(), ClusterError> {
    progress(&format!("deleting kind cluster {}", args.name));
    // kind succeeds when the cluster does not exist, so `down` is safe to repeat.
    toolbox
        .run(KIND, &["delete", "cluster", "--name", &args.name])
        .await?;
    let kubeconfig = kubeconfig_path(&args.state_dir, &args.name);
    if kubeconfig.exists() {
        std::fs::remove_file(&kubeconfig).map_err(io_error(&kubeconfig))?;
    }
    if let Some(pid) = read_pid(&args.state_dir) {
        if running(pid) {
            progress(&format!("stopping cloud-provider-kind (pid {pid})"));
            // SAFETY: plain kill(2) of the process this tool started and recorded.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let path = pid_file(&args.state_dir);
        std::fs::remove_file(&path).map_err(io_error(&path))?;
    }
    Ok(())
}
