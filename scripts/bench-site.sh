#!/usr/bin/env bash
# bench-site.sh measures a site behind a slow WAN link against the brief's targets:
#   - WAN bytes per site per release: at most 1.02x the unique chunk bytes;
#   - time until every node of the site holds the release: at most 1.1x the time
#     one node alone needs over the same link (measured first, in the same run).
#
# Topology (network namespaces created here, removed on exit):
#
#   pmb-wan: the seed (patchmesh serve), 10.99.0.1 on veth pmb-w0
#      |  WAN: tc tbf RATE on both ends of the veth pair
#   pmb-site: every node, 10.99.0.2 on veth pmb-s0; the nodes talk to each other
#             on this namespace's own loopback (the LAN, unshaped)
#
# One shared LAN namespace keeps the setup small; the seed is reachable from the
# site only through the shaped veth. Addresses exist only inside the namespaces.
#
# Rows: the raw link (curl of one big file, and of every chunk 16 at a time),
# one node without a mesh (T1, the baseline), then a site of each size in NODES.
# Each row uses a fresh repository and fresh nodes: the nodes start, see each
# other, the release is published, and one curl asks every node to update at once
# (POST /api/update?wait=1, what `patchmesh update` does); the time, by curl's
# clock, runs from the requests to the last node's answer that the release is
# applied (ask_updates in bench-procs.sh).
#
# Environment:
#   SIZE_MIB  release size in MiB (default 64)
#   RATE      WAN rate, as tc spells it (default 20mbit)
#   DELAY     one-way WAN delay added with netem, e.g. 20ms (default none)
#   RELAY_RTT a round trip added by scripts/rttrelay, run in pmb-site between
#             the site and the seed, e.g. 50ms: a far link where netem is not
#             at hand (default none; needs go)
#   NODES     site sizes to measure (default "5 20 1")
#   NODE_ARGS extra arguments of every `patchmesh node run`, e.g. "--concurrency 32"
#   NODE_ENV  extra environment of every node, e.g. "GOMAXPROCS=1"
#   BIN       patchmesh binary to use (default: built from this tree)
#   TMPDIR    where the work folder goes (default /tmp)
#   PERF=1    record every CPU (perf record -a -g) during each mesh run's
#             update to $WORK/SLUG/perf.data; implies KEEP=1
#   KEEP=1    keep the work folder (logs, repositories); kept anyway on failure
#   UPDATE=1  measure an update instead of a first release: each site gets
#             V1_TREE (untimed), then V2_TREE is published once with deltas
#             (publish's default, --deltas 1) and once with --deltas 0, each on
#             fresh nodes and a fresh repository, and the timed part is v1 -> v2.
#             Rows per site size in NODES (default then "1 5"); no raw-link rows
#             and no T1 row; SIZE_MIB is not used. Each row also counts the
#             seed's requests for delta objects, objects served more than once,
#             and the nodes' "delta not used" log lines.
#   V1_TREE, V2_TREE  the two trees for UPDATE=1 (default: the mariadb-server-core
#             10.11.18 -> 10.11.19 Debian pair unpacked under /work/debs/x)
#   CAP=1     measure the rate caps instead: one node with --wan-rate CAP_NODE,
#             then a site of CAP_NODES nodes with --site-wan-rate CAP_SITE, each
#             on fresh nodes and repository; the link's bytes are sampled every
#             0.2 s and the rate over the transfer (first to last moving sample)
#             is printed against the cap. Defaults: CAP_NODE 5Mbit, CAP_SITE
#             8Mbit, CAP_NODES 4, SIZE_MIB 24. No raw-link rows, no T1 row.
#   NS_PREFIX prefix of the namespaces' names (default pmb), so that two runs
#             on one machine do not collide
#   TRACE=1   write the progress of each run's first and last node, twice a
#             second, to $WORK/SLUG/trace.tsv (time, node, phase, chunks done,
#             WAN, LAN, API answer time) and the seed's chunk Mbit/s per second
#             to $WORK/SLUG/wan.tsv
# Needs root, ip and tc (iproute2), curl, jq, awk, and go unless BIN is set.
# Prints the table and writes it to $WORK/table.md.
set -euo pipefail

CAP=${CAP:-0}
if [[ $CAP == 1 ]]; then SIZE_MIB=${SIZE_MIB:-24}; fi
SIZE_MIB=${SIZE_MIB:-64}
RATE=${RATE:-20mbit}
DELAY=${DELAY:-}
RELAY_RTT=${RELAY_RTT:-}
UPDATE=${UPDATE:-0}
if [[ $UPDATE == 1 ]]; then
	NODES=${NODES:-1 5}
	V1_TREE=${V1_TREE:-/work/debs/x/mariadb-server-core_1%3a10.11.18-0+deb12u1_amd64}
	V2_TREE=${V2_TREE:-/work/debs/x/mariadb-server-core_1%3a10.11.19-0+deb12u1_amd64}
else
	NODES=${NODES:-5 20 1}
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)

NS_WAN=${NS_PREFIX:-pmb}-wan
NS_SITE=${NS_PREFIX:-pmb}-site
WAN_IP=10.99.0.1
SITE_IP=10.99.0.2

die() { echo "bench-site: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (network namespaces and tc)"
if [[ $UPDATE == 1 ]]; then
	[[ -d $V1_TREE && -d $V2_TREE ]] || die "UPDATE=1: V1_TREE ($V1_TREE) and V2_TREE ($V2_TREE) must be folders"
fi
if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
	echo "installing iproute2"
	apt-get install -y iproute2 >/dev/null || die "ip and tc missing and apt-get install iproute2 failed"
fi
for c in curl jq awk; do command -v "$c" >/dev/null || die "needs $c"; done
ulimit -n 65536 2>/dev/null || true

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-site.XXXXXX")
PIDS=()
# shellcheck source=bench-procs.sh
source "$ROOT/scripts/bench-procs.sh"

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_procs
	if [[ -n ${RELAY_PID:-} ]]; then kill "$RELAY_PID" 2>/dev/null || true; wait "$RELAY_PID" 2>/dev/null || true; fi
	ip netns del "$NS_WAN" 2>/dev/null || true
	ip netns del "$NS_SITE" 2>/dev/null || true
	if [[ "${KEEP:-0}" == 1 || "${PERF:-0}" == 1 || $rc != 0 ]]; then
		echo "work folder kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_wan() { ip netns exec "$NS_WAN" "$@"; }
in_site() { ip netns exec "$NS_SITE" "$@"; }

# bg NS LOG CMD...: run CMD in namespace NS in the background, output to LOG.
bg() {
	local ns=$1 log=$2
	shift 2
	ip netns exec "$ns" "$@" >"$log" 2>&1 &
	PIDS+=($!)
}

build_bin

# --- topology ---------------------------------------------------------------
for ns in "$NS_WAN" "$NS_SITE"; do
	if ip netns list | grep -qw "$ns"; then
		die "namespace $ns exists: another bench-site run, or a stale one (ip netns del $ns)"
	fi
done
ip netns add "$NS_WAN"
ip netns add "$NS_SITE"
in_wan ip link set lo up
in_site ip link set lo up
# The pair is created inside pmb-wan and one end moved to pmb-site: the host's
# own network never sees either end.
in_wan ip link add pmb-w0 type veth peer name pmb-s0 netns "$NS_SITE"
in_wan ip addr add "$WAN_IP/24" dev pmb-w0
in_site ip addr add "$SITE_IP/24" dev pmb-s0
in_wan ip link set pmb-w0 up
in_site ip link set pmb-s0 up
shape() { # namespace device
	if [[ -n "$DELAY" ]]; then
		ip netns exec "$1" tc qdisc add dev "$2" root handle 1: netem delay "$DELAY"
		ip netns exec "$1" tc qdisc add dev "$2" parent 1: handle 10: tbf rate "$RATE" burst 64kb latency 50ms
	else
		ip netns exec "$1" tc qdisc add dev "$2" root tbf rate "$RATE" burst 64kb latency 50ms
	fi
}
shape "$NS_WAN" pmb-w0
shape "$NS_SITE" pmb-s0
link_tx() { in_wan cat /sys/class/net/pmb-w0/statistics/tx_bytes; }

# --- the release ------------------------------------------------------------
# One pseudo-random binary (no chunk repeats) and two small files.
SRC=$WORK/tree
mkdir -p "$SRC/bin" "$SRC/etc"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$SRC/bin/app"
echo "listen = 127.0.0.1:8080" >"$SRC/etc/app.conf"
echo "bench-site" >"$SRC/VERSION"
"$BIN" keygen --out "$WORK/release.key" >/dev/null
"$BIN" keygen --site --out "$WORK/site.key" >/dev/null

SEED_PORT=8780
SEED_API=127.0.0.1:8781
# The seed as the site reaches it: over the veth, or through the relay.
SEED_URL=http://$WAN_IP:$SEED_PORT
if [[ -n $RELAY_RTT ]]; then
	(cd "$ROOT" && go build -o "$WORK/rttrelay" ./scripts/rttrelay)
	# Not in PIDS: it outlives the rows, whose processes stop_procs ends.
	ip netns exec "$NS_SITE" "$WORK/rttrelay" -listen 127.0.0.1:8790 -to "$WAN_IP:$SEED_PORT" -rtt "$RELAY_RTT" >"$WORK/relay.log" 2>&1 &
	RELAY_PID=$!
	SEED_URL=http://127.0.0.1:8790
fi
SEED_PID=
seed_status() { in_wan curl -sf --max-time 5 "http://$SEED_API/api/status"; }
start_seed() { # repo log
	# --access-log -: the timeline and bench-site-update.sh read the requests from the log.
	bg "$NS_WAN" "$2" "$BIN" serve --repo "$1" --listen "$WAN_IP:$SEED_PORT" --api "$SEED_API" --access-log -
	SEED_PID=${PIDS[-1]}
	wait_until 20 "the seed to listen" seed_status
}

say() { printf '%-44s %s\n' "$1" "$2"; }
echo
[[ $UPDATE == 1 ]] || say "release" "$SIZE_MIB MiB of random bytes"
say "WAN" "tbf $RATE${DELAY:+, netem delay $DELAY} each way (veth between pmb-wan and pmb-site)${RELAY_RTT:+, relay adding $RELAY_RTT round trip}"
say "binary" "$BIN"

# --- raw link ---------------------------------------------------------------
if [[ $UPDATE == 1 || $CAP == 1 ]]; then
	[[ $CAP == 1 ]] ||
	say "update" "$V1_TREE -> $V2_TREE"
else
RAW=$WORK/raw
"$BIN" trust init --key "$WORK/release.key" --out "$WORK/raw-trust.json" --repo "$RAW" >/dev/null
"$BIN" publish --repo "$RAW" --key "$WORK/release.key" --version 0.0.0 --json "$SRC" >"$WORK/raw.json"
cp "$SRC/bin/app" "$RAW/blob.bin"
start_seed "$RAW" "$WORK/seed-raw.log"
in_site curl -sf --noproxy '*' --max-time 5 -o /dev/null "$SEED_URL/root.json" ||
	die "the site does not reach the seed over the veth"
UNIQUE=$(jq -r .new_bytes "$WORK/raw.json")
say "unique chunk bytes" "$UNIQUE in $(jq -r .new_chunks "$WORK/raw.json") chunks"
ideal=$(awk -v b="$UNIQUE" -v r="$RATE" 'BEGIN {
	n = r + 0; u = tolower(r); sub(/^[0-9.]+/, "", u)
	m = (u ~ /^g/) ? 1e9 : (u ~ /^m/) ? 1e6 : (u ~ /^k/) ? 1e3 : 1
	if (u ~ /bps$/) m *= 8  # tc: "mbps" is bytes, "mbit" bits
	printf "%.1f", b * 8 / (n * m) }')
say "unique bytes at the nominal rate" "$ideal s"

t0=$(now)
in_site curl -sf --noproxy '*' -o /dev/null "$SEED_URL/blob.bin"
t1=$(now)
RAW_FILE=$(calc "%.2f" "$t1 - $t0")
say "raw link: curl one file of the same size" "$RAW_FILE s ($(calc "%.1f" "$UNIQUE * 8 / ($t1 - $t0) / 1e6") Mbit/s)"

(cd "$RAW" && find chunks -type f -printf "url = \"$SEED_URL/%p\"\noutput = \"/dev/null\"\n") >"$WORK/chunks.curl"
t0=$(now)
in_site curl -sf --no-progress-meter --noproxy '*' --parallel --parallel-max 16 -K "$WORK/chunks.curl"
t1=$(now)
RAW_CHUNKS=$(calc "%.2f" "$t1 - $t0")
say "raw link: curl every chunk, 16 at a time" "$RAW_CHUNKS s"
stop_procs
fi

# --- one run ----------------------------------------------------------------
T1=
TABLE=$WORK/table.md
{
	echo "| nodes | mesh | time (s) | time / T1 | seed chunk bytes / unique | seed bytes, all files / unique | link bytes / unique | LAN bytes / unique | node CPU (s) |"
	echo "|---:|:---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$TABLE"

# start_nodes N MESH DIR TRUST BASE starts N nodes in the site namespace (a
# site when MESH=1), on ports from BASE, and waits until they answer, see each
# other and finished their start-up check. It sets NODE_APIS and NODE_PIDS.
start_nodes() {
	local n=$1 mesh=$2 dir=$3 trust=$4 base=$5
	local i join=
	NODE_APIS=() NODE_PIDS=()
	for ((i = 1; i <= n; i++)); do
		local api=127.0.0.1:$((base + i)) args=()
		args=(node run --name "n$i" --data "$dir/n$i/data" --install-dir "$dir/n$i/app" --trust "$trust"
			--source "$SEED_URL" --api "$api" --check-interval 1h ${NODE_ARGS:-})
		if ((mesh)); then
			args+=(--site-key "$WORK/site.key" --gossip "127.0.0.1:$((base + 1000 + i))"
				--p2p "/ip4/127.0.0.1/tcp/$((base + 2000 + i))")
			[[ -n $join ]] && args+=(--join "$join")
			join=${join:-127.0.0.1:$((base + 1001))}
		fi
		bg "$NS_SITE" "$dir/n$i.log" env NO_PROXY='*' ${NODE_ENV:-} "$BIN" "${args[@]}"
		NODE_APIS+=("$api")
		NODE_PIDS+=("${PIDS[-1]}")
	done
	for api in "${NODE_APIS[@]}"; do
		wait_until 60 "node $api to answer" in_site curl -sf --max-time 5 "http://$api/api/status"
	done
	if ((mesh)); then
		for api in "${NODE_APIS[@]}"; do
			wait_until 90 "node $api to see the $n nodes of the site" sees_site "$api" "$n"
		done
	fi
	# The nodes' start-up checks found no release; let them finish before publishing.
	for api in "${NODE_APIS[@]}"; do
		wait_until 30 "node $api to finish its start-up check" not_checking "$api"
	done
}

# run_site N MESH SLUG LABEL: N nodes (with the mesh when MESH=1) get a fresh
# release; the repository and logs go to $WORK/SLUG.
run_site() {
	local n=$1 mesh=$2 dir=$WORK/$3 label=$4 i
	local repo=$dir/repo trust=$dir/trust.json base=$((20000 + RANDOM % 20000))
	mkdir -p "$dir"
	"$BIN" trust init --key "$WORK/release.key" --out "$trust" --repo "$repo" >/dev/null
	start_seed "$repo" "$dir/seed.log"

	start_nodes "$n" "$mesh" "$dir" "$trust" "$base"
	local apis=("${NODE_APIS[@]}") pids=("${NODE_PIDS[@]}")

	"$BIN" publish --repo "$repo" --key "$WORK/release.key" --version "1.0.0" --json "$SRC" >"$dir/publish.json"
	local unique served0 bytes0 tx0
	unique=$(jq -r .new_bytes "$dir/publish.json")
	served0=$(seed_status | jq -r .served.chunk_bytes)
	bytes0=$(seed_status | jq -r .served.bytes)
	tx0=$(link_tx)

	local rc=0 tracer= cpu0
	cpu0=$(cpu_ticks "${pids[@]}")
	if [[ "${TRACE:-0}" == 1 ]]; then
		trace "$dir" "${apis[@]}" >"$dir/trace.tsv" &
		tracer=$!
	fi
	local perf=
	if [[ "${PERF:-0}" == 1 ]] && ((mesh)); then
		perf record -a -g -F 499 -o "$dir/perf.data" >/dev/null 2>&1 &
		perf=$!
	fi
	ask_updates "$NS_SITE" "$dir" "${apis[@]}" || rc=1
	if [[ -n $tracer ]]; then kill "$tracer" 2>/dev/null || true; wait "$tracer" 2>/dev/null || true; fi
	if [[ -n $perf ]]; then kill -INT "$perf" 2>/dev/null || true; wait "$perf" 2>/dev/null || true; fi
	((rc == 0)) || die "an update failed in $label; see $dir"
	local cpu
	cpu=$(calc "%.1f" "($(cpu_ticks "${pids[@]}") - $cpu0) / $(getconf CLK_TCK)")
	if [[ "${TRACE:-0}" == 1 ]]; then
		# The seed logs each request when it ends: chunk bytes per second.
		sed -nE 's/^time=[^T]*T([0-9:]+)\.[0-9]*Z .*path=\/chunks\/.* bytes=([0-9]+) .*/\1 \2/p' "$dir/seed.log" |
			awk '{ b[$1] += $2 } END { for (k in b) printf "%s\t%.1f\n", k, b[k] * 8 / 1e6 }' | sort >"$dir/wan.tsv"
	fi

	local served bytes tx wan=0 lan=0 st
	served=$(($(seed_status | jq -r .served.chunk_bytes) - served0))
	bytes=$(($(seed_status | jq -r .served.bytes) - bytes0))
	tx=$(($(link_tx) - tx0))
	for ((i = 1; i <= n; i++)); do
		st=$(in_site curl -sf --max-time 5 "http://${apis[i - 1]}/api/status")
		[[ $(jq -r '.current.version // ""' <<<"$st") == 1.0.0 ]] || die "$label: node n$i does not run 1.0.0"
		cmp -s "$SRC/bin/app" "$dir/n$i/app/current/bin/app" || die "$label: node n$i installed other bytes"
		wan=$((wan + $(jq -r .bytes.wan <<<"$st")))
		lan=$((lan + $(jq -r .bytes.lan <<<"$st")))
	done
	stop_procs
	local secs
	secs=$(calc "%.2f" "$UPDATE_SECS")
	[[ -n $T1 ]] || T1=$secs
	local row
	row=$(printf '| %d | %s | %s | %s | %s | %s | %s | %s | %s |' "$n" "$( ((mesh)) && echo yes || echo no)" "$secs" \
		"$(calc "%.3fx" "$secs / $T1")" "$(calc "%.4fx" "$served / $unique")" "$(calc "%.4fx" "$bytes / $unique")" \
		"$(calc "%.4fx" "$tx / $unique")" "$(calc "%.2fx" "$lan / $unique")" "$cpu")
	echo "$row" >>"$TABLE"
	say "$label" "$secs s, seed chunk bytes $(calc "%.4fx" "$served / $unique"), nodes' WAN $(calc "%.4fx" "$wan / $unique"), LAN $(calc "%.2fx" "$lan / $unique")"
	rm -rf "${dir:?}"/n*/
}

# cpu_ticks PID...: user and system clock ticks the processes used so far.
cpu_ticks() {
	local p t=0 f
	for p in "$@"; do
		f=$(cut -d')' -f2 "/proc/$p/stat" 2>/dev/null) || continue
		t=$((t + $(awk '{ print $12 + $13 }' <<<"$f")))
	done
	echo "$t"
}

# trace DIR API...: twice a second, for the first and the last node only (to
# disturb little): time, node, phase, chunks done, WAN and LAN bytes, and the
# seconds its API took to answer (a starved CPU shows there first).
trace() {
	local dir=$1 t k
	shift
	local picks=("1:$1")
	(($# > 1)) && picks+=("$#:${!#}")
	while sleep 0.5; do
		t=$(now)
		for k in "${picks[@]}"; do
			in_site curl -sf --max-time 5 -o "$dir/.trace" -w '%{time_total}' "http://${k#*:}/api/status" >"$dir/.trace.t" || continue
			jq -r --arg t "$t" --arg n "n${k%%:*}" --arg d "$(cat "$dir/.trace.t")" \
				'[$t, $n, (.progress.phase // (if .current then "done" else "-" end)),
				(.progress.chunks_done // 0), .bytes.wan, .bytes.lan, $d] | @tsv' "$dir/.trace" || true
		done
	done
}

sees_site() { # api n
	in_site curl -sf --max-time 5 "http://$1/api/status" | jq -e --argjson n "$2" '[.peers[] | select(.state == "alive")] | length == $n'
}
not_checking() { # api
	in_site curl -sf --max-time 5 "http://$1/api/status" | jq -e '.checking == false and .last_check != null'
}

# run_cap N SLUG LABEL CAP ARGS...: N nodes (a site when N > 1) with ARGS get a
# fresh release while the link's tx bytes are sampled; prints the rate over the
# transfer against CAP (as ratecap spells it: 5Mbit).
run_cap() {
	local n=$1 dir=$WORK/$2 label=$3 cap=$4
	shift 4
	local repo=$dir/repo trust=$dir/trust.json base=$((20000 + RANDOM % 20000))
	mkdir -p "$dir"
	"$BIN" trust init --key "$WORK/release.key" --out "$trust" --repo "$repo" >/dev/null
	start_seed "$repo" "$dir/seed.log"
	NODE_ARGS="${NODE_ARGS:-} $*" start_nodes "$n" "$((n > 1))" "$dir" "$trust" "$base"
	local apis=("${NODE_APIS[@]}")
	"$BIN" publish --repo "$repo" --key "$WORK/release.key" --version "1.0.0" --json "$SRC" >"$dir/publish.json"
	(while :; do printf '%s %s\n' "$(now)" "$(link_tx)"; sleep 0.2; done) >"$dir/link.tsv" &
	local sampler=$!
	ask_updates "$NS_SITE" "$dir" "${apis[@]}" || { kill "$sampler"; die "an update failed in $label; see $dir"; }
	sleep 0.5
	kill "$sampler"; wait "$sampler" 2>/dev/null || true
	stop_procs
	# The transfer: from the last sample before the bytes start moving to the
	# first after they stop (below 2 kB a sample: gossip, not chunks).
	local got
	got=$(awk 'NR == 1 { pt = $1; pb = $2; next }
		{ if ($2 - pb > 2000) { if (!t0) { t0 = pt; b0 = pb } t1 = $1; b1 = $2 } pt = $1; pb = $2 }
		END { printf "%.0f %.2f %.3f", b1 - b0, t1 - t0, (b1 - b0) * 8 / (t1 - t0) / 1e6 }' "$dir/link.tsv")
	local bytes secs mbit capmbit
	read -r bytes secs mbit <<<"$got"
	capmbit=$(awk -v c="$cap" 'BEGIN { n = c + 0; u = tolower(c); sub(/^[0-9.]+/, "", u)
		m = (u ~ /^g/) ? 1e3 : (u ~ /^m/) ? 1 : (u ~ /^k/) ? 1e-3 : 1e-6; printf "%g", n * m }')
	echo "| $label | $cap | $bytes | $secs | $mbit | $(calc "%.3fx" "$mbit / $capmbit") |" >>"$TABLE"
	say "$label" "$mbit Mbit/s at the link over $secs s, cap $cap ($(calc "%.3fx" "$mbit / $capmbit"))"
	rm -rf "${dir:?}"/n*/
}

if [[ $CAP == 1 ]]; then
	{
		echo "| run | cap | link bytes | transfer (s) | link Mbit/s | / cap |"
		echo "|---|---:|---:|---:|---:|---:|"
	} >"$TABLE"
	echo
	CAP_NODE=${CAP_NODE:-5Mbit} CAP_SITE=${CAP_SITE:-8Mbit} CAP_NODES=${CAP_NODES:-4}
	run_cap 1 cap-node "one node, --wan-rate $CAP_NODE" "$CAP_NODE" --wan-rate "$CAP_NODE"
	run_cap "$CAP_NODES" cap-site "site of $CAP_NODES, --site-wan-rate $CAP_SITE" "$CAP_SITE" --site-wan-rate "$CAP_SITE"
	echo
	cat "$TABLE"
	echo "link: tbf $RATE; link bytes include TCP/IP and HTTP headers, which the caps (body bytes) do not count"
	exit 0
fi

if [[ $UPDATE == 1 ]]; then
	# shellcheck source=bench-site-update.sh
	source "$ROOT/scripts/bench-site-update.sh"
	run_updates
	exit 0
fi

echo
run_site 1 0 alone "one node alone (T1)"
for n in $NODES; do
	run_site "$n" 1 "site-$n" "site of $n"
done

echo
cat "$TABLE"
echo
echo "raw link: one file $RAW_FILE s ($(calc "%.3fx" "$RAW_FILE / $T1") T1), every chunk 16 at a time $RAW_CHUNKS s ($(calc "%.3fx" "$RAW_CHUNKS / $T1") T1); unique bytes at the nominal rate $ideal s"
echo "targets at 20 nodes: at most 1.02x WAN bytes, 1.1x time (caching proxy 1.01x / 1.04x, BitTorrent 1.4x / 1.6x)"
