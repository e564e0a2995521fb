//go:build race

package itest

// memScale multiplies the tests' memory bounds: under -race (GOFLAGS=-race builds our
// binary with it too) the race detector's shadow memory makes every process several
// times bigger.
const memScale = 8
