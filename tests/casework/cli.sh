#!/usr/bin/env bash
# tests/casework/cli.sh: the casework flow through the real binaries:
# fieldsync-hub over HTTPS, fieldsyncd and the fieldsync CLI. A case is
# added and synced; with the hub down a home visit is captured (note on
# stdin) and `due` changes at once; the hub comes back and the queue drains
# by itself; the hub holds ciphertext only; after a restart the device's
# store gives the same `due` answer. A second device joins the team and,
# once approved, reads the case and the visits.
lib_no_pouch=1
. "$(dirname "$0")/../daemon/lib.sh"
: "${FS_HUB_BIN:?}"

hub="$T/hub"
port=$(free_port)
hub_init "$hub" "$port"
pin=$hub_pin
tok_a=$(hub_token dev-a)
tok_b=$(hub_token dev-b)
hub_get() { curl -sf --cacert "$hub/cert.pem" -H "Authorization: Bearer $tok_a" "https://127.0.0.1:$port/team/$1"; }

start_hub
conf a "retry_max_seconds = 2"
start_daemon a
printf 'correct horse\n' | cli a init >/dev/null || fail "init"
echo "$tok_a" | cli a remote add hub "https://127.0.0.1:$port/team" --ca "$hub/cert.pem" \
	--pin "$pin" --token >/dev/null || fail "remote add"

name="$marker Alex"
opened=$(date -u -d '30 days ago' +%Y-%m-%dT%H:%M:%SZ)
cid=$(printf '%s\n' "$name" | cli a --json case add - --tier A --by worker1 --opened "$opened" \
	--assign worker1 | jget id) || fail "case add"
cli a case list | grep -q "^$cid	A	$name\$" || fail "case list: $(cli a case list)"
cli a due | grep -q "overdue" || fail "due before the visit: $(cli a due)"
[ "$(cli a --json due | jget cases.0.days_since)" = 30 ] || fail "days since last contact"
cli a caseload | grep -q '^worker1 *1 *0 *0 *0 *1' || fail "caseload: $(cli a caseload)"
wait_for 15 queue_empty a || fail "the case was not pushed"
say "case added, listed, overdue after 30 days in tier A, synced"

stop_hub
printf '%s home visit note\n' "$marker" | cli a visit add "$cid" --kind home --minutes 45 \
	--worker worker1 >/dev/null || fail "visit add (offline)"
[ "$(status_of a queued)" = 1 ] || fail "the visit should wait in the queue"
[ "$(cli a due)" = "nothing due" ] || fail "due after the visit: $(cli a due)"
[ "$(cli a --json due --all | jget cases.0.days_since)" = 0 ] || fail "days since the visit"
cli a visit list "$cid" | grep -q "	home	draft" || fail "visit list: $(cli a visit list "$cid")"
vid=$(cli a --json visit list "$cid" | jget visits.0.id)
cli a visit show "$vid" | grep -q "$marker home visit note" || fail "visit show"
say "home visit captured offline; due changed at once"

start_hub
wait_for 30 queue_empty a || fail "the queue did not drain when the hub came back"
hub_get "_all_docs?include_docs=true" >"$T/hub.json" || fail "hub read"
records=$(grep -o '"id":"[^"]*"' "$T/hub.json" | grep -vc '"id":"fs:' || true)
[ "$records" = 2 ] || fail "hub holds $records records"
grep -q '"c":' "$T/hub.json" || fail "hub documents are not envelopes"
marker_absent "$T/hub.json" "$hub"
say "hub holds the case and the visit as ciphertext only"

before=$(cli a --json due --all | jget cases)
stop_daemon a >/dev/null
start_daemon a
printf 'correct horse\n' | cli a unlock >/dev/null || fail "unlock after restart"
after=$(cli a --json due --all | jget cases)
[ "$before" = "$after" ] || fail "due changed across a restart: $before / $after"
[ "$(cli a due)" = "nothing due" ] || fail "due after restart"
# Note from $EDITOR: its file sits in a private folder under
# $XDG_RUNTIME_DIR and is gone afterwards; finalize signs, an addendum follows.
mkdir -m 700 "$T/xdg"
cat >"$T/editor.sh" <<EOS
#!/bin/sh
d=\$(dirname "\$1")
stat -c %a "\$d" >"$T/editor.mode"
echo "\$d" >"$T/editor.dir"
printf '%s edited note\\n' "$marker" >"\$1"
EOS
chmod +x "$T/editor.sh"
XDG_RUNTIME_DIR="$T/xdg" VISUAL= EDITOR="$T/editor.sh" cli a visit add "$cid" --kind phone \
	--edit </dev/null >/dev/null || fail "visit add with the editor"
[ "$(cat "$T/editor.mode")" = 700 ] || fail "editor folder mode $(cat "$T/editor.mode")"
case "$(cat "$T/editor.dir")" in "$T/xdg/"*) ;; *) fail "editor folder not under XDG_RUNTIME_DIR" ;; esac
[ -z "$(ls -A "$T/xdg")" ] || fail "the editor's temp folder was left behind"
pid=$(cli a --json visit list "$cid" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",
()=>{for(const v of JSON.parse(s).visits)if(v.data.kind==="phone")console.log(v.id)})')
cli a visit show "$pid" | grep -q "$marker edited note" || fail "editor note not saved"
cli a visit finalize "$pid" >/dev/null || fail "finalize"
[ "$(cli a --json visit show "$pid" | jget data.state)" = final ] || fail "not final"
echo "late change" | cli a visit addendum "$pid" >/dev/null || fail "addendum"
cli a --json visit show "$pid" >"$T/show.json" || fail "visit show"
[ "$(jget signature <"$T/show.json")" = verified ] || fail "finalized visit: $(jget signature <"$T/show.json")"
[ "$(jget addenda.0.signature <"$T/show.json")" = verified ] || fail "addendum signature"
jget addenda.0.data.note <"$T/show.json" | grep -q "late change" || fail "visit show lacks its addendum"
cli a --json case edit "$cid" '{"name":"x"}' >/dev/null || fail "case edit"
rc=0; printf 'x' | cli a --json visit add "$cid" --kind nowhere >/dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "a bad visit kind: exit $rc, want 1"
[ "$(cli a --json due --all | jget cases.0.alerts)" = "[]" ] || fail "finalized visit flagged"
[ "$(cli a conflicts resolve)" = "resolved 0" ] || fail "conflicts resolve"
say "editor note in a private folder, wiped and removed; finalize and addendum signed"

cli a lock >/dev/null
rc=0; cli a due >/dev/null 2>&1 || rc=$?
[ $rc = 4 ] || fail "due while locked: exit $rc, want 4"
say "same due answer from the store after a restart; locked: refused"

# The agency's rules file: a bad one stops the daemon at start, naming the
# key; a good one gives `due` the agency's zone after a restart.
stop_daemon a >/dev/null
echo '{"tz":"Mars/Olympus_Mons"}' >"$T/rules.json"
conf a "retry_max_seconds = 2" "agency_rules = $T/rules.json"
rc=0; TMPDIR="$T/tmp" timeout 20 "$FSD_BIN" --config "$T/a/conf" >"$T/bad-rules.log" 2>&1 || rc=$?
[ $rc = 1 ] || fail "a bad agency_rules file: exit $rc, want 1"
grep -q "agency_rules" "$T/bad-rules.log" || fail "the bad rules file is not named"
echo '{"tz":"Europe/Berlin","grace_days":2}' >"$T/rules.json"
start_daemon a
printf 'correct horse\n' | cli a unlock >/dev/null || fail "unlock with agency rules"
[ "$(cli a --json due --all | jget tz)" = "Europe/Berlin" ] || fail "agency zone not used"
cli a lock >/dev/null
say "agency rules: a bad file refused at start, the zone used in due"

# A second device of the team (docs/team.md): it joins, a approves it after
# comparing fingerprints, and it reads the case and the visits a wrote.
conf b "retry_max_seconds = 2"
start_daemon b
printf 'battery staple\n%s\n' "$tok_b" | cli b join "https://127.0.0.1:$port" team \
	--name "job coach tablet" --ca "$hub/cert.pem" --pin "$pin" --token >/dev/null || fail "join b"
fp_b=$(status_of b team.this_device.fingerprint)
a_sees_b() { cli a device list | grep -q "pending .*$fp_b"; }
wait_for 30 a_sees_b || fail "a does not see b asking to join: $(cli a device list)"
[ "$(cli b --json record list | jget records)" = "[]" ] || fail "b reads before approval"
printf 'correct horse\n' | cli a unlock >/dev/null || fail "unlock a"
cli a device approve "$fp_b" >/dev/null || fail "approve b"
b_member() { [ "$(status_of b team.this_device.status)" = member ] &&
	[ "$(status_of b team.holds_current_key)" = true ]; }
wait_for 30 b_member || fail "b was not let in: $(cli b status)"
b_reads() { cli b case list 2>/dev/null | grep -q "^$cid	A	x\$"; } # renamed "x" above
wait_for 15 b_reads || fail "b does not list a's case: $(cli b case list)"
cli b visit show "$vid" | grep -q "$marker home visit note" || fail "b cannot read a's visit"
cli b visit show "$pid" | grep -q "$marker edited note" || fail "b cannot read the finalized visit"
[ "$(cli b --json due --all | jget cases.0.alerts)" = "[]" ] || fail "a's signature not trusted on b"
[ "$(cli b --json visit show "$pid" | jget addenda.0.signature)" = verified ] ||
	fail "b does not verify a's addendum"
say "device b joined, was approved, and reads a's case and visits (signature trusted)"

marker_absent "$T/a/data" "$T/b/data" "$T/tmp" "$T/a/log" "$T/b/log"
! grep -q "casework index" "$T/a/log" || fail "casework index warning in a's log"
no_sanitizer_report a
no_sanitizer_report b
say "ok"
