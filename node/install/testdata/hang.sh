#!/bin/sh
# A health check that hangs and leaves a descendant behind: writes its own pid to
# $1.leader and a forked child's to $1 (last, so $1 means "running"), then waits.
echo $$ >"$1.leader"
sleep 300 &
echo $! >"$1.tmp" && mv "$1.tmp" "$1"
wait
