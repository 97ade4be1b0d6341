#!/usr/bin/env bash
# bench/replicate/bench_replicate.sh: push and pull of N documents of 1 KB
# ciphertext (default 10,000) against one pouchdb-server on loopback, side
# by side in one run: fieldsync (replicate_tool), the PouchDB 9 replicator
# (node) and the floor (curl posting the same _bulk_docs batches of 1,000
# with new_edits:false; for pull one _changes plus _bulk_get batches of
# 1,000). Prints seconds, peak RSS of each process, and ratios.
# Needs FS_REPLICATE_TOOL, FS_HARNESS, FS_INTEROP_DIR (set by the wrapper
# CMake writes to build/bench/bench_replicate).
set -euo pipefail
N=${1:-10000}
if [ -z "${FS_TEST_COUCH_URL:-}" ]; then
	exec "$FS_HARNESS" -- "$0" "$@"
fi
export NODE_PATH="$FS_INTEROP_DIR/node_modules"
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/fs-bench-replicate.XXXXXX")
trap 'rm -rf "$work"' EXIT
U=$FS_TEST_COUCH_URL
for db in ours floor pouch; do curl -sf -o /dev/null -X PUT "$U/$db"; done

# measure NAME CMD...: runs CMD under GNU time; the command prints
# "<seconds> <docs>" of its replication, or nothing (then wall time counts).
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

# Warm-up: node's JIT makes a fresh server slower for whoever goes first.
mkdir -p "$work/warm"
"$FS_REPLICATE_TOOL" gen "$work/warm/w.db" 3000 "$work/warm"
curl -sf -o /dev/null -X PUT "$U/warmup"
"$FS_REPLICATE_TOOL" push "$work/warm/w.db" "$U/warmup" >/dev/null
"$FS_REPLICATE_TOOL" pull "$work/warm/w2.db" "$U/warmup" >/dev/null

"$FS_REPLICATE_TOOL" gen "$work/a.db" "$N" "$work"
args=()
for f in "$work"/floor-push-*.json; do
	[ ${#args[@]} -eq 0 ] || args+=(--next)
	args+=(-sf -o /dev/null -H 'Content-Type: application/json' --data-binary "@$f" "$U/floor/_bulk_docs")
done
measure push_floor curl "${args[@]}"
measure push_fieldsync "$FS_REPLICATE_TOOL" push "$work/a.db" "$U/ours"
measure push_pouchdb node "$here/pouch_bench.js" push "$U/pouch" "$N" "$work"

"$FS_REPLICATE_TOOL" bulkget "$work/a.db" "$work"
args=(-sf -o /dev/null "$U/ours/_changes?style=all_docs")
for f in "$work"/floor-pull-*.json; do
	args+=(--next -sf -o /dev/null -H 'Content-Type: application/json' --data-binary "@$f"
		"$U/ours/_bulk_get?revs=true")
done
measure pull_floor curl "${args[@]}"
measure pull_fieldsync "$FS_REPLICATE_TOOL" pull "$work/b.db" "$U/ours"
measure pull_pouchdb node "$here/pouch_bench.js" pull "$U/ours" "$work"

printf '\nbench_replicate: %d documents of 1 KB ciphertext, pouchdb-server on loopback\n' "$N"
printf '%-16s %9s %12s %14s\n' run seconds "peak RSS MB" "time / floor"
for dir in push pull; do
	for who in floor fieldsync pouchdb; do
		k=${dir}_$who
		awk -v n="$k" -v s="${secs[$k]}" -v f="${secs[${dir}_floor]}" -v r="${rss[$k]}" \
			'BEGIN { printf "%-16s %9.2f %12.1f %13.2fx\n", n, s, r / 1024, s / f }'
	done
	awk -v d="$dir" -v a="${secs[${dir}_pouchdb]}" -v b="${secs[${dir}_fieldsync]}" \
		'BEGIN { printf "%s: fieldsync is %.2fx as fast as PouchDB\n", d, a / b }'
done
