#!/usr/bin/env bash
# tests/daemon/lifecycle.sh: one daemon per store (the second says who holds
# it and exits non-zero); wrong passphrases refused, slowed down
# exponentially and logged without the passphrase; SIGHUP reloads the
# configuration (here: a 1 s auto-lock, which then wipes the keys); SIGINT
# and SIGTERM stop within 2 s; a remote's password is stored wrapped.
. "$(dirname "$0")/lib.sh"

good="good-$marker"
bad="BAD-$marker"
start_daemon a
printf '%s\n' "$good" | cli a init >/dev/null || fail "init"
cli a record add note "{\"text\":\"$marker\"}" >/dev/null || fail "record add"

# A second daemon on the same store refuses and names the holder.
rc=0
TMPDIR="$T/tmp" timeout 10 "$FSD_BIN" --config "$T/a/conf" >"$T/second.log" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "a second daemon started on the same store"
grep -q "process ${dpid[a]}" "$T/second.log" || fail "second daemon does not name pid ${dpid[a]}: $(cat "$T/second.log")"
cli a status >/dev/null || fail "the first daemon stopped answering"
say "second daemon refused: $(grep -o "in use by process [0-9]*" "$T/second.log" | head -1)"

# SO_PEERCRED: even if the socket's modes were opened up, another user's
# connection is closed before any request is read (root only: setpriv).
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 755 "$T" "$T/a" "$T/a/run"
	chmod 666 "$T/a/run/api.sock"
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups curl -s --max-time 5 \
		--unix-socket "$T/a/run/api.sock" http://l/v1/status >"$T/peer.out" 2>&1 || rc=$?
	chmod 700 "$T" "$T/a" "$T/a/run"
	chmod 600 "$T/a/run/api.sock"
	[ $rc -ne 0 ] && ! grep -q initialized "$T/peer.out" || fail "another uid was served"
	wait_for 5 grep -q "refused a connection from uid 65534" "$T/a/log" || fail "peer not logged"
	say "a connection from uid 65534 refused by SO_PEERCRED (curl exit $rc)"
fi

# Wrong passphrase: refused (exit 5), then even the right one waits.
cli a lock >/dev/null
rc=0; printf '%s\n' "$bad" | cli a unlock 2>"$T/err" || rc=$?
[ $rc = 5 ] && grep -q "wrong passphrase" "$T/err" || fail "wrong passphrase: exit $rc $(cat "$T/err")"
rc=0; printf '%s\n' "$good" | cli a unlock 2>"$T/err" || rc=$?
[ $rc = 5 ] && grep -q "too many wrong passphrases" "$T/err" || fail "not slowed: exit $rc"
sleep 1.1
rc=0; printf '%s\n' "$bad" | cli a unlock 2>/dev/null || rc=$?
[ $rc = 5 ] || fail "second wrong passphrase accepted"
sleep 1.1
rc=0; printf '%s\n' "$good" | cli a unlock 2>"$T/err" || rc=$?
grep -q "try again in 1 s" "$T/err" || fail "the second delay is not longer: $(cat "$T/err")"
sleep 1
printf '%s\n' "$good" | cli a unlock >/dev/null || fail "right passphrase refused after the wait"
[ "$(status_of a locked)" = false ] || fail "still locked"
grep -q "wrong passphrase (1 in a row); next attempt in 1 s" "$T/a/log" || fail "not logged"
grep -q "wrong passphrase (2 in a row); next attempt in 2 s" "$T/a/log" || fail "2nd not logged"
grep -q -- "$marker" "$T/a/log" && fail "a passphrase reached the log"
say "wrong passphrases refused, slowed (1 s, 2 s) and logged without the passphrase"

# Passphrase change, then the old one fails and the new one works.
printf '%s\n%s\n' "$good" "new-$marker" | cli a passwd >/dev/null || fail "passwd"
cli a lock >/dev/null
rc=0; printf '%s\n' "$good" | cli a unlock 2>/dev/null || rc=$?
[ $rc = 5 ] || fail "old passphrase still works"
sleep 1.1
printf '%s\n' "new-$marker" | cli a unlock >/dev/null || fail "new passphrase refused"
[ "$(cli a record list note | grep -c "$marker")" = 1 ] || fail "record unreadable after passwd"
say "passphrase changed; records still readable"

# A remote with a password: stored wrapped, never in clear.
cli a remote add office http://127.0.0.1:9/db --user worker --password <<<"pw-$marker" >/dev/null ||
	fail "remote add with password"
cli a remote list | grep -q "office.*basic" || fail "remote list"
cli a remote remove office >/dev/null || fail "remote remove"
cli a remote list | grep -q office && fail "remote still listed"

# SIGHUP: reload with auto-lock after 1 s.
echo "auto_lock_seconds = 1" >>"$T/a/conf"
kill -HUP "${dpid[a]}"
wait_for 5 grep -q "configuration reloaded" "$T/a/log" || fail "no reload"
cli a status >/dev/null
is_locked() { [ "$(status_of a locked)" = true ]; }
wait_for 5 is_locked || fail "auto-lock did not happen"
grep -q "locked (idle)" "$T/a/log" || fail "auto-lock not logged"
rc=0; cli a record list >/dev/null 2>&1 || rc=$?
[ $rc = 4 ] || fail "records readable while locked (exit $rc)"
say "SIGHUP reloaded the configuration; auto-lock wiped the keys after 1 s idle"

ms=$(stop_daemon a INT)
say "SIGINT: stopped in $ms ms"
no_sanitizer_report a
marker_absent "$T/a" "$T/tmp"
start_daemon a
[ "$(status_of a locked)" = true ] || fail "a restarted daemon must start locked"
ms=$(stop_daemon a TERM)
say "SIGTERM: stopped in $ms ms"
rc=0; cli a status >/dev/null 2>"$T/err" || rc=$?
[ $rc = 3 ] && grep -q "daemon is not running" "$T/err" || fail "daemon-down message: $rc"
no_sanitizer_report a

# A setup that fails before its key file is written (here: a folder where
# the key file goes) leaves nothing that stops the next one.
conf f
start_daemon f
mkdir "$T/f/data/key"
rc=0; printf 'first try\n' | cli f init >/dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "init over a folder at the key file's place: exit $rc, want 1"
rmdir "$T/f/data/key"
printf 'second try\n' | cli f init >/dev/null || fail "init after a failed one"
cli f lock >/dev/null
printf 'second try\n' | cli f unlock >/dev/null || fail "unlock after a failed first init"
cli f record add note '{"n":1}' >/dev/null || fail "write after a failed first init"
stop_daemon f >/dev/null
no_sanitizer_report f
say "a failed first setup leaves nothing behind for the next"
echo PASS
