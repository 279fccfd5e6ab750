//! Fixture files: YAML parsing, manifest decoding, uniqueness and ordering, and the
//! local target's translation, which reads every field the fixtures may carry.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use meshcheck::manifest::{apply_order, check_unique, load_str};

fuzz_target!(|data: &[u8]| {
    // read_source refuses non-UTF-8 before parsing; the parser only sees text.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifests) = load_str(text, Path::new("fuzz.yaml")) else {
        return;
    };
    let _ = check_unique(&manifests);
    let _ = apply_order(&manifests);
    let _ = meshcheck::targets::local::plan(&manifests);
});
