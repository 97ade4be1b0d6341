# tests/daemon/lib.sh: sourced by the daemon's end-to-end tests. Starts real
# fieldsyncd processes, pouchdb-server or fieldsync-hub and the CLI on
# run-time ports and paths under one temporary folder, and stops all of it
# on exit.
# Needs FSD_BIN (fieldsyncd) and FS_BIN (fieldsync) in the environment.
set -euo pipefail

lib_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
node_bin=$(command -v node)
pouchdb_server="$lib_here/../interop/node_modules/pouchdb-server/bin/pouchdb-server"
# Tests against fieldsync-hub only set lib_no_pouch=1 before sourcing this.
[ -n "${lib_no_pouch:-}" ] || [ -f "$pouchdb_server" ] || { echo "pouchdb-server missing; run scripts/deps.sh" >&2; exit 77; }
: "${FSD_BIN:?}" "${FS_BIN:?}"

T=$(mktemp -d "${TMPDIR:-/tmp}/fs-daemon-test.XXXXXX")
mkdir -p "$T/tmp"
touch "$T/start"
pgids=()
declare -A dpid=()
marker="MARKER-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

say() { printf '# %s\n' "$*"; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	for f in "$T"/*/log; do
		[ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
	done
	exit 1
}

lib_cleanup() {
	local g
	for g in "${pgids[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
	for g in "${pgids[@]}"; do
		for _ in $(seq 40); do kill -0 -- "-$g" 2>/dev/null || break; sleep 0.05; done
		kill -KILL -- "-$g" 2>/dev/null || true
	done
	[ -n "${lib_extra_cleanup:-}" ] && eval "$lib_extra_cleanup"
	# Anything still running from this test's folder (a daemon started in a
	# subshell never reached pgids) is stopped too, never left behind.
	pkill -KILL -f -- "--config $T/" 2>/dev/null || true
	rm -rf "$T"
}
trap lib_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() { date +%s%3N; }

free_port() {
	"$node_bin" -e 'const s=require("net").createServer();
s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

# jget PATH: prints a member of the JSON on stdin ("a.b.0.c").
jget() {
	"$node_bin" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let o=JSON.parse(s);
for(const k of process.argv[1].split("."))o=o[k];console.log(typeof o==="object"?JSON.stringify(o):o)})' "$1"
}

# start_pouch PORT [HOST]: an in-memory pouchdb-server; sets pouch_pgid.
start_pouch() {
	local port=$1 host=${2:-127.0.0.1}
	mkdir -p "$T/pouch"
	setsid env --chdir="$T/pouch" "$node_bin" "$pouchdb_server" --in-memory --host "$host" \
		--port "$port" --no-stdout-logs >"$T/pouch/stdout.log" 2>&1 </dev/null &
	pouch_pgid=$!
	pgids+=("$pouch_pgid")
	for _ in $(seq 150); do
		curl -s -o /dev/null --max-time 2 "http://$host:$port/" && return 0
		sleep 0.1
	done
	fail "pouchdb-server did not start on $port"
}

# hub_init DIR PORT: a fieldsync-hub folder (self-signed certificate) with
# the database "team", served later on PORT by start_hub; sets hub_dir,
# hub_port and hub_pin. Needs FS_HUB_BIN.
hub_init() {
	: "${FS_HUB_BIN:?}"
	hub_dir=$1
	hub_port=$2
	"$FS_HUB_BIN" init "$hub_dir" >"$T/hub.pin" 2>"$T/hub-init.log" || fail "hub init"
	hub_pin=$(grep -o 'sha256//[A-Za-z0-9+/=]*' "$T/hub.pin")
	"$FS_HUB_BIN" db create team --dir "$hub_dir" >/dev/null || fail "hub db create"
}

# hub_token NAME [DB]: prints a new device token for DB (default "team").
hub_token() { "$FS_HUB_BIN" token add "$1" --db "${2:-team}" --dir "$hub_dir" | tail -n 1; }

# start_hub: serves hub_dir on hub_port over https; sets hub_pgid.
start_hub() {
	setsid "$FS_HUB_BIN" serve "$hub_dir" --port "$hub_port" --quiet >>"$T/hub.log" 2>&1 </dev/null &
	hub_pgid=$!
	pgids+=("$hub_pgid")
	for _ in $(seq 100); do
		curl -s -o /dev/null --cacert "$hub_dir/cert.pem" "https://127.0.0.1:$hub_port/" && return 0
		sleep 0.1
	done
	fail "fieldsync-hub did not start on $hub_port"
}

stop_hub() {
	kill -TERM -- "-$hub_pgid" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 -- "-$hub_pgid" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL -- "-$hub_pgid" 2>/dev/null || true
}

stop_pouch() {
	kill -TERM -- "-$pouch_pgid" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 -- "-$pouch_pgid" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL -- "-$pouch_pgid" 2>/dev/null || true
}

# conf NAME [key=value...]: writes NAME's configuration (test KDF cost).
conf() {
	local n=$1
	shift
	mkdir -p "$T/$n"
	{
		echo "# test configuration: test_kdf_min is for tests only"
		echo "test_kdf_min = true"
		echo "log_level = debug"
		echo "data_dir = $T/$n/data"
		echo "socket = $T/$n/run/api.sock"
		for kv in "$@"; do echo "$kv"; done
	} >"$T/$n/conf"
}

# start_daemon NAME [prefix command...]: runs fieldsyncd for NAME in the
# background (its own process group), waits for its socket; sets dpid[NAME].
start_daemon() {
	local n=$1
	shift
	[ -f "$T/$n/conf" ] || conf "$n"
	TMPDIR="$T/tmp" setsid "$@" "$FSD_BIN" --config "$T/$n/conf" >>"$T/$n/log" 2>&1 </dev/null &
	dpid[$n]=$!
	pgids+=("${dpid[$n]}")
	for _ in $(seq 100); do
		[ -S "$T/$n/run/api.sock" ] && cli "$n" status >/dev/null 2>&1 && return 0
		kill -0 "${dpid[$n]}" 2>/dev/null || fail "fieldsyncd $n exited at start"
		sleep 0.05
	done
	fail "fieldsyncd $n did not open its socket"
}

# stop_daemon NAME [SIGNAL]: stops it and prints how long it took (ms).
stop_daemon() {
	local n=$1 sig=${2:-TERM} t0 pid=${dpid[$1]}
	t0=$(now_ms)
	kill "-$sig" "$pid"
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.02
	done
	kill -0 "$pid" 2>/dev/null && fail "fieldsyncd $n still running 2 s after SIG$sig"
	wait "$pid" 2>/dev/null || true
	echo $(($(now_ms) - t0))
}

cli() {
	local n=$1
	shift
	TMPDIR="$T/tmp" "$FS_BIN" --config "$T/$n/conf" "$@"
}

status_of() { cli "$1" --json status | jget "$2"; }

# wait_for SECONDS COMMAND...: polls every 50 ms until COMMAND succeeds.
wait_for() {
	local end=$(($(now_ms) + $1 * 1000))
	shift
	until "$@"; do
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.05
	done
}

queue_empty() { [ "$(status_of "$1" queued)" = 0 ]; }

# records_in FILE: the rows of an _all_docs answer that are records, not
# team documents ("fs:..." ids, docs/team.md).
records_in() { grep -o '"id":"[^"]*"' "$1" | grep -vc '"id":"fs:' || true; }

# no_sanitizer_report NAME: the daemon's log holds no ASan/UBSan/LSan report.
no_sanitizer_report() {
	! grep -q "Sanitizer" "$T/$1/log" || fail "sanitizer report in $1's log"
}

# marker_absent DIR...: the marker is in no file under these folders.
marker_absent() {
	local hits
	hits=$(grep -rla -- "$marker" "$@" 2>/dev/null || true)
	[ -z "$hits" ] || fail "marker found in: $hits"
}
