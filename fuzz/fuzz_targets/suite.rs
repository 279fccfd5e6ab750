//! Suite files, through the real loader: the input is written as a suite next to a
//! copy of the shipped fixtures, so fixture references, split derivation and case
//! validation all run.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn workdir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("meshcheck-fuzz-suite-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        // Every fixture directory, so suites that name any shipped fixture load.
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        for set in std::fs::read_dir(shipped).expect("the shipped fixtures") {
            let set = set.expect("a fixture directory");
            let fixtures = dir.join("fixtures").join(set.file_name());
            std::fs::create_dir_all(&fixtures).expect("the fixtures directory");
            for entry in std::fs::read_dir(set.path()).expect("the fixture files") {
                let entry = entry.expect("a fixture");
                std::fs::copy(entry.path(), fixtures.join(entry.file_name())).expect("a copy");
            }
        }
        dir.join("suites")
    })
}

fuzz_target!(|data: &[u8]| {
    let suites = workdir();
    std::fs::create_dir_all(suites).expect("the suites directory");
    let path = suites.join("fuzz.yaml");
    std::fs::write(&path, data).expect("the suite file");
    let _ = meshcheck::suite::load_suite(&path);
});
