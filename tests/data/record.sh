#!/usr/bin/env bash
# Re-record the replay captures in tests/data/ from scratch.
#
#   sudo tests/data/record.sh                # all captures
#   sudo tests/data/record.sh arp dhcp       # some of them
#
# Captures: arp ipv4 dhcp dhcp-nak ipv6.  "padding" prints a check (no file) that
# veth, bridge, tap and vxlan do not pad short Ethernet frames.
#
# Every peer is real: the Linux kernel, dnsmasq, ISC dhclient, radvd, in network
# namespaces named tpcap-* that this script creates and always deletes (trap on EXIT).
# The one frame-level change of our own: the 802.1Q tags in ipv4-mixed.pcap, inserted
# by a user-space access port (this kernel has no CONFIG_VLAN_8021Q), see record_ipv4.
# Each capture is one LAN: a Linux bridge br0 in namespace tpcap-lan, one namespace per
# host with a veth "eth0" whose peer "p-<host>" is a port of br0.  tcpdump runs on br0
# (promiscuous, so it sees every frame crossing the bridge, both directions).
# Only documentation addresses (192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32, and
# 203.0.113.0/24 as the VXLAN underlay of the padding check).
#
# Needs: iproute2, tcpdump, ethtool, socat, iputils-ping, iputils-arping, dnsmasq,
# isc-dhcp-client, radvd, python3 (Debian packages of those names).
set -euo pipefail

DATA=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN=$(mktemp -d /tmp/tpcap-run.XXXXXX)
PY=/usr/bin/python3
IP=$(command -v ip)

# Fixed MAC addresses (locally administered, recognisable).
MAC_SERVER=02:00:00:00:00:01   # DHCP server / IPv6 router
MAC_A=02:00:00:00:00:0a        # host A
MAC_B=02:00:00:00:00:14        # host B
MAC_CLIENT=02:00:00:00:00:64   # DHCP client
MAC_A5=02:00:00:00:05:0a       # host A's interface in VLAN 5 (ipv4-mixed only)
MAC_B5=02:00:00:00:05:14       # host B's interface in VLAN 5 (ipv4-mixed only)

BG_PIDS=()   # background processes started by this script (killed by pid on teardown)
CAP_PID=
CAP_FILE=

log() { printf '[record] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in ip tcpdump ethtool socat ping arping dnsmasq dhclient radvd "$PY"; do
  command -v "$tool" >/dev/null || die "missing $tool (see the Needs: line at the top)"
done
[[ $(id -u) == 0 ]] || die "run as root"

# ---------------------------------------------------------------- teardown

teardown() {
  local pid ns
  for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${BG_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  BG_PIDS=()
  CAP_PID=
  for ns in $(ip netns list | awk '$1 ~ /^tpcap-/ {print $1}'); do ip netns del "$ns"; done
}
cleanup() { teardown; rm -rf "$RUN"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers

# wait_until SECONDS WHAT CMD...: run CMD every 0.1 s until it succeeds; fail after SECONDS.
wait_until() {
  local secs=$1 what=$2; shift 2
  local deadline=$(( $(date +%s%N) + secs * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s%N) < deadline )) || die "timed out after ${secs}s waiting for: $what"
    sleep 0.1
  done
}

# Same, but only log a note on timeout (for frames the kernel may or may not repeat).
wait_maybe() {
  local secs=$1 what=$2; shift 2
  local deadline=$(( $(date +%s%N) + secs * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s%N) >= deadline )); then log "note: no $what within ${secs}s"; return 0; fi
    sleep 0.1
  done
}

ns() { local n=$1; shift; ip netns exec "tpcap-$n" "$@"; }

# new_ns NAME IPV6(0|1): namespace tpcap-NAME, loopback up, IPv6 on or off for every device.
new_ns() {
  ip netns add "tpcap-$1"
  ns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=$((1 - $2)) net.ipv6.conf.default.disable_ipv6=$((1 - $2))
  ip -n "tpcap-$1" link set lo up
}

# The LAN: bridge br0 in tpcap-lan, no STP, no multicast snooping (a plain switch), no IP.
lan_create() {
  new_ns lan 0
  ip -n tpcap-lan link add br0 type bridge stp_state 0 mcast_snooping 0
  ip -n tpcap-lan link set br0 up
}

# host_add NAME MAC IPV6(0|1): namespace tpcap-NAME with eth0 (MAC, still down) on br0.
host_add() {
  local name=$1 mac=$2 v6=$3
  new_ns "$name" "$v6"
  ip -n tpcap-lan link add "p-$name" type veth peer name eth0 netns "tpcap-$name"
  ip -n "tpcap-$name" link set eth0 address "$mac"
  # veth leaves UDP checksums to "hardware" (CHECKSUM_PARTIAL): the capture would show
  # unfinished checksums.  With tx checksumming off the kernel computes them in software.
  ns "$name" ethtool -K eth0 tx off >/dev/null
  ip -n tpcap-lan link set "p-$name" master br0 up
}

port_forwarding() { ip -n tpcap-lan -d link show "$1" | grep -q 'state forwarding'; }

# host_up NAME: eth0 up, then wait until its bridge port forwards.  (The port follows
# the veth carrier asynchronously: a frame sent in between is dropped by the bridge.)
host_up() {
  ip -n "tpcap-$1" link set eth0 up
  wait_until 5 "bridge port p-$1 forwarding" port_forwarding "p-$1"
}

# capture_start NAME [FILTER...]: tcpdump on br0 into $RUN/NAME; returns once it listens.
capture_start() {
  CAP_FILE=$RUN/$1; shift
  rm -f "$CAP_FILE"
  ip netns exec tpcap-lan tcpdump -i br0 -nn -U --immediate-mode -Z root -w "$CAP_FILE" "$@" 2>"$RUN/tcpdump.log" &
  CAP_PID=$!; BG_PIDS+=("$CAP_PID")
  wait_until 10 "tcpdump listening" grep -q 'listening on br0' "$RUN/tcpdump.log"
}

# capture_stop: stop tcpdump, check nothing was dropped, copy the file into tests/data.
capture_stop() {
  kill -TERM "$CAP_PID"
  wait "$CAP_PID" || true
  grep -q '^0 packets dropped by kernel' "$RUN/tcpdump.log" || die "tcpdump dropped packets: $(cat "$RUN/tcpdump.log")"
  tcpdump -nn -e -r "$CAP_FILE" >/dev/null 2>&1 || die "$CAP_FILE does not decode"
  local size; size=$(stat -c %s "$CAP_FILE")
  (( size < 100 * 1024 )) || die "$CAP_FILE is $size bytes"
  cp "$CAP_FILE" "$DATA/"
  log "wrote $(basename "$CAP_FILE"): $(tcpdump -nn -r "$CAP_FILE" 2>/dev/null | wc -l) frames, $size bytes"
}

# pcap_has MIN FILTER...: at least MIN frames matching FILTER captured so far.
pcap_has() {
  local min=$1; shift
  (( $(tcpdump -nn -r "$CAP_FILE" "$@" 2>/dev/null | wc -l) >= min ))
}

# pcap_grep_v MIN REGEX FILTER...: at least MIN matches of REGEX in the verbose decode.
pcap_grep_v() {
  local min=$1 re=$2; shift 2
  (( $(tcpdump -nn -v -r "$CAP_FILE" "$@" 2>/dev/null | grep -c -E -- "$re") >= min ))
}

neigh_state_is() {   # neigh_state_is HOST ADDR STATE
  ip -n "tpcap-$1" neigh show "$2" dev eth0 | grep -q "$3"
}

# ---------------------------------------------------------------- 1. ARP, kernel to kernel

record_arp() {
  log "arp-kernel.pcap"
  lan_create
  # A starts with a placeholder MAC (02:00:00:00:00:0b, never on the wire): the switch to
  # its real MAC is what makes A's kernel announce itself (see below).
  host_add a 02:00:00:00:00:0b 0
  host_add b "$MAC_B" 0
  ip -n tpcap-b addr add 192.0.2.20/24 dev eth0
  ip -n tpcap-a addr add 192.0.2.10/24 dev eth0
  # Links up before the capture (IPv4 sends nothing on link up with arp_notify=0).
  host_up b
  host_up a
  ns a sysctl -qw net.ipv4.conf.eth0.arp_notify=1
  capture_start arp-kernel.pcap

  # arp_notify=1: on a hardware address change A's kernel sends a gratuitous ARP request.
  ip -n tpcap-a link set eth0 address "$MAC_A"
  wait_until 5 "A's gratuitous ARP (arp_notify)" pcap_has 1 arp and ether src "$MAC_A"

  # A pings B: broadcast request from A, unicast reply from B, echo request/reply.
  ns a ping -c 1 -W 2 192.0.2.20 >/dev/null
  # B pings A. B learnt A from A's request (entry STALE); using it for the replies moves
  # it to DELAY, and 5 s later (delay_first_probe_time) B confirms A with a unicast
  # ARP request.  Wait for that exchange: B's entry for A becomes REACHABLE.
  ns b ping -c 1 -W 2 192.0.2.10 >/dev/null
  wait_until 20 "B's unicast ARP probe of A answered" neigh_state_is b 192.0.2.10 REACHABLE

  # User-space announcements from A (iputils arping, AF_PACKET): request form, reply form.
  ns a arping -q -U -c 1 -I eth0 192.0.2.10 || true
  ns a arping -q -A -c 1 -I eth0 192.0.2.10 || true
  # RFC 5227 probes (sender IP 0.0.0.0): a free address (nobody answers) ...
  ns a arping -q -D -c 1 -w 1 -I eth0 192.0.2.30 || true
  # ... and B's address: B's kernel defends it with a reply to A's MAC, target IP 0.0.0.0.
  ns a arping -q -D -c 1 -w 2 -I eth0 192.0.2.20 || true
  wait_until 5 "B's answer to the probe" pcap_has 1 arp and ether src "$MAC_B" and 'arp[6:2] = 2 and arp[24:4] = 0'

  capture_stop
  teardown
}

# ---------------------------------------------------------------- 2. IPv4 mixed frames

# A user-space 802.1Q access port (the kernel here has no CONFIG_VLAN_8021Q, so no vlan
# devices and no bridge VLAN filtering).  For each (access, trunk) pair: a frame received
# on the access port gets the tag 81 00 00 05 inserted after the source MAC and goes out
# on the trunk; a frame received on the trunk with VLAN ID 5 loses its tag and goes out
# on the access port.  Frame contents are otherwise the kernels' own.
write_vlan_port() {
  cat >"$RUN/vlan-access-port.py" <<'PY'
import socket, struct, select, sys
ETH_P_ALL, SOL_PACKET, PACKET_AUXDATA = 3, 263, 8
TP_STATUS_VLAN_VALID, PACKET_OUTGOING = 1 << 4, 4
VID = int(sys.argv[1])
peer, kind = {}, {}
def open_port(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((ifname, 0))
    return s
for pair in sys.argv[2:]:
    access, trunk = pair.split(':')
    a, t = open_port(access), open_port(trunk)
    peer[a], peer[t], kind[a], kind[t] = t, a, 'access', 'trunk'
print('ready', flush=True)
while True:
    ready, _, _ = select.select(list(peer), [], [])
    for s in ready:
        data, anc, _, addr = s.recvmsg(65536, socket.CMSG_SPACE(32))
        if addr[2] == PACKET_OUTGOING:
            continue
        tci = None   # the kernel hands a received tag over out of band (auxdata)
        for level, typ, cdata in anc:
            if level == SOL_PACKET and typ == PACKET_AUXDATA:
                status, _, _, _, _, vtci, _ = struct.unpack('IIIHHHH', cdata[:20])
                if status & TP_STATUS_VLAN_VALID:
                    tci = vtci
        if tci is None and data[12:14] == b'\x81\x00':
            tci, data = struct.unpack('!H', data[14:16])[0], data[:12] + data[16:]
        if kind[s] == 'access':
            if tci is not None:
                continue
            out = data[:12] + struct.pack('!HH', 0x8100, VID) + data[12:]
        else:
            if tci is None or tci & 0xfff != VID:
                continue
            out = data
        peer[s].send(out)
PY
}

record_ipv4() {
  log "ipv4-mixed.pcap"
  lan_create
  host_add a "$MAC_A" 0
  host_add b "$MAC_B" 0
  # VLAN 5: A's eth5 -- access port a5 [vlan-access-port.py] trunk ta -- ta-br on br0
  #         B's eth5 -- access port b5 [vlan-access-port.py] trunk tb -- tb-br on br0
  local h
  for h in a b; do
    ip -n tpcap-lan link add "${h}5" type veth peer name eth5 netns "tpcap-$h"
    ip -n tpcap-lan link add "t$h" type veth peer name "t$h-br"
    ip -n tpcap-lan link set "t$h-br" master br0 up
    ip -n tpcap-lan link set "t$h" up
    ip -n tpcap-lan link set "${h}5" up
    ns "$h" ethtool -K eth5 tx off >/dev/null
  done
  ip -n tpcap-a link set eth5 address "$MAC_A5"
  ip -n tpcap-b link set eth5 address "$MAC_B5"
  write_vlan_port
  ip netns exec tpcap-lan "$PY" "$RUN/vlan-access-port.py" 5 a5:ta b5:tb >"$RUN/vlan.log" 2>&1 &
  BG_PIDS+=($!)
  wait_until 10 "VLAN access port" grep -q ready "$RUN/vlan.log"

  ip -n tpcap-a addr add 192.0.2.10/24 dev eth0
  ip -n tpcap-b addr add 192.0.2.20/24 dev eth0
  ip -n tpcap-a addr add 198.51.100.10/24 dev eth5
  ip -n tpcap-b addr add 198.51.100.20/24 dev eth5
  for h in a b; do ip -n "tpcap-$h" link set eth5 up; host_up "$h"; done

  capture_start ipv4-mixed.pcap

  # B listens on UDP 9999 and joins 239.1.2.3 on eth0: IGMPv3 reports (IP option Router Alert).
  ip netns exec tpcap-b socat -u UDP4-RECV:9999,reuseaddr,ip-add-membership=239.1.2.3:eth0 OPEN:"$RUN/b-received",creat,append &
  local recv_pid=$!; BG_PIDS+=("$recv_pid")
  wait_until 5 "B's IGMP join" pcap_has 1 igmp
  send() { printf '%s' "$2" | ns a socat -u - "UDP4-DATAGRAM:$1,so-bindtodevice=eth0${3:+,$3}"; }
  send 255.255.255.255:9999 'tapemu limited broadcast' broadcast
  send 192.0.2.255:9999 'tapemu subnet broadcast' broadcast
  send 224.0.0.251:9999 'tapemu 224.0.0.251' ip-multicast-ttl=255
  send 239.1.2.3:9999 'tapemu 239.1.2.3' ip-multicast-ttl=1
  send 192.0.2.20:9999 'x'   # 1-byte UDP payload (ARP for B first)
  wait_until 5 "the 1-byte datagram at B" grep -q 'x$' "$RUN/b-received"
  ns a ping -c 1 -s 0 -W 2 192.0.2.20 >/dev/null   # ICMP echo without payload
  ns a ping -c 1 -R -W 2 192.0.2.20 >/dev/null     # IP option Record Route
  # Through VLAN 5 (tagged on the LAN): ARP and ICMP echo between A's and B's eth5.
  ns a ping -c 1 -W 2 -I eth5 198.51.100.20 >/dev/null
  wait_until 5 "tagged echo reply" pcap_has 1 vlan 5 and icmp and ether src "$MAC_B5"
  # B leaves the group: IGMPv3 state-change reports.
  kill "$recv_pid"; wait "$recv_pid" 2>/dev/null || true
  wait_maybe 5 "second IGMP leave report" pcap_has 4 igmp

  capture_stop
  teardown
}

# ---------------------------------------------------------------- 3. DHCP, dnsmasq and dhclient

dhcp_setup() {
  lan_create
  host_add server "$MAC_SERVER" 0
  host_add client "$MAC_CLIENT" 0
  ip -n tpcap-server addr add 192.0.2.1/24 dev eth0
  host_up server
  host_up client
  # dhclient -sf hook: put the leased address on eth0 (so that the unicast RENEW and the
  # RELEASE can be sent), nothing else: no routes, no resolv.conf.  Logs each call.
  cat >"$RUN/dhclient-hook" <<EOF
#!/bin/sh
echo "\$reason \${new_ip_address:-} \${old_ip_address:-}" >>"$RUN/dhclient-events"
case "\$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    if [ -n "\${old_ip_address:-}" ] && [ "\$old_ip_address" != "\$new_ip_address" ]; then
      $IP -4 addr flush dev "\$interface"
    fi
    $IP -4 addr replace "\$new_ip_address/\$new_subnet_mask" dev "\$interface" ;;
  EXPIRE|FAIL|RELEASE)
    $IP -4 addr flush dev "\$interface" ;;
esac
exit 0
EOF
  chmod 755 "$RUN/dhclient-hook"
  : >"$RUN/dhclient-events"
}

dnsmasq_start() {
  ip netns exec tpcap-server dnsmasq --keep-in-foreground --user=root --conf-file="$DATA/dhcp-dnsmasq.conf" \
    --dhcp-leasefile="$RUN/dnsmasq.leases" --pid-file="$RUN/dnsmasq.pid" \
    --log-facility="$RUN/dnsmasq.log" &
  BG_PIDS+=($!)
  wait_until 10 "dnsmasq ready" grep -q 'DHCP, IP range' "$RUN/dnsmasq.log"
}

DHCLIENT_PID=
dhclient_args() {   # dhclient's command line with this capture's files, into array DHCLIENT
  DHCLIENT=(ip netns exec tpcap-client dhclient -4 -v -cf "$DATA/dhcp-dnsmasq.dhclient.conf"
    -lf "$RUN/dhclient.leases" -pf "$RUN/dhclient.pid" -sf "$RUN/dhclient-hook")
}
dhclient_start() {   # foreground daemon (-d), one attempt (-1)
  dhclient_args
  "${DHCLIENT[@]}" -d -1 eth0 >>"$RUN/dhclient.log" 2>&1 &
  DHCLIENT_PID=$!; BG_PIDS+=("$DHCLIENT_PID")
}
event_count() { grep -c "^$1 " "$RUN/dhclient-events" || true; }
has_event() { (( $(event_count "$1") >= ${2:-1} )); }

record_dhcp() {
  log "dhcp-dnsmasq.pcap"
  dhcp_setup
  capture_start dhcp-dnsmasq.pcap
  dnsmasq_start

  # INIT: DISCOVER / OFFER / REQUEST / ACK.
  dhclient_start
  wait_until 30 "dhclient BOUND" has_event BOUND
  # RENEWING at T1 (10 s from dnsmasq, dhclient picks 0.75..1 of it): unicast REQUEST/ACK.
  wait_until 30 "dhclient RENEW" has_event RENEW
  # Stop without releasing (SIGTERM, like dhclient -x), start again with the lease file:
  # INIT-REBOOT, a broadcast REQUEST for the remembered address, and dnsmasq's ACK.
  kill -TERM "$DHCLIENT_PID"; wait "$DHCLIENT_PID" 2>/dev/null || true
  dhclient_start
  wait_until 30 "dhclient REBOOT" has_event REBOOT
  cp "$RUN/dhclient.leases" "$RUN/dhclient.leases.after-reboot"
  # DHCPRELEASE: dhclient -r stops the running client and releases the lease.
  dhclient_args
  "${DHCLIENT[@]}" -r eth0 >>"$RUN/dhclient.log" 2>&1
  wait "$DHCLIENT_PID" 2>/dev/null || true
  wait_until 10 "dnsmasq saw the RELEASE" grep -q DHCPRELEASE "$RUN/dnsmasq.log"
  wait_until 5 "RELEASE captured" pcap_grep_v 1 'DHCP-Message.*Release' udp port 67

  capture_stop
  cp "$RUN/dhclient.leases.after-reboot" "$DATA/dhcp-dnsmasq.dhclient.leases"
  # dnsmasq's log, without the syslog-style time stamps and pids.
  sed -E 's/^[A-Z][a-z]{2} +[0-9]+ [0-9:]{8} dnsmasq(-dhcp)?\[[0-9]+\]: /dnsmasq\1: /' "$RUN/dnsmasq.log" \
    >"$DATA/dhcp-dnsmasq.dnsmasq.log"
  teardown
}

record_dhcp_nak() {
  log "dhcp-dnsmasq-nak.pcap"
  dhcp_setup
  # A remembered lease for 192.0.2.250 (on the subnet, outside dnsmasq's range), still
  # valid: dhclient starts in INIT-REBOOT and asks for it; dnsmasq is authoritative: NAK.
  local t fmt='%w %Y/%m/%d %H:%M:%S'
  t=$(date +%s)
  cat >"$RUN/dhclient.leases" <<EOF
lease {
  interface "eth0";
  fixed-address 192.0.2.250;
  option subnet-mask 255.255.255.0;
  option routers 192.0.2.1;
  option dhcp-lease-time 600;
  option dhcp-message-type 5;
  option dhcp-server-identifier 192.0.2.1;
  renew $(date -u -d "@$((t + 300))" +"$fmt");
  rebind $(date -u -d "@$((t + 525))" +"$fmt");
  expire $(date -u -d "@$((t + 600))" +"$fmt");
}
EOF
  capture_start dhcp-dnsmasq-nak.pcap
  dnsmasq_start
  dhclient_start
  wait_until 30 "dnsmasq's NAK" grep -q DHCPNAK "$RUN/dnsmasq.log"
  # After the NAK, dhclient starts over: DISCOVER / OFFER / REQUEST / ACK.
  wait_until 60 "dhclient BOUND after the NAK" has_event BOUND
  wait_until 5 "ACK captured" pcap_grep_v 1 'DHCP-Message.*ACK' udp port 68
  kill -TERM "$DHCLIENT_PID"; wait "$DHCLIENT_PID" 2>/dev/null || true
  capture_stop
  teardown
}

# ---------------------------------------------------------------- 4. IPv6, radvd and SLAAC

v6_ready() {   # v6_ready HOST ADDR: ADDR configured and no longer tentative
  ip -n "tpcap-$1" -6 addr show dev eth0 -tentative | grep -q "inet6 $2/"
}
v6_default_route() { ip -n "tpcap-$1" -6 route show default | grep -q 'via fe80::ff:fe00:1 '; }

# ipv6_on HOST: enable IPv6 on the (already up) eth0.  For the IPv6 stack this is the
# interface coming up (addrconf NETDEV_UP): link-local address, DAD, MLD joins, RS.  It
# is used instead of the link-up itself, because frames sent before the bridge port has
# noticed the carrier are lost.
ipv6_on() { ns "$1" sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0; }

record_ipv6() {
  log "ipv6-radvd.pcap"
  lan_create
  host_add router "$MAC_SERVER" 1
  host_add a "$MAC_A" 1
  host_add b "$MAC_B" 1
  local h
  for h in router a b; do
    ns "$h" sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1
    host_up "$h"
  done
  ns router sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.conf.eth0.forwarding=1
  # B sends an unsolicited NA (to ff02::1, override) when DAD of each address completes.
  ns b sysctl -qw net.ipv6.conf.eth0.ndisc_notify=1

  capture_start ipv6-radvd.pcap

  # Router: IPv6 up (DAD, MLDv2), global address, then radvd.
  ipv6_on router
  ip -n tpcap-router addr add 2001:db8:1::1/64 dev eth0
  wait_until 10 "router link-local" v6_ready router fe80::ff:fe00:1
  wait_until 10 "router 2001:db8:1::1" v6_ready router 2001:db8:1::1
  ip netns exec tpcap-router radvd --nodaemon --config="$DATA/ipv6-radvd.conf" --pidfile="$RUN/radvd.pid" \
    --logmethod=logfile --logfile="$RUN/radvd.log" --debug=1 &
  local radvd_pid=$!; BG_PIDS+=("$radvd_pid")
  wait_until 10 "radvd's first RA" pcap_has 1 icmp6 and 'ip6[40] = 134'

  # Host A, then host B: DAD of the link-local address, MLDv2, RS, (unicast) RA,
  # SLAAC address 2001:db8:1::ff:fe00:X and its DAD.
  local id
  for h in a b; do
    [[ $h == a ]] && id=a || id=14
    ipv6_on "$h"
    wait_until 15 "$h link-local" v6_ready "$h" "fe80::ff:fe00:$id"
    wait_until 15 "$h SLAAC address" v6_ready "$h" "2001:db8:1::ff:fe00:$id"
    wait_until 15 "$h default route" v6_default_route "$h"
  done
  wait_maybe 5 "unsolicited NA from B for its global address" \
    pcap_grep_v 1 'neighbor advertisement.*tgt is 2001:db8:1::ff:fe00:14' icmp6 and ip6 dst ff02::1

  # A pings B's global address: NS to ff02::1:ff00:14, solicited NA, echo request/reply.
  ns a ping -6 -c 1 -W 2 2001:db8:1::ff:fe00:14 >/dev/null
  # B pings A.  B learnt A from A's NS (STALE); 5 s after first use B confirms A with a
  # unicast NS.  Wait for that: B's entry for A becomes REACHABLE.
  ns b ping -6 -c 1 -W 2 2001:db8:1::ff:fe00:a >/dev/null
  wait_until 20 "B's unicast NS to A answered" neigh_state_is b 2001:db8:1::ff:fe00:a REACHABLE

  # radvd stops: its last RA has router lifetime 0.
  kill -TERM "$radvd_pid"; wait "$radvd_pid" 2>/dev/null || true
  wait_until 5 "final RA (router lifetime 0)" pcap_grep_v 1 'router lifetime 0s' icmp6 and 'ip6[40] = 134'

  capture_stop
  teardown
}

# ---------------------------------------------------------------- padding check (no file)

# Do any of the software paths here pad frames to the 60-byte Ethernet minimum?
# Sends a 42-byte ARP request through each and prints the length that arrives.
check_padding() {
  log "padding check"
  # veth + bridge: length of A's ARP request as seen on br0
  lan_create
  host_add a "$MAC_A" 0
  host_add b "$MAC_B" 0
  ip -n tpcap-a addr add 192.0.2.10/24 dev eth0; host_up a
  ip -n tpcap-b addr add 192.0.2.20/24 dev eth0; host_up b
  capture_start padding-bridge.pcap arp
  ns a ping -c 1 -W 1 192.0.2.20 >/dev/null || true
  wait_until 5 "ARP on br0" pcap_has 2 arp
  kill -TERM "$CAP_PID"; wait "$CAP_PID" || true
  echo "veth+bridge: frame lengths on br0: $(tcpdump -nn -e -r "$CAP_FILE" 2>/dev/null | sed -E 's/.*, length ([0-9]+): .*/\1/' | tr '\n' ' ')"
  teardown
  # tap: read A's ARP request from a tap device's file descriptor
  new_ns a 0
  ns a "$PY" - <<'PY'
import fcntl, os, struct, subprocess, select
fd = os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH', b'tap0', 0x0002 | 0x1000))   # TUNSETIFF, IFF_TAP|IFF_NO_PI
subprocess.run('ip link set tap0 address 02:00:00:00:00:0a && ip addr add 192.0.2.10/24 dev tap0 && ip link set tap0 up', shell=True, check=True)
p = subprocess.Popen(['ping', '-c1', '-W1', '192.0.2.20'], stdout=subprocess.DEVNULL)
if select.select([fd], [], [], 3)[0]:
    frame = os.read(fd, 2048)
    print('tap: frame read from the fd: %d bytes: %s' % (len(frame), frame.hex()))
p.wait()
PY
  teardown
  # vxlan: the inner frame inside the UDP datagram (IP total length - 20 - 8 - 8)
  new_ns a 0; new_ns b 0
  ip -n tpcap-a link add u0 type veth peer name u0 netns tpcap-b
  ip -n tpcap-a addr add 203.0.113.1/24 dev u0; ip -n tpcap-b addr add 203.0.113.2/24 dev u0
  ip -n tpcap-a link set u0 up; ip -n tpcap-b link set u0 up
  ip -n tpcap-a link add vx0 type vxlan id 42 dstport 4789 local 203.0.113.1 remote 203.0.113.2
  ip -n tpcap-b link add vx0 type vxlan id 42 dstport 4789 local 203.0.113.2 remote 203.0.113.1
  ip -n tpcap-a link set vx0 address "$MAC_A"; ip -n tpcap-b link set vx0 address "$MAC_B"
  ip -n tpcap-a addr add 192.0.2.10/24 dev vx0; ip -n tpcap-b addr add 192.0.2.20/24 dev vx0
  ip -n tpcap-a link set vx0 up; ip -n tpcap-b link set vx0 up
  CAP_FILE=$RUN/padding-vxlan.pcap
  ip netns exec tpcap-b tcpdump -i u0 -nn -U --immediate-mode -Z root -w "$CAP_FILE" udp port 4789 2>"$RUN/tcpdump.log" &
  CAP_PID=$!; BG_PIDS+=("$CAP_PID")
  wait_until 10 "tcpdump listening" grep -q 'listening on u0' "$RUN/tcpdump.log"
  ns a ping -c 1 -W 1 192.0.2.20 >/dev/null || true
  wait_until 5 "VXLAN ARP" pcap_has 2 udp
  kill -TERM "$CAP_PID"; wait "$CAP_PID" || true
  echo "vxlan: inner frame lengths: $(tcpdump -nn -v -r "$CAP_FILE" 2>/dev/null | grep -o 'proto UDP (17), length [0-9]*' | awk '{print $NF - 36}' | head -2 | tr '\n' ' ')"
  teardown
}

# ---------------------------------------------------------------- main

teardown   # leftovers of an earlier, interrupted run
targets=("$@")
(( ${#targets[@]} )) || targets=(arp ipv4 dhcp dhcp-nak ipv6)
for t in "${targets[@]}"; do
  case $t in
    arp) record_arp ;;
    ipv4) record_ipv4 ;;
    dhcp) record_dhcp ;;
    dhcp-nak) record_dhcp_nak ;;
    ipv6) record_ipv6 ;;
    padding) check_padding ;;
    *) die "unknown capture $t (arp ipv4 dhcp dhcp-nak ipv6 padding)" ;;
  esac
done
log "done"
