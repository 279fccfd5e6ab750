//! The `kube-stand-in` binary: everything happens in [`meshcheck_kube_stand_in::main`].

fn main() {
    std::process::exit(meshcheck_kube_stand_in::main());
}
