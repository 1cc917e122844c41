//go:build race

package integration

// raceEnabled: under go test -race the nodes are built with the race
// detector too, since the races worth finding are in their processes.
const raceEnabled = true
