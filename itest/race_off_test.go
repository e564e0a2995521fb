//go:build !race

package itest

// memScale multiplies the tests' memory bounds (race_on_test.go).
const memScale = 1
