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

# ask_updates NS DIR API...: ask every node (its API address, in network
# namespace NS) to update now, all at once, and wait until each answers: one
# curl through the API `patchmesh update` uses (POST /api/update?wait=1, which
# answers once the release is applied). Sets UPDATE_SECS to the time from the
# requests to the last answer, by curl's clock: many `patchmesh update`
# processes starting on the cores the nodes share delayed the nodes' checks by
# up to 1.5 s, and even one curl's start varied by up to 1 s after a publish:
# the harness's cost, not the site's. Writes DIR/update-I.json (node I's
# answer) and DIR/done-I (about when it came); fails unless every node applied
# the release.
ask_updates() {
	local ns=$1 dir=$2 t0 i url secs rc=0 reqs=()
	shift 2
	local apis=("$@")
	for ((i = 1; i <= ${#apis[@]}; i++)); do
		reqs+=(-o "$dir/update-$i.json" "http://${apis[i - 1]}/api/update?wait=1")
	done
	sync # what the publish left to write back is not the site's work
	UPDATE_SECS=0
	t0=$(now)
	ip netns exec "$ns" timeout 900 curl -sS --no-progress-meter --noproxy '*' --parallel --parallel-immediate \
		--parallel-max "${#apis[@]}" -X POST -H 'X-Patchmesh: 1' -w '%{url} %{time_total}\n' \
		"${reqs[@]}" >"$dir/update-times" || rc=1
	while read -r url secs; do
		UPDATE_SECS=$(calc "%.3f" "($secs > $UPDATE_SECS) ? $secs : $UPDATE_SECS")
		for ((i = 1; i <= ${#apis[@]}; i++)); do
			if [[ $url == "http://${apis[i - 1]}/"* ]]; then calc "%.6f" "$t0 + $secs" >"$dir/done-$i"; fi
		done
	done <"$dir/update-times"
	for ((i = 1; i <= ${#apis[@]}; i++)); do
		if ! jq -e '.outcome == "applied"' "$dir/update-$i.json" >/dev/null 2>&1; then
			echo "node n$i: $(cat "$dir/update-$i.json" 2>/dev/null)" >&2
			rc=1
		fi
	done
	return "$rc"
}
