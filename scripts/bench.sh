#!/usr/bin/env bash
# meshcheck's traffic engine and verdict times, measured side by side with oha on the
# same loopback targets in one run. Prints one line per figure with its ratio.
#
#   scripts/bench.sh              # everything (about 10 minutes on 2 cores)
#   BENCH_RUNS=3 scripts/bench.sh # fewer rounds per throughput figure
#   scripts/bench.sh throughput   # only some sections: throughput memory verdict requests conformance
#
# Traffic goes only to 127.0.0.1, and every load is bounded in count and time.
#
# CPU placement (2 cores): the target (Envoy with --concurrency 1, and for the echo
# target the echo processes too) is pinned to CPU 0, the load generator under test
# to CPU 1, so each tool gets one whole core and the target never competes with it.
# Both tools size their runtimes from the CPU affinity, so both run one worker thread.
# As root, the target and the load generators also run at nice -15, so that other
# work on the machine (builds) disturbs the comparison less.
set -euo pipefail
cd "$(dirname "$0")/.."

OHA_VERSION=1.16.0
RUNS=${BENCH_RUNS:-5}
KEEPALIVE_REQUESTS=${BENCH_KEEPALIVE_REQUESTS:-50000}
CLOSE_REQUESTS=${BENCH_CLOSE_REQUESTS:-10000}
MEMORY_REQUESTS=${BENCH_MEMORY_REQUESTS:-1000000}
VERDICT_RUNS=${BENCH_VERDICT_RUNS:-10}
# Upper bound for any single load run.
RUN_LIMIT=${BENCH_RUN_LIMIT:-120}
TARGET_CPU=0
LOAD_CPU=1
SECTIONS=${*:-throughput memory verdict requests conformance}
CONFORMANCE_RUNS=${BENCH_CONFORMANCE_RUNS:-3}
if [ "$(id -u)" = 0 ]; then PRIO=(nice -n -15); else PRIO=(); fi

TARGET_DIR=${CARGO_TARGET_DIR:-target}
TOOLS=$TARGET_DIR/bench-tools
MESHCHECK=$TARGET_DIR/release/meshcheck
OHA=$TOOLS/bin/oha
WORK=$(mktemp -d -t meshcheck-bench-XXXXXX)
# Targets are started from command substitutions (subshells), so their pids go to a
# file rather than a variable.
PIDS=$WORK/pids

cleanup() {
    local pid
    if [ -f "$PIDS" ]; then
        while read -r pid; do
            kill -TERM "$pid" 2>/dev/null || true
        done <"$PIDS"
        while read -r pid; do
            while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
        done <"$PIDS"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }

# --- tools ----------------------------------------------------------------------
install_tools() {
    local missing=()
    command -v taskset >/dev/null || missing+=(util-linux)
    [ -x /usr/bin/time ] || missing+=(time)
    command -v hyperfine >/dev/null || missing+=(hyperfine)
    command -v jq >/dev/null || missing+=(jq)
    command -v curl >/dev/null || missing+=(curl)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]} with apt-get"
        apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2
    fi
    if ! "$OHA" --version 2>/dev/null | grep -q "$OHA_VERSION"; then
        say "installing oha $OHA_VERSION into $TOOLS"
        CARGO_TARGET_DIR=$TARGET_DIR/bench-tools-build \
            cargo install oha --version "$OHA_VERSION" --locked --root "$TOOLS" >&2
    fi
    say "building meshcheck (release)"
    cargo build --release --locked --quiet >&2
}

# --- targets --------------------------------------------------------------------
ENVOY_BOOTSTRAP='
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config:
            virtual_hosts:
            - name: devopscube
              domains: ["test.devopscube.com"]
              routes:
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "hello from envoy" } }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
'

# Starts Envoy answering every request itself; prints its listener address.
start_direct_envoy() {
    local envoy config admin_path admin port deadline
    envoy=$("$MESHCHECK" local-target --print-envoy)
    config=$WORK/direct.yaml
    admin_path=$WORK/direct-admin
    printf '%s' "$ENVOY_BOOTSTRAP" >"$config"
    "${PRIO[@]}" taskset -c "$TARGET_CPU" "$envoy" -c "$config" --concurrency 1 --disable-hot-restart \
        --admin-address-path "$admin_path" -l warning >"$WORK/direct-envoy.log" 2>&1 &
    echo $! >>"$PIDS"
    deadline=$((SECONDS + 20))
    while [ $SECONDS -lt $deadline ]; do
        if [ -s "$admin_path" ]; then
            admin=$(cat "$admin_path")
            port=$(curl -sf "http://$admin/listeners?format=json" |
                jq -r '.listener_statuses[0].local_address.socket_address.port_value // empty' || true)
            if [ -n "$port" ]; then
                echo "127.0.0.1:$port"
                return
            fi
        fi
        sleep 0.05
    done
    say "envoy did not come up; its log:"
    cat "$WORK/direct-envoy.log" >&2
    exit 3
}

# Brings the seed canary fixtures up on the local target (Envoy + 5 echo processes);
# prints the gateway address of the weighted-split case.
start_echo_target() {
    local out=$WORK/local-target.out deadline
    "${PRIO[@]}" taskset -c "$TARGET_CPU" "$MESHCHECK" local-target suites/ingress-canary.yaml \
        --envoy-concurrency 1 >"$out" 2>"$WORK/local-target.err" &
    echo $! >>"$PIDS"
    deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ]; do
        if grep -qx ready "$out" 2>/dev/null; then
            awk '$1 == "ingress-canary::weighted-split" { print $3 }' "$out"
            return
        fi
        sleep 0.05
    done
    say "the local target did not come up:"
    cat "$WORK/local-target.err" >&2
    exit 3
}

# --- measurements ---------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# One run of meshcheck fire; prints requests/s, or fails on any failed request.
fire_rps() { # addr concurrency requests keepalive
    local flags=(-n "$3" -c "$2" --host test.devopscube.com --timeout 5s --json)
    [ "$4" = on ] || flags+=(--no-keep-alive)
    local json
    json=$(timeout "$RUN_LIMIT" "${PRIO[@]}" taskset -c "$LOAD_CPU" "$MESHCHECK" fire "http://$1/" "${flags[@]}")
    [ "$(jq .failed <<<"$json")" = 0 ] || { say "meshcheck fire: failed requests: $json"; exit 1; }
    jq .requests_per_second <<<"$json"
}

# One run of oha; prints requests/s, or fails on any failed request.
oha_rps() { # addr concurrency requests keepalive
    local flags=(-n "$3" -c "$2" -H "Host: test.devopscube.com" -t 5s --no-tui --output-format json)
    [ "$4" = on ] || flags+=(--disable-keepalive)
    local json
    json=$(timeout "$RUN_LIMIT" "${PRIO[@]}" taskset -c "$LOAD_CPU" "$OHA" "${flags[@]}" "http://$1/")
    [ "$(jq '.summary.successRate' <<<"$json")" = 1 ] ||
        { say "oha: failed requests: $(jq -c '.errorDistribution' <<<"$json")"; exit 1; }
    [ "$(jq '.statusCodeDistribution["200"]' <<<"$json")" = "$3" ] ||
        { say "oha: not all 200: $(jq -c '.statusCodeDistribution' <<<"$json")"; exit 1; }
    jq .summary.requestsPerSec <<<"$json"
}

throughput_figure() { # label addr concurrency requests keepalive
    local label=$1 fire_runs=() oha_runs=() i
    # Warm both paths up (connections, Envoy's first-request work) before measuring.
    fire_rps "$2" "$3" 2000 "$5" >/dev/null
    oha_rps "$2" "$3" 2000 "$5" >/dev/null
    for ((i = 0; i < RUNS; i++)); do
        # Alternate which tool goes first so drift over the run hits both alike.
        if ((i % 2)); then
            oha_runs+=("$(oha_rps "$2" "$3" "$4" "$5")")
            fire_runs+=("$(fire_rps "$2" "$3" "$4" "$5")")
        else
            fire_runs+=("$(fire_rps "$2" "$3" "$4" "$5")")
            oha_runs+=("$(oha_rps "$2" "$3" "$4" "$5")")
        fi
    done
    local fire oha
    fire=$(printf '%s\n' "${fire_runs[@]}" | median)
    oha=$(printf '%s\n' "${oha_runs[@]}" | median)
    printf '%-52s fire %8.0f req/s  oha %8.0f req/s  ratio %s  (median of %d x %d requests)\n' \
        "$label" "$fire" "$oha" "$(ratio "$fire" "$oha")" "$RUNS" "$4"
}

throughput() {
    local c
    for c in 10 64; do
        throughput_figure "throughput direct_response -c $c keep-alive" "$DIRECT" "$c" "$KEEPALIVE_REQUESTS" on
        throughput_figure "throughput direct_response -c $c no keep-alive" "$DIRECT" "$c" "$CLOSE_REQUESTS" off
    done
    for c in 10 64; do
        throughput_figure "throughput echo backends -c $c keep-alive" "$ECHO_TARGET" "$c" "$KEEPALIVE_REQUESTS" on
        throughput_figure "throughput echo backends -c $c no keep-alive" "$ECHO_TARGET" "$c" "$CLOSE_REQUESTS" off
    done
}

max_rss_kb() { # command...
    local log=$WORK/time.log
    timeout "$RUN_LIMIT" /usr/bin/time -v -o "$log" "$@" >/dev/null
    awk -F': ' '/Maximum resident set size/ { print $2 }' "$log"
}

memory() {
    local fire oha
    fire=$(max_rss_kb "${PRIO[@]}" taskset -c "$LOAD_CPU" "$MESHCHECK" fire "http://$DIRECT/" \
        -n "$MEMORY_REQUESTS" -c 64 --host test.devopscube.com --json)
    oha=$(max_rss_kb "${PRIO[@]}" taskset -c "$LOAD_CPU" "$OHA" -n "$MEMORY_REQUESTS" -c 64 \
        -H "Host: test.devopscube.com" --no-tui --output-format json "http://$DIRECT/")
    printf '%-52s fire %8.1f MB     oha %8.1f MB     ratio %s  (fire/oha, lower is better; limit 50 MB)\n' \
        "peak RSS, $MEMORY_REQUESTS requests -c 64 keep-alive" \
        "$(awk -v k="$fire" 'BEGIN { print k / 1024 }')" \
        "$(awk -v k="$oha" 'BEGIN { print k / 1024 }')" "$(ratio "$fire" "$oha")"
}

verdict() {
    local json=$WORK/hyperfine.json median_s
    # Unpinned: this is what a user waits for. Envoy is already in the cache.
    hyperfine --runs "$VERDICT_RUNS" --warmup 1 --export-json "$json" --style none \
        "$MESHCHECK run suites/ingress-canary.yaml --quiet" >/dev/null 2>&1
    median_s=$(jq '.results[0].median' "$json")
    printf '%-52s %8.3f s  (limit 2 s, ratio to limit %s, median of %d; min %.3f max %.3f)\n' \
        "time to verdict, seed canary suite, local target" "$median_s" \
        "$(ratio "$median_s" 2)" "$VERDICT_RUNS" \
        "$(jq '.results[0].min' "$json")" "$(jq '.results[0].max' "$json")"
    # Where the time goes, from the terminal timestamps of one more run.
    "$MESHCHECK" run suites/ingress-canary.yaml 2>&1 >/dev/null | awk '
        function at(line) { return substr(line, 2, index(line, "s]") - 2) + 0 }
        /^\[/ && / bring-up / && !b { b = at($0) }
        /^\[/ && / wait .*Envoy ready/ { w = at($0); sub(/.*Envoy ready in /, ""); envoy = $1 }
        /^\[/ && /START .*weighted-split/ { s1 = at($0) }
        /^\[/ && /traffic .*weighted-split/ { t1 = at($0) }
        /^\[/ && /PASS .*weighted-split/ { p1 = at($0); n1 = $0; sub(/.*weighted-split: /, "", n1); sub(/ requests.*/, "", n1) }
        /^\[/ && /PASS .*unknown-host/ { p2 = at($0) }
        /^\[/ && / cleanup .*removed/ { c = at($0) }
        /^Summary/ { total = $0; sub(/.*\[/, "", total); sub(/s\]/, "", total) }
        END {
            printf "  phases: start->bring-up %.0f ms (suite load, Envoy version check); bring-up %.0f ms (Envoy ready in %s ms); weighted-split %.0f ms (convergence %.0f ms, %s measured requests); unknown-host %.0f ms; cleanup %.0f ms; total %.0f ms\n",
                b * 1000, (w - b) * 1000, envoy, (p1 - s1) * 1000, (t1 - s1) * 1000, n1, (p2 - p1) * 1000, (c - p2) * 1000, total * 1000
        }'
}

requests() {
    # The simulation's table rows end in: pass fail mean-n max-n fixed-n cap.
    scripts/requests-to-verdict 2>/dev/null | sed 's/^test .* \.\.\. //' | awk '
        NF >= 7 && $NF ~ /^[0-9]+$/ && $(NF - 3) ~ /^[0-9.]+$/ {
            label = $1; for (i = 2; i <= NF - 6; i++) label = label " " $i
            printf "%-52s mean %7.1f requests  fixed-sample %5d  ratio %.2f  (max %d, cap %d; %d pass / %d fail of 10000)\n",
                "requests to verdict, " label, $(NF - 3), $(NF - 1), $(NF - 3) / $(NF - 1), $(NF - 2), $NF, $(NF - 5), $(NF - 4)
        }'
}

conformance() {
    local json=$WORK/conformance.json jobs cases
    # Unpinned, like verdict: the whole set as a user runs it, sequentially and with
    # --jobs. The limit is the issue's "well under a minute".
    cases=$("$MESHCHECK" list suites/conformance 2>/dev/null | grep -c '::' || true)
    for jobs in 1 2 4; do
        hyperfine --runs "$CONFORMANCE_RUNS" --export-json "$json" --style none \
            "$MESHCHECK run suites/conformance --quiet --jobs $jobs" >/dev/null 2>&1 || {
            echo "conformance set --jobs $jobs: a run failed; see $MESHCHECK run suites/conformance"
            continue
        }
        printf '%-52s %8.3f s  (limit 60 s, ratio to limit %s, median of %d; %s cases)\n' \
            "conformance set, local target, --jobs $jobs" "$(jq '.results[0].median' "$json")" \
            "$(ratio "$(jq '.results[0].median' "$json")" 60)" "$CONFORMANCE_RUNS" "$cases"
    done
}

install_tools
echo "machine: $(lscpu | awk -F': +' '/Model name/ { print $2; exit }'), $(nproc) CPUs, Linux $(uname -r)"
echo "meshcheck $("$MESHCHECK" --version | awk '{ print $2 }'), oha $OHA_VERSION, Envoy $("$("$MESHCHECK" local-target --print-envoy)" --version | grep -o '1\.[0-9]*\.[0-9]*' | head -1)"
echo "placement: target on CPU $TARGET_CPU (Envoy --concurrency 1), load generator on CPU $LOAD_CPU${PRIO:+, both at ${PRIO[*]}}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
case " $SECTIONS " in *" throughput "* | *" memory "*)
    DIRECT=$(start_direct_envoy)
    ECHO_TARGET=$(start_echo_target)
    echo "targets: direct_response Envoy at $DIRECT, seed canary gateway (Envoy + 5 echo processes) at $ECHO_TARGET"
    ;;
esac
for section in $SECTIONS; do
    "$section"
done
