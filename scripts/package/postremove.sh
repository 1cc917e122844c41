#!/bin/sh
# patchmesh postremove: forget the unit. The data folder, the config and the
# patchmesh user stay (a purge of the .deb removes the config, not the data).
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
