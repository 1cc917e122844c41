#!/usr/bin/env bash
# bench-delta.sh measures what an update costs on the wire: for pairs of real
# Debian packages (a bookworm version v1 and its bookworm-security update v2,
# each unpacked with dpkg-deb -x into a release tree) and for a synthetic edit,
# it compares
#   - node: the bytes a patchmesh node pulls from a real web server (nginx on
#     127.0.0.1, access log with $bytes_sent) to go from v1 to v2: publish v1,
#     a standalone node (no site, --source http://127.0.0.1:PORT/) installs it,
#     publish v2, `POST /api/update?wait=1`; every request nginx answered during
#     that update is summed (head, manifest, chunks, anything), the manifest
#     (paths under manifests/) also on its own;
#   - deb: the size of the v2 .deb (what apt downloads);
#   - rsync: `rsync -az --delete --stats` from an rsync daemon on 127.0.0.1
#     exporting the v2 tree into a copy of the v1 tree ("Total bytes received"
#     on the client: the wire bytes);
#   - zstd: `zstd -19 --long=31 --patch-from=v1.tar v2.tar` (both trees tarred
#     the same way: sorted, mtime 0, owner 0);
# each in bytes and in % of the v2 tree (sum of its regular files' sizes), and
# the ratios node/zstd, node/rsync, node/deb. The synthetic case is a SYN_MIB
# tree from make-tree.sh (binaries, libraries, text) where v2 has 1% of the
# bytes changed in 64 scattered places, half of them insertions, positions and
# bytes drawn from SEED (no .deb there).
# It also times `patchmesh publish` of each v2 tree against `sha256sum` over the
# same files in the same run, page cache warm for both: into the repository
# that holds v1 (what the publisher does; once) and into an empty one (the
# fastest of three), against the fastest sha256sum of the run.
# A tree that publish refuses (today: absolute symlinks) is reported as
# "publish refused: <first line of the error>" and the other columns still run.
#
# Pairs: PAIRS is a space-separated list of items; an item is NAME (v1 = the
# newest version in bookworm/main, v2 = the newest in bookworm-security, as
# `apt-cache madison NAME` lists them; when the security version is not the
# newer one the two are swapped so v1 < v2, and the table says so), or
# NAME=V1:V2 (explicit versions; epochs allowed), or several of those joined by
# commas, unpacked into one tree (libclamav12,clamav).
#
# Environment:
#   PAIRS      the pairs (default: postgresql-15 mariadb-server-core
#              openjdk-17-jre-headless libclamav12,clamav libreoffice-core libssl3,
#              and chromium with FULL=1)
#   FULL=1     add chromium (a browser major update, a ~90 MB .deb)
#   SYNTH=0    skip the synthetic case; SYN_MIB its size (default 64), SEED (42)
#   LINKS=drop remove, from both trees of a pair, the symlinks publish refuses
#              today (absolute targets, targets outside the tree or missing, as a
#              package's links into other packages are), so that the node's bytes
#              are measured anyway; every column then sees the same trees and
#              the note says how many links went (default: keep them, and a
#              refused publish is reported as such)
#   CACHE      folder of .deb files, used first; missing ones are fetched there
#              with `apt-get download NAME=VERSION` (default: WORK/debs)
#   PATCHMESH  a patchmesh binary to measure (default: built from this tree)
#   TMPDIR     where the work folder goes (default /tmp)
#   FS=ext4    put the trees, repositories and nodes on a fresh ext4 file
#              system with a journal (see scratch_fs in bench-lib.sh; needs
#              root), so that the publish times do not depend on what was
#              removed shortly before (the script says when TMPDIR is on ext4
#              without a journal, where that slows publish)
#   PUBLISH_FLAGS  more flags for every publish, e.g. "--delta-level fast"
#              (default: none, publish's defaults)
#   KEEP=1     keep the work folder (logs, trees, repositories, results.tsv)
# `bench-delta.sh --table A.tsv B.tsv` prints the table of earlier runs' TSVs.
# Prints progress on stderr, the markdown table on stdout; the raw numbers go
# to WORK/results.tsv (and OUT_TSV when set). Needs root on a fresh machine:
# installs nginx, rsync, zstd, jq, curl, openssl with apt-get when missing.
# Loopback only: every server listens on 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/make-tree.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-delta.XXXXXX")
TOP=$WORK # WORK moves onto the scratch file system with FS=ext4
CACHE=${CACHE:-$WORK/debs}
SYN_MIB=${SYN_MIB:-64}
SEED=${SEED:-42}
DEFAULT_PAIRS="postgresql-15 mariadb-server-core openjdk-17-jre-headless libclamav12,clamav libreoffice-core libssl3"
[[ "${FULL:-0}" == 1 ]] && DEFAULT_PAIRS+=" chromium"
PAIRS=${PAIRS:-$DEFAULT_PAIRS}
read -r -a PFLAGS <<<"${PUBLISH_FLAGS:-}"
TSV=$WORK/results.tsv
BIN=$WORK/patchmesh
export NO_PROXY='*' no_proxy='*'
mkdir -p "$CACHE"

PIDS=()
# stop PID: SIGTERM, SIGKILL after 10 s, reap; drop it from PIDS.
stop() {
	local p=$1 i keep=()
	kill -TERM "$p" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	for i in "${PIDS[@]}"; do [[ $i == "$p" ]] || keep+=("$i"); done
	PIDS=("${keep[@]}")
}
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	sleep 0.5
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	scratch_fs_release
	if [[ "${KEEP:-0}" == 1 ]]; then
		echo "kept $TOP" >&2
	else
		rm -rf "$TOP"
	fi
}
trap cleanup EXIT

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	echo "bench-delta: $*" >&2
	exit 1
}

. "$ROOT/scripts/bench-lib.sh"

# listening PID PORT: wait up to 30 s for PID to listen on 127.0.0.1:PORT;
# fails at once when PID exits (a port taken in between, a bad config).
listening() {
	local end=$((SECONDS + 30))
	until (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; do
		kill -0 "$1" 2>/dev/null || return 1
		((SECONDS < end)) || return 1
		sleep 0.1
	done
}

# table TSV prints the markdown table of a results TSV.
table() {
awk -F'\t' '
function pct(b, t) { return (b == "" ? "-" : sprintf("%d (%.2f%%)", b, 100 * b / t)) }
function ratio(a, b) { return (a == "" || b == "" || b == 0 ? "-" : sprintf("%.2fx", a / b)) }
function pub(p, s) { return (p == "" || s == "" || s == 0 ? "-" : sprintf("%.2fx", p / s)) }
NR == 1 {
	print "| case | v1 → v2 | v2 tree (files) | .deb | node | node manifest | rsync -az | zstd -19 --patch-from | node/zstd | node/rsync | node/deb | publish v2 / sha256sum (onto v1; fresh) | note |"
	print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	next
}
$4 == "" { printf "| %s | | | | | | | | | | | | %s |\n", $1, $16; next }
{
	printf "| %s | %s → %s | %d (%d) | %s | %s | %s | %s | %s | %s | %s | %s | %s; %s | %s |\n",
		$1, $2, $3, $4, $5, pct($6, $4), pct($7, $4), pct($8, $4), pct($10, $4), pct($11, $4),
		ratio($7, $11), ratio($7, $10), ratio($7, $6), pub($12, $14), pub($13, $14), $16
}' "$1"
}
if [[ ${1:-} == --table ]]; then
	# bench-delta.sh --table FILE.tsv...: the table of earlier runs' TSVs
	# (their rows after the first file's header), nothing measured.
	shift
	awk 'FNR > 1 || NR == 1' "$@" >"$WORK/merged.tsv"
	table "$WORK/merged.tsv"
	exit 0
fi

# The measurements' files go on the scratch file system (FS=ext4), if any.
scratch_fs "$TOP" $((32 << 10))
WORK=$DATA

# --- tools -------------------------------------------------------------------

APT_UPDATED=0
apt_update() {
	((APT_UPDATED)) && return 0
	log "apt-get update"
	apt-get update -qq >&2 || die "apt-get update failed"
	APT_UPDATED=1
}
need_tools() {
	local missing=() t pkg
	for t in nginx:nginx rsync:rsync zstd:zstd jq:jq curl:curl openssl:openssl; do
		command -v "${t%%:*}" >/dev/null 2>&1 || [[ -x /usr/sbin/${t%%:*} ]] || missing+=("${t#*:}")
	done
	((${#missing[@]})) || return 0
	((EUID == 0)) || die "missing ${missing[*]}; run as root to install them with apt-get"
	apt_update
	# Installing nginx must not start the distribution's server on port 80 on
	# every address: deny service starts for the install unless a policy exists.
	local policy=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		policy=1
	fi
	log "apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || {
		((policy)) && rm -f /usr/sbin/policy-rc.d
		die "apt-get install ${missing[*]} failed"
	}
	((policy)) && rm -f /usr/sbin/policy-rc.d
	return 0
}
need_tools
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [[ -n ${PATCHMESH:-} ]]; then
	cp "$PATCHMESH" "$BIN"
else
	log "building patchmesh"
	(cd "$ROOT" && go build -o "$BIN" ./cmd/patchmesh)
fi
"$BIN" keygen --out "$WORK/release.key" >/dev/null
if "$BIN" publish --help 2>&1 | grep -q -- '--deltas'; then
	log "publish has --deltas: measured with its default"
fi
if ((${#PFLAGS[@]})); then
	log "publish flags: ${PFLAGS[*]}"
fi

# --- versions and packages ---------------------------------------------------

# newest NAME SUITE prints the newest version of NAME that madison lists for
# SUITE (e.g. bookworm/main, bookworm-security/main), or nothing.
newest() {
	local v best=""
	while read -r v; do
		if [[ -z $best ]] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
	done < <(apt-cache madison "$1" 2>/dev/null | awk -F'|' -v s=" $2 " '
		$3 ~ / Packages/ && index($3, s) { gsub(/ /, "", $2); print $2 }')
	printf '%s' "$best"
}

# splitvers V1:V2 sets V1 and V2: the one split at a colon where both halves
# are valid Debian versions (versions may carry an epoch, "4:7.4.7-1").
splitvers() {
	local s=$1 i n=0 a b
	V1="" V2=""
	for ((i = 1; i < ${#s}; i++)); do
		[[ ${s:i:1} == : ]] || continue
		a=${s:0:i} b=${s:i+1}
		if [[ -n $b ]] && dpkg --validate-version "$a" 2>/dev/null && dpkg --validate-version "$b" 2>/dev/null; then
			V1=$a V2=$b n=$((n + 1))
		fi
	done
	((n == 1)) || return 1
}

# fetchdeb NAME VERSION prints the path of NAME's .deb at VERSION in CACHE,
# downloading it there when missing.
fetchdeb() {
	local name=$1 ver=$2 f
	f=$(compgen -G "$CACHE/${name}_${ver//:/%3a}_*.deb" | head -n1 || true)
	if [[ -z $f ]]; then
		log "apt-get download $name=$ver"
		if ! (cd "$CACHE" && apt-get download -qq "$name=$ver" >&2 2>/dev/null); then
			apt_update
			(cd "$CACHE" && apt-get download -qq "$name=$ver" >&2) || return 1
		fi
		f=$(compgen -G "$CACHE/${name}_${ver//:/%3a}_*.deb" | head -n1 || true)
	fi
	[[ -n $f ]] || return 1
	printf '%s' "$f"
}

# droplinks DIR: remove the symlinks whose target is absolute or does not
# resolve inside DIR; prints how many.
droplinks() {
	local dir=$1 l t n=0 real
	real=$(realpath "$dir")
	while IFS= read -r -d '' l; do
		t=$(readlink "$l")
		if [[ $t == /* ]] || ! t=$(realpath -e "$l" 2>/dev/null) || [[ $t != "$real" && $t != "$real"/* ]]; then
			rm -f "$l"
			n=$((n + 1))
		fi
	done < <(find "$dir" -type l -print0)
	printf '%d' "$n"
}

# --- measurements ------------------------------------------------------------

treebytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s }'; }
firstline() { grep -v '^[[:space:]]*$' "$1" | head -n1 | sed 's/^Error: //; s/^patchmesh: publish: //; s/\t/ /g; s/|/\//g' | cut -c1-160; }

# zstd_patch V1DIR V2DIR DIR sets ZS to the size of the zstd patch from v1 to
# v2 (both tarred the same way).
zstd_patch() {
	local d=$3
	ZS=""
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf "$d/v1.tar" .
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$2" -cf "$d/v2.tar" .
	if timeout 1200 zstd -q -f -19 --long=31 --patch-from="$d/v1.tar" "$d/v2.tar" -o "$d/v2.patch.zst" 2>"$d/zstd.err"; then
		ZS=$(stat -c %s "$d/v2.patch.zst")
	else
		head -n3 "$d/zstd.err" >&2
	fi
	rm -f "$d/v1.tar" "$d/v2.tar" "$d/v2.patch.zst"
	[[ -n $ZS ]]
}

# rsync_bytes V1DIR V2DIR DIR sets RS to the bytes an rsync client received
# syncing a copy of v1 to v2 from a daemon on 127.0.0.1.
rsync_bytes() {
	local d=$3 pid rc=0
	RS=""
	cp -a "$1" "$d/rsync-dst"
	freeport
	cat >"$d/rsyncd.conf" <<-EOF
		pid file = $d/rsyncd.pid
		log file = $d/rsyncd.log
		use chroot = no
		[v2]
		path = $2
		read only = yes
		uid = $(id -u)
		gid = $(id -g)
	EOF
	rsync --daemon --no-detach --config="$d/rsyncd.conf" --address=127.0.0.1 --port="$PORT" &
	pid=$!
	PIDS+=("$pid")
	listening "$pid" "$PORT" || {
		# Another program took the port in between: once more on another.
		stop "$pid"
		freeport
		rsync --daemon --no-detach --config="$d/rsyncd.conf" --address=127.0.0.1 --port="$PORT" &
		pid=$!
		PIDS+=("$pid")
		listening "$pid" "$PORT" || die "rsync daemon did not listen on 127.0.0.1:$PORT; see $d/rsyncd.log"
	}
	timeout 900 rsync -az --delete --stats "rsync://127.0.0.1:$PORT/v2/" "$d/rsync-dst/" >"$d/rsync.out" 2>&1 || rc=$?
	stop "$pid"
	rm -rf "$d/rsync-dst"
	if ((rc != 0)); then
		tail -n3 "$d/rsync.out" >&2
		return 1
	fi
	RS=$(awk -F': ' '/^Total bytes received/ { gsub(/,/, "", $2); print $2 + 0 }' "$d/rsync.out")
	[[ -n $RS ]]
}

# start_nginx REPO DIR: nginx serving REPO on 127.0.0.1:PORT, its access log
# DIR/access.log with each request's bytes sent (headers and body).
start_nginx() {
	local repo=$1 d=$2 try
	for try in 1 2; do
		freeport
		start_nginx_on "$repo" "$d"
		listening "$NGINX_PID" "$NGINX_PORT" && break
		stop "$NGINX_PID"
		((try < 2)) || die "nginx did not listen on 127.0.0.1:$NGINX_PORT; see $d/nginx/error.log"
	done
	waitfor 20 curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$NGINX_PORT/root.json"
}
start_nginx_on() {
	local repo=$1 d=$2 user=""
	NGINX_PORT=$PORT
	mkdir -p "$d/nginx"
	((EUID == 0)) && user="user root root;"
	cat >"$d/nginx/nginx.conf" <<-EOF
		daemon off;
		master_process on;
		worker_processes 1;
		$user
		pid $d/nginx/nginx.pid;
		error_log $d/nginx/error.log;
		events { worker_connections 256; }
		http {
			log_format bench '\$msec\t\$status\t\$bytes_sent\t\$body_bytes_sent\t\$request_method\t\$uri';
			access_log $d/access.log bench;
			default_type application/octet-stream;
			sendfile on;
			client_body_temp_path $d/nginx/body;
			proxy_temp_path $d/nginx/proxy;
			fastcgi_temp_path $d/nginx/fastcgi;
			uwsgi_temp_path $d/nginx/uwsgi;
			scgi_temp_path $d/nginx/scgi;
			server {
				listen 127.0.0.1:$NGINX_PORT;
				root $repo;
				autoindex off;
			}
		}
	EOF
	"$NGINX" -p "$d/nginx" -e "$d/nginx/error.log" -c "$d/nginx/nginx.conf" >"$d/nginx/out.log" 2>&1 &
	NGINX_PID=$!
	PIDS+=("$NGINX_PID")
}

# publish DIR REPO VERSION OUT: times a publish (sync first); sets PUB_SECS, or
# PUB_ERR to the first line of the error when publish refuses.
publish() {
	local t0 src=$1 repo=$2 ver=$3 out=$4
	PUB_ERR="" PUB_SECS=""
	sync
	t0=$(now)
	if "$BIN" publish --repo "$repo" --key "$WORK/release.key" --channel stable --version "$ver" --json "${PFLAGS[@]}" "$src" >"$out.json" 2>"$out.err"; then
		PUB_SECS=$(elapsed "$t0" "$(now)")
	else
		PUB_ERR=$(firstline "$out.err")
		[[ -n $PUB_ERR ]] || PUB_ERR="exit status $?"
	fi
}

minof() { printf '%s\n' "$@" | awk 'NF && (m == "" || $1 < m) { m = $1 } END { print m }'; }

# time_fresh V2DIR DIR: publish V2DIR into an empty repository (every chunk
# file written) three times, and sha256sum over it between them; sets
# PUB_FRESH and SHA_SECS to the fastest of each (SHA_SECS also over the
# SHA_SAMPLES taken before), so short runs on a shared machine are less noisy.
time_fresh() {
	local v2=$1 d=$2 i pubs=""
	warm "$v2"
	SHA_SAMPLES+=" $(sha_secs "$v2")"
	for i in 1 2 3; do
		publish "$v2" "$d/repo-fresh" 1.0.1 "$d/publish-fresh"
		rm -rf "$d/repo-fresh"
		[[ -z $PUB_ERR ]] || break
		pubs+=" $PUB_SECS"
		SHA_SAMPLES+=" $(sha_secs "$v2")"
	done
	PUB_FRESH=$(minof $pubs)
	SHA_SECS=$(minof $SHA_SAMPLES)
}

# node_update NAME V1DIR V2DIR DIR: the node half of a case (see the header).
# Sets NODE_BYTES, NODE_MAN, NODE_REQS, PUB_INCR, PUB_FRESH, SHA_SECS, NOTE.
node_update() {
	local name=$1 v1=$2 v2=$3 d=$4 repo=$4/repo api st mark out ndiff bad
	NODE_BYTES="" NODE_MAN="" NODE_REQS="" PUB_INCR="" PUB_FRESH="" SHA_SECS="" SHA_SAMPLES=""
	"$BIN" trust init --key "$WORK/release.key" --out "$d/trust.json" --repo "$repo" >/dev/null
	publish "$v1" "$repo" 1.0.0 "$d/publish-v1"
	if [[ -n $PUB_ERR ]]; then
		NOTE+="publish refused: $PUB_ERR; "
		# The publish timing still runs, in case only v1 is refused.
		time_fresh "$v2" "$d"
		return 0
	fi
	start_nginx "$repo" "$d"
	freeport
	api=127.0.0.1:$PORT
	"$BIN" node run --name "bench-$name" --data "$d/node/data" --install-dir "$d/node/app" --trust "$d/trust.json" \
		--source "http://127.0.0.1:$NGINX_PORT/" --api "$api" --check-interval 1h >"$d/node.log" 2>&1 &
	NODE_PID=$!
	PIDS+=("$NODE_PID")
	# The node checks its source at start: wait until it runs v1.
	local end=$((SECONDS + 600))
	while :; do
		kill -0 "$NODE_PID" 2>/dev/null || die "$name: node exited; see $d/node.log (KEEP=1 keeps it)"
		((SECONDS < end)) || die "$name: node did not install v1 within 600 s"
		st=$(curl -sf --max-time 5 "http://$api/api/status" || true)
		[[ -n $st ]] && jq -e '.current.version == "1.0.0" and .last_check.outcome == "applied"' >/dev/null <<<"$st" && break
		sleep 0.2
	done
	log "$name: node runs v1"

	# Publish v2 into the repository that holds v1, timed against sha256sum
	# right before and after it.
	warm "$v2"
	SHA_SAMPLES=$(sha_secs "$v2")
	publish "$v2" "$repo" 1.0.1 "$d/publish-v2"
	SHA_SAMPLES+=" $(sha_secs "$v2")"
	if [[ -n $PUB_ERR ]]; then
		NOTE+="publish refused (v2): $PUB_ERR; "
	else
		PUB_INCR=$PUB_SECS
		sync
		mark=$(wc -l <"$d/access.log")
		out=$(timeout 900 curl -sS --max-time 880 -X POST -H 'X-Patchmesh: 1' "http://$api/api/update?wait=1" 2>&1 || true)
		printf '%s\n' "$out" >"$d/update.json"
		if ! jq -e '.outcome == "applied"' >/dev/null 2>&1 <<<"$out"; then
			NOTE+="update not applied: $(head -c 200 <<<"$out"); "
		fi
		sleep 0.5 # nginx logs a request when it has written its last byte
		tail -n +"$((mark + 1))" "$d/access.log" >"$d/access-v2.log"
		read -r NODE_BYTES NODE_MAN NODE_REQS < <(awk -F'\t' '
			{ s += $3; n++ } $6 ~ /^\/manifests\// { m += $3 }
			END { printf "%.0f %.0f %d\n", s, m, n }' "$d/access-v2.log")
		# A 404 for roots/<next>.json is the node looking for a key rotation,
		# for rollout.json a channel without a staged rollout.
		bad=$(awk -F'\t' '$2 !~ /^(200|206|304)$/ && !($2 == 404 && ($6 ~ /^\/roots\// || $6 ~ /\/rollout\.json$/)) { print $2, $6 }' "$d/access-v2.log")
		[[ -z $bad ]] || NOTE+="unexpected answers: $(head -n3 <<<"$bad" | tr '\n' ' '); "
		# What the node runs must be v2, byte for byte.
		ndiff=$(diff -r --no-dereference "$d/node/app/current/" "$v2/" 2>&1 | wc -l || true)
		((ndiff == 0)) || NOTE+="installed tree differs from v2 ($ndiff lines of diff -r); "
		# The node's peak resident memory over both updates (issue target: under 150 MiB).
		hwm=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$NODE_PID/status" 2>/dev/null || true)
		[[ -z $hwm ]] || NOTE+="node peak RSS ${hwm} MiB; "
	fi
	stop "$NODE_PID"
	stop "$NGINX_PID"

	time_fresh "$v2" "$d"
	rm -rf "$d/node"
	return 0
}

printf 'case\tv1\tv2\ttree_bytes\tfiles\tdeb_bytes\tnode_bytes\tnode_manifest_bytes\tnode_requests\trsync_bytes\tzstd_patch_bytes\tpublish_v2_secs\tpublish_fresh_secs\tsha256sum_secs\tcase_secs\tnote\n' >"$TSV"

# run_case NAME V1LABEL V2LABEL V1DIR V2DIR DEB_BYTES: every column for one
# pair, one line in the TSV.
run_case() {
	local name=$1 l1=$2 l2=$3 v1=$4 v2=$5 deb=$6 d=$WORK/case-$1 t0 tb nf
	t0=$SECONDS
	mkdir -p "$d"
	tb=$(treebytes "$v2")
	nf=$(find "$v2" -type f | wc -l)
	log "$name: v2 tree $tb bytes in $nf files; zstd --patch-from"
	zstd_patch "$v1" "$v2" "$d" || NOTE+="zstd failed; "
	log "$name: rsync"
	rsync_bytes "$v1" "$v2" "$d" || NOTE+="rsync failed; "
	log "$name: patchmesh"
	node_update "$name" "$v1" "$v2" "$d"
	NOTE=${NOTE%; }
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$l1" "$l2" "$tb" "$nf" "$deb" \
		"$NODE_BYTES" "$NODE_MAN" "$NODE_REQS" "$RS" "$ZS" "$PUB_INCR" "$PUB_FRESH" "$SHA_SECS" "$((SECONDS - t0))" "$NOTE" >>"$TSV"
	log "$name: node ${NODE_BYTES:--} rsync ${RS:--} zstd ${ZS:--} deb ${deb:--} (${NOTE:-ok}) in $((SECONDS - t0)) s"
	rm -rf "$v1" "$v2"
}

# --- the pairs ---------------------------------------------------------------

T_START=$SECONDS
for item in $PAIRS; do
	NOTE=""
	IFS=, read -ra pkgs <<<"$item"
	name=""
	for p in "${pkgs[@]}"; do name+="${name:+"+"}${p%%=*}"; done
	d=$WORK/trees/$name
	mkdir -p "$d/v1" "$d/v2"
	l1="" l2="" deb=0 ok=1
	for p in "${pkgs[@]}"; do
		pn=${p%%=*}
		if [[ $p == *=* ]]; then
			splitvers "${p#*=}" || { NOTE+="$p: not NAME=V1:V2; "; ok=0; break; }
			a=$V1 b=$V2
		else
			a=$(newest "$pn" bookworm/main)
			b=$(newest "$pn" bookworm-security/main)
			if [[ -z $a || -z $b ]]; then
				apt_update
				a=$(newest "$pn" bookworm/main)
				b=$(newest "$pn" bookworm-security/main)
			fi
			if [[ -z $a || -z $b ]]; then
				NOTE+="$pn: madison lists no bookworm/main and bookworm-security pair; "
				ok=0
				break
			fi
			if ! dpkg --compare-versions "$b" gt "$a"; then
				NOTE+="$pn: bookworm/main has the newer version, v1 is the security one; "
				tmp=$a a=$b b=$tmp
			fi
		fi
		f1=$(fetchdeb "$pn" "$a") || { NOTE+="$pn=$a: download failed; "; ok=0; break; }
		f2=$(fetchdeb "$pn" "$b") || { NOTE+="$pn=$b: download failed; "; ok=0; break; }
		dpkg-deb -x "$f1" "$d/v1"
		dpkg-deb -x "$f2" "$d/v2"
		deb=$((deb + $(stat -c %s "$f2")))
		[[ ", $l1, " == *", $a, "* ]] || l1+="${l1:+, }$a"
		[[ ", $l2, " == *", $b, "* ]] || l2+="${l2:+, }$b"
	done
	if ((ok)) && [[ ${LINKS:-keep} == drop ]]; then
		n1=$(droplinks "$d/v1")
		n2=$(droplinks "$d/v2")
		((n1 + n2 == 0)) || NOTE+="LINKS=drop: $n1 + $n2 symlinks removed (absolute or leaving the tree); "
	fi
	if ((ok)); then
		run_case "$name" "$l1" "$l2" "$d/v1" "$d/v2" "$deb"
	else
		log "$name: skipped: $NOTE"
		printf '%s\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t%s\n' "$name" "${NOTE%; }" >>"$TSV"
	fi
	rm -rf "$d"
done

# --- the synthetic edit ------------------------------------------------------

# seeded N TAG: N pseudo-random bytes drawn from SEED and TAG (AES-CTR keystream).
seeded() {
	{ openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:$SEED-$2" </dev/zero 2>/dev/null || true; } | head -c "$1"
}

if [[ "${SYNTH:-1}" != 0 ]]; then
	NOTE=""
	d=$WORK/trees/synthetic
	log "synthetic: writing a $SYN_MIB MiB tree"
	make_tree "$d/v1" "$SYN_MIB"
	cp -a "$d/v1" "$d/v2"
	bytes=$(treebytes "$d/v1")
	# 1% of the bytes in 64 places spread over the binaries and libraries by
	# byte position, alternately an insertion and an overwrite of bytes/6400
	# bytes (as bench-publish.sh), positions and bytes from SEED.
	edit=$((bytes / 100 / 64))
	(cd "$d/v2" && find bin lib -type f -printf '%s %p\n' | sort -k2) >"$WORK/bins"
	awk -v n=64 -v len="$edit" -v seed="$SEED" 'BEGIN { srand(seed) }
		{ size[NR] = $1; name[NR] = $2; sum += $1 }
		END {
			for (k = 0; k < n; k++) {
				pos = int(rand() * sum)
				for (i = 1; pos >= size[i]; i++) pos -= size[i]
				if (pos + len > size[i]) pos = size[i] - len
				if (pos < 0) pos = 0
				print name[i], pos, (k % 2 ? "over" : "insert"), k
			}
		}' "$WORK/bins" | sort -k1,1 -k2,2n >"$WORK/edits"
	for f in $(cut -d' ' -f1 "$WORK/edits" | uniq); do
		awk -v f="$f" '$1 == f { print $2, $3, $4 }' "$WORK/edits" | apply_edits "$d/v2/$f" "$edit" seeded
	done
	run_case "synthetic-${SYN_MIB}MiB" "make-tree" "64 edits x $edit B (1%), seed $SEED" "$d/v1" "$d/v2" ""
	rm -rf "$d"
fi
log "all cases in $((SECONDS - T_START)) s"
[[ -n ${OUT_TSV:-} ]] && cp "$TSV" "$OUT_TSV"

# --- the table ---------------------------------------------------------------

table "$TSV"
echo
echo "sha256sum seconds and the raw numbers: $TSV"
