#!/usr/bin/env bash
# tests/team/rollback.sh: a server that deletes team documents cannot roll
# a team back (docs/team.md). pouchdb-server (which, unlike fieldsync-hub,
# lets anyone delete them) holds a space of three devices; A revokes C; the
# new key version's epoch document is then deleted on the server. B pulls
# the tombstone and stays on the new version with C revoked, from its own
# copy of the document; so does A.
. "$(dirname "$0")/../daemon/lib.sh"

port=$(free_port)
start_pouch "$port"
curl -sf -X PUT "http://127.0.0.1:$port/team" >/dev/null || fail "create db"
url="http://127.0.0.1:$port"

conf a "retry_max_seconds = 2"
start_daemon a
printf 'pass a\n' | cli a init --name "device a" >/dev/null || fail "init a"
cli a remote add office "$url/team" >/dev/null || fail "remote add a"
member_with_key() {
	[ "$(status_of "$1" team.this_device.status)" = member ] &&
		[ "$(status_of "$1" team.holds_current_key)" = true ]
}
asked() { cli a device list | grep -q "^pending .*$1"; }
for n in b c; do
	conf "$n" "retry_max_seconds = 2"
	start_daemon "$n"
	printf 'pass %s\n' "$n" | cli "$n" join "$url" team --name "device $n" >/dev/null ||
		fail "join $n"
	fp=$(status_of "$n" team.this_device.fingerprint)
	wait_for 30 asked "$fp" || fail "a does not see $n"
	cli a device approve $fp >/dev/null || fail "approve $n"
	wait_for 30 member_with_key "$n" || fail "$n not let in"
done
c_id=$(status_of c team.this_device.id)
cli a device revoke "$c_id" >/dev/null || fail "revoke c"
kv2=$(status_of a team.key_version)
on_v2() { [ "$(status_of b team.key_version)" = "$kv2" ] && member_with_key b; }
wait_for 30 on_v2 || fail "b did not move to $kv2"
say "c revoked: key version $kv2 on a and b"

# The server deletes the epoch of the revocation.
before=$(status_of b documents)
rev=$(curl -sf "$url/team/fs:epoch:$kv2" | jget _rev) || fail "read the epoch"
curl -sf -X DELETE "$url/team/fs:epoch:$kv2?rev=$rev" >/dev/null || fail "delete the epoch"
cli b sync >/dev/null
cli a sync >/dev/null
gone() { [ "$(status_of b documents)" -lt "$before" ]; }
wait_for 30 gone || fail "b did not pull the deletion"
for n in a b; do
	[ "$(status_of "$n" team.key_version)" = "$kv2" ] || fail "$n rolled back to $(status_of "$n" team.key_version)"
	cli "$n" device list | grep -q "^revoked  \"device c\"" || fail "$n: c is not revoked any more"
	member_with_key "$n" || fail "$n lost the current key"
done
cli b record add visit '{"note":"after the deletion"}' >/dev/null || fail "b cannot write"
say "the epoch deleted on the server: a and b stay on $kv2 with c revoked (their own copies)"
for n in a b c; do no_sanitizer_report "$n"; done
echo PASS
