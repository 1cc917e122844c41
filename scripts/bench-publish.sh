#!/usr/bin/env bash
# bench-publish.sh measures `patchmesh publish` against issue 10's targets:
#   - publishing a tree into a fresh repository takes at most 1.5x the time of
#     `sha256sum` over the same files (warm page cache, measured in the same
#     run), and a new version with deltas against the previous one at most 5x;
#   - a new version with 1% of the bytes changed in 64 scattered places (half
#     insertions, half overwrites) costs at most a few percent in new chunks.
#
# Environment:
#   SIZE_MIB  size of the generated tree in MiB (default 1024)
#   TMPDIR    where the tree and the repository go (default /tmp)
#   FS=ext4   put the tree and the repository on a fresh ext4 file system with
#             a journal (see scratch_fs in bench-lib.sh; needs root). The
#             script says when TMPDIR is on ext4 without a journal, where a
#             publish that follows the removal of many files is slowed.
#   KEEP=1    keep the work folder
# Needs bash, GNU coreutils, awk, jq and go. Prints one line per figure.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/make-tree.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-publish.XXXXXX")
die() {
	echo "bench-publish: $*" >&2
	exit 1
}
. "$ROOT/scripts/bench-lib.sh"
cleanup() {
	scratch_fs_release
	if [[ "${KEEP:-0}" != 1 ]]; then
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
BIN=$WORK/patchmesh
scratch_fs "$WORK" $((SIZE_MIB * 4 + 1024))
SRC=$DATA/tree
REPO=$DATA/repo

say() { printf '%-34s %s\n' "$1" "$2"; }

echo "building patchmesh"
(cd "$ROOT" && go build -o "$BIN" ./cmd/patchmesh)

echo "writing a tree of $SIZE_MIB MiB in $SRC"
make_tree "$SRC" "$SIZE_MIB"
nfiles=$(find "$SRC" -type f | wc -l)
bytes=$(find "$SRC" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
say "tree" "$nfiles files, $bytes bytes"

"$BIN" keygen --out "$WORK/release.key" >/dev/null
"$BIN" trust init --key "$WORK/release.key" --out "$WORK/trust.json" >/dev/null

# Write the tree out first, so publish's one sync does not pay for it, and warm
# the page cache so both sides read from memory.
sync
warm "$SRC"

# Some VMs page out memory left untouched for a few seconds (DAMON reclaim), so
# the tree is read into the page cache again right before each timed step.
sha256() {
	warm "$SRC"
	sha_secs "$SRC"
}
# The baseline is taken before and after each publish and averaged, so a load
# change on a shared machine weighs on both sides alike.
sha_a=$(sha256)
warm "$SRC"
t0=$(now)
"$BIN" publish --repo "$REPO" --key "$WORK/release.key" --channel stable --version 1.0.0 --json "$SRC" >"$WORK/v1.json"
t1=$(now)
pub=$(elapsed "$t0" "$t1")
sha_b=$(sha256)
sha=$(awk -v a="$sha_a" -v b="$sha_b" 'BEGIN { printf "%.2f", (a + b) / 2 }')

say "sha256sum" "${sha} s (${sha_a} s before, ${sha_b} s after)"
say "publish v1 (fresh repository)" "${pub} s ($(jq -r .new_chunks "$WORK/v1.json") chunk files written)"
say "publish / sha256sum" "$(awk -v a="$pub" -v b="$sha" 'BEGIN { printf "%.2fx (target: at most 1.5x)", a / b }')"

# The same tree again into the same repository: chunking, hashing and signing
# with every chunk already stored, i.e. without creating chunk files.
warm "$SRC"
t0=$(now)
"$BIN" publish --repo "$REPO" --key "$WORK/release.key" --channel stable --version 1.0.1-rc1 --json "$SRC" >/dev/null
t1=$(now)
again=$(elapsed "$t0" "$t1")
sha_c=$(sha256)
sha2=$(awk -v a="$sha_b" -v b="$sha_c" 'BEGIN { printf "%.2f", (a + b) / 2 }')
say "publish again (no new chunk)" "${again} s, $(awk -v a="$again" -v b="$sha2" 'BEGIN { printf "%.2fx", a / b }') sha256sum (${sha2} s)"

# A 1% scattered edit: 64 places spread over the binaries by byte position,
# alternately an insertion and an overwrite of total/6400 random bytes.
edit=$((bytes / 100 / 64))
find "$SRC/bin" "$SRC/lib" -type f -printf '%s %p\n' | sort -k2 >"$WORK/bins"
awk -v n=64 -v len="$edit" 'BEGIN { srand(42) }
	{ size[NR] = $1; name[NR] = $2; sum += $1 }
	END {
		for (k = 0; k < n; k++) {
			pos = int(rand() * sum)
			for (i = 1; pos >= size[i]; i++) pos -= size[i]
			if (pos + len > size[i]) pos = size[i] - len
			if (pos < 0) pos = 0
			print name[i], pos, (k % 2 ? "over" : "insert")
		}
	}' "$WORK/bins" | sort -k1,1 -k2,2n >"$WORK/edits"

random_bytes() { head -c "$1" /dev/urandom; }
for f in $(cut -d' ' -f1 "$WORK/edits" | uniq); do
	awk -v f="$f" '$1 == f { print $2, $3 }' "$WORK/edits" | apply_edits "$f" "$edit" random_bytes
done
say "edit" "64 places x $edit bytes ($(cut -d' ' -f1 "$WORK/edits" | uniq | wc -l) files)"
sync

warm "$SRC"
t0=$(now)
"$BIN" publish --repo "$REPO" --key "$WORK/release.key" --channel stable --version 1.0.1 --json "$SRC" >"$WORK/v2.json"
t1=$(now)
v2bytes=$(jq -r .bytes "$WORK/v2.json")
newb=$(jq -r .new_bytes "$WORK/v2.json")
manb=$(jq -r .manifest_bytes "$WORK/v2.json")
pub2=$(elapsed "$t0" "$t1")
sha_d=$(sha256)
sha3=$(awk -v a="$sha_c" -v b="$sha_d" 'BEGIN { printf "%.2f", (a + b) / 2 }')
say "publish v2 (deltas against v1)" "${pub2} s, $(awk -v a="$pub2" -v b="$sha3" 'BEGIN { printf "%.2fx", a / b }') sha256sum (${sha3} s; target: at most 5x)"
say "v2 new chunk bytes" "$newb ($(awk -v a="$newb" -v b="$v2bytes" 'BEGIN { printf "%.2f%%", 100 * a / b }') of the tree; target: at most 5%)"
say "v2 manifest" "$manb bytes ($(awk -v a="$manb" -v b="$v2bytes" 'BEGIN { printf "%.2f%%", 100 * a / b }') of the tree)"
say "v2 new chunks + manifest" "$(awk -v a="$newb" -v m="$manb" -v b="$v2bytes" 'BEGIN { printf "%.2f%%", 100 * (a + m) / b }') of the tree (brief: at most 2% on the WAN)"

t0=$(now)
"$BIN" verify --repo "$REPO" --trust "$WORK/trust.json" >/dev/null
t1=$(now)
say "verify (all chunks)" "$(elapsed "$t0" "$t1") s"
