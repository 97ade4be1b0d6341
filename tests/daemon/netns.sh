#!/usr/bin/env bash
# tests/daemon/netns.sh: the daemon runs in a network namespace joined to
# this one by a veth pair; the server (pouchdb-server behind nginx with TLS,
# certificate made now for the veth address) is outside. Link down: records
# stay queued. Link up: netlink wakes the loop and the queue is empty within
# 2 s, with no command. Needs root (ip netns); 77 (skipped) otherwise.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] && command -v ip >/dev/null && command -v nginx >/dev/null || exit 77
ns="fsdt$$"
hv="fsh$$"
nv="fsn$$"
net="10.213.$(($$ % 250))"
lib_extra_cleanup='ip netns del "$ns" 2>/dev/null || true; ip link del "$hv" 2>/dev/null || true'
ip netns add "$ns" || exit 77
ip link add "$hv" type veth peer name "$nv"
ip link set "$nv" netns "$ns"
ip addr add "$net.1/24" dev "$hv"
ip link set "$hv" up
ip -n "$ns" addr add "$net.2/24" dev "$nv"
ip -n "$ns" link set lo up
ip -n "$ns" link set "$nv" up

# The server: pouchdb-server on loopback, nginx with TLS on the veth address.
cport=$(free_port)
start_pouch "$cport"
curl -sf -X PUT "http://127.0.0.1:$cport/team" >/dev/null || fail "create db"
d=$T/tls
mkdir -p "$d"
(
	cd "$d"
	exec 2>certs.log
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=fieldsync netns test CA" -keyout ca.key -out ca.pem
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=hub" \
		-keyout hub.key -out hub.csr
	printf 'subjectAltName=IP:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
		"$net.1" >hub.ext
	openssl x509 -req -in hub.csr -CA ca.pem -CAkey ca.key -CAcreateserial -extfile hub.ext \
		-out hub.pem -days 2
) || fail "certificates: $(cat "$d/certs.log")"
tport=$(free_port)
cat >"$d/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $d/nginx.pid; error_log $d/error.log warn;
events { worker_connections 64; }
http { access_log off;
  client_body_temp_path $d/body; proxy_temp_path $d/proxy; fastcgi_temp_path $d/fcgi;
  uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi; client_max_body_size 64m;
  server { listen $net.1:$tport ssl; ssl_certificate $d/hub.pem; ssl_certificate_key $d/hub.key;
    location / { proxy_pass http://127.0.0.1:$cport; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_buffering off; proxy_read_timeout 300s; } } }
NGINX
setsid nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" >"$d/nginx.log" 2>&1 </dev/null &
pgids+=($!)
wait_for 10 curl -sf -o /dev/null --cacert "$d/ca.pem" "https://$net.1:$tport/" ||
	fail "nginx did not start: $(cat "$d/error.log")"

conf a "retry_max_seconds = 300"
start_daemon a ip netns exec "$ns"
printf 'pw\n' | cli a init >/dev/null || fail "init"
cli a remote add office "https://$net.1:$tport/team" --ca "$d/ca.pem" >/dev/null || fail "remote add"
is_online() { [ "$(status_of a online)" = true ]; }
wait_for 15 is_online || fail "not online through the veth: $(cli a status)"
wait_for 15 queue_empty a || fail "the device's team documents were not pushed"
say "online over https through the veth pair"

ip -n "$ns" link set "$nv" down
for i in 1 2 3 4 5; do
	cli a record add visit "{\"note\":\"$marker $i\"}" >/dev/null || fail "record add"
done
sleep 3 # past the 2 s push delay: the push fails, the retry is scheduled
[ "$(status_of a queued)" = 5 ] || fail "records should stay queued while the link is down"
[ "$(status_of a online)" = false ] || fail "should be offline"
say "link down: 5 records queued, offline"

t0=$(now_ms)
ip -n "$ns" link set "$nv" up
wait_for 10 queue_empty a || fail "queue did not drain after link up"
dt=$(($(now_ms) - t0))
say "link up: queue empty after $dt ms (limit 2000)"
[ "$dt" -lt 2000 ] || fail "took $dt ms"
curl -sf "http://127.0.0.1:$cport/team/_all_docs" >"$T/all.json"
[ "$(records_in "$T/all.json")" = 5 ] || fail "server lacks records"
stop_daemon a >/dev/null
no_sanitizer_report a
echo PASS
