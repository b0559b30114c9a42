#!/usr/bin/env bash
# Load runs of Twofold: for each backend (SQLite, PostgreSQL) and each number of instances
# (1, 2), a fresh database seeded by `twofold-bench seed`, the release server(s) on loopback,
# and eight wrk/oha scenarios. Prints a markdown table per backend × instances and writes them
# all, with the machine, to target/bench/results-<date>.md.
#
#   bench/load.sh                                   # everything, 10-s scenarios
#   DURATION=3 LONG_DURATION=10 BACKENDS=sqlite INSTANCES=1 SCENARIOS="1 3 5" bench/load.sh
#
# Knobs (environment):
#   DURATION=10          seconds per scenario
#   LONG_DURATION=60     seconds of scenario 8 (RSS after sustained login load)
#   BACKENDS="sqlite postgres"   INSTANCES="1 2"   SCENARIOS="1 2 3 4 5 6 7 8"
#   POSTGRES_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres  (databases twofold_bench_*)
#   USERS=20000          users at least (more when the second-factor sessions need them)
#   STEP_RATE=5000       second-factor steps/s that scenario 3's sessions are sized for
#   AUTH_SESSIONS=10000  authenticated sessions (scenarios 5 and 7)
#   WRONG_CODE_SESSIONS=200   sessions (one user each) for scenario 4
#   LOGIN_CONNECTIONS=4×nproc   FLOOD_CONNECTIONS=4×LOGIN_CONNECTIONS
#   STEP_CONNECTIONS=64   READ_CONNECTIONS=32   (each split between the instances)
#   BASE_PORT=18480      instance i listens on BASE_PORT + i - 1
#   RESULTS=target/bench/results-<date>.md   NO_BUILD=1 skips cargo   KEEP=1 keeps the work dirs
#
# Needs wrk (apt-get install wrk), curl, psql for PostgreSQL, and oha (cargo install oha) for
# scenario 6, which is skipped without it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DURATION=${DURATION:-10}
LONG_DURATION=${LONG_DURATION:-60}
BACKENDS=${BACKENDS:-"sqlite postgres"}
INSTANCES=${INSTANCES:-"1 2"}
SCENARIOS=${SCENARIOS:-"1 2 3 4 5 6 7 8"}
POSTGRES_ADMIN_URL=${POSTGRES_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
USERS=${USERS:-20000}
STEP_RATE=${STEP_RATE:-5000}
AUTH_SESSIONS=${AUTH_SESSIONS:-10000}
WRONG_CODE_SESSIONS=${WRONG_CODE_SESSIONS:-200}
CORES=$(nproc)
LOGIN_CONNECTIONS=${LOGIN_CONNECTIONS:-$((4 * CORES))}
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-$((4 * LOGIN_CONNECTIONS))}
STEP_CONNECTIONS=${STEP_CONNECTIONS:-64}
READ_CONNECTIONS=${READ_CONNECTIONS:-32}
BASE_PORT=${BASE_PORT:-18480}
ARGON2_SECONDS=${ARGON2_SECONDS:-5}
RESULTS=${RESULTS:-target/bench/results-$(date +%Y%m%d-%H%M%S).md}
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
PASSWORD="correct horse battery staple"
BIN=target/release
WRK_TIMEOUT=30s

SERVER_PIDS=()
WRK_PIDS=()
DATABASES=()
WORK_DIRS=()

log() { echo "load.sh: $*" >&2; }

cleanup() {
    local pid
    for pid in "${WRK_PIDS[@]}" "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${SERVER_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    local database
    for database in "${DATABASES[@]}"; do
        psql "$POSTGRES_ADMIN_URL" -qXc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
    done
    if [[ ${KEEP:-0} != 1 ]]; then
        local dir
        for dir in "${WORK_DIRS[@]}"; do
            rm -rf "$dir"
        done
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- arithmetic and /proc ------------------------------------------------------------------

calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
at_least() { awk "BEGIN { exit !($1 >= $2) }"; }
at_most() { awk "BEGIN { exit !($1 <= $2) }"; }
verdict() { if "$@"; then echo yes; else echo "**no**"; fi; }

# Resets the servers' peak RSS (VmHWM) so that the next reading covers one scenario only.
reset_peak() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
    done
}

# Sum and largest of a /proc/PID/status field (kB) over the servers, in MB: "SUM MAX".
memory_mb() {
    local field=$1 pid sum=0 max=0 value
    for pid in "${SERVER_PIDS[@]}"; do
        value=$(awk -v field="$field:" '$1 == field { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        sum=$((sum + ${value:-0}))
        ((${value:-0} > max)) && max=${value:-0}
    done
    echo "$(calc "$sum / 1024" 0) $(calc "$max / 1024" 0)"
}

# CPU seconds (user + system) the servers have used.
server_cpu_seconds() {
    local pid ticks=0 tick
    local hz
    hz=$(getconf CLK_TCK)
    for pid in "${SERVER_PIDS[@]}"; do
        tick=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
        ticks=$((ticks + tick))
    done
    calc "$ticks / $hz" 2
}

# --- wrk --------------------------------------------------------------------------------------

# launch_wrk NAME CONNECTIONS THREADS SECONDS SCRIPT PATH FILE [ARG]: one wrk per instance in
# the background, each with its share of the connections and of FILE's lines. THREADS 0 means
# one connection per thread.
launch_wrk() {
    local name=$1 connections=$2 threads=$3 seconds=$4 script=$5 path=$6 file=$7 extra=${8:-}
    local count=${#SERVER_PIDS[@]} index
    local per=$(((connections + count - 1) / count))
    local per_threads=$threads
    if ((per_threads == 0 || per_threads > per)); then per_threads=$per; fi
    for ((index = 0; index < count; index++)); do
        local port=$((BASE_PORT + index))
        wrk -t"$per_threads" -c"$per" -d"${seconds}s" --timeout "$WRK_TIMEOUT" --latency \
            -s "bench/$script" "http://127.0.0.1:$port$path" \
            -- "$file" "$index" "$count" "$per_threads" "$extra" >"$WORK/$name-$index.out" 2>&1 &
        WRK_PIDS+=($!)
    done
}

wait_wrk() {
    local pid status=0
    for pid in "${WRK_PIDS[@]}"; do
        wait "$pid" || status=$?
    done
    WRK_PIDS=()
    return "$status"
}

# Sets W_* from the BENCH lines of NAME's wrk outputs: sums over the instances, rates summed
# per process, latencies the worse of the two.
summarize() {
    local name=$1
    eval "$(cat "$WORK/$name"-*.out | awk '
        /^BENCH / {
            r = 0; s = 1; ok = 0; p = 0
            for (i = 2; i <= NF; i++) {
                split($i, kv, "="); k = kv[1]; v = kv[2]
                if (k == "requests") { r = v; requests += v }
                else if (k == "seconds") { s = v; if (v > seconds) seconds = v }
                else if (k == "p50_ms") { if (v > p50) p50 = v }
                else if (k == "p99_ms") { if (v > p99) p99 = v }
                else if (k == "non2xx") non2xx += v
                else if (k == "pairs") { p = v; pairs += v }
                else if (k == "exhausted_threads") exhausted += v
                else if (k == "retry_after_missing") missing += v
                else if (k == "socket_errors") socket += v
                else if (k == "timeouts") timeouts += v
                else if (k ~ /^s[0-9]+$/) {
                    status[k] += v
                    if (k == "s200") ok = v
                    if (k ~ /^s5/ && k != "s503") s5xx += v
                }
            }
            rps += r / s; ok_rate += ok / s; pair_rate += p / s; files++
        }
        END {
            printf "W_FILES=%d W_REQUESTS=%d W_SECONDS=%.3f W_RPS=%.1f W_OK_RATE=%.1f W_PAIR_RATE=%.1f ", files, requests, seconds, rps, ok_rate, pair_rate
            printf "W_P50=%.2f W_P99=%.2f W_NON2XX=%d W_PAIRS=%d W_EXHAUSTED=%d W_RA_MISSING=%d ", p50, p99, non2xx, pairs, exhausted, missing
            printf "W_SOCKET=%d W_TIMEOUTS=%d W_S200=%d W_S401=%d W_S429=%d W_S503=%d W_S5XX=%d\n", socket, timeouts, status["s200"], status["s401"], status["s429"], status["s503"], s5xx
        }')"
    if ((W_FILES == 0)); then
        log "no result from wrk for $name; its output:"
        cat "$WORK/$name"-*.out >&2 || true
    fi
}

statuses() {
    local text="200: $W_S200"
    ((W_S401 > 0)) && text+=", 401: $W_S401"
    ((W_S429 > 0)) && text+=", 429: $W_S429"
    ((W_S503 > 0)) && text+=", 503: $W_S503"
    ((W_S5XX > 0)) && text+=", other 5xx: **$W_S5XX**"
    ((W_SOCKET + W_TIMEOUTS > 0)) && text+=", socket errors $W_SOCKET, timeouts $W_TIMEOUTS"
    echo "$text"
}

row() {
    local line="|" cell
    for cell in "$@"; do line+=" $cell |"; done
    echo "$line" >>"$TABLE"
}

# --- servers ----------------------------------------------------------------------------------

start_servers() {
    local count=$1 index
    for ((index = 0; index < count; index++)); do
        local port=$((BASE_PORT + index))
        TWOFOLD_LISTEN=127.0.0.1:$port TWOFOLD_DATA_DIR=$DATA TWOFOLD_DATABASE_URL=$URL \
            TWOFOLD_LOG=warn TWOFOLD_LOG_FORMAT=json "$BIN/twofold" serve >"$WORK/server-$index.log" 2>&1 &
        SERVER_PIDS+=($!)
    done
    for ((index = 0; index < count; index++)); do
        local port=$((BASE_PORT + index)) tries=0
        until curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; do
            tries=$((tries + 1))
            if ((tries > 100)) || ! kill -0 "${SERVER_PIDS[$index]}" 2>/dev/null; then
                log "instance $index did not start; its log:"
                cat "$WORK/server-$index.log" >&2
                return 1
            fi
            sleep 0.2
        done
    done
}

stop_servers() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${SERVER_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
}

selected() { [[ " $SCENARIOS " == *" $1 "* ]]; }

# --- scenarios ----------------------------------------------------------------------------------

SATURATION=""

scenario_1() {
    reset_peak
    launch_wrk s1 "$LOGIN_CONNECTIONS" "$CORES" "$DURATION" password_logins.lua /api/v1/login "$SEED.users" "$PASSWORD"
    wait_wrk
    summarize s1
    read -r rss _ < <(memory_mb VmHWM)
    SATURATION=$W_OK_RATE
    local ratio
    ratio=$(calc "$W_OK_RATE / $BOUND" 3)
    row 1 "password logins, $LOGIN_CONNECTIONS connections" "$W_OK_RATE logins/s = **$ratio** × bound" "$W_P50" "$W_P99" "$(statuses)" "$rss" "≥ 0.95 × bound: $(verdict at_least "$ratio" 0.95)"
}

scenario_2() {
    reset_peak
    launch_wrk s2 "$LOGIN_CONNECTIONS" 0 "$DURATION" full_logins.lua /api/v1/login "$SEED.users" "$PASSWORD"
    wait_wrk
    summarize s2
    read -r rss _ < <(memory_mb VmHWM)
    local ratio note=""
    ratio=$(calc "$W_PAIR_RATE / $BOUND" 3)
    ((W_EXHAUSTED > 0)) && note=" ($W_EXHAUSTED threads ran out of users: rate understated)"
    row 2 "password + TOTP sign-ins, $LOGIN_CONNECTIONS connections (latencies: both requests)" "$W_PAIR_RATE sign-ins/s = **$ratio** × bound ($W_PAIRS done)$note" "$W_P50" "$W_P99" "$(statuses)" "$rss" "≥ 0.9 × bound: $(verdict at_least "$ratio" 0.9)"
}

scenario_3() {
    reset_peak
    launch_wrk s3 "$STEP_CONNECTIONS" 0 "$DURATION" second_factor.lua /api/v1/login/verify "$SEED.second_factor"
    wait_wrk
    summarize s3
    read -r rss _ < <(memory_mb VmHWM)
    local note=""
    ((W_EXHAUSTED > 0)) && note=" ($W_EXHAUSTED threads used up their sessions: rate understated)"
    row 3 "second-factor step alone, $STEP_CONNECTIONS connections" "**$W_OK_RATE** steps/s$note" "$W_P50" "$W_P99" "$(statuses)" "$rss" "≥ 5,000/s: $(verdict at_least "$W_OK_RATE" 5000)"
}

scenario_4() {
    reset_peak
    local before after
    before=$(server_cpu_seconds)
    launch_wrk s4 "$LOGIN_CONNECTIONS" "$CORES" "$DURATION" wrong_codes.lua /api/v1/login/verify "$SEED.wrong_code"
    wait_wrk
    after=$(server_cpu_seconds)
    summarize s4
    read -r rss _ < <(memory_mb VmHWM)
    local cpu_us machine_us
    cpu_us=$(calc "($after - $before) * 1000000 / ($W_REQUESTS > 0 ? $W_REQUESTS : 1)" 0)
    machine_us=$(calc "$CORES * 1000000 / ($W_RPS > 0 ? $W_RPS : 1)" 0)
    row 4 "wrong second-factor codes, $LOGIN_CONNECTIONS connections" "$W_RPS req/s; **$machine_us µs** per request (cores ÷ throughput), $cpu_us µs of server CPU (one Argon2id verification: $(calc "1000000 / $RATE" 0) µs)" "$W_P50" "$W_P99" "$(statuses)" "$rss" "< 100 µs: $(verdict at_most "$machine_us" 100)"
}

scenario_5() {
    reset_peak
    launch_wrk s5 "$READ_CONNECTIONS" "$CORES" "$DURATION" account.lua /api/v1/account "$SEED.authenticated"
    wait_wrk
    summarize s5
    read -r rss _ < <(memory_mb VmHWM)
    row 5 "GET /api/v1/account, $READ_CONNECTIONS connections" "**$W_RPS** req/s" "$W_P50" "$W_P99" "non-2xx: $W_NON2XX" "$rss" "≥ 10,000/s (SQLite): $(verdict at_least "$W_RPS" 10000)"
}

scenario_6() {
    if [[ ! -x $OHA ]]; then
        row 6 "p99 at 80 % of saturation" "skipped: oha not installed (cargo install oha)" "" "" "" "" ""
        return
    fi
    local saturation=${SATURATION:-$BOUND}
    local rate count=${#SERVER_PIDS[@]} index
    rate=$(calc "0.8 * $saturation / $count" 1)
    # Many users, one body per line (oha -Z picks lines at random): a burst of logins of one
    # account would meet that account's in-flight lockout, which is not what is measured here.
    head -n 2000 "$SEED.users" | cut -d' ' -f1 | while read -r email; do
        printf '{"email":"%s","password":"%s"}\n' "$email" "$PASSWORD"
    done >"$WORK/login-bodies.jsonl"
    reset_peak
    local pids=()
    for ((index = 0; index < count; index++)); do
        "$OHA" -z "${DURATION}s" -q "$rate" --latency-correction -c "$((2 * LOGIN_CONNECTIONS))" --no-tui \
            --output-format json -m POST -T application/json -Z "$WORK/login-bodies.jsonl" \
            "http://127.0.0.1:$((BASE_PORT + index))/api/v1/login" >"$WORK/s6-$index.json" 2>"$WORK/s6-$index.err" &
        pids+=($!)
    done
    local pid
    for pid in "${pids[@]}"; do wait "$pid"; done
    read -r rss _ < <(memory_mb VmHWM)
    local p50 p99 rps codes
    p50=$(jq -s 'map(.latencyPercentiles.p50) | max * 1000' "$WORK"/s6-*.json)
    p99=$(jq -s 'map(.latencyPercentiles.p99) | max * 1000' "$WORK"/s6-*.json)
    rps=$(jq -s 'map(.summary.requestsPerSec) | add' "$WORK"/s6-*.json)
    codes=$(jq -rs 'map(.statusCodeDistribution | to_entries) | add | group_by(.key) | map("\(.[0].key): \(map(.value) | add)") | join(", ")' "$WORK"/s6-*.json)
    local hashes
    hashes=$(calc "$p99 / 1000 * $RATE" 2)
    row 6 "logins of 2,000 users at 80 % of scenario 1 (oha -q, latency-corrected)" "$(calc "$rps" 1) logins/s; p99 = **$hashes** hash times" "$(calc "$p50" 2)" "$(calc "$p99" 2)" "$codes" "$rss" "p99 < 4 hash times: $(verdict at_most "$hashes" 4)"
}

scenario_7() {
    reset_peak
    local flood=$FLOOD_CONNECTIONS
    launch_wrk s7-flood "$flood" "$CORES" "$DURATION" password_logins.lua /api/v1/login "$SEED.users" "$PASSWORD"
    launch_wrk s7-account 8 1 "$DURATION" account.lua /api/v1/account "$SEED.authenticated"
    launch_wrk s7-health 4 1 "$DURATION" plain.lua /healthz /dev/null
    wait_wrk
    read -r rss _ < <(memory_mb VmHWM)
    summarize s7-account
    local account_p99=$W_P99 account_rps=$W_RPS account_non2xx=$W_NON2XX
    summarize s7-health
    local health_p99=$W_P99 health_rps=$W_RPS
    summarize s7-flood
    local share
    share=$(calc "100 * $W_S503 / ($W_REQUESTS > 0 ? $W_REQUESTS : 1)" 1)
    local retry="all carry Retry-After"
    ((W_RA_MISSING > 0)) && retry="**$W_RA_MISSING without Retry-After**"
    ((W_S503 == 0)) && retry="none shed: $((flood / ${#SERVER_PIDS[@]})) connections per instance never filled the hashing queue"
    row 7 "login flood ($flood connections) + reads + /healthz" "flood: $W_OK_RATE logins/s, $W_RPS answers/s, 503: $share % ($retry); account reads $account_rps/s (non-2xx $account_non2xx); healthz $health_rps/s" "flood $W_P50" "account **$account_p99**, healthz **$health_p99**, flood $W_P99" "$(statuses)" "$rss" "p99 < 50 ms: $(verdict at_most "$account_p99" 50) / $(verdict at_most "$health_p99" 50)"
}

scenario_8() {
    reset_peak
    launch_wrk s8 "$LOGIN_CONNECTIONS" "$CORES" "$LONG_DURATION" password_logins.lua /api/v1/login "$SEED.users" "$PASSWORD"
    wait_wrk
    summarize s8
    local rss_sum rss_max peak_sum peak_max
    read -r rss_sum rss_max < <(memory_mb VmRSS)
    read -r peak_sum peak_max < <(memory_mb VmHWM)
    row 8 "RSS after ${LONG_DURATION} s of saturating logins" "RSS **$rss_max MB** per instance ($rss_sum MB in all), peak $peak_max MB; $W_OK_RATE logins/s" "$W_P50" "$W_P99" "$(statuses)" "$peak_sum" "≤ 150 MB: $(verdict at_most "$peak_max" 150)"
}

# --- one backend × instances --------------------------------------------------------------------

run_combination() {
    local backend=$1 instances=$2
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/twofold-bench.XXXXXX")
    WORK_DIRS+=("$WORK")
    DATA=$WORK/data
    SEED=$WORK/seed
    TABLE=$WORK/table.md
    case $backend in
    sqlite) URL="sqlite://$DATA/twofold.db" ;;
    postgres)
        local database
        database="twofold_bench_$$_${instances}_$(date +%s)"
        psql "$POSTGRES_ADMIN_URL" -qXc "CREATE DATABASE $database" >/dev/null
        DATABASES+=("$database")
        URL="${POSTGRES_ADMIN_URL%/*}/$database"
        ;;
    *) log "unknown backend $backend (sqlite or postgres)"; return 1 ;;
    esac
    local second_factor=0
    selected 3 && second_factor=$((STEP_RATE * DURATION * 6 / 5))
    local users=$((second_factor / 2 + WRONG_CODE_SESSIONS + 5000))
    ((users < USERS)) && users=$USERS
    log "$backend × $instances: seeding $users users, $second_factor second-factor sessions, $AUTH_SESSIONS authenticated sessions"
    "$BIN/twofold-bench" seed --data-dir "$DATA" --database-url "$URL" --users "$users" \
        --second-factor-sessions "$second_factor" --wrong-code-sessions "$WRONG_CODE_SESSIONS" \
        --authenticated-sessions "$AUTH_SESSIONS" --password "$PASSWORD" --out "$SEED" >&2
    start_servers "$instances"
    {
        echo
        echo "### $backend, $instances instance$( ((instances > 1)) && echo s)"
        echo
        echo "| # | scenario | result | p50 ms | p99 ms | answers | peak RSS MB (all instances) | target met |"
        echo "|---|---|---|---|---|---|---|---|"
    } >"$TABLE"
    local scenario
    for scenario in 1 2 3 4 5 6 7 8; do
        if selected "$scenario"; then
            log "$backend × $instances: scenario $scenario"
            "scenario_$scenario"
        fi
    done
    stop_servers
    # The servers log JSON lines; anything else on their stderr (a panic) is shown as it is.
    local errors warnings others
    errors=$(cat "$WORK"/server-*.log | grep -c '"level":"ERROR"' || true)
    warnings=$(cat "$WORK"/server-*.log | grep -c '"level":"WARN"' || true)
    others=$(cat "$WORK"/server-*.log | grep -vc '^{' || true)
    {
        echo
        echo "Server logs (TWOFOLD_LOG=warn): $errors ERROR lines, $warnings WARN lines, $others other lines."
        if ((errors + warnings + others > 0)); then
            echo
            echo '```'
            cat "$WORK"/server-*.log | jq -rR '(fromjson? | "\(.level) \(.fields.message) \(.fields.error // "")") // .' |
                sort | uniq -c | sort -rn | head -n 10
            echo '```'
        fi
    } >>"$TABLE"
    cat "$TABLE"
    cat "$TABLE" >>"$RESULTS"
}

# --- main -------------------------------------------------------------------------------------

command -v wrk >/dev/null || { log "wrk is missing: apt-get install -y wrk"; exit 1; }
command -v jq >/dev/null || { log "jq is missing: apt-get install -y jq"; exit 1; }
if [[ " $BACKENDS " == *" postgres "* ]] && ! psql "$POSTGRES_ADMIN_URL" -qXc "SELECT 1" >/dev/null; then
    log "PostgreSQL is unreachable at POSTGRES_ADMIN_URL=$POSTGRES_ADMIN_URL"
    exit 1
fi
if [[ ${NO_BUILD:-0} != 1 ]]; then
    cargo build --release --locked -p twofold -p twofold-bench >&2
fi
mkdir -p "$(dirname "$RESULTS")"

log "measuring single-thread Argon2id verifications for ${ARGON2_SECONDS} s"
RATE=$("$BIN/twofold-bench" argon2-rate --seconds "$ARGON2_SECONDS")
BOUND=$(calc "$CORES * $RATE" 1)
revision=$(git rev-parse --short HEAD)
git diff --quiet HEAD 2>/dev/null || revision="$revision (with uncommitted changes)"
{
    echo "## Load run $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "- machine: $CORES CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "- build: \`$revision\`, release; load generator on the same machine ($(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)$([[ -x $OHA ]] && echo ", $("$OHA" --version)"))"
    echo "- Argon2id (m=19456 KiB, t=2, p=1), one thread: **$RATE verifications/s** ($(calc "1000 / $RATE" 2) ms each); bound = $CORES × that = **$BOUND logins/s**"
    echo "- DURATION=$DURATION s, LONG_DURATION=$LONG_DURATION s, scenarios $SCENARIOS; servers with the default configuration ($CORES hashing workers each), TWOFOLD_LOG=warn"
    echo "- latencies of two instances are the worse of the two wrk runs; rates are summed"
} | tee "$RESULTS"

for backend in $BACKENDS; do
    for instances in $INSTANCES; do
        run_combination "$backend" "$instances"
    done
done
log "results written to $RESULTS"
