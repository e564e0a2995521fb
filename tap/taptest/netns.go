// Package taptest helps tests that need TAP devices: it puts a test in a network
// namespace of its own, where its devices, addresses and traffic stay.
package taptest

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// InNewNetns moves the test's goroutine, locked to its thread, into a network namespace of
// its own, so that the test's TAPs, addresses and traffic stay there, or skips the test
// (saying why) if it is not root or the machine has no /dev/net/tun or namespaces. Only
// this goroutine is in the namespace (netlink calls must happen here); reads and writes on
// a TAP's descriptor work from any goroutine. Cleanup puts the thread back. Subtests run
// on other goroutines: each must call InNewNetns itself.
func InNewNetns(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and TAP devices")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("needs /dev/net/tun: %v", err)
	}
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("open own netns: %v", err)
	}
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		unix.Close(orig)
		runtime.UnlockOSThread()
		t.Skipf("needs network namespaces: unshare(CLONE_NEWNET): %v", err)
	}
	t.Cleanup(func() {
		defer unix.Close(orig)
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread dies with the goroutine instead of
			// serving others from the wrong namespace.
			t.Errorf("setns back: %v", err)
			return
		}
		runtime.UnlockOSThread()
	})
}
