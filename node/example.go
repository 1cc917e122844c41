package node

// ExampleConfig is the commented config that `patchmesh node init` writes; the
// same text is scripts/patchmesh-node.yaml (a test keeps them equal).
const ExampleConfig = `# patchmesh node configuration. Flags and PATCHMESH_* environment variables
# override what is set here (e.g. --source, PATCHMESH_SOURCE=url1,url2).

# Node name shown to the site and on the dashboard. Default: hostname + hash of data.
# name: shop-12-till-3

# Folder for the chunk store and the node's state.
data: /var/lib/patchmesh

# Folder where releases are installed; "current" points to the running one.
install_dir: /opt/patchmesh-app

# Channel to follow.
channel: stable

# More channels to follow, each into its own install folder (e.g. an engine's
# signature databases), sharing the chunk store, the site and the API.
# channels:
#   - name: signatures
#     install_dir: /opt/patchmesh-db
#     windows: []          # this channel's maintenance windows; zero: any time

# Pinned trust root (patchmesh trust init). Only releases signed by a threshold of
# its keys are ever applied; rotations published in the repository are followed.
trust: /etc/patchmesh/trust.json

# Update sources, tried in order; the next one on failure.
sources:
  - https://updates.example.com/patchmesh
  - ftp://mirror.example.com/patchmesh
  - file:///mnt/updates/patchmesh

# Extra CA certificates for https sources, and an HTTP proxy (default: the
# HTTP_PROXY, HTTPS_PROXY and NO_PROXY environment variables).
# ca_file: /etc/patchmesh/ca.pem
# proxy: http://proxy.example.com:3128

# Scheduled checks: every hour, spread by up to +/- 6 minutes.
check_interval: 1h
check_jitter: 6m

# Maintenance windows in this machine's local time: releases are downloaded and
# staged any time, and switched to only inside one (none: any time). A window
# crossing midnight belongs to the day it opens. patchmesh apply-now overrides.
# windows: ["Mon-Fri 22:00-05:00", "Sat+Sun"]

# Per-request timeout for small files, and the longest silence of a download.
# source_timeout: 30s
# idle_timeout: 15s

# Local API, dashboard and metrics. Loopback by default; any other address
# requires api_token.
api: 127.0.0.1:7780
# api_token: change-me

# Old releases kept besides current and previous, and the chunk store size above
# which chunks no kept release needs are deleted (0: delete them all).
keep: 2
quota_bytes: 0

# Chunks fetched at once. Each waits a round trip for its chunk (19 KiB on
# average), so far from its sources a node moves at most about concurrency x
# 19 KiB per round trip. A node alone (outside a site, or its one live member)
# widens it up to max_concurrency while more at once move more bytes a second
# (scripts/bench-rtt.sh); set max_concurrency to concurrency to keep it fixed.
concurrency: 16
max_concurrency: 128

# Background scrub: every stored chunk is read and checked against its CID at
# most this many bytes a second, once a day; a damaged one is dropped and
# fetched again. A negative rate turns it off (patchmesh node scrub runs one now).
# scrub_rate: 1048576
# scrub_interval: 24h

hooks:
  # Run before switching (cwd: the new release); a failure aborts the apply.
  # pre_activate: ["/usr/local/bin/app-drain"]
  # Run after switching; a failure or timeout switches back and marks the release bad.
  # health_check: ["curl", "-fsS", "http://127.0.0.1:8080/health"]
  timeout: 2m
  # Also run the hooks a signed manifest names (files inside the release).
  release_hooks: true

# The site mesh: nodes of one LAN share chunks so each crosses the WAN about once.
mesh:
  # Shared secret of the site (patchmesh keygen --site). Without it: no mesh.
  # site_key: /etc/patchmesh/site.key
  # Gossip addresses of other nodes; empty: find them by mDNS on the LAN.
  # join: ["10.1.2.3:7946"]
  gossip: 0.0.0.0:7946
  # libp2p listeners for chunk exchange (default: TCP and QUIC, any port).
  # p2p: ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
  # "dp" marks a distribution point: when any is alive, only they use the WAN.
  # role: dp
  # Check the sources at once when a site member has verified a newer
  # release of the channel, rather than at the next scheduled check.
  # catch_up: true
  # site_timeout: 5m
  # When the site fails to deliver a chunk, keep asking it this long before
  # fetching the chunk from the sources (within site_timeout).
  # fallback_delay: 30s
  # WAN fetches the whole site keeps in flight, shared by the members that
  # fetch from the WAN (the live distribution points if any, else all).
  # Far from the sources each waits a round trip for one chunk (19 KiB on
  # average): 32 make ~100 Mbit/s at 50 ms, until they widen (below). Set it
  # alike on every member.
  # wan_requests: 32
  # How far the site's WAN fetches widen past wan_requests while they take
  # about as long as the quickest (far from the sources, behind a fast
  # link). A full link queues and slows every fetch, so it never widens
  # there. Zero: 4 x wan_requests; at most wan_requests: no widening.
  # max_wan_requests: 128

# Byte-rate caps ("10Mbit", "500KB/s", "2MiB/s"; off: none). Schedules are
# windows in local time; the first that holds replaces the plain cap. A
# channel's publisher may set caps too: the tighter one holds.
# caps:
#   wan: 20Mbit                  # this node's reads from its sources
#   wan_schedule: ["Mon-Fri 08:00-18:00=2Mbit"]
#   wan_now: 50Mbit              # while an update asked for (update now) runs
#   site_wan: 10Mbit             # the whole site, shared by the members that fetch (DPs if any)
#   site_wan_schedule: ["Mon-Fri 08:00-18:00=4Mbit"]
#   lan_upload: 200Mbit          # chunk bytes served to site peers

# Serve the repository format to plain clients and other sites (tiered
# distribution points), fetching through the site on a miss.
# serve_repo: 0.0.0.0:8780

# Serve the current release's files by path over HTTP (Range, ETag,
# If-Modified-Since), so the vendor's own agents can "update from this HTTP
# server". index lists folders (wget --mirror needs it); tls_cert and tls_key
# serve HTTPS.
# serve_files:
#   addr: 0.0.0.0:8080
#   index: true
#   tls_cert: /etc/patchmesh/files.crt
#   tls_key: /etc/patchmesh/files.key

# A caching forward HTTP proxy for agents (http_proxy=http://node:3128), shared
# by the site: each allowed object is fetched from upstream once per site.
# proxy_cache:
#   addr: 0.0.0.0:3128
#   allow: [update.vendor.example, "*.cdn.vendor.example"]
#   max_object: 536870912
#   max_bytes: 2147483648
# The site's label in site and fleet views, and reports of the site's view to
# a fleet collector (patchmesh serve --report-tokens); only the site's elected
# member (its lowest-named alive one) sends them.
# report:
#   site: paris
#   to: http://10.0.0.1:8781/api/report
#   token_file: /etc/patchmesh/report.token
#   interval: 1m
`
