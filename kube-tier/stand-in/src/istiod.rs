//! The istiod stand-in (see the crate docs).
