// Package itest holds the real-peer integration tests of the vde switch: Debian's vde_plug,
// unixcmd and QEMU, TAP devices in network namespaces, and raw control requests, run
// against a switch implementation chosen with VDE_ITEST_IMPL:
//
//	go test ./itest/                          # our switch (built from the repo root)
//	VDE_ITEST_IMPL=debian go test ./itest/    # Debian's /usr/bin/vde_switch, to check the harness
//
// The tests need root, network namespaces, /dev/net/tun and the Debian packages vde2,
// vdeplug, qemu-system-x86, iperf3 and socat; they skip with a message when the machine
// lacks them. Tests whose point is a difference from Debian's switch (jumbo frames,
// refused ports) run their strict part only against ours.
//
// The package has no non-test code: everything lives in *_test.go, the harness in
// harness_test.go.
package itest
