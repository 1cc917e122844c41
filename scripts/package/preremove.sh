#!/bin/sh
# patchmesh preremove: stop the node before its binary goes. deb passes
# "remove" (not "upgrade"); rpm passes 0 on the last erase, 1 on an upgrade.
set -e
case "$1" in
  remove|0)
    if [ -d /run/systemd/system ]; then
      systemctl disable --now patchmesh-node.service >/dev/null 2>&1 || true
    fi
    ;;
esac
