#!/usr/bin/env bash
# bench/hub/bench_hub.sh: fieldsync-hub against pouchdb-server, in one run.
#   bench_hub [DEVICES [DOCS [N]]]   defaults 100 devices, 50 docs each, N=10000
# 1. Load: DEVICES simulated devices at once (hub_load), each pushing DOCS
#    documents of 1 KB ciphertext and pulling everything, against
#    pouchdb-server (plain http, no auth) and the hub (HTTPS, bearer token):
#    total time, requests/s, p50/p99 latency, the server's peak RSS, ratios.
# 2. Replication: fieldsync (sync/, hub_replicate) pushing and pulling N
#    documents through the hub, against PouchDB 9 replicating N documents
#    through pouchdb-server (bench/replicate/pouch_bench.js), the stack an
#    agency would otherwise pick.
# Needs the variables set by the wrapper CMake writes to build/bench/bench_hub.
set -euo pipefail
DEVICES=${1:-100}
DOCS=${2:-50}
N=${3:-10000}
if [ -z "${FS_TEST_COUCH_URL:-}" ]; then
	exec "$FS_HARNESS" -- "$0" "$@"
fi
export NODE_PATH="$FS_INTEROP_DIR/node_modules"
work=$(mktemp -d "${TMPDIR:-/tmp}/fs-bench-hub.XXXXXX")
hub_pid=
cleanup() {
	if [ -n "$hub_pid" ]; then
		kill -TERM "$hub_pid" 2>/dev/null || true
		wait "$hub_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# The hub, on a port of its choosing, with a device token for everything.
"$FS_HUB_BIN" init "$work/hub" >"$work/pin"
TOKEN=$("$FS_HUB_BIN" token add bench --admin --dir "$work/hub")
"$FS_HUB_BIN" serve "$work/hub" --port 0 --quiet >"$work/hub.out" 2>"$work/hub.err" &
hub_pid=$!
for _ in $(seq 100); do
	grep -q listening "$work/hub.out" 2>/dev/null && break
	sleep 0.1
done
HUB=$(grep -o 'https://[0-9.]*:[0-9]*' "$work/hub.out" | sed 's/127.0.0.1/localhost/')
[ -n "$HUB" ] || { cat "$work/hub.err" >&2; exit 1; }
CA=$work/hub/cert.pem
PIN=$(cat "$work/pin")
U=$FS_TEST_COUCH_URL
couch_port=${U##*:}
couch_pid=$(ss -Hltnp "sport = :$couch_port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)

hub_put() { curl -sf -o /dev/null --cacert "$CA" -H "Authorization: Bearer $TOKEN" -X PUT "$HUB/$1"; }
hwm_mb() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

for db in warm load rep; do
	curl -sf -o /dev/null -X PUT "$U/$db"
	hub_put "$db"
done

# Warm-up on both (node's JIT, the hub's token cache), then the measured runs.
"$FS_HUB_LOAD" "$U/warm" 10 10 >/dev/null
FS_LOAD_CA=$CA FS_LOAD_TOKEN=$TOKEN "$FS_HUB_LOAD" "$HUB/warm" 10 10 >/dev/null

declare -A L
load() { # name url [env...]
	local name=$1 url=$2
	shift 2
	env "$@" "$FS_HUB_LOAD" "$url" "$DEVICES" "$DOCS" >"$work/load.$name"
	read -r _ L[${name}_req] _ L[${name}_s] _ L[${name}_rps] _ L[${name}_p50] _ L[${name}_p99] \
		_ L[${name}_pulled] _ L[${name}_fail] <"$work/load.$name"
}
load pouchdb "$U/load"
L[pouchdb_rss]=$(hwm_mb "$couch_pid")
load hub "$HUB/load" FS_LOAD_CA="$CA" FS_LOAD_TOKEN="$TOKEN"
L[hub_rss]=$(hwm_mb "$hub_pid")

printf '\nbench_hub load: %d devices x %d docs of 1 KB, each pushes then pulls everything\n' \
	"$DEVICES" "$DOCS"
printf '%-15s %9s %9s %9s %9s %9s %12s %13s\n' server seconds requests "req/s" "p50 ms" \
	"p99 ms" "peak RSS MB" "pulled/device"
for s in pouchdb hub; do
	printf '%-15s %9.2f %9d %9.1f %9.1f %9.1f %12s %13s\n' "$s" "${L[${s}_s]}" "${L[${s}_req]}" \
		"${L[${s}_rps]}" "${L[${s}_p50]}" "${L[${s}_p99]}" "${L[${s}_rss]}" "${L[${s}_pulled]}"
done
awk -v a="${L[hub_rps]}" -v b="${L[pouchdb_rps]}" -v c="${L[pouchdb_s]}" -v d="${L[hub_s]}" \
	-v e="${L[pouchdb_p99]}" -v f="${L[hub_p99]}" 'BEGIN {
	printf "hub / pouchdb-server: %.2fx the requests per second, %.2fx faster in total, p99 %.2fx lower\n",
		a / b, c / d, e / f }'

# Replication of N documents: fieldsync through the hub, PouchDB through pouchdb-server.
declare -A secs rss
measure() {
	local name=$1
	shift
	/usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out"
	local wall kb s
	read -r wall kb <"$work/time"
	s=$(awk '{print $1}' "$work/out")
	secs[$name]=${s:-$wall}
	rss[$name]=$kb
}
mkdir -p "$work/gen" "$work/pouch"
"$FS_REPLICATE_TOOL" gen "$work/a.db" "$N" "$work/gen" >/dev/null
rm -rf "$work/gen"
export FS_LOAD_CA=$CA FS_LOAD_PIN=$PIN FS_LOAD_TOKEN=$TOKEN
measure push_fieldsync_hub "$FS_HUB_REPLICATE" push "$work/a.db" "$HUB/rep"
measure pull_fieldsync_hub "$FS_HUB_REPLICATE" pull "$work/b.db" "$HUB/rep"
unset FS_LOAD_CA FS_LOAD_PIN FS_LOAD_TOKEN
measure push_pouchdb node "$FS_POUCH_BENCH" push "$U/rep" "$N" "$work/pouch"
measure pull_pouchdb node "$FS_POUCH_BENCH" pull "$U/rep" "$work/pouch"

printf '\nbench_hub replicate: %d documents of 1 KB ciphertext\n' "$N"
printf '%-22s %9s %16s\n' run seconds "client RSS MB"
for k in push_fieldsync_hub push_pouchdb pull_fieldsync_hub pull_pouchdb; do
	awk -v n="$k" -v s="${secs[$k]}" -v r="${rss[$k]}" \
		'BEGIN { printf "%-22s %9.2f %16.1f\n", n, s, r / 1024 }'
done
awk -v a="${secs[push_pouchdb]}" -v b="${secs[push_fieldsync_hub]}" \
	-v c="${secs[pull_pouchdb]}" -v d="${secs[pull_fieldsync_hub]}" 'BEGIN {
	printf "fieldsync+hub vs PouchDB+pouchdb-server: push %.1fx, pull %.1fx, both %.1fx as fast\n",
		a / b, c / d, (a + c) / (b + d) }'
printf 'hub peak RSS after everything: %s MB\n' "$(hwm_mb "$hub_pid")"
