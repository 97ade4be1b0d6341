#!/usr/bin/env bash
# tests/interop/harness.sh: starts the test peers a sync test needs, runs the
# test with their addresses in the environment, and stops everything it
# started (whole process groups) even when the test fails or is killed.
#
#   harness.sh [--server pouchdb|hub] [--tls] [--proxy] [--] command [args...]
#
# The server (default pouchdb), on 127.0.0.1 at a port chosen at run time:
#   FS_TEST_COUCH_URL   http://127.0.0.1:PORT
# pouchdb: pouchdb-server, in memory.
# hub: fieldsync-hub (binary in FS_HUB_BIN) over HTTPS with an admin token;
#   FS_TEST_COUCH_URL is a loopback nginx that adds the token, so tests
#   written for an open pouchdb-server run unchanged. Also exported:
#   FS_TEST_SERVER=hub FS_TEST_HUB_URL (https) FS_TEST_HUB_CA FS_TEST_HUB_PIN
#   FS_TEST_HUB_TOKEN FS_TEST_HUB_DIR
# --proxy: tests/faultproxy in front of it (binary path in FS_FAULTPROXY).
#   FS_TEST_PROXY_URL   http://127.0.0.1:PORT     FS_TEST_PROXY_CTL  control file
# --tls: nginx in front of it with a test CA made now; one port per certificate.
#   FS_TEST_TLS_CA  FS_TEST_TLS_URL_GOOD  FS_TEST_TLS_URL_WRONGHOST
#   FS_TEST_TLS_URL_UNTRUSTED  FS_TEST_TLS_URL_EXPIRED
#   FS_TEST_TLS_PIN_GOOD  FS_TEST_TLS_PIN_OTHER  (sha256//base64 of a public key)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
want_tls=0
want_proxy=0
server=pouchdb
while [ $# -gt 0 ]; do
	case $1 in
	--server) server=$2; shift ;;
	--tls) want_tls=1 ;;
	--proxy) want_proxy=1 ;;
	--) shift; break ;;
	*) break ;;
	esac
	shift
done
[ $# -gt 0 ] || { echo "usage: harness.sh [--tls] [--proxy] [--] command..." >&2; exit 2; }

node_bin=$(command -v node)
pouchdb_server="$here/node_modules/pouchdb-server/bin/pouchdb-server"
# 77: ctest reports the test as skipped (SKIP_RETURN_CODE), not passed.
[ -f "$pouchdb_server" ] || { echo "harness: pouchdb-server missing; run scripts/deps.sh" >&2; exit 77; }

work=$(mktemp -d "${TMPDIR:-/tmp}/fs-harness.XXXXXX")
pgids=()

cleanup() {
	local g
	for g in "${pgids[@]}"; do
		kill -TERM -- "-$g" 2>/dev/null || true
	done
	for g in "${pgids[@]}"; do
		for _ in $(seq 50); do
			kill -0 -- "-$g" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$g" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
# set -e stops silently on a failing assignment like port=$(free_port): say where.
trap 'echo "harness: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# A free loopback port: bind port 0, read the number, release it. Another
# process could take it before our server binds; start_* retries for that.
free_port() {
	"$node_bin" -e 'const s=require("net").createServer();
s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

# Waits until URL answers (any HTTP status) or the process group died.
wait_http() {
	local url=$1 pgid=$2 extra=${3:-}
	for _ in $(seq 150); do
		# The leader's pid first: until the child has run setsid its group
		# does not exist yet, and on a loaded machine that takes a while.
		kill -0 "$pgid" 2>/dev/null || kill -0 -- "-$pgid" 2>/dev/null || return 1
		# shellcheck disable=SC2086
		if curl -s -o /dev/null --max-time 2 $extra "$url"; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# Runs "$@" in its own session (own process group) with output to a log.
spawn() {
	local log=$1
	shift
	setsid "$@" >"$log" 2>&1 </dev/null &
	local pid=$!
	pgids+=("$pid")
	last_pgid=$pid
}

start_pouchdb() {
	local port tries
	mkdir -p "$work/pouchdb"
	for tries in 1 2 3; do
		port=$(free_port)
		# pouchdb-server writes config.json and log.txt into its cwd.
		spawn "$work/pouchdb/stdout.log" env --chdir="$work/pouchdb" "$node_bin" \
			"$pouchdb_server" --in-memory --host 127.0.0.1 --port "$port" --no-stdout-logs
		if wait_http "http://127.0.0.1:$port/" "$last_pgid"; then
			export FS_TEST_COUCH_URL="http://127.0.0.1:$port"
			couch_port=$port
			return 0
		fi
		echo "harness: pouchdb-server did not start on port $port (try $tries)" >&2
	done
	cat "$work/pouchdb/stdout.log" >&2 || true
	return 1
}

start_proxy() {
	local port tries
	[ -n "${FS_FAULTPROXY:-}" ] || { echo "harness: FS_FAULTPROXY not set" >&2; return 1; }
	export FS_TEST_PROXY_CTL="$work/proxy.ctl"
	echo pass >"$FS_TEST_PROXY_CTL"
	for tries in 1 2 3; do
		port=$(free_port)
		spawn "$work/proxy.log" "$FS_FAULTPROXY" 127.0.0.1 "$port" 127.0.0.1 "$couch_port" \
			"$FS_TEST_PROXY_CTL"
		if wait_http "http://127.0.0.1:$port/" "$last_pgid"; then
			export FS_TEST_PROXY_URL="http://127.0.0.1:$port"
			return 0
		fi
		echo "harness: fault proxy did not start on port $port (try $tries)" >&2
	done
	cat "$work/proxy.log" >&2 || true
	return 1
}

pin_of() { # sha256//base64 of the public key in a key file
	printf 'sha256//%s' "$(openssl pkey -in "$1" -pubout -outform der 2>/dev/null |
		openssl dgst -sha256 -binary | base64)"
}

make_certs() {
	local d=$work/tls
	mkdir -p "$d"
	(
		cd "$d"
		exec 2>certs.log
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj "/CN=fieldsync test CA" -keyout ca.key -out ca.pem
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj "/CN=fieldsync other CA" -keyout other-ca.key -out other-ca.pem
		leaf() { # name san ca-prefix [extra x509 args]
			local name=$1 san=$2 ca=$3
			shift 3
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
				-subj "/CN=$name" -keyout "$name.key" -out "$name.csr"
			printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
				"$san" >"$name.ext"
			openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" \
				-CAcreateserial -extfile "$name.ext" -out "$name.pem" "$@"
		}
		leaf good "DNS:localhost,IP:127.0.0.1" ca -days 2
		leaf wronghost "DNS:wrong.example" ca -days 2
		leaf untrusted "DNS:localhost,IP:127.0.0.1" other-ca -days 2
		# Expired: a certificate whose validity ended yesterday, made with
		# "openssl ca" because x509 -req cannot set a past end date.
		mkdir -p ca-db
		: >ca-db/index.txt
		echo 01 >ca-db/serial
		cat >ca.cnf <<-EOF
			[ca]
			default_ca = test
			[test]
			database = $d/ca-db/index.txt
			serial = $d/ca-db/serial
			new_certs_dir = $d/ca-db
			default_md = sha256
			policy = any
			copy_extensions = none
			[any]
			commonName = supplied
			[ext]
			subjectAltName = DNS:localhost,IP:127.0.0.1
			basicConstraints = CA:FALSE
		EOF
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-subj "/CN=expired" -keyout expired.key -out expired.csr
		openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr \
			-out expired.pem -extensions ext -notext \
			-startdate "$(date -u -d '-3 days' +%Y%m%d%H%M%SZ)" \
			-enddate "$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)"
	) || { cat "$d/certs.log" >&2; return 1; }
}

start_nginx() {
	local d=$work/tls n tries name
	make_certs
	for tries in 1 2 3; do
		declare -A ports=()
		{
			echo "worker_processes 1; daemon off; pid $d/nginx.pid; error_log $d/error.log warn;"
			echo "events { worker_connections 64; }"
			echo "http { access_log off;"
			echo "  client_body_temp_path $d/body; proxy_temp_path $d/proxy;"
			echo "  fastcgi_temp_path $d/fcgi; uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;"
			echo "  client_max_body_size 64m;"
			for name in good wronghost untrusted expired; do
				ports[$name]=$(free_port)
				echo "  server { listen 127.0.0.1:${ports[$name]} ssl; server_name localhost;"
				echo "    ssl_certificate $d/$name.pem; ssl_certificate_key $d/$name.key;"
				echo "    ssl_protocols TLSv1.2 TLSv1.3;"
				# A redirect to check that the client does not follow it.
				echo "    location = /redirect/db { return 301 https://example.org/db; }"
				echo "    location / { proxy_pass http://127.0.0.1:$couch_port;"
				echo "      proxy_http_version 1.1; proxy_set_header Connection \"\";"
				echo "      proxy_buffering off; proxy_read_timeout 300s; } }"
			done
			echo "}"
		} >"$d/nginx.conf"
		spawn "$d/nginx.log" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log"
		if wait_http "https://127.0.0.1:${ports[good]}/" "$last_pgid" "--cacert $d/ca.pem"; then
			export FS_TEST_TLS_CA="$d/ca.pem"
			for name in good wronghost untrusted expired; do
				export "FS_TEST_TLS_URL_${name^^}=https://127.0.0.1:${ports[$name]}"
			done
			FS_TEST_TLS_PIN_GOOD=$(pin_of "$d/good.key")
			FS_TEST_TLS_PIN_OTHER=$(pin_of "$d/untrusted.key")
			export FS_TEST_TLS_PIN_GOOD FS_TEST_TLS_PIN_OTHER
			return 0
		fi
		echo "harness: nginx did not start (try $tries)" >&2
		cat "$d/error.log" "$d/nginx.log" >&2 2>/dev/null || true
	done
	return 1
}

# The hub over HTTPS, and an nginx on plain loopback http in front of it
# that adds the admin token (the hub itself never serves plain http) and
# gzips answers for clients that ask, as a TLS proxy in front of a hub would
# (the hub does not compress; sync/'s compressed-answer test runs through it).
start_hub() {
	local d=$work/hub port tries out
	[ -x "${FS_HUB_BIN:-}" ] || { echo "harness: FS_HUB_BIN not set" >&2; return 1; }
	"$FS_HUB_BIN" init "$d" >"$work/hub.pin"
	FS_TEST_HUB_TOKEN=$("$FS_HUB_BIN" token add harness --admin --dir "$d")
	FS_TEST_HUB_PIN=$(cat "$work/hub.pin")
	export FS_TEST_HUB_TOKEN FS_TEST_HUB_PIN FS_TEST_HUB_DIR=$d FS_TEST_HUB_CA=$d/cert.pem
	export FS_TEST_SERVER=hub
	spawn "$work/hub.log" "$FS_HUB_BIN" serve "$d" --port 0
	local hub_pgid=$last_pgid
	for _ in $(seq 150); do
		out=$(grep -o 'https://[0-9.]*:[0-9]*' "$work/hub.log" || true)
		[ -n "$out" ] && break
		kill -0 "$hub_pgid" 2>/dev/null || kill -0 -- "-$hub_pgid" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$out" ] || { cat "$work/hub.log" >&2; return 1; }
	export FS_TEST_HUB_URL=$out
	mkdir -p "$d/nginx"
	for tries in 1 2 3; do
		port=$(free_port)
		cat >"$d/nginx/nginx.conf" <<-EOF
			worker_processes 1; daemon off; pid $d/nginx/nginx.pid;
			error_log $d/nginx/error.log warn;
			events { worker_connections 256; }
			http { access_log off;
			  client_body_temp_path $d/nginx/body; proxy_temp_path $d/nginx/proxy;
			  fastcgi_temp_path $d/nginx/fcgi; uwsgi_temp_path $d/nginx/uwsgi;
			  scgi_temp_path $d/nginx/scgi; client_max_body_size 64m;
			  gzip on; gzip_proxied any; gzip_types application/json; gzip_min_length 256;
			  server { listen 127.0.0.1:$port;
			    location / { proxy_pass $FS_TEST_HUB_URL;
			      proxy_ssl_verify on; proxy_ssl_trusted_certificate $d/cert.pem;
			      proxy_ssl_name localhost; proxy_ssl_server_name on;
			      proxy_set_header Authorization "Bearer $FS_TEST_HUB_TOKEN";
			      proxy_http_version 1.1; proxy_set_header Connection "";
			      proxy_buffering off; proxy_request_buffering off;
			      proxy_read_timeout 300s; } } }
		EOF
		spawn "$d/nginx/nginx.log" nginx -p "$d/nginx" -c "$d/nginx/nginx.conf" \
			-e "$d/nginx/error.log"
		if wait_http "http://127.0.0.1:$port/" "$last_pgid"; then
			export FS_TEST_COUCH_URL="http://127.0.0.1:$port"
			couch_port=$port
			return 0
		fi
		echo "harness: nginx for the hub did not start (try $tries)" >&2
		cat "$d/nginx/error.log" >&2 2>/dev/null || true
	done
	return 1
}

case $server in
pouchdb) start_pouchdb ;;
hub) start_hub ;;
*) echo "harness: unknown server $server" >&2; exit 2 ;;
esac
[ "$want_proxy" -eq 0 ] || start_proxy
[ "$want_tls" -eq 0 ] || start_nginx

rc=0
"$@" || rc=$?
exit "$rc"
