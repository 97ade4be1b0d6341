#!/usr/bin/env bash
# bench/daemon/idle_wakeups.sh [SECONDS [SETTLE]]: counts what an idle
# fieldsyncd does (strace -c over SECONDS, default 60, after SETTLE seconds,
# default 2, e.g. 300 to let the backoff reach its 5-minute ceiling first).
# Two cases, side by side:
#  offline: one remote whose server is down (connection refused), locked;
#  none:    no remote at all, locked (the floor: nothing should happen).
# As root each daemon runs in a network namespace of its own (unshare -n,
# only a down loopback): truly offline, and deaf to other processes' network
# changes on this machine, which would wake it (by design) and skew counts.
# Needs strace and a build in build/ (./run makes it).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
settle=${2:-2}
fsd=$here/build/daemon/fieldsyncd
fs=$here/build/daemon/fieldsync
T=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$T"' EXIT

run_case() {
	local name=$1 remote=$2
	mkdir -p "$T/$name"
	printf 'test_kdf_min = true\ndata_dir = %s\nsocket = %s\n' "$T/$name/data" \
		"$T/$name/api.sock" >"$T/$name/conf"
	local pre=()
	[ "$(id -u)" = 0 ] && command -v unshare >/dev/null && pre=(unshare -n)
	"${pre[@]}" "$fsd" --config "$T/$name/conf" 2>"$T/$name/log" &
	local pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do [ -S "$T/$name/api.sock" ] && break; sleep 0.05; done
	echo pw | "$fs" --config "$T/$name/conf" init >/dev/null
	[ -z "$remote" ] || "$fs" --config "$T/$name/conf" remote add office "$remote" >/dev/null
	"$fs" --config "$T/$name/conf" lock >/dev/null
	sleep "$settle"
	strace -c -f -p "$pid" -o "$T/$name/strace" &
	local st=$!
	sleep "$secs"
	kill -INT "$st"
	wait "$st" 2>/dev/null || true
	count() { awk -v s="$1" '$NF==s{n=$4} END{print n+0}' "$T/$name/strace"; }
	printf '%-8s in %s s: poll wake-ups %s, connect attempts %s, syscalls in all %s\n' "$name" \
		"$secs" "$(count poll)" "$(count connect)" "$(count total)"
	cat "$T/$name/strace"
	kill "$pid" # run_case runs in a subshell: the EXIT trap does not know it
	wait "$pid" 2>/dev/null || true
}
port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});')
run_case offline "http://127.0.0.1:$port/team" &
run_case none "" &
wait
