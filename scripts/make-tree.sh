# make_tree DIR SIZE_MIB writes a release-like tree for the benchmarks: 60% in
# six large binaries, 25% in libraries of about 1 MiB, 15% in text pages of
# 64 KiB (base64 lines, as configs and scripts). Random bytes, so every chunk is
# distinct. Sourced by bench-publish.sh and bench-node.sh.
make_tree() {
	local src=$1 total=$(($2 << 20))
	local large libs texts i n d
	mkdir -p "$src/bin" "$src/lib" "$src/share"
	large=$((total * 60 / 100 / 6))
	for i in 1 2 3 4 5 6; do
		head -c "$large" /dev/urandom >"$src/bin/tool-$i"
	done
	libs=$((total * 25 / 100))
	i=0
	while ((libs > 0)); do
		n=$(((1 << 20) + (i % 7) * 65536))
		((n > libs)) && n=$libs
		head -c "$n" /dev/urandom >"$src/lib/lib$i.so"
		libs=$((libs - n))
		i=$((i + 1))
	done
	# The text pages come from one base64 stream cut by split, a few processes
	# per hundred files rather than several per file.
	texts=$((total - 6 * large - total * 25 / 100))
	i=0
	while ((texts > 0)); do
		n=$((100 * 65536))
		((n > texts)) && n=$texts
		d=$src/share/doc-$i
		mkdir -p "$d"
		# base64 dies of SIGPIPE when head has enough; that is no failure.
		{ head -c $((n * 3 / 4 + 3)) /dev/urandom | base64 -w 76 || true; } | head -c "$n" |
			split -b 65536 -a 3 -d --additional-suffix=.txt - "$d/page-"
		texts=$((texts - n))
		i=$((i + 1))
	done
}

# apply_edits FILE EDIT GEN rewrites FILE with EDIT-byte edits read from stdin
# as "offset kind [tag]" lines sorted by offset: kind "over" overwrites EDIT
# bytes at offset, anything else inserts them there. GEN EDIT TAG prints the
# bytes of one edit.
apply_edits() {
	local f=$1 edit=$2 gen=$3 out=$1.new prev=0 off kind tag
	: >"$out"
	while read -r off kind tag; do
		((off < prev)) && off=$prev
		if ((off > prev)); then
			dd if="$f" bs=1M iflag=skip_bytes,count_bytes skip="$prev" count=$((off - prev)) status=none >>"$out"
		fi
		"$gen" "$edit" "$tag" >>"$out"
		if [[ $kind == over ]]; then prev=$((off + edit)); else prev=$off; fi
	done
	dd if="$f" bs=1M iflag=skip_bytes skip="$prev" status=none >>"$out"
	mv "$out" "$f"
}
