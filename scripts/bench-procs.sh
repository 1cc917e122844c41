# bench-procs.sh: helpers for the benchmark scripts that start many patchmesh
# processes (bench-site.sh, bench-scale.sh). Source it after defining die and
# PIDS=() (the background processes to stop); ROOT is the repository, WORK the
# work folder.

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

# stop_procs [SECONDS]: end every process in PIDS: SIGTERM, then SIGKILL after
# SECONDS (default 15) for any that did not stop.
stop_procs() {
	local p i left tenths=$((${1:-15} * 10))
	((${#PIDS[@]})) || return 0
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for ((i = 0; i < tenths; i++)); do
		left=0
		for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
		((left)) || break
		sleep 0.1
	done
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
}

# wait_until SECONDS WHAT CMD...: poll CMD every POLL seconds (default 0.2)
# until it succeeds, or die.
wait_until() {
	local secs=$1 what=$2 end
	shift 2
	end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || die "timed out after ${secs}s waiting for $what"
		sleep "${POLL:-0.2}"
	done
}

# build_bin sets BIN to a patchmesh built from ROOT into WORK, unless BIN is set.
build_bin() {
	[[ -z "${BIN:-}" ]] || return 0
	echo "building patchmesh"
	BIN=$WORK/patchmesh
	(cd "$ROOT" && go build -o "$BIN" ./cmd/patchmesh)
}
