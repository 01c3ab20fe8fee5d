#!/bin/sh
# A router joins two buses; hosts on either side reach each other through it.
#
#   10.0.1.2 (a) --bus1-- 10.0.1.1 (r) 10.0.2.1 --bus2-- (b) 10.0.2.2
#
# The router forwards (net.inet.ip.forwarding=1), decrements the TTL, and
# answers "time exceeded" when it runs out: the last ping shows that.
# Usage: sh scenarios/router.sh [WORKDIR]   (no root needed)
set -eu
if [ $# -gt 0 ]; then dir=$1 made=; else dir=$(mktemp -d) made=$dir; fi
a="unix://$dir/a.sock" r="unix://$dir/r.sock" b="unix://$dir/b.sock"
trap 'for n in $a $r $b; do RUMP_SERVER=$n rumpnet halt 2>/dev/null; done; [ -z "$made" ] || rm -rf "$made"; true' EXIT

for n in $a $r $b; do rumpnet server "$n"; done
RUMP_SERVER=$r rumpnet ifconfig shmif0 create linkstr "$dir/bus1" inet 10.0.1.1/24
RUMP_SERVER=$r rumpnet ifconfig shmif1 create linkstr "$dir/bus2" inet 10.0.2.1/24
RUMP_SERVER=$r rumpnet sysctl -w net.inet.ip.forwarding=1
RUMP_SERVER=$a rumpnet ifconfig shmif0 create linkstr "$dir/bus1" inet 10.0.1.2/24
RUMP_SERVER=$a rumpnet route add default 10.0.1.1
RUMP_SERVER=$b rumpnet ifconfig shmif0 create linkstr "$dir/bus2" inet 10.0.2.2/24
RUMP_SERVER=$b rumpnet route add default 10.0.2.1
RUMP_SERVER=$a rumpnet ping -c 3 -i 0.2 10.0.2.2
RUMP_SERVER=$a rumpnet ping -c 1 -T 1 -w 2 10.0.2.2 || true
RUMP_SERVER=$r rumpnet netstat -s -p ip
