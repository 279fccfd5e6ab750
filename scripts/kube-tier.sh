#!/usr/bin/env bash
# The kube tier: the kube target against a real control plane on this machine. Builds
# it (scripts/build-kube-tier.sh: etcd, kube-apiserver and kube-controller-manager's
# controllers from their Go modules), starts it on loopback, runs the tests that need
# it (`cargo test --test integration kube_tier -- --ignored`), prints their libtest
# summary line, and stops it again, also when interrupted. Exits non-zero on any
# failure.
#
# No kubelet or istiod stand-in runs yet, so this tier proves what needs an API server
# and its controllers (server-side apply, CEL validation, versions, controllers
# creating pods, namespace finalization), not traffic; see README "Test tiers".
#
# Usage: scripts/kube-tier.sh [extra cargo test arguments after --]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

binary="$root/target/kube-tier/controlplane.test"
scripts/build-kube-tier.sh "$binary"

work="$(mktemp -d -t meshcheck-kube-tier-XXXXXX)"
plane=""
tests=""
stop_plane() {
    if [[ -n "$tests" ]] && kill -0 "$tests" 2>/dev/null; then
        kill -TERM "$tests" 2>/dev/null || true
        wait "$tests" 2>/dev/null || true
    fi
    if [[ -n "$plane" ]] && kill -0 "$plane" 2>/dev/null; then
        kill -TERM "$plane"
        # The control plane stops etcd and the API server and removes their files.
        wait "$plane" || true
    fi
    plane=""
    rm -rf "$work"
}
trap stop_plane EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$SECONDS
# stdout carries only the control plane's own lines; the components log to stderr.
KUBE_TIER_KUBECONFIG="$work/kubeconfig" "$binary" -test.run '^TestControlPlane$' \
    >"$work/stdout" 2>"$work/stderr" &
plane=$!
# Wait for the one ready line (or for the process to die), at most 60 s.
ready=""
while ((SECONDS - started < 60)); do
    if grep -q '^control plane ready' "$work/stdout"; then
        ready=yes
        break
    fi
    kill -0 "$plane" 2>/dev/null || break
    # The control plane says when it is ready only on stdout; poll it.
    sleep 0.2
done
if [[ -z "$ready" ]]; then
    echo "kube-tier: the control plane did not start; its last words:" >&2
    tail -n 30 "$work/stderr" >&2
    exit 1
fi
grep '^control plane ready' "$work/stdout"

# In the background, so that a signal to this script runs its trap at once (bash
# defers traps while a foreground command runs), and the trap stops the tests too.
KUBE_TIER_KUBECONFIG="$work/kubeconfig" cargo test --locked --test integration kube_tier \
    -- --ignored --test-threads=1 "$@" >"$work/tests" 2>&1 &
tests=$!
status=0
wait "$tests" || status=$?
tests=""
cat "$work/tests"
echo "kube tier: $(grep -E '^test result:' "$work/tests" | tail -n 1)"
if ((status != 0)); then
    echo "kube-tier: the control plane's log tail:" >&2
    tail -n 20 "$work/stderr" >&2
fi
exit "$status"
