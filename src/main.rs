//! The `meshcheck` binary: everything happens in [`meshcheck::cli`].

fn main() {
    std::process::exit(meshcheck::cli::main());
}
