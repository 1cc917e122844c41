#!/usr/bin/env bash
# bench-node.sh measures one node pulling a whole release from a local seed,
# against the brief's targets:
#   - memory: the node's resident memory stays under 150 MiB while it moves a
#     2 GiB release (VmRSS sampled from /proc/PID/status, VmHWM at the end);
#   - transfer: the node pulls at least 0.7x as fast as a plain HTTP download
#     of the same chunk files from the same seed, measured in the same run
#     (curl --parallel with as many transfers at once as the node's
#     --concurrency; once before the node and once after, the faster counts).
#     Go's net/http client (scripts/httpget) fetches the same files once too,
#     to tell the cost of the node's HTTP stack from the node's own work; and
#     curl once more, saving each file, as a caching proxy would.
# The node stores every chunk in its store and then assembles the release
# files, so the run needs about four times SIZE_MIB of free disk (tree,
# repository, chunk store, installed release), and once more for curl's
# saved files, removed once counted.
#
# Environment:
#   SIZE_MIB     size of the release in MiB (default 2048)
#   PARALLEL     transfers at once, for curl and the node (default 16)
#   SAMPLE_SECS  RSS sampling period (default 0.15)
#   TMPDIR       where the work folder goes (default /tmp)
#   PATCHMESH    a patchmesh binary to measure (default: built from this tree)
#   KEEP=1       keep the work folder (logs, samples, tree, repository)
# Needs bash, GNU coreutils, findutils, awk, curl, jq and go. Loopback only.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-2048}
PARALLEL=${PARALLEL:-16}
SAMPLE_SECS=${SAMPLE_SECS:-0.15}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/make-tree.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-node.XXXXXX")
BIN=$WORK/patchmesh
SRC=$WORK/tree
REPO=$WORK/repo
DATA=$WORK/node/data
INSTALL=$WORK/node/app
VERSION=1.0.0
export NO_PROXY='*' no_proxy='*'

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", (s > 0 ? b / 1048576 / s : 0) }'; }
say() { printf '%-34s %s\n' "$1" "$2"; }
die() {
	echo "bench-node: $*" >&2
	exit 1
}

. "$ROOT/scripts/bench-lib.sh"
trap stop_and_clean EXIT

need=$((SIZE_MIB * 4 + 512))
avail=$(df -Pm "$WORK" | awk 'NR == 2 { print $4 }')
((avail >= need)) || die "$WORK has $avail MiB free; this run needs about $need MiB (lower SIZE_MIB)"

if [[ -n ${PATCHMESH:-} ]]; then
	cp "$PATCHMESH" "$BIN"
else
	echo "building patchmesh"
	(cd "$ROOT" && go build -o "$BIN" ./cmd/patchmesh)
fi
(cd "$ROOT" && go build -o "$WORK/httpget" ./scripts/httpget)

echo "writing a release of $SIZE_MIB MiB in $SRC"
make_tree "$SRC" "$SIZE_MIB"
nfiles=$(find "$SRC" -type f | wc -l)
bytes=$(find "$SRC" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s }')
say "release" "$nfiles files, $bytes bytes ($(mib "$bytes") MiB)"

"$BIN" keygen --out "$WORK/release.key" >/dev/null
"$BIN" trust init --key "$WORK/release.key" --out "$WORK/trust.json" --repo "$REPO" >/dev/null
t0=$(now)
"$BIN" publish --repo "$REPO" --key "$WORK/release.key" --channel stable --version "$VERSION" --json "$SRC" >"$WORK/publish.json"
say "publish" "$(elapsed "$t0" "$(now)") s"
# The tree is no longer needed: free its disk before the node writes twice as much.
rm -rf "$SRC"

# Every chunk file of the fresh repository belongs to this release.
(cd "$REPO" && find chunks -type f -printf '%P %s\n') >"$WORK/chunks"
nchunks=$(wc -l <"$WORK/chunks")
chunkbytes=$(awk '{ s += $2 } END { printf "%.0f", s }' "$WORK/chunks")
say "chunks" "$nchunks files, $chunkbytes bytes (mean $(awk -v b="$chunkbytes" -v n="$nchunks" 'BEGIN { printf "%.1f", b / n / 1024 }') KiB)"
# Chunk files are zstd frames where that paid at publish: curl and the node
# move the same files, so the same bytes, compressed or not. Say how many.
nframes=$(cd "$REPO" && find chunks -type f -size +3c -print0 | xargs -0 head -qc4 | od -An -v -tx1 -w4 | grep -c '28 b5 2f fd' || true)
say "chunk files compressed" "$nframes of $nchunks; files $chunkbytes bytes for $(jq -r .new_bytes "$WORK/publish.json") bytes of chunks"

freeport
SEED=127.0.0.1:$PORT
freeport
SEEDAPI=127.0.0.1:$PORT
"$BIN" serve --repo "$REPO" --listen "$SEED" --api "$SEEDAPI" >"$WORK/seed.log" 2>&1 &
PIDS+=($!)
waitfor 20 curl -sf --max-time 2 "http://$SEEDAPI/api/status"

# Warm the page cache so neither side pays for the repository's disk reads.
sync
(cd "$REPO" && find chunks -type f -print0 | xargs -0 cat >/dev/null)

# Baseline: curl fetching exactly the chunk files the node will fetch, from the
# same seed, PARALLEL at once over reused connections, bodies thrown away.
awk -v u="http://$SEED/chunks/" '{ printf "url = \"%s%s\"\noutput = \"/dev/null\"\n", u, $1 }' "$WORK/chunks" >"$WORK/curl.cfg"
# CPU seconds of curl, and of the seed while serving it, beside the node's below.
seed_cpu() { awk '{ print $14 + $15 }' "/proc/$SEEDPID/stat"; }
# seed_cpu_since TICKS prints the seed's CPU seconds since seed_cpu said TICKS.
seed_cpu_since() { awk -v a="$1" -v b="$(seed_cpu)" -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (b - a) / t }'; }
SEEDPID=${PIDS[0]}
TIMEFORMAT='%U %S'
# curl_run LABEL: one curl baseline; sets curl_secs, curl_cpu, seed_cpu_curl.
# It runs before the node and again after it: curl's time alone varies by a
# third between runs on a shared machine, and the ratios use the faster.
curl_run() {
	local scpu0 t0 t1 curl_bytes curl_bad
	scpu0=$(seed_cpu)
	t0=$(now)
	{ time curl -s --no-progress-meter --noproxy '*' --parallel --parallel-max "$PARALLEL" --max-time 60 \
		-w '%{http_code} %{size_download}\n' -K "$WORK/curl.cfg" >"$WORK/curl.out"; } 2>"$WORK/curl.time"
	t1=$(now)
	seed_cpu_curl=$(seed_cpu_since "$scpu0")
	curl_cpu=$(awk '{ printf "%.1f", $1 + $2 }' "$WORK/curl.time")
	curl_secs=$(elapsed "$t0" "$t1")
	curl_bytes=$(awk '{ s += $2 } END { printf "%.0f", s }' "$WORK/curl.out")
	curl_bad=$(awk '$1 != 200' "$WORK/curl.out" | wc -l)
	((curl_bad == 0)) || die "curl: $curl_bad of $nchunks chunk requests did not answer 200"
	((curl_bytes == chunkbytes)) || die "curl fetched $curl_bytes bytes, want $chunkbytes"
	say "$1" "$curl_secs s, $(rate "$curl_bytes" "$curl_secs") MiB/s; curl $curl_cpu CPU-s, seed $seed_cpu_curl CPU-s"
}
curl_run "curl (baseline, before the node)"
curl_first=$curl_secs

# A second reference: Go's own HTTP client (scripts/httpget) fetching the same
# files the same way, bodies thrown away. The node's time beyond it is the
# node's own work, not its HTTP stack's.
awk -v u="http://$SEED/chunks/" '{ print u $1 }' "$WORK/chunks" >"$WORK/urls"
scpu0=$(seed_cpu)
t0=$(now)
{ time "$WORK/httpget" -list "$WORK/urls" -parallel "$PARALLEL" >"$WORK/httpget.out"; } 2>"$WORK/httpget.time"
go_secs=$(elapsed "$t0" "$(now)")
go_cpu=$(awk '{ printf "%.1f", $1 + $2 }' "$WORK/httpget.time")
seed_cpu_go=$(seed_cpu_since "$scpu0")
read -r go_bytes _ <"$WORK/httpget.out"
((go_bytes == chunkbytes)) || die "httpget fetched $go_bytes bytes, want $chunkbytes"
say "Go net/http (same files)" "$go_secs s, $(rate "$go_bytes" "$go_secs") MiB/s; client $go_cpu CPU-s, seed $seed_cpu_go CPU-s"

# The node: a fresh data folder, the seed as its only source, no mesh.
freeport
API=127.0.0.1:$PORT
scpu0=$(seed_cpu)
t0=$(now)
"$BIN" node run --name bench --data "$DATA" --install-dir "$INSTALL" --trust "$WORK/trust.json" \
	--source "http://$SEED" --api "$API" --check-interval 1h --concurrency "$PARALLEL" >"$WORK/node.log" 2>&1 &
NODE=$!
PIDS+=($NODE)

# Sample the node's memory with shell builtins only, so sampling costs little.
sampler() {
	local k v _ rss anon file
	while [[ -r /proc/$NODE/status ]]; do
		rss=0 anon=0 file=0
		while read -r k v _; do
			case $k in
			VmRSS:) rss=$v ;;
			RssAnon:) anon=$v ;;
			RssFile:) file=$v ;;
			esac
		done 2>/dev/null <"/proc/$NODE/status" || break
		printf '%s %s %s %s\n' "$EPOCHREALTIME" "$rss" "$anon" "$file"
		sleep "$SAMPLE_SECS"
	done
}
sampler >"$WORK/rss.samples" &
PIDS+=($!)

# Follow the node's phases until it runs the release.
fetch_start="" assemble_start="" done_at=""
end=$((SECONDS + 1800))
while :; do
	kill -0 "$NODE" 2>/dev/null || die "node exited; see $WORK/node.log (KEEP=1 keeps it)"
	((SECONDS < end)) || die "node did not run $VERSION within 30 min"
	st=$(curl -sf --max-time 5 "http://$API/api/status" || true)
	if [[ -n $st ]]; then
		read -r cur phase started < <(jq -r '[.current.version // "-", .progress.phase // "-", .progress.started // "-"] | @tsv' <<<"$st")
		t=$(now)
		# The node stamps the start of its fetch itself.
		[[ $phase == fetching && -z $fetch_start ]] && fetch_start=$(date -d "$started" +%s.%N)
		[[ ($phase == assembling || $phase == activating) && -z $assemble_start ]] && assemble_start=$t
		if [[ $cur == "$VERSION" ]]; then
			done_at=$t
			break
		fi
	fi
	sleep 0.25
done
# The fetch's and the last check's start and finish are the node's own stamps;
# the end of the fetch (the switch to assembling) is polled, good to a poll period.
hwm_current=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$NODE/status")
# The check ends after the switch with collecting unneeded chunks: still part
# of moving the release, so VmHWM is read again once the check has ended.
waitfor 60 sh -c "curl -sf --max-time 5 http://$API/api/status | jq -e '.last_check.outcome == \"applied\"'"
hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$NODE/status")
st=$(curl -sf --max-time 5 "http://$API/api/status")
check_secs=$(elapsed "$(date -d "$(jq -r .last_check.started <<<"$st")" +%s.%N)" "$(date -d "$(jq -r .last_check.finished <<<"$st")" +%s.%N)")
wan=$(jq -r .bytes.wan <<<"$st")
node_total=$(elapsed "$t0" "$done_at")
((wan == chunkbytes)) || echo "note: node counted $wan WAN bytes, chunk files hold $chunkbytes"
node_cpu=$(awk -v t="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$NODE/stat")
seed_cpu_node=$(seed_cpu_since "$scpu0")
kill "$NODE"
wait "$NODE" 2>/dev/null || true

# The second baseline, the seed's page cache as the node left it.
curl_cpu_first=$curl_cpu seed_cpu_curl_first=$seed_cpu_curl
curl_run "curl (baseline, after the node)"
if awk -v a="$curl_first" -v b="$curl_secs" 'BEGIN { exit !(a < b) }'; then
	curl_secs=$curl_first curl_cpu=$curl_cpu_first seed_cpu_curl=$seed_cpu_curl_first
fi
say "curl, the faster of the two" "$curl_secs s: the ratios below use it"

# A third reference, a caching proxy's work: curl saving each chunk file to
# disk, through the page cache and unsynced, as the node's fetch phase leaves
# its pack writes. It runs after the node: the page cache that the files take
# comes from the same free memory, and freeing it before the node would warm
# it for the node.
awk -v u="http://$SEED/chunks/" -v d="$WORK/saved/" '{ printf "url = \"%s%s\"\noutput = \"%s%s\"\n", u, $1, d, $1 }' \
	"$WORK/chunks" >"$WORK/curl-save.cfg"
scpu0=$(seed_cpu)
t0=$(now)
{ time curl -s --no-progress-meter --noproxy '*' --create-dirs --parallel --parallel-max "$PARALLEL" --max-time 60 \
	-w '%{http_code} %{size_download}\n' -K "$WORK/curl-save.cfg" >"$WORK/curl-save.out"; } 2>"$WORK/curl-save.time"
save_secs=$(elapsed "$t0" "$(now)")
seed_cpu_save=$(seed_cpu_since "$scpu0")
save_bytes=$(find "$WORK/saved" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s }')
((save_bytes == chunkbytes)) || die "curl saved $save_bytes bytes, want $chunkbytes"
rm -rf "$WORK/saved"
say "curl saving each file" "$save_secs s, $(rate "$save_bytes" "$save_secs") MiB/s; curl $(awk '{ printf "%.1f", $1 + $2 }' "$WORK/curl-save.time") CPU-s, seed $seed_cpu_save CPU-s"

# Peak RSS from the samples, and its split into anonymous memory and mapped files.
read -r peak_rss peak_anon peak_file nsamples < <(awk '
	$2 > r { r = $2 } $3 > a { a = $3 } $4 > f { f = $4 } END { print r, a, f, NR }' "$WORK/rss.samples")

fetch_secs=""
if [[ -n $fetch_start && -n $assemble_start ]]; then
	fetch_secs=$(elapsed "$fetch_start" "$assemble_start")
	say "node fetch (phase fetching)" "$fetch_secs s, $(rate "$chunkbytes" "$fetch_secs") MiB/s (±0.25 s)"
	say "node assemble + activate" "$(elapsed "$assemble_start" "$done_at") s (±0.25 s)"
fi
say "node check (its own clock)" "$check_secs s: head, manifest, fetch, assemble, switch, collect"
say "node start to release current" "$node_total s, $(rate "$chunkbytes" "$node_total") MiB/s"
if [[ -n $fetch_secs ]]; then
	say "node fetch / curl" "$(awk -v n="$fetch_secs" -v c="$curl_secs" 'BEGIN { printf "%.2fx throughput (target: at least 0.7x)", c / n }')"
fi
if [[ -n $fetch_secs ]]; then
	say "node fetch / curl saving files" "$(awk -v n="$fetch_secs" -v c="$save_secs" 'BEGIN { printf "%.2fx throughput", c / n }')"
fi
if [[ -n $fetch_secs ]]; then
	say "node fetch / Go net/http" "$(awk -v n="$fetch_secs" -v g="$go_secs" 'BEGIN { printf "%.2fx throughput", g / n }')"
fi
say "node end to end / curl" "$(awk -v n="$node_total" -v c="$curl_secs" 'BEGIN { printf "%.2fx throughput (fetch, assemble, switch)", c / n }')"
say "CPU while the node pulled" "node $node_cpu CPU-s, seed $seed_cpu_node CPU-s (curl: $curl_cpu and $seed_cpu_curl)"
say "node peak VmRSS (sampled)" "$(awk -v k="$peak_rss" 'BEGIN { printf "%.1f MiB", k / 1024 }') over $nsamples samples, until stopped"
say "node VmHWM until release current" "$(awk -v k="$hwm_current" 'BEGIN { printf "%.1f MiB", k / 1024 }')"
say "node VmHWM until check ended" "$(awk -v k="$hwm" 'BEGIN { printf "%.1f MiB (target: under 150 MiB)", k / 1024 }')"
say "node peak RssAnon / RssFile" "$(awk -v a="$peak_anon" -v f="$peak_file" 'BEGIN { printf "%.1f MiB / %.1f MiB", a / 1024, f / 1024 }')"
