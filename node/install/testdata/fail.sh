#!/bin/sh
# Prints $2 and exits with code $1.
echo "$2"
exit "$1"
