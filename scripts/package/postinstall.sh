#!/bin/sh
# patchmesh postinstall (deb and rpm): the node's system user, and the folders it
# writes owned by it. The service is not started: it needs a trust root and
# sources in /etc/patchmesh/node.yaml first.
set -e

if ! getent group patchmesh >/dev/null; then
  groupadd --system patchmesh
fi
if ! getent passwd patchmesh >/dev/null; then
  nologin=/usr/sbin/nologin
  [ -x "$nologin" ] || nologin=/sbin/nologin
  useradd --system --gid patchmesh --home-dir /var/lib/patchmesh --no-create-home \
    --shell "$nologin" --comment "patchmesh node" patchmesh
fi

# The data folder and the install folder are the node's; its config may hold
# an API token, so only root writes it and only the node's group reads it.
chown patchmesh:patchmesh /var/lib/patchmesh /opt/patchmesh-app
chmod 0750 /var/lib/patchmesh
chown root:patchmesh /etc/patchmesh /etc/patchmesh/node.yaml
chmod 0750 /etc/patchmesh
chmod 0640 /etc/patchmesh/node.yaml

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
cat <<'MSG'
patchmesh installed. To run the node:
  edit /etc/patchmesh/node.yaml (sources, trust root: /etc/patchmesh/trust.json)
  systemctl enable --now patchmesh-node
MSG
