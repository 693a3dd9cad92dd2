#!/usr/bin/env bash
# Benchmarks of the proxy function (docs/benchmarks.md, section "The proxy function").
#
# Builds the release bootstrap.zip for the host target with cargo-lambda, runs the
# bootstrap it contains in local HTTP mode in front of nginx answering canned
# completions at once, and measures the direct path, the proxy and nginx as a reverse
# proxy in the same rounds: latency at one connection (oha), latency at 32 connections
# and a fixed 2,000 req/s (oha, open loop with latency correction), throughput at 32
# connections (wrk, closed loop); then streaming time to first byte (curl), peak RSS,
# cold start in both Lambda response modes and the per-event relay delay through Lambda
# stream mode (scripts/bench-lambda-stream.py), and the zip's size. Prints a markdown
# report.
# Not part of `make test`: run it with `make bench-function` on a quiet machine.
#
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light), oha
# (cargo install --locked oha@1.16.0), curl, python3, and cargo-lambda with zig from the
# pinned Python tools (`make setup`; VENV_DIR as in the Makefile).
#
#   BENCH_DURATION   seconds per load run (default 10)
#   BENCH_ROUNDS     rounds of the load runs, direct and proxy interleaved; the report
#                    gives the median round and each round's added latency (default 3)
#   BENCH_COLD_RUNS  cold starts to time per response mode (default 30)
#   BENCH_TTFB_RUNS  streamed requests per path for time to first byte (default 500)
#   BENCH_SKIP_BUILD set to 1 to reuse the last bootstrap.zip
#   BENCH_BOOTSTRAP  a bootstrap.zip to measure instead (another build, to compare)
#   BENCH_LOAD_ONLY  set to 1 for the load runs and the nginx anchor only (no streaming,
#                    cold start or Lambda stream mode): quick, while tuning the proxy
#   OHA, WRK, NGINX  the tools, when not on PATH
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv=${VENV_DIR:-$root/.venv}
duration=${BENCH_DURATION:-10}
rounds=${BENCH_ROUNDS:-3}
cold_runs=${BENCH_COLD_RUNS:-30}
ttfb_runs=${BENCH_TTFB_RUNS:-500}
load_only=${BENCH_LOAD_ONLY:-0}
oha=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
wrk=${WRK:-$(command -v wrk || echo /usr/bin/wrk)}
nginx=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
for tool in "$oha" "$wrk" "$nginx"; do
  if [[ ! -x $tool ]]; then
    echo "error: $tool not found. Install: apt-get install wrk nginx-light; cargo install --locked oha@1.16.0" >&2
    exit 1
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-function.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
log() { echo "▹▹▹▹▹ $*" >&2; }

# ---------------------------------------------------------------- build
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
zip_file=$target_dir/lambda/openai-proxy-function/bootstrap.zip
if [[ -n ${BENCH_BOOTSTRAP:-} ]]; then
  zip_file=$BENCH_BOOTSTRAP
elif [[ ${BENCH_SKIP_BUILD:-0} != 1 || ! -f $zip_file ]]; then
  log "building the release bootstrap.zip (host target, x86_64)"
  PATH="$venv/bin:$PATH" cargo lambda build --release --x86-64 --output-format zip -p openai-proxy-function >&2
fi
unzip -q -o "$zip_file" -d "$work/lambda"
bootstrap=$work/lambda/bootstrap
zip_bytes=$(stat -c %s "$zip_file")
bootstrap_bytes=$(stat -c %s "$bootstrap")

# ---------------------------------------------------------------- canned upstream
# A ~1 KB completion, a ~1 KB request, and a streamed answer of 12 events.
python3 - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
words = ("The proxy relays this canned answer so that the benchmark measures "
         "what the proxy adds and nothing else. ") * 8
completion = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1764000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": words.strip()},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 212, "completion_tokens": 160, "total_tokens": 372},
    "system_fingerprint": "fp_bench",
}
request = {"model": "bench-model",
           "messages": [{"role": "system", "content": "You are a helpful assistant."},
                        {"role": "user", "content": words.strip()}],
           "max_tokens": 200, "temperature": 0.2}
events = []
for i, piece in enumerate(words.split(" ")[:11]):
    chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1764000000,
             "model": "gpt-4o-mini-2024-07-18",
             "choices": [{"index": 0, "delta": {"content": piece + " "}, "logprobs": None, "finish_reason": None}]}
    events.append("data: " + json.dumps(chunk, separators=(",", ":")) + "\n\n")
events.append("data: [DONE]\n\n")
stream_request = dict(request, stream=True)
open(f"{work}/completion.json", "w").write(json.dumps(completion, separators=(",", ":")))
open(f"{work}/request.json", "w").write(json.dumps(request, separators=(",", ":")))
open(f"{work}/stream-request.json", "w").write(json.dumps(stream_request, separators=(",", ":")))
open(f"{work}/events.txt", "w").write("".join(events))
EOF
# start_nginx NAME WORKERS: nginx with WORKERS worker processes, its files in $work/NAME,
# and the lines of its http block from stdin; around them, what both nginx share: no
# access log, and keep-alive connections that last the whole run.
start_nginx() {
  local dir=$work/$1 workers=$2
  mkdir -p "$dir/logs"
  {
    cat <<EOF
worker_processes $workers;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_buffer_size 64k;
EOF
    cat
    echo "}"
  } > "$dir/nginx.conf"
  "$nginx" -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" &
  pids+=($!)
}

upstream_port=$(free_port)
start_nginx nginx 1 <<EOF
  server {
    listen 127.0.0.1:$upstream_port;
    location = /v1/chat/completions {
      default_type application/json;
      return 200 '$(cat "$work/completion.json")';
    }
    location = /sse/v1/chat/completions {
      default_type text/event-stream;
      return 200 '$(cat "$work/events.txt")';
    }
  }
EOF
direct=http://127.0.0.1:$upstream_port/v1/chat/completions
direct_sse=http://127.0.0.1:$upstream_port/sse/v1/chat/completions
wait_post() { # url
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null -X POST --data-binary @"$work/request.json" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "error: nothing answers POST at $1" >&2
  exit 1
}
wait_post "$direct"

# ---------------------------------------------------------------- the anchor: nginx as a proxy
# What a reverse proxy costs at the least: a second nginx, as many workers as the
# machine has cores (the proxy's runtime has as many threads), relaying every request
# to the same upstream over pooled keep-alive connections, touching nothing.
anchor_port=$(free_port)
start_nginx anchor "$(nproc)" <<EOF
  upstream openai {
    server 127.0.0.1:$upstream_port;
    keepalive 64;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:$anchor_port;
    location / {
      proxy_pass http://openai;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
EOF
anchored=http://127.0.0.1:$anchor_port/v1/chat/completions
wait_post "$anchored"

# ---------------------------------------------------------------- the proxy
start_proxy() { # name base_url -> sets proxy_pid, proxy_port
  local name=$1 base=$2
  proxy_port=$(free_port)
  cat > "$work/$name-config.json" <<EOF
{"openai_api_key": "sk-bench-not-a-real-key",
 "model_mappings": {"bench-model": "gpt-4o-mini"},
 "timeout_settings": {"openai_api_timeout": 30, "secrets_manager_timeout": 10, "lambda_timeout": 300},
 "openai_base_url": "$base"}
EOF
  # Request log lines go to stdout, as in Lambda; INFO is the production default.
  env -i PATH="$PATH" PROXY_LISTEN_ADDR="127.0.0.1:$proxy_port" PROXY_CONFIG_FILE="$work/$name-config.json" \
    LOG_LEVEL=INFO "$bootstrap" >/dev/null 2>"$work/$name.stderr" &
  proxy_pid=$!
  pids+=("$proxy_pid")
  wait_http "http://127.0.0.1:$proxy_port/health" 20 || { echo "error: nothing answers at http://127.0.0.1:$proxy_port/health" >&2; exit 1; }
}
start_proxy proxy "http://127.0.0.1:$upstream_port/v1"
proxied=http://127.0.0.1:$proxy_port/v1/chat/completions
proxy_pid_main=$proxy_pid
start_proxy proxy-stream "http://127.0.0.1:$upstream_port/sse/v1"
proxied_sse=http://127.0.0.1:$proxy_port/v1/chat/completions
proxy_pid_stream=$proxy_pid

# Every run must answer 200 only, or its figures mean nothing.
oha_run() { # label url args... -> JSON file $work/oha-label.json
  local label=$1 url=$2
  shift 2
  "$oha" --no-tui --output-format json -m POST -T application/json -D "$work/request.json" \
    -z "${duration}s" "$@" "$url" > "$work/oha-$label.json"
  python3 - "$work/oha-$label.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
codes = r.get("statusCodeDistribution", {})
bad = {k: v for k, v in codes.items() if k != "200"}
errors = r.get("errorDistribution", {})
errors = {k: v for k, v in errors.items() if "deadline" not in k}
if bad or errors or not codes:
    sys.exit(f"{sys.argv[1]}: non-200 answers or errors: {codes} {errors}")
EOF
}
pct() { # label percentile(p50|p99) -> milliseconds, median over the rounds
  python3 - "$work" "$1" "$2" <<'EOF'
import glob, json, statistics, sys
work, label, p = sys.argv[1:]
values = [json.load(open(f))["latencyPercentiles"][p] * 1000 for f in glob.glob(f"{work}/oha-{label}-*.json")]
print("%.3f" % statistics.median(values))
EOF
}
added() { # direct-label proxy-label percentile -> each round's proxy minus direct, in ms
  python3 - "$work" "$1" "$2" "$3" "$rounds" <<'EOF'
import json, sys
work, direct, proxy, p, rounds = sys.argv[1:]
get = lambda label, r: json.load(open(f"{work}/oha-{label}-{r}.json"))["latencyPercentiles"][p] * 1000
print(" / ".join("%.3f" % (get(proxy, r) - get(direct, r)) for r in range(1, int(rounds) + 1)))
EOF
}
rps_oha() { # label -> achieved requests/s, median over the rounds
  python3 - "$work" "$1" <<'EOF'
import glob, json, statistics, sys
files = glob.glob(f"{sys.argv[1]}/oha-{sys.argv[2]}-*.json")
print("%.0f" % statistics.median(json.load(open(f))["summary"]["requestsPerSec"] for f in files))
EOF
}
median() { python3 -c 'import statistics, sys; print("%.0f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

cat > "$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
EOF
wrk_run() { # label url -> requests/s
  local out
  out=$(BENCH_BODY=$work/request.json "$wrk" -t2 -c32 -d"${duration}s" -s "$work/post.lua" "$2")
  echo "$out" > "$work/wrk-$1.txt"
  if grep -q -E "Non-2xx|Socket errors" <<<"$out"; then
    echo "error: wrk $1 saw errors: $out" >&2
    exit 1
  fi
  awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out"
}

ttfb() { # label url -> p50 and p90 of time_starttransfer in ms, N keep-alive requests
  local cfg=$work/curl-$1.cfg
  : > "$cfg"
  for _ in $(seq 1 "$ttfb_runs"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$2" >> "$cfg"; done
  curl -sS -H 'content-type: application/json' --data-binary @"$work/stream-request.json" \
    -w '%{http_code} %{time_starttransfer}\n' -K "$cfg" > "$work/ttfb-$1.txt"
  python3 - "$work/ttfb-$1.txt" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
if any(code != "200" for code, _ in rows):
    sys.exit(f"non-200 streamed answers in {sys.argv[1]}")
ms = sorted(float(t) * 1000 for _, t in rows[10:])  # the first few warm up the connection
print("%.3f %.3f" % (statistics.median(ms), ms[int(len(ms) * 0.9)]))
EOF
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "warm-up"
"$oha" --no-tui -m POST -T application/json -D "$work/request.json" -z 2s -c 8 "$proxied" >/dev/null
"$oha" --no-tui -m POST -T application/json -D "$work/request.json" -z 2s -c 8 "$direct" >/dev/null
"$oha" --no-tui -m POST -T application/json -D "$work/request.json" -z 2s -c 8 "$anchored" >/dev/null

direct_rps_all=()
proxy_rps_all=()
nginx_rps_all=()
for round in $(seq 1 "$rounds"); do
  log "round $round of $rounds: latency, 1 connection (${duration}s each)"
  oha_run "direct-c1-$round" "$direct" -c 1
  oha_run "proxy-c1-$round" "$proxied" -c 1
  oha_run "nginx-c1-$round" "$anchored" -c 1
  log "round $round of $rounds: latency, 32 connections at 2,000 req/s open loop (${duration}s each)"
  oha_run "direct-q2000-$round" "$direct" -c 32 -q 2000 --latency-correction
  oha_run "proxy-q2000-$round" "$proxied" -c 32 -q 2000 --latency-correction
  oha_run "nginx-q2000-$round" "$anchored" -c 32 -q 2000 --latency-correction
  log "round $round of $rounds: throughput, 32 connections closed loop (wrk, ${duration}s each)"
  direct_rps_all+=("$(wrk_run "direct-$round" "$direct")")
  proxy_rps_all+=("$(wrk_run "proxy-$round" "$proxied")")
  nginx_rps_all+=("$(wrk_run "nginx-$round" "$anchored")")
done
direct_rps=$(median "${direct_rps_all[@]}")
proxy_rps=$(median "${proxy_rps_all[@]}")
nginx_rps=$(median "${nginx_rps_all[@]}")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$proxy_pid_main/status")
if [[ $load_only != 1 ]]; then
log "streaming time to first byte ($ttfb_runs requests each)"
read -r direct_ttfb direct_ttfb90 < <(ttfb direct "$direct_sse")
read -r proxy_ttfb proxy_ttfb90 < <(ttfb proxy "$proxied_sse")
"$oha" --no-tui -m POST -T application/json -D "$work/stream-request.json" -z "${duration}s" -c 32 "$proxied_sse" \
  > "$work/oha-stream-c32.txt"
stream_rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$proxy_pid_stream/status")

# ---------------------------------------------------------------- Lambda stream mode
# Cold start in both response modes and the per-event relay delay, measured once, by the
# script that also runs alone.
log "Lambda mode: cold start ($cold_runs runs per response mode), per-event relay delay in stream mode"
stream_report=$(BENCH_COLD_RUNS=$cold_runs python3 "$root/scripts/bench-lambda-stream.py" "$bootstrap")
fi

# ---------------------------------------------------------------- report
d1_50=$(pct direct-c1 p50); p1_50=$(pct proxy-c1 p50)
d1_99=$(pct direct-c1 p99); p1_99=$(pct proxy-c1 p99)
dq_99=$(pct direct-q2000 p99); pq_99=$(pct proxy-q2000 p99)
dq_50=$(pct direct-q2000 p50); pq_50=$(pct proxy-q2000 p50)
dq_rps=$(rps_oha direct-q2000); pq_rps=$(rps_oha proxy-q2000)
n1_50=$(pct nginx-c1 p50); n1_99=$(pct nginx-c1 p99)
nq_99=$(pct nginx-q2000 p99)
sub() { python3 -c 'import sys; print("%.3f" % (float(sys.argv[1]) - float(sys.argv[2])))' "$1" "$2"; }
mib() { python3 -c 'import sys; print("%.1f" % (int(sys.argv[1]) / 1024))' "$1"; }

# The anchor's ratios: ours over nginx's for the added latency, ours as a share of
# nginx's for the throughput.
ratio() { python3 -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print("%.1f" % (a / b) if b > 0 else "n/a")' "$1" "$2"; }
share() { python3 -c 'import sys; print("%.0f %%" % (100 * float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
added_p50=$(sub "$p1_50" "$d1_50"); nginx_added_p50=$(sub "$n1_50" "$d1_50")
added_p99=$(sub "$p1_99" "$d1_99"); nginx_added_p99=$(sub "$n1_99" "$d1_99")
per_round() { # python expression over d (direct), p (proxy), n (nginx) -> one value per round
  python3 - "$work" "$rounds" "$1" "$2" <<'PY'
import json, sys
work, rounds, kind, expr = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = []
for r in range(1, rounds + 1):
    if kind == "rps":
        get = lambda label: float(open(f"{work}/wrk-{label}-{r}.txt").read().split("Requests/sec:")[1].split()[0])
    else:
        get = lambda label: json.load(open(f"{work}/oha-{label}-c1-{r}.json"))["latencyPercentiles"][kind] * 1000
    d, p, n = get("direct"), get("proxy"), get("nginx")
    out.append(eval(expr))
print(" / ".join("%.2f" % v for v in out))
PY
}

cat <<EOF
### Run of $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)

Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $load_before before the
load runs and $load_after after them. Tools: $("$oha" --version), $("$wrk" -v 2>&1 | head -1 | cut -d' ' -f1-2), $("$nginx" -v 2>&1 | cut -d' ' -f3), $(curl --version | head -1 | cut -d' ' -f1-2).
Each load run lasts ${duration} s, direct, proxy and nginx-as-proxy runs interleaved, in $rounds rounds; the
tables give the median over the rounds (added latency: median proxy minus median direct).
The upstream is nginx (1 worker) returning a canned $(stat -c %s "$work/completion.json")-byte completion for a
$(stat -c %s "$work/request.json")-byte request.

#### Against nginx as a reverse proxy

nginx with $(nproc) workers as a plain reverse proxy (\`proxy_pass\` over keep-alive
connections) in front of the same upstream, measured in the same rounds.

| figure | direct | through nginx (\`proxy_pass\`) | through the proxy | added by nginx | added by the proxy | proxy against nginx | target |
|---|---:|---:|---:|---:|---:|---:|---|
| latency p50, 1 connection | ${d1_50} ms | ${n1_50} ms | ${p1_50} ms | ${nginx_added_p50} ms | ${added_p50} ms | **$(ratio "$added_p50" "$nginx_added_p50")× the added latency** | ≤ 2× |
| latency p99, 1 connection | ${d1_99} ms | ${n1_99} ms | ${p1_99} ms | ${nginx_added_p99} ms | ${added_p99} ms | $(ratio "$added_p99" "$nginx_added_p99")× | |
| latency p99, 32 connections, 2,000 req/s open loop | ${dq_99} ms | ${nq_99} ms | ${pq_99} ms | $(sub "$nq_99" "$dq_99") ms | $(sub "$pq_99" "$dq_99") ms | | |
| throughput, 32 connections closed loop (wrk) | ${direct_rps} req/s | ${nginx_rps} req/s | ${proxy_rps} req/s | | | **$(share "$proxy_rps" "$nginx_rps") of nginx's** | ≥ 50 % |

In each round: added p50 at 1 connection, proxy over nginx $(per_round p50 '(p - d) / (n - d) if n > d else float("nan")')×;
throughput, proxy as a share of nginx $(per_round rps 'p / n');
req/s direct ${direct_rps_all[*]}, nginx ${nginx_rps_all[*]}, proxy ${proxy_rps_all[*]}.
EOF
[[ $load_only == 1 ]] && exit 0

cat <<EOF
#### Against the targets

| figure | direct (nginx) | through the proxy | added by the proxy | target |
|---|---:|---:|---:|---|
| latency p50, 1 connection | ${d1_50} ms | ${p1_50} ms | **$(sub "$p1_50" "$d1_50") ms** | ≤ 0.3 ms |
| latency p99, 1 connection | ${d1_99} ms | ${p1_99} ms | **$(sub "$p1_99" "$d1_99") ms** | ≤ 1 ms |
| latency p50, 32 connections, 2,000 req/s open loop | ${dq_50} ms | ${pq_50} ms | $(sub "$pq_50" "$dq_50") ms | |
| latency p99, 32 connections, 2,000 req/s open loop (achieved: ${dq_rps} / ${pq_rps} req/s) | ${dq_99} ms | ${pq_99} ms | **$(sub "$pq_99" "$dq_99") ms** | ≤ 2 ms |
| throughput, 32 connections closed loop (wrk) | ${direct_rps} req/s | **${proxy_rps} req/s** | | ≥ 10,000 req/s |
| streaming time to first byte p50 (p90) | ${direct_ttfb} (${direct_ttfb90}) ms | ${proxy_ttfb} (${proxy_ttfb90}) ms | **$(sub "$proxy_ttfb" "$direct_ttfb") ms** | ≤ 1 ms |
| peak RSS after the non-streaming runs | | **$(mib "$rss_kb") MiB** | | ≤ 30 MB |
| peak RSS of the streaming proxy (after 32 connections for ${duration} s) | | $(mib "$stream_rss_kb") MiB | | |

Added latency in each round (proxy minus direct, ms): p50 at 1 connection
$(added direct-c1 proxy-c1 p50); p99 at 1 connection $(added direct-c1 proxy-c1 p99); p99 at 32
connections and 2,000 req/s $(added direct-q2000 proxy-q2000 p99). Throughput in each round
(req/s): direct ${direct_rps_all[*]}, proxy ${proxy_rps_all[*]}.

| artifact | size | target |
|---|---:|---|
| \`bootstrap.zip\` (x86_64, release) | **$(python3 -c "print('%.2f' % ($zip_bytes / 1048576))") MiB** ($zip_bytes bytes) | ≤ 4 MB |
| \`bootstrap\` inside it | $(python3 -c "print('%.2f' % ($bootstrap_bytes / 1048576))") MiB | |

$stream_report
EOF
