#!/usr/bin/env bash
# The tapemu namespace lab for shell use: the same topology as tests/src/lab/standard.rs, with
# fixed namespace names (LAB_NAME-lan, -host, -phone; LAB_NAME=tpdemo by default), for the README demo and
# the throughput benchmark. Needs root, iproute2, ethtool and dnsmasq.
#
#   source scripts/lab.sh
#   trap lab_down EXIT
#   lab_up vxlan                      # or: tap | udp | tcp2 | tcp4
#   ip netns exec "$LAB_PHONE" tapemu --link "$LAB_LINK_URL" ...
#   lab_down                          # idempotent
#
# Or run it: scripts/lab.sh up [LINK] | down | status
#
#  host: eth0 192.0.2.10/24 -- vhost [br0 192.0.2.1/24, 2001:db8:1::1/64, dnsmasq] (lan)
#  lan:  up0 198.51.100.1/24 ---- up0 198.51.100.2/24 :phone (underlay, MTU 1600)
#  lan:  lo 203.0.113.1, 2001:db8:ff::1 (off-link server behind the router)
#  link: vxlan  vxlan0 in br0 (VNI 42, port 4789)    LAB_LINK_URL=vxlan://198.51.100.1:4789?vni=42
#        tap    phone bridge brp <-veth-> br0          LAB_LINK_URL=tap://tap0 (lab_enslave_to_phone_bridge tap0)
#        udp    l2peer in lan, 198.51.100.1:7000      LAB_LINK_URL=udp://198.51.100.1:7000
#        tcp2/4 l2peer in lan, 198.51.100.1:7001      LAB_LINK_URL=tcp://198.51.100.1:7001?len=2|4
#
# Knobs (environment): LAB_NAME (namespace prefix; default tpdemo, so two labs with
# different names can run side by side), LAB_DIR (logs, leases; default /tmp/LAB_NAME), LAB_LEASE_TIME
# (seconds, >= 120; default 3600), LAB_DHCP_MTU (default 1500), LAB_L2PEER (path of the
# l2peer binary; default: found in the target directory, built if missing).

export LAB_NAME="${LAB_NAME:-tpdemo}"
export LAB_LAN="$LAB_NAME-lan"
export LAB_HOST="$LAB_NAME-host"
export LAB_PHONE="$LAB_NAME-phone"
export LAB_DIR="${LAB_DIR:-/tmp/$LAB_NAME}"
export LAB_DNSMASQ_LOG="$LAB_DIR/dnsmasq.log"
export LAB_LEASES="$LAB_DIR/dnsmasq.leases"
export LAB_LAN_ROUTER=192.0.2.1
export LAB_LAN_HOST=192.0.2.10
export LAB_OFFLINK_SERVER=203.0.113.1
export LAB_UNDERLAY_LAN=198.51.100.1
export LAB_UNDERLAY_PHONE=198.51.100.2
export LAB_LINK=""
export LAB_LINK_URL=""

_LAB_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_lab_log() { echo "lab: $*" >&2; }

# _lab_wait SECONDS WHAT CMD...: polls CMD every 0.1 s until it succeeds or time runs out.
_lab_wait() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    _lab_log "timed out after ${secs}s waiting for $what"
    return 1
}

# _lab_wait_ready SECONDS PID FILE PATTERN WHAT: waits for PATTERN in FILE; fails at once
# if PID exits first.
_lab_wait_ready() {
    local secs=$1 pid=$2 file=$3 pattern=$4 what=$5 i
    for ((i = 0; i < secs * 10; i++)); do
        grep -q -- "$pattern" "$file" 2>/dev/null && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            grep -q -- "$pattern" "$file" 2>/dev/null && return 0
            _lab_log "$what: the process exited; see $LAB_DIR"
            return 1
        fi
        sleep 0.1
    done
    _lab_log "timed out after ${secs}s waiting for $what"
    return 1
}

_lab_sysctl() { # NS KEY VALUE  (KEY as a /proc/sys path: net/ipv6/conf/br0/disable_ipv6)
    ip netns exec "$1" sh -c "echo $3 > /proc/sys/$2"
}

_lab_port() { # NS DEV BRIDGE: a bridge port has no addresses of its own
    _lab_sysctl "$1" "net/ipv6/conf/$2/disable_ipv6" 1 &&
        ip -n "$1" link set "$2" master "$3" up
}

_lab_find_l2peer() {
    if [ -n "${LAB_L2PEER:-}" ]; then
        echo "$LAB_L2PEER"
        return 0
    fi
    local t p
    for t in "${CARGO_TARGET_DIR:-}" "$_LAB_REPO/target"; do
        [ -n "$t" ] || continue
        for p in "$t/release/l2peer" "$t/debug/l2peer"; do
            [ -x "$p" ] && { echo "$p"; return 0; }
        done
    done
    _lab_log "building l2peer (cargo build --release -p tapemu-tests --bin l2peer)"
    (cd "$_LAB_REPO" && cargo build --quiet --release -p tapemu-tests --bin l2peer) >&2 || return 1
    echo "${CARGO_TARGET_DIR:-$_LAB_REPO/target}/release/l2peer"
}

_lab_build() { # LINK; runs under set -e in a subshell
    set -e
    local link=$1 ns l2peer
    mkdir -p "$LAB_DIR"
    for ns in "$LAB_LAN" "$LAB_HOST" "$LAB_PHONE"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done

    # lan: bridge, router addresses, off-link server; DAD off for the router only.
    _lab_sysctl "$LAB_LAN" net/ipv6/conf/all/accept_dad 0
    _lab_sysctl "$LAB_LAN" net/ipv6/conf/default/accept_dad 0
    ip -n "$LAB_LAN" link add br0 type bridge forward_delay 0 mcast_snooping 0
    ip -n "$LAB_LAN" addr add 192.0.2.1/24 dev br0
    ip -n "$LAB_LAN" addr add 2001:db8:1::1/64 dev br0 nodad
    ip -n "$LAB_LAN" link set br0 up
    ip -n "$LAB_LAN" addr add 203.0.113.1/32 dev lo
    ip -n "$LAB_LAN" addr add 2001:db8:ff::1/128 dev lo

    # host
    ip -n "$LAB_LAN" link add vhost type veth peer name eth0 netns "$LAB_HOST"
    _lab_port "$LAB_LAN" vhost br0
    ip -n "$LAB_HOST" addr add 192.0.2.10/24 dev eth0
    ip -n "$LAB_HOST" link set eth0 up
    ip -n "$LAB_HOST" route add default via 192.0.2.1

    # underlay; checksum offload off so user-space VXLAN receivers get final checksums
    ip -n "$LAB_LAN" link add up0 mtu 1600 type veth peer name up0 netns "$LAB_PHONE"
    ip -n "$LAB_LAN" addr add 198.51.100.1/24 dev up0
    ip -n "$LAB_LAN" link set up0 up
    ip -n "$LAB_PHONE" link set up0 mtu 1600
    ip -n "$LAB_PHONE" addr add 198.51.100.2/24 dev up0
    ip -n "$LAB_PHONE" link set up0 up
    ip netns exec "$LAB_LAN" ethtool -K up0 tx off >/dev/null
    ip netns exec "$LAB_PHONE" ethtool -K up0 tx off >/dev/null

    case "$link" in
    vxlan)
        ip -n "$LAB_LAN" link add vxlan0 type vxlan id 42 local 198.51.100.1 \
            remote 198.51.100.2 dstport 4789 dev up0
        ip -n "$LAB_LAN" link set vxlan0 mtu 1500
        _lab_port "$LAB_LAN" vxlan0 br0
        ;;
    tap)
        ip -n "$LAB_PHONE" link add brp type bridge forward_delay 0 mcast_snooping 0
        _lab_sysctl "$LAB_PHONE" net/ipv6/conf/brp/disable_ipv6 1
        ip -n "$LAB_PHONE" link set brp arp off
        ip -n "$LAB_PHONE" link set brp up
        ip -n "$LAB_LAN" link add vphone type veth peer name lanp netns "$LAB_PHONE"
        _lab_port "$LAB_LAN" vphone br0
        _lab_port "$LAB_PHONE" lanp brp
        ;;
    esac

    ip netns exec "$LAB_LAN" setsid dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts \
        --port=0 --user=root --interface=br0 --bind-interfaces \
        --dhcp-range="192.0.2.100,192.0.2.200,255.255.255.0,${LAB_LEASE_TIME:-3600}s" \
        --dhcp-option=option:router,192.0.2.1 \
        --dhcp-option=option:dns-server,192.0.2.53 \
        --dhcp-option=option:domain-name,lab.example \
        --dhcp-option=option:domain-search,lab.example \
        --dhcp-option=option:mtu,"${LAB_DHCP_MTU:-1500}" \
        --dhcp-authoritative --no-ping --log-dhcp --log-facility="$LAB_DNSMASQ_LOG" \
        --pid-file="$LAB_DIR/dnsmasq.pid" --dhcp-leasefile="$LAB_LEASES" \
        --enable-ra --dhcp-range=2001:db8:1::,ra-only \
        >"$LAB_DIR/dnsmasq.out" 2>&1 </dev/null &
    _lab_wait_ready 10 $! "$LAB_DNSMASQ_LOG" "DHCP, IP range" "dnsmasq to start"

    case "$link" in
    udp | tcp2 | tcp4)
        l2peer=$(_lab_find_l2peer)
        [ -x "$l2peer" ] || { _lab_log "l2peer binary $l2peer is not executable"; return 1; }
        local mode=(--udp 198.51.100.1:7000)
        [ "$link" = tcp2 ] && mode=(--tcp 198.51.100.1:7001 --len 2)
        [ "$link" = tcp4 ] && mode=(--tcp 198.51.100.1:7001 --len 4)
        ip netns exec "$LAB_LAN" setsid "$l2peer" --tap l2p0 "${mode[@]}" --master br0 \
            >"$LAB_DIR/l2peer.out" 2>"$LAB_DIR/l2peer.err" </dev/null &
        _lab_wait_ready 10 $! "$LAB_DIR/l2peer.out" "^ready$" "l2peer to be ready"
        ;;
    esac
}

# lab_up [vxlan|tap|udp|tcp2|tcp4]: (re)creates the lab; tears down any earlier one first.
lab_up() {
    local link=${1:-vxlan} url
    case "$link" in
    vxlan) url="vxlan://198.51.100.1:4789?vni=42" ;;
    tap) url="tap://tap0" ;;
    udp) url="udp://198.51.100.1:7000" ;;
    tcp2) url="tcp://198.51.100.1:7001?len=2" ;;
    tcp4) url="tcp://198.51.100.1:7001?len=4" ;;
    *)
        _lab_log "usage: lab_up [vxlan|tap|udp|tcp2|tcp4]"
        return 2
        ;;
    esac
    if [ "$(id -u)" != 0 ]; then
        _lab_log "needs root"
        return 1
    fi
    lab_down
    rm -rf "$LAB_DIR"
    # Not `if ! (...)`: bash ignores set -e inside a subshell used as a condition.
    local rc errexit=0
    [[ $- == *e* ]] && errexit=1
    set +e
    (_lab_build "$link")
    rc=$?
    ((errexit)) && set -e
    if [ "$rc" != 0 ]; then
        _lab_log "lab_up $link failed; logs in $LAB_DIR"
        lab_down
        return 1
    fi
    export LAB_LINK="$link" LAB_LINK_URL="$url"
    _lab_log "up: $link, phone link $LAB_LINK_URL, logs in $LAB_DIR"
}

# lab_down: kills every process in the lab's namespaces and deletes them. Idempotent,
# safe from a trap; leaves $LAB_DIR for inspection.
lab_down() {
    local ns pids i
    for ns in "$LAB_PHONE" "$LAB_HOST" "$LAB_LAN"; do
        [ -e "/run/netns/$ns" ] || continue
        pids=$(ip netns pids "$ns" 2>/dev/null)
        if [ -n "$pids" ]; then
            kill -TERM $pids 2>/dev/null
            for ((i = 0; i < 30; i++)); do
                pids=$(ip netns pids "$ns" 2>/dev/null)
                [ -z "$pids" ] && break
                sleep 0.1
            done
            [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
        fi
        ip netns del "$ns" 2>/dev/null
    done
    LAB_LINK=""
    LAB_LINK_URL=""
    return 0
}

# lab_lease_for_mac MAC: prints the address dnsmasq leased to MAC (exit 1 if none).
lab_lease_for_mac() {
    local mac
    mac=$(echo "$1" | tr 'A-F' 'a-f')
    awk -v m="$mac" 'tolower($2) == m { print $3; found = 1 } END { exit !found }' "$LAB_LEASES" 2>/dev/null
}

# lab_wait_lease MAC [SECONDS]: waits for a lease for MAC, then prints it.
lab_wait_lease() {
    _lab_wait "${2:-30}" "a lease for $1" lab_lease_for_mac "$1" && lab_lease_for_mac "$1"
}

# lab_enslave_to_phone_bridge DEV [SECONDS]: (tap link) waits for DEV in the phone, then
# adds it to the phone bridge and sets it up.
lab_enslave_to_phone_bridge() {
    _lab_wait "${2:-10}" "$1 to appear in $LAB_PHONE" ip -n "$LAB_PHONE" link show dev "$1" &&
        _lab_port "$LAB_PHONE" "$1" brp
}

# lab_ping_from_host ADDR / lab_ping_from_phone ADDR: 3 pings, 0.2 s apart.
lab_ping_from_host() { ip netns exec "$LAB_HOST" ping -n -c 3 -i 0.2 -W 2 -w 5 "$1"; }
lab_ping_from_phone() { ip netns exec "$LAB_PHONE" ping -n -c 3 -i 0.2 -W 2 -w 5 "$1"; }

lab_status() {
    local ns
    for ns in "$LAB_LAN" "$LAB_HOST" "$LAB_PHONE"; do
        if [ -e "/run/netns/$ns" ]; then
            echo "== $ns"
            ip -n "$ns" -br addr
        fi
    done
    [ -f "$LAB_LEASES" ] && { echo "== leases"; cat "$LAB_LEASES"; }
    return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    case "${1:-}" in
    up) lab_up "${2:-vxlan}" && echo "LAB_LINK_URL=$LAB_LINK_URL" ;;
    down) lab_down ;;
    status) lab_status ;;
    *)
        echo "usage: $0 up [vxlan|tap|udp|tcp2|tcp4] | down | status" >&2
        exit 2
        ;;
    esac
fi
