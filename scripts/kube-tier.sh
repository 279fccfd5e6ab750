#!/usr/bin/env bash
# The kube tier: the kube target against a real control plane on this machine, with
# test stand-ins for what has no process here (kube-tier/stand-in: a kubelet that runs
# echo pods as `meshcheck echo` processes on loopback and injects the istio-proxy
# sidecar, and istiod with its gateway data plane). Builds everything
# (scripts/build-kube-tier.sh: etcd, kube-apiserver and kube-controller-manager's
# controllers from their Go modules; cargo: the stand-ins and meshcheck), starts the
# control plane and the stand-ins on loopback, then runs
#   1. the kube_tier integration tests (`cargo test --test integration kube_tier -- --ignored`),
#   2. the cluster tier: every `kube::` suite case (`cargo test --test suites kube::`),
#      with MESHCHECK_CLUSTER_CANNOT=exec so the cases that need `kubectl exec` into a
#      pod (which no stand-in can give) are ignored with that reason, printed, and
#      MESHCHECK_CLUSTER_TIMEOUT=60s (everything is on loopback: a minute is plenty),
# prints each libtest summary line, and stops everything again, also when interrupted.
# Exits non-zero on any failure. See README "Test tiers".
#
# Usage: scripts/kube-tier.sh [-- extra libtest options for both test runs]
#   KUBE_TIER_ONLY=integration|suites   run just one of the two test runs
#   KUBE_TIER_SUITES=FILTER             the suites run's filter (default `kube::`,
#                                       e.g. `kube::ingress-canary::`)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [[ "${1:-}" == "--" ]]; then
    shift
fi

binary="$root/target/kube-tier/controlplane.test"
scripts/build-kube-tier.sh "$binary"
cargo build --locked -p meshcheck-kube-stand-in --bin kube-stand-in
cargo build --locked --bin meshcheck
# The test binaries too, before anything starts: the tier's start-up is not spent
# compiling.
cargo test --locked --no-run --test integration --test suites
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
stand_in="$target_dir/debug/kube-stand-in"
meshcheck="$target_dir/debug/meshcheck"

work="$(mktemp -d -t meshcheck-kube-tier-XXXXXX)"
plane=""
stand_ins=""
tests=""
# Stops a background process (SIGTERM, then waits: each stops what it started).
stop() {
    local pid="$1"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
# Stops a process group started with setsid: cargo does not pass a signal on to the
# test binary it runs, which would be left behind.
stop_group() {
    local pid="$1"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
stop_all() {
    # A second signal (Ctrl-C twice, or a signal to both `timeout` and this script)
    # must not cut the cleanup short and orphan what is still running.
    trap '' INT TERM
    stop_group "$tests"
    tests=""
    # The stand-ins first: they remove their webhook and stop their processes while
    # the API server still answers.
    stop "$stand_ins"
    stand_ins=""
    # The control plane stops etcd and the API server and removes their files.
    stop "$plane"
    plane=""
    rm -rf "$work"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits (at most $3 seconds) for a line matching $2 in file $1 while process $4 lives.
wait_for_line() {
    local file="$1" pattern="$2" limit="$3" pid="$4" since=$SECONDS
    while ((SECONDS - since < limit)); do
        if grep -q "$pattern" "$file"; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        # The processes say when they are ready only on stdout; poll it.
        sleep 0.2
    done
    return 1
}

started=$SECONDS
# stdout carries only the control plane's own lines; the components log to stderr.
KUBE_TIER_KUBECONFIG="$work/kubeconfig" "$binary" -test.run '^TestControlPlane$' \
    >"$work/stdout" 2>"$work/stderr" &
plane=$!
if ! wait_for_line "$work/stdout" '^control plane ready' 60 "$plane"; then
    echo "kube-tier: the control plane did not start; its last words:" >&2
    tail -n 30 "$work/stderr" >&2
    exit 1
fi
grep '^control plane ready' "$work/stdout"

mkdir -p "$work/stand-in"
envoy_args=()
if [[ -n "${MESHCHECK_ENVOY:-}" ]]; then
    envoy_args=(--envoy "$MESHCHECK_ENVOY")
fi
"$stand_in" --kubeconfig "$work/kubeconfig" --echo-program "$meshcheck" \
    --work-dir "$work/stand-in" "${envoy_args[@]}" \
    >"$work/stand-in.stdout" 2>"$work/stand-in.stderr" &
stand_ins=$!
if ! wait_for_line "$work/stand-in.stdout" '^stand-ins ready' 60 "$stand_ins"; then
    echo "kube-tier: the stand-ins did not start; their last words:" >&2
    tail -n 30 "$work/stand-in.stderr" >&2
    exit 1
fi
echo "kube tier up in $((SECONDS - started)) s (control plane and stand-ins)"

export KUBE_TIER_KUBECONFIG="$work/kubeconfig"
export KUBE_TIER_DNS_PORT_FILE="$work/stand-in/dns-port"
status=0
summaries=()
# Runs one cargo test command in the background (so that a signal to this script runs
# its trap at once: bash defers traps while a foreground command runs), prints its
# output and its summary line.
run_tests() {
    local name="$1"
    shift
    # Its own process group (setsid), so that stopping it stops the test binary too.
    setsid "$@" >"$work/$name.log" 2>&1 &
    tests=$!
    local code=0
    wait "$tests" || code=$?
    tests=""
    cat "$work/$name.log"
    summaries+=("kube tier $name: $(grep -E '^test result:' "$work/$name.log" | tail -n 1)")
    if ((code != 0)); then
        status=$code
    fi
}
only="${KUBE_TIER_ONLY:-}"
if [[ -z "$only" || "$only" == integration ]]; then
    run_tests integration cargo test --locked --test integration kube_tier \
        -- --ignored --test-threads=1 "$@"
fi
if [[ -z "$only" || "$only" == suites ]]; then
    # The stand-ins cannot give `exec` into a pod (no kubelet serves it): the trials
    # that need it are ignored with that reason (tests/suites.rs).
    run_tests suites env MESHCHECK_E2E=1 MESHCHECK_KUBECONFIG="$work/kubeconfig" \
        MESHCHECK_CLUSTER_CANNOT=exec MESHCHECK_CLUSTER_TIMEOUT=60s cargo test --locked --test suites \
        -- "${KUBE_TIER_SUITES:-kube::}" --test-threads=1 "$@"
fi
printf '%s\n' "${summaries[@]}"
if ((status != 0)); then
    echo "kube-tier: the stand-ins' log tail:" >&2
    tail -n 30 "$work/stand-in.stderr" >&2
    echo "kube-tier: the control plane's log tail:" >&2
    tail -n 20 "$work/stderr" >&2
fi
exit "$status"
