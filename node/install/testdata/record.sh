#!/bin/sh
# Appends what a hook sees to $1, tagged $2, for the test to check.
out=$1
{
	echo "hook=$2"
	echo "release=$PATCHMESH_RELEASE"
	echo "dir=$PATCHMESH_RELEASE_DIR"
	echo "previous=$PATCHMESH_PREVIOUS"
	echo "extra=$PATCHMESH_TEST_EXTRA"
	echo "pwd=$(pwd -P)"
	echo "current=$(readlink "$PATCHMESH_RELEASE_DIR/../../current")"
} >>"$out"
