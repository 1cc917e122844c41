# bench-lib.sh: shell helpers shared by bench-node.sh and bench-delta.sh.
# Source it after defining die MESSAGE, which they call on failure.

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

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
