#!/bin/sh
# Prints far more than a hook's kept output, ends with a marker, and fails.
i=0
while [ $i -lt 200 ]; do
	echo "filler line $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	i=$((i + 1))
done
echo "TAIL-MARKER" >&2
exit 1
