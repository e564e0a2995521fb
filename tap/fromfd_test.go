package tap

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dupFD is a close-on-exec duplicate of d's descriptor, as a hand-over passes it.
func dupFD(t *testing.T, d *Device) int {
	t.Helper()
	nfd := -1
	var derr error
	rc, _ := d.SyscallConn()
	rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) })
	if derr != nil {
		t.Fatal(derr)
	}
	return nfd
}

// isOpen reports whether fd is an open descriptor.
func isOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

// TestFromFD: a duplicate of an open TAP's descriptor becomes a Device on the same
// interface without a new TUNSETIFF; the old Device closed as a hand-over does it
// (CloseHandedOver), frames go both ways through the new one, with and without vnet_hdr.
func TestFromFD(t *testing.T) {
	for _, vnet := range []bool{false, true} {
		t.Run(fmt.Sprintf("vnet_hdr=%v", vnet), func(t *testing.T) {
			inNewNetns(t)
			old, err := OpenConfig(Config{Name: "vt20", VnetHdr: vnet})
			if err != nil {
				t.Fatal(err)
			}
			d, err := FromFD(dupFD(t, old), "vt20", vnet)
			if err != nil {
				old.Close()
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			if d.Name() != "vt20" || d.VnetHdr() != vnet {
				t.Fatalf("FromFD: name %q vnet_hdr %v", d.Name(), d.VnetHdr())
			}
			if err := old.CloseHandedOver(); err != nil {
				t.Fatal(err)
			}
			if vnet && !tsoOn(t, "vt20") {
				t.Fatal("TSO off on vt20 after the hand-over")
			}
			exchangeARP(t, d, "vt20")
		})
	}
}

// TestFromFDRefuses: a descriptor on another interface, with another vnet_hdr setting, or
// not on a TAP at all is refused, and closed.
func TestFromFDRefuses(t *testing.T) {
	inNewNetns(t)
	d := mustOpen(t, Config{Name: "vt21", VnetHdr: true})
	devnull, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc string
		fd   int
		name string
		vnet bool
		text string
	}{
		{desc: "other name", fd: dupFD(t, d), name: "vt22", vnet: true, text: `is on "vt21"`},
		{desc: "no vnet_hdr", fd: dupFD(t, d), name: "vt21", vnet: false, text: "vnet_hdr is true, want false"},
		{desc: "not a TAP", fd: devnull, name: "vt21", vnet: true, text: "TUNGETIFF"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := FromFD(tc.fd, tc.name, tc.vnet)
			var te *Error
			if !errors.As(err, &te) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("FromFD: %v, want a tap error containing %q", err, tc.text)
			}
			if isOpen(tc.fd) {
				t.Fatalf("descriptor %d still open", tc.fd)
			}
		})
	}
}

// TestReadDeadlineEndsRead: a read deadline in the past wakes a blocked ReadBatch (a
// hand-over stops the reader so), and clearing it lets reads go on.
func TestReadDeadlineEndsRead(t *testing.T) {
	inNewNetns(t)
	d := mustOpen(t, Config{Name: "vt23", VnetHdr: true})
	done := make(chan error, 1)
	go func() {
		_, err := d.ReadBatch([][]byte{make([]byte, 2000)}, []int{0})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	d.SetReadDeadline(time.Unix(1, 0))
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("ReadBatch after the deadline: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadBatch still blocked after a deadline in the past")
	}
	d.SetReadDeadline(time.Time{})
	exchangeARP(t, d, "vt23")
}
