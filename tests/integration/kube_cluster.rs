//! `meshcheck cluster up/down` with stand-in tools: shell scripts named kind, docker,
//! istioctl and cloud-provider-kind that log their arguments, and the fake API server
//! as the "cluster" whose kubeconfig the stand-in kind hands out. The real bring-up
//! code runs: tool lookup, docker check, cluster reuse, CRD apply with Established
//! waits, istioctl invocation, istiod and GatewayClass waits, the background load
//! balancer process and its shutdown.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::support::fake_api::FakeApi;
use crate::support::script::write_executable;
use meshcheck::cluster::{
    ClusterArgs, ClusterCommand, ClusterError, DownArgs, Toolbox, UpArgs, run_cluster_with,
};
use serde_json::json;

fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    write_executable(&path, &format!("#!/bin/sh\n{body}\n"));
}

struct Tools {
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Tools {
    /// Stand-ins for every tool; `kubeconfig` is what `kind get kubeconfig` prints.
    fn new(kubeconfig: Option<&Path>, existing_cluster: bool) -> Tools {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let log = dir.path().join("calls.log");
        let l = log.display();
        let created = dir.path().join("created");
        if existing_cluster {
            std::fs::write(&created, "").unwrap();
        }
        let c = created.display();
        script(
            &bin,
            "docker",
            &format!("echo \"docker $*\" >> {l}; echo 28.1.1"),
        );
        let kubeconfig = kubeconfig
            .map(|p| format!("cat {}", p.display()))
            .unwrap_or_else(|| "exit 1".into());
        script(
            &bin,
            "kind",
            &format!(
                "echo \"kind $*\" >> {l}\ncase \"$1 $2\" in\n  'get clusters') echo other; [ -f {c} ] && echo meshcheck-test; true;;\n  'create cluster') touch {c};;\n  'get kubeconfig') {kubeconfig};;\n  'delete cluster') rm -f {c};;\nesac"
            ),
        );
        script(
            &bin,
            "istioctl",
            &format!("echo \"istioctl $*\" >> {l}\n[ \"$1\" = version ] && echo 1.26.2\ntrue"),
        );
        // The load balancer provider runs until stopped.
        script(&bin, "cloud-provider-kind", "exec sleep 600");
        Tools { dir, log }
    }

    fn toolbox(&self) -> Toolbox {
        Toolbox {
            tools_dir: self.dir.path().join("bin"),
            search_path: OsString::new(),
        }
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn up_args(state_dir: &Path) -> UpArgs {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    UpArgs {
        name: "meshcheck-test".into(),
        config: root.join("kind-config.yaml"),
        gateway_api_version: "v1.3.0".into(),
        gateway_api_channel: "standard".into(),
        crds_dir: root.join("crds"),
        istio_version: "1.26.2".into(),
        istio_profile: "minimal".into(),
        no_load_balancer: false,
        state_dir: state_dir.to_path_buf(),
        timeout: Duration::from_secs(20),
    }
}

fn alive(pid: i32) -> bool {
    // A killed child of ours stays a zombie until reaped; that counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.split_whitespace().nth(2).is_none_or(|state| state != "Z"))
}

#[tokio::test]
async fn up_creates_installs_and_waits_then_down_removes() {
    let api = FakeApi::start().await;
    let cfg_dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(cfg_dir.path(), "kind-client-token-xyz");
    let tools = Tools::new(Some(&kubeconfig), false);
    let state = tempfile::tempdir().unwrap();
    // What istioctl install leaves behind, as the fake cluster's controllers would report it.
    api.insert("apps", "deployments", Some("istio-system"), json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "istiod"},
        "spec": {"replicas": 1}, "status": {"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1,
        "conditions": [{"type": "Available", "status": "True"}]}}));
    let lines = Mutex::new(Vec::new());
    let args = ClusterArgs {
        command: ClusterCommand::Up(up_args(state.path())),
    };
    let toolbox = tools.toolbox();
    let progress = |l: &str| lines.lock().unwrap().push(l.to_owned());
    let run = run_cluster_with(args, &toolbox, &progress);
    let controller = async {
        // istiod creates the GatewayClass once the Gateway API CRDs exist.
        api.until(|st| {
            st.objects
                .keys()
                .any(|k| k.3 == "gatewayclasses.gateway.networking.k8s.io")
        })
        .await;
        api.until(|st| {
            st.requests
                .iter()
                .any(|r| r.path.ends_with("/gatewayclasses") && r.query.contains("watch=true"))
        })
        .await;
        api.insert("gateway.networking.k8s.io", "gatewayclasses", None, json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "istio"}, "spec": {"controllerName": "istio.io/gateway-controller"},
            "status": {"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 1}]}}));
    };
    let (code, ()) = tokio::join!(run, controller);
    assert_eq!(code.unwrap(), 0);

    let calls = tools.calls();
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kind-config.yaml");
    let written = state.path().join("kubeconfig-meshcheck-test");
    assert_eq!(
        calls,
        [
            "istioctl version --remote=false".to_owned(),
            "docker info --format {{.ServerVersion}}".into(),
            "kind get clusters".into(),
            format!(
                "kind create cluster --name meshcheck-test --config {} --wait 120s",
                config.display()
            ),
            "kind get kubeconfig --name meshcheck-test".into(),
            format!(
                "istioctl install -y --set profile=minimal --kubeconfig {}",
                written.display()
            ),
        ]
    );
    assert_eq!(
        std::fs::metadata(&written).unwrap().permissions().mode() & 0o777,
        0o600
    );
    for crd in [
        "gatewayclasses",
        "gateways",
        "httproutes",
        "referencegrants",
        "grpcroutes",
    ] {
        assert!(
            api.get(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                None,
                &format!("{crd}.gateway.networking.k8s.io")
            )
            .is_some(),
            "{crd}"
        );
    }
    let lines = lines.into_inner().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("started cloud-provider-kind")),
        "{lines:?}"
    );
    assert!(
        lines.last().unwrap().starts_with(
            "cluster meshcheck-test is ready: meshcheck run --target kube --kubeconfig "
        ),
        "{lines:?}"
    );
    let pid: i32 = std::fs::read_to_string(state.path().join("cloud-provider-kind.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));

    let down = ClusterArgs {
        command: ClusterCommand::Down(DownArgs {
            name: "meshcheck-test".into(),
            state_dir: state.path().to_path_buf(),
        }),
    };
    assert_eq!(
        run_cluster_with(down, &tools.toolbox(), &|_| {})
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        tools.calls().last().unwrap(),
        "kind delete cluster --name meshcheck-test"
    );
    assert!(!written.exists());
    assert!(!state.path().join("cloud-provider-kind.pid").exists());
    // SIGTERM was sent; reap the zombie-to-be so the check is not racing the kernel.
    let mut status = 0;
    // SAFETY: waitpid on our own child, recorded in the pid file.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(!alive(pid));
}

#[tokio::test]
async fn existing_cluster_is_reused() {
    let api = FakeApi::start().await;
    let cfg_dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(cfg_dir.path(), "t0ken-for-reuse");
    let tools = Tools::new(Some(&kubeconfig), true);
    let state = tempfile::tempdir().unwrap();
    let mut args = up_args(state.path());
    args.no_load_balancer = true;
    args.timeout = Duration::from_millis(300);
    let err = run_cluster_with(
        ClusterArgs {
            command: ClusterCommand::Up(args),
        },
        &tools.toolbox(),
        &|_| {},
    )
    .await
    .unwrap_err();
    // No istiod in this fake cluster: the wait names it.
    assert!(matches!(err, ClusterError::Kube(_)), "{err}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        source.contains("Deployment istio-system/istiod"),
        "{source}"
    );
    assert_eq!(err.exit_code(), meshcheck::exit_codes::SETUP_FAILED);
    let calls = tools.calls();
    assert!(calls.contains(&"kind get clusters".to_owned()));
    assert!(
        !calls.iter().any(|c| c.starts_with("kind create")),
        "{calls:?}"
    );
    assert!(!state.path().join("cloud-provider-kind.pid").exists());
}

#[tokio::test]
async fn missing_kind_says_what_to_install_before_doing_anything() {
    let tools = Tools::new(None, false);
    std::fs::remove_file(tools.dir.path().join("bin/kind")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let err = run_cluster_with(
        ClusterArgs {
            command: ClusterCommand::Up(up_args(state.path())),
        },
        &tools.toolbox(),
        &|_| {},
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("kind not found on PATH or in "), "{text}");
    assert!(text.contains("scripts/install-tools.sh"), "{text}");
    assert!(tools.calls().is_empty(), "{:?}", tools.calls());
}

#[tokio::test]
async fn docker_daemon_down_is_a_clear_message() {
    let tools = Tools::new(None, false);
    script(
        &tools.dir.path().join("bin"),
        "docker",
        "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2; exit 1",
    );
    let state = tempfile::tempdir().unwrap();
    let err = run_cluster_with(
        ClusterArgs {
            command: ClusterCommand::Up(up_args(state.path())),
        },
        &tools.toolbox(),
        &|_| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ClusterError::DockerUnavailable { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "docker is installed but not usable (is the daemon running, and may this user reach it?): Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
    );
}

#[tokio::test]
async fn wrong_istioctl_version_and_unknown_gateway_api_version_are_refused() {
    let tools = Tools::new(None, false);
    let state = tempfile::tempdir().unwrap();
    let mut args = up_args(state.path());
    args.istio_version = "1.27.0".into();
    let err = run_cluster_with(
        ClusterArgs {
            command: ClusterCommand::Up(args),
        },
        &tools.toolbox(),
        &|_| {},
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("is version 1.26.2, not the requested 1.27.0"),
        "{err}"
    );

    let mut args = up_args(state.path());
    args.gateway_api_version = "v9.9.9".into();
    let err = run_cluster_with(
        ClusterArgs {
            command: ClusterCommand::Up(args),
        },
        &tools.toolbox(),
        &|_| {},
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("fetch it with scripts/fetch-gateway-api.sh v9.9.9 standard"),
        "{err}"
    );
    assert_eq!(err.exit_code(), meshcheck::exit_codes::BAD_INPUT);
}

#[test]
fn cluster_args_parse_with_defaults() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        cluster: ClusterArgs,
    }
    let cli = Cli::try_parse_from([
        "meshcheck",
        "up",
        "--name",
        "ci",
        "--istio-version",
        "1.26.2",
    ])
    .unwrap();
    let ClusterCommand::Up(up) = cli.cluster.command else {
        panic!("not up")
    };
    assert_eq!(up.name, "ci");
    assert_eq!(up.gateway_api_version, "v1.3.0");
    assert_eq!(up.istio_profile, "minimal");
    assert_eq!(up.timeout, Duration::from_secs(300));
    assert!(Cli::try_parse_from(["meshcheck", "up", "--gateway-api-channel", "nightly"]).is_err());
}
