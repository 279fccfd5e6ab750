//! The kubelet stand-in (see the crate docs).
