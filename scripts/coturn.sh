# shellcheck shell=bash
# coturn (Debian's `turnserver`) for the network bench and the system tests, sourced by them:
#   start_coturn NETNS DIR [PORT]
# starts it on 127.0.0.1:PORT (default 3478) inside network namespace NETNS, taking the TURN REST credentials the
# signaling server issues (`use-auth-secret`) with a fresh random secret in DIR/turn-secret (the file the server's
# and the demo's --turn-secret-file read; never on a command line), relaying between loopback addresses. Sets
# COTURN_PID and returns once the port is bound; fails when coturn is missing.
#   COTURN_IP=ADDR        listen and relay on ADDR instead of 127.0.0.1
#   COTURN_TLS_PORT=PORT  also take TURN over TLS on PORT (over TCP, plain TURN is taken on both ports), with a
#                         fresh self-signed certificate for ADDR in DIR/turn-cert.pem
#   stop_coturn DIR
# stops the coturn started with DIR, by its config file's path: the PID of `ip netns exec … &` is not always the
# server's (left running, each bench scenario's coturn outlived its namespace).
start_coturn() {
    local netns="$1" dir="$2" port="${3:-3478}" ip="${COTURN_IP:-127.0.0.1}" tls="no-tls"
    command -v turnserver >/dev/null || { echo "coturn missing: scripts/setup.sh installs it" >&2; return 1; }
    head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$dir/turn-secret"
    if [ -n "${COTURN_TLS_PORT:-}" ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "/CN=$ip" \
            -addext "subjectAltName=IP:$ip" -keyout "$dir/turn-key.pem" -out "$dir/turn-cert.pem" 2>/dev/null || return 1
        tls="tls-listening-port=$COTURN_TLS_PORT"$'\n'"cert=$dir/turn-cert.pem"$'\n'"pkey=$dir/turn-key.pem"
    fi
    cat >"$dir/turnserver.conf" <<EOF_CONF
listening-ip=$ip
relay-ip=$ip
listening-port=$port
use-auth-secret
static-auth-secret=$(cat "$dir/turn-secret")
realm=peerdesk.test
allow-loopback-peers
$tls
no-dtls
no-cli
no-tcp-relay
userdb=$dir/turndb
pidfile=$dir/turnserver.pid
log-file=stdout
simple-log
EOF_CONF
    ip netns exec "$netns" turnserver -c "$dir/turnserver.conf" >"$dir/coturn.log" 2>&1 &
    COTURN_PID=$!
    for _ in $(seq 50); do
        if ip netns exec "$netns" ss -lun | grep -q "$ip:$port" \
            && { [ -z "${COTURN_TLS_PORT:-}" ] || ip netns exec "$netns" ss -ltn | grep -q "$ip:$COTURN_TLS_PORT"; }; then
            return 0
        fi
        sleep 0.1
    done
    echo "coturn did not bind $ip:$port (see $dir/coturn.log)" >&2
    return 1
}

stop_coturn() {
    pkill -f -- "-c $1/turnserver.conf" 2>/dev/null || true
}
