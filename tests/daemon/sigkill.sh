#!/usr/bin/env bash
# tests/daemon/sigkill.sh: SIGKILL the daemon in the middle of a push, start
# it again: the queue drains by itself (sync needs no unlock), the server
# holds every record exactly once at its first revision, and every record
# is readable exactly once on the device.
. "$(dirname "$0")/lib.sh"

n=${FS_TEST_SIGKILL_RECORDS:-1200}
port=$(free_port)
conf a "retry_max_seconds = 1"
start_daemon a
printf 'pw\n' | cli a init >/dev/null || fail "init"
cli a remote add office "http://127.0.0.1:$port/team" >/dev/null || fail "remote add"
t0=$(now_ms)
"$node_bin" "$(dirname "$0")/mkrecords.js" "$T/a/run/api.sock" "$n" "$marker" || fail "records"
say "$n records created offline in $(($(now_ms) - t0)) ms"

start_pouch "$port"
curl -sf -X PUT "http://127.0.0.1:$port/team" >/dev/null || fail "create db"
# Kill as soon as the server holds part of the queue: the push runs in
# batches of 1000, so the daemon is between batches or confirming one.
server=0
end=$(($(now_ms) + 60000))
while [ "$(now_ms)" -lt $end ]; do
	server=$(curl -s --max-time 2 "http://127.0.0.1:$port/team" | jget doc_count 2>/dev/null || echo 0)
	[ "$server" -gt 0 ] && break
	sleep 0.01
done
kill -KILL "${dpid[a]}"
wait "${dpid[a]}" 2>/dev/null || true
server=$(curl -sf "http://127.0.0.1:$port/team" | jget doc_count)
say "SIGKILL mid-sync: the server had $server of $n"

start_daemon a
t0=$(now_ms)
wait_for 60 queue_empty a || fail "queue did not drain after restart"
say "after restart the queue drained in $(($(now_ms) - t0)) ms (daemon locked)"
[ "$(status_of a locked)" = true ] || fail "restarted daemon should be locked"

curl -sf "http://127.0.0.1:$port/team/_all_docs" >"$T/all.json"
total=$(records_in "$T/all.json")
[ "$total" = "$n" ] || fail "server holds $total records, want $n"
tdocs=$(($(jget total_rows <"$T/all.json") - total)) # the device's team documents
revs=$("$node_bin" -e 'const a=JSON.parse(require("fs").readFileSync(process.argv[1]));
const g=new Set(a.rows.map(r=>r.value.rev.split("-")[0]));console.log([...g].join(","))' "$T/all.json")
[ "$revs" = 1 ] || fail "server revisions not all first generation: $revs"
[ "$(status_of a documents)" = "$((n + tdocs))" ] || fail "device holds $(status_of a documents) documents"
printf 'pw\n' | cli a unlock >/dev/null || fail "unlock"
cli a --json record list visit >"$T/list.json"
uniq=$("$node_bin" -e 'const a=JSON.parse(require("fs").readFileSync(process.argv[1])).records;
console.log(new Set(a.map(r=>r.data.i)).size+" "+a.length)' "$T/list.json")
[ "$uniq" = "$n $n" ] || fail "records on the device (unique, total): $uniq, want $n $n"
say "nothing lost, nothing duplicated: $n on the server, $n readable on the device"
stop_daemon a >/dev/null
no_sanitizer_report a
echo PASS
