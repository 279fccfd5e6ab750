//! Where Envoy comes from: the MESHCHECK_ENVOY override, the per-version cache, the
//! version check. The real install path is exercised by every other local test
//! (`ensure_envoy` installs into the cache on first use).

use std::path::{Path, PathBuf};

use meshcheck::targets::local::{EnvoySource, LocalError, ensure_envoy, ensure_envoy_from};

async fn installed() -> PathBuf {
    ensure_envoy(|dir| eprintln!("{}", meshcheck::targets::local::installing_message(dir)))
        .await
        .unwrap()
}

#[tokio::test]
async fn override_must_exist() {
    let source = EnvoySource {
        override_path: Some(PathBuf::from("/nonexistent/envoy")),
        cache_dir: None,
    };
    let err = ensure_envoy_from(&source, |_| panic!("must not install"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "MESHCHECK_ENVOY names /nonexistent/envoy, which does not exist"
    );
}

#[tokio::test]
async fn override_is_used_without_installing_and_version_checked() {
    let envoy = installed().await;
    let source = EnvoySource {
        override_path: Some(envoy.clone()),
        cache_dir: None,
    };
    let got = ensure_envoy_from(&source, |_| panic!("must not install"))
        .await
        .unwrap();
    assert_eq!(got, envoy);

    // Something that is not Envoy 1.40 is refused, naming what it said.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("envoy");
    crate::support::script::write_executable(
        &fake,
        "#!/bin/sh\necho 'envoy  version: abc/1.29.0/Clean/RELEASE/BoringSSL'\n",
    );
    let source = EnvoySource {
        override_path: Some(fake),
        cache_dir: None,
    };
    let err = ensure_envoy_from(&source, |_| ()).await.unwrap_err();
    assert!(matches!(err, LocalError::EnvoyVersion { .. }), "{err}");
    assert!(err.to_string().contains("1.29.0"), "{err}");
}

#[tokio::test]
async fn cached_install_is_reused_without_a_message() {
    let envoy = installed().await;
    // <cache>/envoy-1.40.0/envoy/_bin/envoy
    let cache: &Path = envoy.ancestors().nth(4).unwrap();
    assert!(
        envoy.ends_with("envoy-1.40.0/envoy/_bin/envoy"),
        "{}",
        envoy.display()
    );
    let source = EnvoySource {
        override_path: None,
        cache_dir: Some(cache.to_path_buf()),
    };
    let got = ensure_envoy_from(&source, |dir| panic!("reinstalling into {}", dir.display()))
        .await
        .unwrap();
    assert_eq!(got, envoy);
}
