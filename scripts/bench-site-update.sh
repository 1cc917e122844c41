# bench-site-update.sh: the UPDATE=1 mode of bench-site.sh, sourced by it after
# the topology is up (it uses its helpers: start_seed, bg, in_site, seed_status,
# link_tx, start_nodes, cpu_ticks, say; and bench-procs.sh).
#
# For each site size in NODES, two rows on fresh nodes and fresh repositories:
# the site gets V1_TREE (published, every node asked to update, untimed), then
# V2_TREE is published with deltas (publish's default) or with --deltas 0, and
# the timed part is every node's update from v1 to v2 (ask_updates). The order
# of the two rows alternates from one site size to the next.

# update_row N DELTAS SLUG: one row; DELTAS is publish's --deltas.
update_row() {
	local n=$1 deltas=$2 dir=$WORK/$3 i
	local repo=$dir/repo trust=$dir/trust.json base=$((20000 + RANDOM % 20000))
	mkdir -p "$dir"
	"$BIN" trust init --key "$WORK/release.key" --out "$trust" --repo "$repo" >/dev/null
	start_seed "$repo" "$dir/seed.log"

	start_nodes "$n" 1 "$dir" "$trust" "$base"
	local apis=("${NODE_APIS[@]}") pids=("${NODE_PIDS[@]}")

	# v1, untimed but reported.
	"$BIN" publish --repo "$repo" --key "$WORK/release.key" --version 1.0.0 --json "$V1_TREE" >"$dir/publish-v1.json"
	mkdir -p "$dir/v1"
	ask_updates "$NS_SITE" "$dir/v1" "${apis[@]}" || die "n=$n deltas=$deltas: the update to v1 failed; see $dir"
	local v1_secs=$UPDATE_SECS

	# v2, timed.
	"$BIN" publish --repo "$repo" --key "$WORK/release.key" --version 1.0.1 --deltas "$deltas" --json "$V2_TREE" >"$dir/publish-v2.json"
	local served0 bytes0 reqs0 tx0 seedlines cpu0 p
	local -a loglines=()
	served0=$(seed_status | jq -r .served.chunk_bytes)
	bytes0=$(seed_status | jq -r .served.bytes)
	reqs0=$(seed_status | jq -r .served.requests)
	tx0=$(link_tx)
	seedlines=$(wc -l <"$dir/seed.log")
	# The nodes count WAN and LAN bytes since they started: v1's are taken off.
	local wan0=0 lan0=0 st0
	for api in "${apis[@]}"; do
		st0=$(in_site curl -sf --max-time 5 "http://$api/api/status")
		wan0=$((wan0 + $(jq -r .bytes.wan <<<"$st0")))
		lan0=$((lan0 + $(jq -r .bytes.lan <<<"$st0")))
	done
	for ((i = 1; i <= n; i++)); do loglines+=("$(wc -l <"$dir/n$i.log")"); done
	# Reset every node's VmHWM, so the peak read after is the update's.
	for p in "${pids[@]}"; do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || true; done
	cpu0=$(cpu_ticks "${pids[@]}")
	local rc=0
	ask_updates "$NS_SITE" "$dir" "${apis[@]}" || rc=1
	((rc == 0)) || die "n=$n deltas=$deltas: the update to v2 failed; see $dir"
	local cpu hwm=0 h
	cpu=$(calc "%.1f" "($(cpu_ticks "${pids[@]}") - $cpu0) / $(getconf CLK_TCK)")
	for p in "${pids[@]}"; do
		h=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
		((h > hwm)) && hwm=$h
	done

	local served bytes reqs tx wan=0 lan=0 st
	served=$(($(seed_status | jq -r .served.chunk_bytes) - served0))
	bytes=$(($(seed_status | jq -r .served.bytes) - bytes0))
	reqs=$(($(seed_status | jq -r .served.requests) - reqs0))
	tx=$(($(link_tx) - tx0))
	for ((i = 1; i <= n; i++)); do
		st=$(in_site curl -sf --max-time 5 "http://${apis[i - 1]}/api/status")
		[[ $(jq -r '.current.version // ""' <<<"$st") == 1.0.1 ]] || die "n=$n deltas=$deltas: node n$i does not run 1.0.1"
		diff -r --no-dereference "$V2_TREE" "$dir/n$i/app/current/" >/dev/null || die "n=$n deltas=$deltas: node n$i installed another tree"
		wan=$((wan + $(jq -r .bytes.wan <<<"$st")))
		lan=$((lan + $(jq -r .bytes.lan <<<"$st")))
	done
	wan=$((wan - wan0))
	lan=$((lan - lan0))
	stop_procs

	# What the seed served during the update: every object under chunks/ by CID,
	# the delta objects among them (from the v2 manifest), and repeats.
	local mpath
	mpath=$(jq -r .manifest_path "$dir/publish-v2.json")
	jq -r .payload "$repo/$mpath" | base64 -d | jq -r '(.deltas // [])[].object[0]' | sort >"$dir/delta-cids"
	tail -n +"$((seedlines + 1))" "$dir/seed.log" |
		sed -nE 's/.* path=\/chunks\/[^ ]*\/([a-z2-7]+) status=(200|206) bytes=([0-9]+).*/\1 \3/p' >"$dir/served-objects"
	local objs distinct repeats dreq ddistinct dbytes notused
	objs=$(wc -l <"$dir/served-objects")
	distinct=$(cut -d' ' -f1 "$dir/served-objects" | sort -u | wc -l)
	repeats=$((objs - distinct))
	read -r dreq ddistinct < <(awk 'NR == FNR { d[$1] = 1; next }
		($1 in d) { n++; if (!s[$1]++) u++ } END { print n + 0, u + 0 }' "$dir/delta-cids" "$dir/served-objects")
	dbytes=$(awk 'NR == FNR { d[$1] = 1; next } ($1 in d) { s += $2 } END { printf "%.0f", s }' "$dir/delta-cids" "$dir/served-objects")
	notused=0
	: >"$dir/delta-not-used.log"
	for ((i = 1; i <= n; i++)); do
		tail -n +"$((loglines[i - 1] + 1))" "$dir/n$i.log" | grep 'delta not used' | sed "s/^/n$i: /" >>"$dir/delta-not-used.log" || true
	done
	notused=$(wc -l <"$dir/delta-not-used.log")

	local pub_new pub_deltas pub_dbytes
	pub_new=$(jq -r .new_bytes "$dir/publish-v2.json")
	pub_deltas=$(jq -r .deltas "$dir/publish-v2.json")
	pub_dbytes=$(jq -r .delta_bytes "$dir/publish-v2.json")
	local secs
	secs=$(calc "%.2f" "$UPDATE_SECS")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$deltas" "$(calc "%.2f" "$v1_secs")" "$secs" \
		"$bytes" "$served" "$tx" "$wan" "$lan" "$reqs" "$objs" "$repeats" "$dreq" "$ddistinct" "$dbytes" "$notused" "$cpu" "$hwm" \
		"$pub_new/$pub_deltas/$pub_dbytes" >>"$WORK/update.tsv"
	say "n=$n deltas=$deltas" "v1 $(calc "%.2f" "$v1_secs") s; v1->v2 $secs s; seed $bytes bytes ($served under chunks/, $dreq delta requests for $ddistinct deltas, $repeats repeats); 'delta not used' $notused; max VmHWM $((hwm / 1024)) MiB"
	if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "${dir:?}"/n*/; fi
}

run_updates() {
	: >"$WORK/update.tsv"
	say "v1 tree" "$(du -sb "$V1_TREE" | cut -f1) bytes, $(find "$V1_TREE" -type f | wc -l) files"
	say "v2 tree" "$(du -sb "$V2_TREE" | cut -f1) bytes, $(find "$V2_TREE" -type f | wc -l) files"
	echo
	local n k=0
	for n in $NODES; do
		if ((k++ % 2 == 0)); then
			update_row "$n" 1 "site-$n-deltas"
			update_row "$n" 0 "site-$n-nodeltas"
		else
			update_row "$n" 0 "site-$n-nodeltas"
			update_row "$n" 1 "site-$n-deltas"
		fi
	done
	# The table: each row's time and seed bytes also as a ratio of the same
	# site size's row without deltas, measured in the same run.
	local TABLE=$WORK/table.md
	{
		echo "| nodes | publish v2 | v1 (s, untimed phase) | v1 -> v2 (s) | time / no deltas | seed bytes, all files | seed bytes / no deltas | link bytes | nodes' WAN / LAN bytes | seed requests | objects served (repeats) | delta requests (distinct) | delta bytes served | \"delta not used\" | node CPU (s) | max node VmHWM during v2 (MiB) | v2 publish: new chunk bytes / deltas / delta bytes |"
		echo "|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		awk -F'\t' '
			NR == FNR { if ($2 == 0) { t[$1] = $4; b[$1] = $5 } next }
			{ printf "| %s | %s | %s | %s | %.3fx | %s | %.4fx | %s | %s / %s | %s | %s (%s) | %s (%s) | %s | %s | %s | %.1f | %s |\n",
				$1, ($2 == 0 ? "--deltas 0" : "deltas"), $3, $4, $4 / t[$1], $5, $6 == 0 && $5 == 0 ? 0 : $5 / b[$1], $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18 / 1024, $19 }
		' "$WORK/update.tsv" "$WORK/update.tsv"
	} >"$TABLE"
	echo
	cat "$TABLE"
	echo
	echo "rate $RATE${DELAY:+, delay $DELAY}; v1 $V1_TREE -> v2 $V2_TREE"
	cat "$WORK"/site-*/delta-not-used.log 2>/dev/null | head -20
}
