# bench-lib.sh: shell helpers shared by the bench-*.sh scripts.
# Source it after defining die MESSAGE, which they call on failure.

# PIDS lists the background processes a script started. stop_and_clean, a
# script's EXIT trap, stops them and removes the work folder WORK, unless
# KEEP=1.
[[ -v PIDS ]] || PIDS=()
stop_and_clean() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [[ "${KEEP:-0}" == 1 ]]; then
		echo "kept $WORK"
	else
		rm -rf "$WORK"
	fi
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# warm DIR reads DIR's files into the page cache.
warm() { find "$1" -type f -print0 | xargs -0 -r cat >/dev/null; }

# sha_secs DIR prints the seconds sha256sum takes over DIR's files.
sha_secs() {
	local t0
	t0=$(now)
	find "$1" -type f -print0 | xargs -0 -r sha256sum >/dev/null
	elapsed "$t0" "$(now)"
}

# freeport sets PORT to a loopback TCP port nobody listens on right now and
# that it has not handed out before. It runs in this shell, not in $(...):
# subshells share RANDOM's state and would all pick the same port. Ports come
# from below the kernel's ephemeral range, where curl's own connections live.
TAKEN=" "
freeport() {
	local p lo=10000 hi
	read -r hi _ </proc/sys/net/ipv4/ip_local_port_range
	for _ in $(seq 200); do
		p=$((lo + RANDOM % (hi - lo)))
		[[ $TAKEN == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			TAKEN+="$p "
			PORT=$p
			return
		fi
	done
	die "no free loopback port"
}

# waitfor SECONDS CMD...: poll CMD until it succeeds, for at most SECONDS, or die.
waitfor() {
	local limit=$1
	shift
	local end=$((SECONDS + limit))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || die "timed out after ${limit}s waiting for: $*"
		sleep 0.1
	done
}

# ext4_nojournal DIR: DIR is on an ext4 file system without a journal.
ext4_nojournal() {
	local src fstype
	read -r src fstype < <(findmnt -n -o SOURCE,FSTYPE -T "$1")
	[[ $fstype == ext4 ]] || return 1
	! ls /proc/fs/jbd2 2>/dev/null | grep -q "^$(basename "$src")-"
}

# scratch_fs DIR SIZE_MIB sets DATA, the folder for the run's trees and
# repositories: DIR itself, or with FS=ext4 a fresh ext4 file system with a
# journal, SIZE_MIB large, made in DIR/fs.img (sparse, inode tables written
# now rather than by a kernel thread during the run) and loop-mounted with
# direct I/O at DIR/fs. Needs root, mkfs.ext4 and losetup; scratch_fs_release
# undoes it. Why: on ext4 without a journal, as some VM images have, creating
# a file scans past every inode of its group freed in the last 1 to 5 minutes
# (the kernel's recently_deleted()), so a publish that follows the removal of
# a large tree, such as a previous run's, spends much of its time there. A
# fresh file system has freed none.
SCRATCH_LOOP=
scratch_fs() {
	DATA=$1
	if [[ ${FS:-} == ext4 ]]; then
		truncate -s "${2}M" "$1/fs.img"
		mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$1/fs.img"
		SCRATCH_LOOP=$(losetup --direct-io=on -f --show "$1/fs.img")
		mkdir "$1/fs"
		mount "$SCRATCH_LOOP" "$1/fs"
		DATA=$1/fs
		echo "trees and repositories on a fresh ext4 with a journal ($SCRATCH_LOOP, direct I/O)" >&2
	elif ext4_nojournal "$1"; then
		echo "note: $1 is on ext4 without a journal: publish is slower within 5 minutes of removing many files there (see FS=ext4)" >&2
	fi
}

scratch_fs_release() {
	[[ -n $SCRATCH_LOOP ]] || return 0
	umount "$DATA" || true
	losetup -d "$SCRATCH_LOOP" || true
	SCRATCH_LOOP=
}
