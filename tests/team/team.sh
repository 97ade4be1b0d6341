#!/usr/bin/env bash
# tests/team/team.sh: team sharing end to end (docs/team.md) with real
# processes: fieldsync-hub over HTTPS and four fieldsyncd daemons with the
# CLI. A founds the space (sealed to the office recovery key) and writes; B
# joins, is approved after the fingerprint check, and A and B read each
# other's notes; C joins and is approved, then revoked: the space key
# rotates, A writes again, B reads it, C's token is refused, and C, given a
# fresh token by the office, pulls the ciphertext but cannot open it. D
# joins unapproved and reads nothing, then recovers every key with the
# recovery key. A tampered device document is ignored and reported. The
# hub's files hold none of the notes' marker.
lib_no_pouch=1
. "$(dirname "$0")/../daemon/lib.sh"
: "${FS_HUB_BIN:?}"

hub="$T/hub"
port=$(free_port)
hub_init "$hub" "$port"
pin=$hub_pin
for n in a b c c2 d; do eval "tok_$n=\$(hub_token dev-$n)"; done
start_hub
url="https://127.0.0.1:$port"
opts=(--ca "$hub/cert.pem" --pin "$pin")
hub_get() { curl -sf --cacert "$hub/cert.pem" -H "Authorization: Bearer $tok_a" "$url/team/$1"; }

# The office recovery key, made with no daemon at all.
printf 'office secret\n' | "$FS_BIN" --socket /nonexistent --json recovery create \
	"$T/recovery.key" >"$T/rec.json" || fail "recovery create"
rpub=$(jget public <"$T/rec.json")
[ "$(stat -c %a "$T/recovery.key")" = 600 ] || fail "recovery key file mode"
grep -q "BEGIN FIELDSYNC RECOVERY KEY" "$T/recovery.key" || fail "recovery key file"
rc=0; printf 'x\n' | "$FS_BIN" --socket /nonexistent recovery create "$T/recovery.key" \
	>/dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "an existing recovery key must not be overwritten (exit $rc)"
say "office recovery key made offline: $(echo "$rpub" | cut -c1-16)..."

note() { # note NAME TEXT: adds a visit record (JSON on stdin); prints its id
	printf '{"note":"%s %s"}' "$marker" "$2" | cli "$1" --json record add visit - | jget id
}
reads() { # reads NAME ID TEXT: NAME decrypts record ID and finds TEXT
	cli "$1" record get "$2" 2>/dev/null | grep -q "$marker $3"
}
member_with_key() {
	[ "$(status_of "$1" team.this_device.status)" = member ] &&
		[ "$(status_of "$1" team.holds_current_key)" = true ]
}
# join NAME TOKEN: sets NAME up to join; its fingerprint goes to fp[NAME].
# Not run in $(...): a daemon started in a subshell escapes the cleanup.
declare -A fp
join() {
	conf "$1" "retry_max_seconds = 2"
	start_daemon "$1"
	printf 'pass %s\n%s\n' "$1" "$2" | cli "$1" join "$url" team --name "device $1" \
		"${opts[@]}" --token >"$T/$1/join.out" || fail "join $1: $(cat "$T/$1/join.out")"
	fp[$1]=$(status_of "$1" team.this_device.fingerprint)
}
asked() { cli a device list | grep -q "^pending .*$1"; }
approve() { # approve FINGERPRINT NAME
	wait_for 30 asked "$1" || fail "a does not see $2 asking: $(cli a device list)"
	cli a device approve $1 >/dev/null || fail "approve $2"
	wait_for 30 member_with_key "$2" || fail "$2 not let in: $(cli "$2" status)"
}

# A device given a bad token is told so at once, not left waiting.
conf e "retry_max_seconds = 2"
start_daemon e
rc=0
printf 'pass e\nAAAAAAAAAAAAAAAAAAAAAAAA.nope\n' | timeout 30 "$FS_BIN" --config "$T/e/conf" \
	join "$url" team "${opts[@]}" --token >"$T/e/join.out" 2>&1 || rc=$?
[ $rc = 1 ] || fail "join with a bad token: exit $rc, want 1: $(cat "$T/e/join.out")"
grep -q "refused our credentials" "$T/e/join.out" || fail "join: $(cat "$T/e/join.out")"
stop_daemon e >/dev/null
say "a join with a bad token is refused in plain words"

# A founds the space.
conf a "retry_max_seconds = 2"
start_daemon a
printf 'pass a\n' | cli a init --name "device a" --recovery "$rpub" >/dev/null || fail "init a"
echo "$tok_a" | cli a remote add office "$url/team" "${opts[@]}" --token >/dev/null ||
	fail "remote add a"
a1=$(note a "from a, first")
wait_for 15 queue_empty a || fail "a's first note not pushed"
[ "$(status_of a team.this_device.status)" = member ] || fail "a is not a member"
say "a founded the space and wrote a note"

# B joins; before approval it syncs ciphertext but reads and writes nothing.
join b "$tok_b"
fp_b=${fp[b]}
grep -q "fieldsync device approve $fp_b" "$T/b/join.out" || fail "join b does not say what to do"
wait_for 30 asked "$fp_b" || fail "a does not see b asking"
[ "$(cli b --json record list | jget records)" = "[]" ] || fail "b reads before approval"
rc=0; cli b record add visit '{"x":1}' >/dev/null 2>&1 || rc=$?
[ $rc = 8 ] || fail "b writes before approval (exit $rc, want 8)"
cli b status | grep -q "waiting for a member to approve" || fail "b's status: $(cli b status)"
rc=0; cli a device approve 11111 22222 33333 44444 55555 66666 >/dev/null 2>&1 || rc=$?
[ $rc = 7 ] || fail "approving an unknown fingerprint: exit $rc, want 7"
approve "$fp_b" b
wait_for 15 reads b "$a1" "from a, first" || fail "b cannot read a's note"
b1=$(note b "from b")
wait_for 15 reads a "$b1" "from b" || fail "a cannot read b's note"
say "b joined and was approved: a and b read each other's notes"

# C joins, is approved, reads; then a revokes it.
join c "$tok_c"
fp_c=${fp[c]}
approve "$fp_c" c
wait_for 15 reads c "$a1" "from a, first" || fail "c cannot read a's note"
c_id=$(status_of c team.this_device.id)
kv1=$(status_of a team.key_version)
t0=$(now_ms)
cli a device revoke "${c_id:0:10}" >"$T/revoke.out" || fail "revoke c"
kv2=$(status_of a team.key_version)
[ "$kv1" != "$kv2" ] || fail "revocation did not rotate the key ($kv1)"
[ "$(status_of a team.holds_current_key)" = true ] || fail "a lacks the new key"
a2=$(note a "from a, after the revocation")
wait_for 15 queue_empty a || fail "a's second note not pushed"
wait_for 30 reads b "$a2" "from a, after the revocation" || fail "b cannot read a's new note"
[ "$(status_of b team.key_version)" = "$kv2" ] || fail "b is not on the new key version"
say "c revoked: key version $kv1 -> $kv2; b reads a's new note $(($(now_ms) - t0)) ms later"

c_refused() { [ "$(cli c --json remote list | jget remotes.0.last_error)" = FS_E_SYNC_AUTH ]; }
cli c sync >/dev/null 2>&1 || true
wait_for 30 c_refused || fail "the hub still takes c's token: $(cli c --json remote list)"
rc=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$hub/cert.pem" \
	-H "Authorization: Bearer $tok_c" "$url/team")
[ "$rc" = 401 ] || fail "c's token answered $rc, want 401"
grep -q "was revoked by its team" "$T/hub.log" || fail "the hub did not log the revocation"
cli c status | grep -q "refused our credentials" || fail "c's status: $(cli c status)"
say "the hub refuses c's token (401)"

# With a token the office gives it later, c pulls the new note's ciphertext
# but has no key for it; what it could read before stays readable.
cli c remote remove office >/dev/null || fail "remote remove c"
echo "$tok_c2" | cli c remote add office2 "$url/team" "${opts[@]}" --token >/dev/null ||
	fail "remote add c2"
has_a2() { cli c --json record get "$a2" >"$T/c.get" 2>&1; grep -q "FS_E_UNKNOWN_KID" "$T/c.get"; }
wait_for 30 has_a2 || fail "c should hold a2 and fail to open it: $(cat "$T/c.get")"
! grep -q "$marker" "$T/c.get" || fail "c decrypted a's new note"
reads c "$a1" "from a, first" || fail "c lost what it could read before"
[ "$(status_of c team.this_device.status)" = revoked ] || fail "c does not know it is revoked"
rc=0; cli c record add visit '{"x":1}' >/dev/null 2>&1 || rc=$?
[ $rc = 8 ] || fail "a revoked device writes (exit $rc, want 8)"
say "c holds the new note's ciphertext and cannot open it (unknown key); it can write nothing"

# D joins and is never approved: reads nothing. The recovery key opens it all.
join d "$tok_d"
fp_d=${fp[d]}
wait_for 30 asked "$fp_d" || fail "a does not see d"
all_there() { [ "$(status_of d documents)" = "$(status_of a documents)" ]; }
wait_for 30 all_there || fail "d did not pull everything"
[ "$(cli d --json record list | jget records)" = "[]" ] || fail "d reads unapproved"
[ "$(cli d --json record list | jget unreadable)" -ge 3 ] || fail "d should count unreadable records"
rc=0; printf 'wrong\n' | cli d recover "$T/recovery.key" >/dev/null 2>&1 || rc=$?
[ $rc = 5 ] || fail "recover with a wrong passphrase: exit $rc, want 5"
printf 'office secret\n' | cli d recover "$T/recovery.key" >"$T/d.rec" || fail "recover"
grep -q "recovered 2 key version" "$T/d.rec" || fail "recover: $(cat "$T/d.rec")"
for x in "$a1:from a, first" "$b1:from b" "$a2:from a, after the revocation"; do
	reads d "${x%%:*}" "${x#*:}" || fail "the recovery key does not read ${x#*:}"
done
[ "$(status_of d team.this_device.status)" = member ] || fail "d not a member after recovery"
d1=$(note d "from d, after recovery")
wait_for 30 reads a "$d1" "from d, after recovery" || fail "a cannot read d's note"
say "d, never approved, read nothing; with the recovery key it reads all and writes"

# A tampered copy of b's device document (another name, the old signature)
# arrives as a conflicting revision: ignored and reported, b stays a member.
b_id=$(status_of b team.this_device.id)
hub_get "fs:device:$b_id" >"$T/bdev.json" || fail "read b's device document"
"$node_bin" -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1]));
const b=JSON.parse(d.b); b.name="device b (tampered)"; d.b=JSON.stringify(b);
d._rev="1-"+"f".repeat(32); console.log(JSON.stringify({new_edits:false,docs:[d]}));' \
	"$T/bdev.json" >"$T/tampered.json"
curl -sf --cacert "$hub/cert.pem" -H "Authorization: Bearer $tok_a" -H 'Content-Type: application/json' \
	-X POST "$url/team/_bulk_docs" --data-binary @"$T/tampered.json" >/dev/null || fail "upload tamper"
reported() { cli a device list | grep -q "fs:device:$b_id: its signature does not verify"; }
cli a sync >/dev/null
wait_for 30 reported || fail "a does not report the tampered document: $(cli a device list)"
cli a device list | grep -q '^member   "device b" ' || fail "b lost its membership or name"
! cli a device list | grep -q "tampered\")" || fail "the tampered name is shown"
say "a tampered device document is ignored and reported"

# Team documents are written once: the hub refuses their deletion and edits.
v2rev=$(hub_get "fs:epoch:$kv2" | jget _rev) || fail "read the epoch"
rc=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$hub/cert.pem" -X DELETE \
	-H "Authorization: Bearer $tok_a" "$url/team/fs:epoch:$kv2?rev=$v2rev")
[ "$rc" = 403 ] || fail "deleting a team document: HTTP $rc, want 403"
rc=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$hub/cert.pem" -X PUT \
	-H "Authorization: Bearer $tok_a" -H 'Content-Type: application/json' \
	-d "{\"_rev\":\"$v2rev\",\"fst\":1}" "$url/team/fs:epoch:$kv2")
[ "$rc" = 403 ] || fail "editing a team document: HTTP $rc, want 403"
say "the hub refuses to delete or edit team documents (403)"

hub_get "_all_docs?include_docs=true" >"$T/hub.json" || fail "hub read"
grep -q '"fs:epoch:' "$T/hub.json" || fail "no team documents on the hub"
marker_absent "$hub" "$T/hub.json"
for n in a b c d; do
	no_sanitizer_report "$n"
	! grep -q -- "$marker" "$T/$n/log" || fail "marker in $n's log"
done
marker_absent "$T/a/data" "$T/b/data" "$T/c/data" "$T/d/data" "$T/tmp"
! grep -q "office secret\|pass a" "$T"/*/log "$T/hub.log" || fail "a passphrase in a log"
say "the hub's files, the stores and the logs hold no marker and no passphrase"
echo PASS
