#!/usr/bin/env bash
# bench-rtt.sh measures how round trips cap one node far from its seed: each of
# the node's --concurrency fetches waits a round trip for its chunk, so the node
# moves at most about concurrency x the mean chunk per round trip, whatever the
# link's bandwidth. A relay (scripts/rttrelay) adds the round trip on loopback,
# for machines without netem; bandwidth is not limited.
#
# For each concurrency it runs curl fetching every chunk file through the relay,
# as many at once (the baseline), then a fresh node with that --concurrency
# pulling the release through the relay, start to release current. The node may
# widen its fetches up to --max-concurrency (128) while that pays; the largest
# and the last size of its window are printed beside its time.
#
# Environment:
#   SIZE_MIB     release size in MiB (default 128)
#   RTT          round trip the relay adds, as Go spells it (default 50ms)
#   CONCURRENCY  the concurrencies to measure (default "16 64")
#   SITE=1       the node is the one member of a site of its own (a site key,
#                no peers, no mDNS): a branch office's one distribution point
#   SITE=N       (2 or more) a site of N members, all behind the relay; they
#                find each other first, then all update at once, and the time
#                is until every member runs the release; each member's CPU
#                seconds are printed after it
#   SITE_WAN_REQUESTS  with SITE=N, the members' --site-wan-requests
#   DPS          with SITE=N, the first DPS members are distribution points
#                (--role dp): only they fetch from the WAN (default 0)
#   TMPDIR       where the work folder goes (default /tmp)
#   PATCHMESH    a patchmesh binary to measure (default: built from this tree)
#   KEEP=1       keep the work folder
# Needs bash, GNU coreutils, findutils, awk, curl, jq and go. Loopback only.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-128}
RTT=${RTT:-50ms}
CONCURRENCY=${CONCURRENCY:-16 64}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/make-tree.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-rtt.XXXXXX")
BIN=$WORK/patchmesh
REPO=$WORK/repo
export NO_PROXY='*' no_proxy='*'

say() { printf '%-34s %s\n' "$1" "$2"; }
die() {
	echo "bench-rtt: $*" >&2
	exit 1
}
mbit() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", (s > 0 ? b * 8 / 1e6 / s : 0) }'; }

. "$ROOT/scripts/bench-lib.sh"
trap stop_and_clean EXIT

# sees_site API N: the node at API sees N members of its site alive, itself
# included.
sees_site() {
	[[ $(curl -sf --max-time 5 "http://$1/api/status" | jq '[.peers[] | select(.state == "alive")] | length') == "$2" ]]
}

# wait_current API PID LOG: until the node at API runs release 1.0.0.
wait_current() {
	local end=$((SECONDS + 1800))
	until [[ $(curl -sf --max-time 5 "http://$1/api/status" | jq -r '.current.version // "-"' 2>/dev/null) == 1.0.0 ]]; do
		kill -0 "$2" 2>/dev/null || die "node exited; see $3 (KEEP=1 keeps it)"
		((SECONDS < end)) || die "node did not run the release within 30 min"
		sleep 0.2
	done
}

if [[ -n ${PATCHMESH:-} ]]; then
	cp "$PATCHMESH" "$BIN"
else
	echo "building patchmesh"
	(cd "$ROOT" && go build -o "$BIN" ./cmd/patchmesh)
fi
(cd "$ROOT" && go build -o "$WORK/rttrelay" ./scripts/rttrelay)

make_tree "$WORK/tree" "$SIZE_MIB"
"$BIN" keygen --out "$WORK/release.key" >/dev/null
"$BIN" trust init --key "$WORK/release.key" --out "$WORK/trust.json" --repo "$REPO" >/dev/null
"$BIN" publish --repo "$REPO" --key "$WORK/release.key" --channel stable --version 1.0.0 "$WORK/tree" >/dev/null
rm -rf "$WORK/tree"
(cd "$REPO" && find chunks -type f -printf '%P %s\n') >"$WORK/chunks"
nchunks=$(wc -l <"$WORK/chunks")
bytes=$(awk '{ s += $2 } END { printf "%.0f", s }' "$WORK/chunks")
say "release" "$nchunks chunk files, $bytes bytes (mean $(awk -v b="$bytes" -v n="$nchunks" 'BEGIN { printf "%.1f", b / n / 1024 }') KiB)"

freeport
SEED=127.0.0.1:$PORT
freeport
SEEDAPI=127.0.0.1:$PORT
"$BIN" serve --repo "$REPO" --listen "$SEED" --api "$SEEDAPI" >"$WORK/seed.log" 2>&1 &
PIDS+=($!)
waitfor 20 curl -sf --max-time 2 "http://$SEED/channels/stable/head.json" -o /dev/null
freeport
FAR=127.0.0.1:$PORT
"$WORK/rttrelay" -listen "$FAR" -to "$SEED" -rtt "$RTT" >"$WORK/relay.log" 2>&1 &
PIDS+=($!)
waitfor 20 curl -sf --max-time 2 "http://$FAR/channels/stable/head.json" -o /dev/null
say "round trip added" "$RTT (scripts/rttrelay)"

awk -v u="http://$FAR/chunks/" '{ printf "url = \"%s%s\"\noutput = \"/dev/null\"\n", u, $1 }' "$WORK/chunks" >"$WORK/curl.cfg"
for c in $CONCURRENCY; do
	t0=$(now)
	curl -s --no-progress-meter --noproxy '*' --parallel --parallel-max "$c" --max-time 600 \
		-w '%{http_code}\n' -K "$WORK/curl.cfg" >"$WORK/curl.out"
	t=$(elapsed "$t0" "$(now)")
	bad=$(awk '$1 != 200' "$WORK/curl.out" | wc -l)
	((bad == 0)) || die "curl: $bad chunk requests did not answer 200"
	say "curl, $c at once" "$t s, $(mbit "$bytes" "$t") Mbit/s"

	rm -rf "$WORK"/node*
	N=${SITE:-0}
	if ((N < 2)); then
		site=()
		if ((N == 1)); then
			[[ -f $WORK/site.key ]] || "$BIN" keygen --site --out "$WORK/site.key" >/dev/null
			freeport
			site=(--site-key "$WORK/site.key" --gossip "127.0.0.1:$PORT" --mdns=false)
			freeport
			site+=(--p2p "/ip4/127.0.0.1/tcp/$PORT")
		fi
		freeport
		API=127.0.0.1:$PORT
		t0=$(now)
		"$BIN" node run --name rtt --data "$WORK/node/data" --install-dir "$WORK/node/app" --trust "$WORK/trust.json" \
			--source "http://$FAR" --api "$API" --check-interval 1h --concurrency "$c" "${site[@]}" >"$WORK/node-$c.log" 2>&1 &
		NODE=$!
		PIDS+=($NODE)
		wait_current "$API" "$NODE" "$WORK/node-$c.log"
		t=$(elapsed "$t0" "$(now)")
		kill "$NODE"
		wait "$NODE" 2>/dev/null || true
		# A node alone widens its fetches while that pays; it logs the sizes.
		window=$(grep -o 'msg="fetch window".*' "$WORK/node-$c.log" | grep -o 'peak=[0-9]* last=[0-9]*' || echo "fixed")
		say "node, --concurrency $c" "$t s to release current, $(mbit "$bytes" "$t") Mbit/s; window $window"
		continue
	fi
	# A site of N: its members first find each other, with their source not
	# yet answering (a relay started after), then all update at once.
	[[ -f $WORK/site.key ]] || "$BIN" keygen --site --out "$WORK/site.key" >/dev/null
	freeport
	LATE=127.0.0.1:$PORT
	apis=() nodes=() join=()
	for ((i = 1; i <= N; i++)); do
		freeport
		gossip=127.0.0.1:$PORT
		freeport
		p2p=/ip4/127.0.0.1/tcp/$PORT
		freeport
		apis+=("127.0.0.1:$PORT")
		"$BIN" node run --name "rtt-$i" --data "$WORK/node$i/data" --install-dir "$WORK/node$i/app" --trust "$WORK/trust.json" \
			--source "http://$LATE" --api "127.0.0.1:$PORT" --check-interval 1h --concurrency "$c" \
			--site-key "$WORK/site.key" --gossip "$gossip" --p2p "$p2p" --mdns=false "${join[@]}" \
			$( ((i <= ${DPS:-0})) && echo --role dp) \
			${SITE_WAN_REQUESTS:+--site-wan-requests "$SITE_WAN_REQUESTS"} >"$WORK/node$i-$c.log" 2>&1 &
		nodes+=($!)
		PIDS+=($!)
		((i > 1)) || join=(--join "$gossip") # all join the first
	done
	for api in "${apis[@]}"; do
		waitfor 90 sees_site "$api" "$N"
	done
	"$WORK/rttrelay" -listen "$LATE" -to "$SEED" -rtt "$RTT" >"$WORK/relay-$c.log" 2>&1 &
	RELAY=$!
	PIDS+=($RELAY)
	waitfor 20 curl -sf --max-time 2 "http://$LATE/channels/stable/head.json" -o /dev/null
	served0=$(curl -sf --max-time 5 "http://$SEEDAPI/api/status" | jq -r .served.chunk_bytes)
	t0=$(now)
	for api in "${apis[@]}"; do "$BIN" update --no-wait --api "$api" >/dev/null; done
	for ((i = 0; i < N; i++)); do
		wait_current "${apis[$i]}" "${nodes[$i]}" "$WORK/node$((i + 1))-$c.log"
	done
	t=$(elapsed "$t0" "$(now)")
	served=$(($(curl -sf --max-time 5 "http://$SEEDAPI/api/status" | jq -r .served.chunk_bytes) - served0))
	# Each member's CPU seconds since it started (joining included), the
	# distribution points first: they serve every chunk to the others.
	cpus=$(for p in "${nodes[@]}"; do awk -v t="$(getconf CLK_TCK)" '{ printf "%.1f ", ($14 + $15) / t }' "/proc/$p/stat"; done)
	kill "${nodes[@]}" "$RELAY"
	for p in "${nodes[@]}" "$RELAY"; do wait "$p" 2>/dev/null || true; done
	say "site of $N, --concurrency $c" "$t s until every member runs it, $(mbit "$bytes" "$t") Mbit/s; seed chunk bytes $(awk -v s="$served" -v b="$bytes" 'BEGIN { printf "%.2fx", s / b }') the release${SITE_WAN_REQUESTS:+; --site-wan-requests $SITE_WAN_REQUESTS}${DPS:+; $DPS distribution points}"
	say "member CPU-s" "$cpus"
done
