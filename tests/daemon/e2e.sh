#!/usr/bin/env bash
# tests/daemon/e2e.sh [pouchdb|hub]: daemon + server + CLI through the real
# binaries, against pouchdb-server (default) or fieldsync-hub over HTTPS
# with a pinned certificate and a device token. Records are created while
# the server is down; when it comes up the queue drains by itself (no
# command). Then: records readable, the server holds ciphertext only, edits
# go out by themselves, a stale edit is refused, the socket is 0600 in a
# 0700 folder, SIGTERM stops the daemon within 2 s, and the marker written
# in the records is in no log, no data file and no temporary file. Against
# pouchdb-server also: a document the server refuses for good is
# quarantined with its reason and sent again by "quarantine retry" (the hub
# has no validate_doc_update to refuse one with).
server=${1:-pouchdb}
case $server in
pouchdb) ;;
hub) lib_no_pouch=1 ;;
*) echo "usage: e2e.sh [pouchdb|hub]" >&2; exit 2 ;;
esac
. "$(dirname "$0")/lib.sh"

port=$(free_port)
if [ "$server" = hub ]; then
	: "${FS_HUB_BIN:?}"
	hub_init "$T/hub" "$port"
	token=$(hub_token laptop)
	srv_dir="$T/hub"
	url="https://127.0.0.1:$port/team"
	# srv_get PATH: GET from the database, as the device.
	srv_get() { curl -sf --cacert "$hub_dir/cert.pem" -H "Authorization: Bearer $token" "$url${1:+/$1}"; }
	srv_start() { start_hub; }
else
	srv_dir="$T/pouch"
	url="http://127.0.0.1:$port/team"
	srv_get() { curl -sf "$url${1:+/$1}"; }
	srv_start() {
		start_pouch "$port"
		curl -sf -X PUT "$url" >/dev/null || fail "create db"
	}
fi
conf a "retry_max_seconds = 2"
start_daemon a
printf 'correct horse\n' | cli a init >/dev/null || fail "init"
if [ "$server" = hub ]; then
	echo "$token" | cli a remote add office "$url" --ca "$hub_dir/cert.pem" --pin "$hub_pin" \
		--token >/dev/null || fail "remote add"
else
	cli a remote add office "$url" >/dev/null || fail "remote add"
fi
[ "$(stat -c %a "$T/a/run/api.sock")" = 600 ] || fail "socket mode $(stat -c %a "$T/a/run/api.sock")"
[ "$(stat -c %a "$T/a/run")" = 700 ] || fail "socket folder mode"
say "socket 0600 in a 0700 folder"

n=20
base=$(status_of a queued) # the device's own team documents (docs/team.md)
for i in $(seq $n); do
	cli a record add visit "{\"note\":\"$marker visit $i\",\"client\":\"$marker client\"}" \
		>/dev/null || fail "record add $i"
done
[ "$(status_of a queued)" = $((base + n)) ] || fail "queue should hold $base + $n"
[ "$(status_of a online)" = false ] || fail "should be offline"
cli a status | grep -q "waiting to sync: $((base + n)) change" || fail "status text"
say "$n records queued while the server is down"

sleep 1
srv_start
t0=$(now_ms)
wait_for 30 queue_empty a || fail "the queue did not drain by itself"
say "queue drained by itself $(($(now_ms) - t0)) ms after the server came up"

srv_get "_all_docs?include_docs=true" >"$T/server.json" || fail "read the server"
total=$(records_in "$T/server.json")
[ "$total" = $n ] || fail "server holds $total records, want $n"
grep -q '"c":' "$T/server.json" || fail "server documents are not envelopes"
marker_absent "$T/server.json"
[ "$(cli a record list visit | grep -c "$marker visit")" = $n ] || fail "records not readable"
cli a sync --wait --timeout 20 >/dev/null || fail "sync --wait"

# A record edited and one deleted also go out by themselves.
id=$(cli a --json record list visit | jget records.0.id)
rev=$(cli a --json record get "$id" | jget rev)
cli a record update "$id" "$rev" "{\"note\":\"$marker edited\"}" >/dev/null || fail "update"
rc=0
cli a record update "$id" "$rev" '{"note":"stale"}' >/dev/null 2>&1 || rc=$?
[ $rc = 6 ] || fail "stale update: exit $rc, want 6 (conflict)"
wait_for 15 queue_empty a || fail "edit not pushed"
[ "$(srv_get "$id" | jget _rev | cut -d- -f1)" = 2 ] || fail "server lacks the edit"
say "edit pushed; stale base revision refused"

if [ "$server" = pouchdb ]; then

# The server refuses for good: the record goes to the quarantine with the
# server's reason; once the server accepts again, "quarantine retry" sends it.
curl -sf -X PUT "http://127.0.0.1:$port/team/_design/ro" -H 'Content-Type: application/json' \
	-d '{"validate_doc_update":"function(n) { throw({forbidden: \"read-only for the test\"}); }"}' \
	>/dev/null || fail "design doc"
cli a record add visit "{\"note\":\"$marker refused\"}" >/dev/null || fail "record add"
is_quarantined() { [ "$(status_of a quarantined)" = 1 ]; }
wait_for 15 is_quarantined || fail "refused record not quarantined"
cli a quarantine | grep -q "read-only for the test" || fail "quarantine lacks the reason"
oid=$(cli a --json quarantine | jget quarantine.0.oid)
drev=$(curl -sf "http://127.0.0.1:$port/team/_design/ro" | jget _rev)
curl -sf -X DELETE "http://127.0.0.1:$port/team/_design/ro?rev=$drev" >/dev/null || fail "rm ddoc"
cli a quarantine retry "$oid" >/dev/null || fail "quarantine retry"
wait_for 15 queue_empty a || fail "retried record not pushed"
[ "$(status_of a quarantined)" = 0 ] || fail "quarantine not empty"
srv_get _all_docs >"$T/all.json" || fail "read the server"
[ "$(records_in "$T/all.json")" = $((n + 1)) ] || fail "server count"
say "server refusal quarantined with its reason; retry sent it"
fi

# Edits never copy the write-ahead log back inside their commit: the daemon
# does it once the store has been quiet for a second.
c0=$(status_of a checkpoints)
for i in $(seq 40); do
	cli a record add visit "{\"note\":\"$marker burst $i\"}" >/dev/null || fail "burst add $i"
done
# (a sync's own checkpoint write may follow it: a few pages, not the burst's)
checkpointed() { [ "$(status_of a checkpoints)" -gt "$c0" ] && [ "$(status_of a wal_pages)" -lt 256 ]; }
wait_for 20 checkpointed || fail "no checkpoint after the burst ($(status_of a wal_pages) pages)"
say "40 edits: log checkpointed in a quiet moment"

ms=$(stop_daemon a TERM)
say "SIGTERM: stopped in $ms ms"
[ "$ms" -lt 2000 ] || fail "stop took $ms ms"
no_sanitizer_report a
grep -q "$marker" "$T/a/log" && fail "marker in the log"
marker_absent "$T/a" "$T/tmp" "$srv_dir"
hits=$(find "${TMPDIR:-/tmp}" -maxdepth 2 -type f -newer "$T/start" 2>/dev/null |
	xargs -r grep -la -- "$marker" 2>/dev/null || true)
[ -z "$hits" ] || fail "marker in temporary files: $hits"
say "marker in no log, data file or temporary file"
echo "PASS"
