//go:build race

package tests

// raceEnabled: the race detector slows code 5-20x; tests with real-time budgets skip.
const raceEnabled = true
