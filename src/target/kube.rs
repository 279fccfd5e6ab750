//! The kube target: fixtures applied to a real cluster.
