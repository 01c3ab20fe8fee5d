#!/bin/sh
# Two nodes on one shmif bus ping each other: the first lesson.
# Usage: sh scenarios/two-nodes-ping.sh [WORKDIR]   (no root needed)
set -eu
if [ $# -gt 0 ]; then dir=$1 made=; else dir=$(mktemp -d) made=$dir; fi
a="unix://$dir/a.sock" b="unix://$dir/b.sock"
trap 'RUMP_SERVER=$a rumpnet halt 2>/dev/null; RUMP_SERVER=$b rumpnet halt 2>/dev/null; [ -z "$made" ] || rm -rf "$made"; true' EXIT

rumpnet server "$a"
rumpnet server "$b"
RUMP_SERVER=$a rumpnet ifconfig shmif0 create linkstr "$dir/bus" inet 10.0.0.1/24
RUMP_SERVER=$b rumpnet ifconfig shmif0 create linkstr "$dir/bus" inet 10.0.0.2/24
RUMP_SERVER=$a rumpnet ping -c 3 -i 0.2 10.0.0.2
