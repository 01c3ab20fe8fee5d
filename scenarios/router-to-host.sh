#!/bin/sh
# The man pages' picture: two nodes on a bus, a router, and this host behind a tap.
#
#   10.0.0.2 (a) --+
#                  bus -- 10.0.0.1 (r) 192.168.77.1 virt0 --tap0-- 192.168.77.2 (this host)
#   10.0.0.3 (b) --+
#
# The router runs the gateway profile: it forwards, and gives what it sends
# out of virt0 its own address there (net.inet.ip.nat=1), so this host needs
# no route back to 10.0.0.0/24. The tap is made once, as root, for you:
#
#   sudo sh -c "ip tuntap add tap0 mode tap user $USER && ip addr add 192.168.77.2/24 dev tap0 && ip link set tap0 up"
#
# (and /dev/net/tun must be readable by you: most systems ship it 0666).
# Usage: sh scenarios/router-to-host.sh [WORKDIR]   (TAP=tap1 names another tap; HOST its address)
set -eu
tap=${TAP:-tap0} host=${HOST:-192.168.77.2}
if [ $# -gt 0 ]; then dir=$1 made=; else dir=$(mktemp -d) made=$dir; fi
a="unix://$dir/a.sock" b="unix://$dir/b.sock" r="unix://$dir/r.sock"
trap 'for n in $a $b $r; do RUMP_SERVER=$n rumpnet halt 2>/dev/null; done; [ -z "$made" ] || rm -rf "$made"; true' EXIT

rumpnet server -s gateway "$r"
rumpnet server "$a"
rumpnet server "$b"
RUMP_SERVER=$r rumpnet ifconfig shmif0 create linkstr "$dir/bus" inet 10.0.0.1/24
RUMP_SERVER=$r rumpnet ifconfig virt0 create linkstr "$tap" inet 192.168.77.1/24
RUMP_SERVER=$a rumpnet ifconfig shmif0 create linkstr "$dir/bus" inet 10.0.0.2/24
RUMP_SERVER=$a rumpnet route add default 10.0.0.1
RUMP_SERVER=$b rumpnet ifconfig shmif0 create linkstr "$dir/bus" inet 10.0.0.3/24
RUMP_SERVER=$b rumpnet route add default 10.0.0.1
RUMP_SERVER=$a rumpnet ping -c 3 -i 0.2 "$host"
RUMP_SERVER=$b rumpnet ping -c 3 -i 0.2 "$host"
RUMP_SERVER=$a rumpnet ping -c 1 10.0.0.3
RUMP_SERVER=$r rumpnet netstat -s -p nat
