#!/usr/bin/env bash
# bench-scale.sh is the scale run of the brief: NODES node processes on one
# machine form a site and all get a release. It reports the time the site takes
# to form, the time from asking every node to update (one curl, as bench-site.sh)
# to every node running the release
# (and, for scale, one node alone over the same loopback), the seed's chunk
# bytes as a ratio of the release's unique chunk bytes, and the nodes' memory.
# It also reports the site view's gossip: the time until the first node's view
# shows every node on the release, the largest member summary and the whole
# push-pull state of summaries, against their caps.
#
# Everything runs in a network namespace of its own (pmb-scale, removed on exit):
# seed and nodes on its loopback, so no port of the host is taken. No shaping.
#
# Environment:
#   NODES     node processes (default 50)
#   SIZE_MIB  release size in MiB (default 16)
#   BIN       patchmesh binary to use (default: built from this tree)
#   TMPDIR    where the work folder goes (default /tmp)
#   KEEP=1    keep the work folder (logs, repository); kept anyway on failure
# Needs root (for the namespace), ip (iproute2), curl, jq, awk, and go unless BIN is set.
set -euo pipefail

NODES=${NODES:-50}
SIZE_MIB=${SIZE_MIB:-16}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NS=pmb-scale

die() { echo "bench-scale: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (network namespace)"
if ! command -v ip >/dev/null; then
	echo "installing iproute2"
	apt-get install -y iproute2 >/dev/null || die "ip missing and apt-get install iproute2 failed"
fi
for c in curl jq awk; do command -v "$c" >/dev/null || die "needs $c"; done
# Each node holds sockets to every peer plus its store's files.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) >= 16 * NODES)) || die "open file limit $(ulimit -n) is too low for $NODES nodes (raise ulimit -n)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-scale.XXXXXX")
PIDS=()
SAMPLER=
POLL=0.3
# shellcheck source=bench-procs.sh
source "$ROOT/scripts/bench-procs.sh"

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $SAMPLER ]]; then kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; fi
	stop_procs 20
	ip netns del "$NS" 2>/dev/null || true
	if [[ "${KEEP:-0}" == 1 || $rc != 0 ]]; then
		echo "work folder kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { ip netns exec "$NS" "$@"; }
say() { printf '%-40s %s\n' "$1" "$2"; }

bg() { # log cmd...
	local log=$1
	shift
	ip netns exec "$NS" "$@" >"$log" 2>&1 &
	PIDS+=($!)
}

build_bin

ip netns list | grep -qw "$NS" && die "namespace $NS exists: another bench-scale run, or a stale one (ip netns del $NS)"
ip netns add "$NS"
in_ns ip link set lo up

SRC=$WORK/tree
mkdir -p "$SRC/bin"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$SRC/bin/app"
echo "bench-scale" >"$SRC/VERSION"
"$BIN" keygen --out "$WORK/release.key" >/dev/null
"$BIN" keygen --site --out "$WORK/site.key" >/dev/null

SEED=127.0.0.1:8780
SEED_API=127.0.0.1:8781
seed_status() { in_ns curl -sf --max-time 5 "http://$SEED_API/api/status"; }
node_status() { in_ns curl -sf --max-time 10 "http://$1/api/status"; }
sees_site() { node_status "$1" | jq -e --argjson n "$2" '[.peers[] | select(.state == "alive")] | length == $n'; }
not_checking() { node_status "$1" | jq -e '.checking == false and .last_check != null'; }
# site_view_on API N VERSION: the node's site view shows N members on VERSION;
# what it shows goes to $VIEWLOG too.
site_view_on() {
	node_status "$1" | jq -c '.site | {t: now | floor, members, on_latest, summaries: .gossip.summaries}' >>"$VIEWLOG"
	node_status "$1" | jq -e --argjson n "$2" --arg v "$3" '.site.on_latest == $n and .site.latest == $v'
}

# rss_once appends the summed and the largest resident memory (KiB) of the
# processes whose ids are in the file $1 to the file $2. Bash builtins only:
# with 50 busy nodes a process spawn per node would take seconds.
rss_once() {
	local p k v sum=0 max=0
	while read -r p; do
		while read -r k v _; do
			if [[ $k == VmRSS: ]]; then
				sum=$((sum + v))
				if ((v > max)); then max=$v; fi
				break
			fi
		done <"/proc/$p/status" 2>/dev/null || true
	done <"$1"
	echo "$sum $max" >>"$2"
}

# cpu_ticks FILE: user and system clock ticks used so far by the processes
# whose ids are in FILE.
cpu_ticks() {
	local p line f t=0
	while read -r p; do
		read -r line <"/proc/$p/stat" 2>/dev/null || continue
		read -ra f <<<"${line##*) }"
		t=$((t + f[11] + f[12]))
	done <"$1"
	echo "$t"
}

rss_sampler() { # pids out
	while :; do
		rss_once "$1" "$2"
		sleep 1
	done
}

# run N MESH SLUG: N nodes get a fresh release; sets SECS, CPU, FORM, SERVED,
# UNIQUE, WAN, LAN, RSS_SUM and RSS_MAX.
run() {
	local n=$1 mesh=$2 dir=$WORK/$3 i api args apis=() join=
	local repo=$dir/repo trust=$dir/trust.json
	mkdir -p "$dir"
	"$BIN" trust init --key "$WORK/release.key" --out "$trust" --repo "$repo" >/dev/null
	bg "$dir/seed.log" "$BIN" serve --repo "$repo" --listen "$SEED" --api "$SEED_API"
	wait_until 20 "the seed to listen" seed_status

	local f0 f1
	f0=$(now)
	: >"$dir/pids"
	for ((i = 1; i <= n; i++)); do
		api=127.0.0.1:$((20000 + i))
		args=(node run --name "n$i" --data "$dir/n$i/data" --install-dir "$dir/n$i/app" --trust "$trust"
			--source "http://$SEED" --api "$api" --check-interval 1h)
		if ((mesh)); then
			args+=(--site-key "$WORK/site.key" --gossip "127.0.0.1:$((21000 + i))" --p2p "/ip4/127.0.0.1/tcp/$((22000 + i))")
			[[ -n $join ]] && args+=(--join "$join")
			join=127.0.0.1:21001
		fi
		bg "$dir/n$i.log" env NO_PROXY='*' "$BIN" "${args[@]}"
		echo "${PIDS[-1]}" >>"$dir/pids"
		apis+=("$api")
	done
	for api in "${apis[@]}"; do wait_until 120 "node $api to answer" node_status "$api"; done
	if ((mesh)); then
		for api in "${apis[@]}"; do wait_until 120 "node $api to see the $n nodes" sees_site "$api" "$n"; done
	fi
	f1=$(now)
	FORM=$(calc "%.1f" "$f1 - $f0")
	for api in "${apis[@]}"; do wait_until 60 "node $api to finish its start-up check" not_checking "$api"; done

	"$BIN" publish --repo "$repo" --key "$WORK/release.key" --version 1.0.0 --json "$SRC" >"$dir/publish.json"
	UNIQUE=$(jq -r .new_bytes "$dir/publish.json")
	local served0 rc=0
	served0=$(seed_status | jq -r .served.chunk_bytes)
	local cpu0
	cpu0=$(cpu_ticks "$dir/pids")
	rss_sampler "$dir/pids" "$dir/rss" &
	SAMPLER=$!
	ask_updates "$NS" "$dir" "${apis[@]}" || rc=1
	kill "$SAMPLER" 2>/dev/null || true
	wait "$SAMPLER" 2>/dev/null || true
	SAMPLER=
	rss_once "$dir/pids" "$dir/rss"
	((rc == 0)) || die "an update failed; see $dir"
	SECS=$(calc "%.2f" "$UPDATE_SECS")
	CPU=$(calc "%.1f" "($(cpu_ticks "$dir/pids") - $cpu0) / $(getconf CLK_TCK)")
	SERVED=$(($(seed_status | jq -r .served.chunk_bytes) - served0))
	if ((mesh)); then
		local v0
		v0=$(now)
		VIEWLOG=$dir/view.log
		wait_until 300 "node 1's site view to show the $n nodes on 1.0.0" site_view_on "${apis[0]}" "$n" 1.0.0
		VIEW_SECS=$(calc "%.1f" "$(now) - $v0")
		node_status "${apis[0]}" | jq -c .site.gossip >"$dir/gossip.json"
		SUM_MAX=$(jq -r .summary_max_bytes "$dir/gossip.json")
		STATE=$(jq -r .state_bytes "$dir/gossip.json")
		SUM_CAP=$(jq -r .summary_cap_bytes "$dir/gossip.json")
		MEM_CAP=$(jq -r .members_cap "$dir/gossip.json")
		SUMS=$(jq -r .summaries "$dir/gossip.json")
	fi

	local st
	WAN=0 LAN=0
	for ((i = 1; i <= n; i++)); do
		st=$(node_status "${apis[i - 1]}")
		[[ $(jq -r '.current.version // ""' <<<"$st") == 1.0.0 ]] || die "node n$i does not run 1.0.0"
		cmp -s "$SRC/bin/app" "$dir/n$i/app/current/bin/app" || die "node n$i installed other bytes"
		WAN=$((WAN + $(jq -r .bytes.wan <<<"$st")))
		LAN=$((LAN + $(jq -r .bytes.lan <<<"$st")))
	done
	RSS_SUM=0 RSS_MAX=0
	if [[ -s $dir/rss ]]; then
		RSS_SUM=$(awk '$1 > m { m = $1 } END { print m + 0 }' "$dir/rss")
		RSS_MAX=$(awk '$2 > m { m = $2 } END { print m + 0 }' "$dir/rss")
	fi
	stop_procs 20
	rm -rf "${dir:?}"/n*/
}

echo
say "release" "$SIZE_MIB MiB of random bytes"
say "binary" "$BIN"
run 1 0 alone
T1=$SECS CPU1=$CPU
say "one node alone gets the release" "$T1 s (loopback, for scale)"
run "$NODES" 1 site
say "site formed ($NODES nodes see each other)" "$FORM s after the first start"
say "all $NODES nodes run the release" "$SECS s after update"
say "nodes' CPU during the update" "$CPU s (one node alone: $CPU1 s)"
say "seed chunk bytes / unique" "$(calc "%.4fx" "$SERVED / $UNIQUE") ($SERVED / $UNIQUE)"
say "nodes' WAN bytes / unique" "$(calc "%.4fx" "$WAN / $UNIQUE")"
say "nodes' LAN bytes / unique" "$(calc "%.2fx" "$LAN / $UNIQUE")"
say "resident memory, all nodes (peak)" "$(calc "%.0f" "$RSS_SUM / 1024") MiB"
say "resident memory, largest node (peak)" "$(calc "%.0f" "$RSS_MAX / 1024") MiB"
say "site view shows all $NODES on 1.0.0" "$VIEW_SECS s after the update finished"
say "site view: member summary (largest)" "$SUM_MAX bytes (cap $SUM_CAP)"
say "site view: push-pull state ($SUMS members)" "$STATE bytes (cap $MEM_CAP members, $((MEM_CAP * (SUM_CAP + 128 + 14))) bytes)"
