#!/usr/bin/env bash
# tests/daemon/nonblocking.sh: the daemon's loop never waits for the network.
# The remote sits behind tests/faultproxy (one process per connection) in
# front of pouchdb-server. While a push's _bulk_docs answer drips in one byte
# every 200 ms, and again while its connection goes silent halfway through
# the answer, the local API answers `status`, `queue` and `record list`
# within LIMIT_MS each (the slowest is printed). The dripping connection is
# then cut and the silent one ends by the low-speed timeout: each time the
# queue drains by itself, and the server holds every record once.
. "$(dirname "$0")/lib.sh"
: "${FS_FAULTPROXY:?}"
LIMIT_MS=${LIMIT_MS:-1000}

port=$(free_port)
start_pouch "$port"
curl -sf -X PUT "http://127.0.0.1:$port/team" >/dev/null || fail "create db"
ctl="$T/proxy.ctl"
set_ctl() { printf '%s\n' "$1" >"$ctl.t" && mv "$ctl.t" "$ctl"; }
set_ctl pass
pport=$(free_port)
setsid "$FS_FAULTPROXY" 127.0.0.1 "$pport" 127.0.0.1 "$port" "$ctl" --fork \
	>"$T/proxy.log" 2>&1 </dev/null &
pgids+=("$!")
proxy_up() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$pport/"; }
wait_for 15 proxy_up || fail "fault proxy did not start"

conf a "push_delay_ms = 200" "retry_max_seconds = 2"
start_daemon a
printf 'correct horse\n' | cli a init >/dev/null || fail "init"
cli a remote add office "http://127.0.0.1:$pport/team" >/dev/null || fail "remote add"
n=0
add() {
	n=$((n + 1))
	cli a record add visit "{\"note\":\"$marker $n\"}" >/dev/null || fail "record add $n"
}
for _ in 1 2 3; do add; done
wait_for 20 queue_empty a || fail "first records not pushed"
say "$n records pushed through the proxy"

# api_while SECONDS: API calls one after another for SECONDS; sets api_max
# (slowest call, ms) and api_calls.
api_while() {
	local end=$(($(now_ms) + $1 * 1000)) t0 dt
	api_max=0
	api_calls=0
	while [ "$(now_ms)" -lt "$end" ]; do
		for call in "--json status" "queue" "record list visit"; do
			t0=$(now_ms)
			# shellcheck disable=SC2086
			cli a $call >/dev/null || fail "$call failed during the transfer"
			dt=$(($(now_ms) - t0))
			[ "$dt" -le "$api_max" ] || api_max=$dt
			api_calls=$((api_calls + 1))
		done
	done
}
fault_started() { grep -q "^fault $1 .*_bulk_docs" "$T/proxy.log"; }

# 1. The answer drips in: the push is in flight for a long time.
set_ctl "slow 1 _bulk_docs"
add
wait_for 15 fault_started slow || fail "the push did not reach the dripping proxy"
api_while 3
say "while an answer drips in: $api_calls API calls, slowest $api_max ms (limit $LIMIT_MS)"
[ "$api_max" -le "$LIMIT_MS" ] || fail "an API call took $api_max ms during a transfer"
[ "$(status_of a queued)" -ge 1 ] || fail "the push ended during the drip: nothing was measured"
drip=$(sed -n 's/^fault slow pid \([0-9]*\):.*/\1/p' "$T/proxy.log" | head -n 1)
kill "$drip" 2>/dev/null || true # the connection breaks mid-answer
t0=$(now_ms)
wait_for 20 queue_empty a || fail "the queue did not drain after the cut connection"
say "connection cut mid-answer: queue drained $(($(now_ms) - t0)) ms later"

# 2. The connection goes silent halfway through the answer (a dead route
# that no netlink event reports).
set_ctl "hold 1 _bulk_docs"
add
wait_for 15 fault_started hold || fail "the push did not reach the silent proxy"
api_while 3
say "while the connection is silent: $api_calls API calls, slowest $api_max ms (limit $LIMIT_MS)"
[ "$api_max" -le "$LIMIT_MS" ] || fail "an API call took $api_max ms during a silent transfer"
[ "$(status_of a queued)" -ge 1 ] || fail "the push ended while silent: nothing was measured"
t0=$(now_ms)
wait_for 60 queue_empty a || fail "the queue did not drain after the silent connection"
say "silent connection given up (low-speed timeout): queue drained $(($(now_ms) - t0)) ms later"

# Nothing lost, nothing twice: each record once on the server, at generation 1.
# (Records only: the device's team documents, docs/team.md, travel too.)
curl -sf "http://127.0.0.1:$port/team/_changes?style=all_docs" >"$T/changes.json"
revs=$("$node_bin" -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1])).results
.filter(x=>!x.id.startsWith("fs:")); console.log(r.reduce((a,x)=>a+x.changes.length,0)+" "+
r.filter(x=>x.changes.some(c=>!c.rev.startsWith("1-"))).length)' "$T/changes.json")
[ "$revs" = "$n 0" ] || fail "server: revisions and records past generation 1: $revs, want $n 0"
[ "$(cli a record list visit | grep -c "$marker")" = "$n" ] || fail "records not readable"
say "the server holds each of the $n records once"
ms=$(stop_daemon a TERM)
[ "$ms" -lt 2000 ] || fail "stop took $ms ms"
no_sanitizer_report a
echo "PASS"
