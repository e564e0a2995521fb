package netnode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vde-go/vde/switchcore"
	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

func init() {
	wire.RegisterScheme("switch", func(arg string, o wire.OpenOptions) (wire.Endpoint, error) {
		return openSwitch(arg, false)
	})
	wire.RegisterScheme("hub", func(arg string, o wire.OpenOptions) (wire.Endpoint, error) {
		return openSwitch(arg, true)
	})
}

// numPorts is the hosted switch's port count: vdeplug4's node has no limit.
const numPorts = 1024

// hosted is the plug's own end of a switch it hosts: a datagram socket whose pair is a
// port of the switch.
type hosted struct {
	*wire.Datagram
	sw   *switchcore.Switch
	once sync.Once
}

// Close stops the switch (its clients see their control connections close, its
// directory goes) and closes the plug's socket.
func (h *hosted) Close() error {
	h.once.Do(func() { h.sw.Close() })
	return h.Datagram.Close()
}

// openSwitch hosts a switch (hub: a hub) at the directory arg names.
func openSwitch(arg string, hub bool) (wire.Endpoint, error) {
	o, err := ParseArg(arg)
	if err != nil {
		return nil, err
	}
	dir := o.Dir()
	if err := checkFree(dir); err != nil {
		return nil, err
	}
	sw, err := switchcore.New(switchcore.Config{
		NumPorts:    numPorts,
		Hub:         hub,
		FlowControl: switchcore.FlowNever, // as vdeplug4's node: a full receiver loses the frame
		HashSize:    o.HashSize,
		Expire:      expireSecs(o.Expire),
		CtlDir:      dir,
		Mode:        o.Mode,
		ModeSet:     true,
		DirMode:     o.DirMode,
		DirModeSet:  true,
		Group:       o.Group,
		MgmtGroup:   -1,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %v", dir, err)
	}
	if !hub {
		sw.TrunkAll() // vdeplug4's switch carries tagged frames as they are
	}
	mine, theirs, err := datagramPair("host")
	if err != nil {
		sw.Close()
		return nil, err
	}
	if _, err := sw.AttachEndpoint(theirs, theirs.FD(), "vdeplug", "host"); err != nil {
		mine.Close()
		theirs.Close()
		sw.Close()
		return nil, err
	}
	return &hosted{Datagram: mine, sw: sw}, nil
}

// expireSecs maps expiretime= to the switch's expiry: vdeplug4's 0 forgets an address
// within the second, the switch's shortest is one second.
func expireSecs(n int) int {
	if n <= 0 {
		return 1
	}
	return n
}

// datagramPair is a connected pair of non-blocking datagram sockets. A socketpair's
// queue is bounded by the sender's buffer, not by net.unix.max_dgram_qlen.
func datagramPair(name string) (a, b *wire.Datagram, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	if a, err = wire.NewDatagram(fds[0], name); err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	if b, err = wire.NewDatagram(fds[1], name); err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

// checkFree refuses a path that is something other than a dead node's directory:
// vdeplug4 refuses any path that exists (mkdir fails); a directory holding nothing but
// sockets, what a killed node leaves, is taken over here, its sockets removed. A node
// whose ctl socket listens is refused without connecting to it: Debian's node spins for
// good on a connection that closes without a request.
func checkFree(dir string) error {
	if listening(filepath.Join(dir, "ctl")) {
		return fmt.Errorf("%s: %w (a node or switch is running there)", dir, unix.EADDRINUSE)
	}
	st, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: %w", dir, os.ErrExist)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type()&os.ModeSocket == 0 {
			return fmt.Errorf("%s: %w (and holds %s, which is not a socket)", dir, os.ErrExist, filepath.Join(dir, e.Name()))
		}
	}
	for _, e := range ents {
		if e.Name() != "ctl" { // ctl: the switch checks it once more, by connecting
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// listening reports whether a unix stream socket of this network namespace listens at
// path (/proc/net/unix: flags __SO_ACCEPTCON).
func listening(path string) bool {
	tab, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return false
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if parent, err := filepath.EvalSymlinks(filepath.Dir(filepath.Dir(path))); err == nil {
		path = filepath.Join(parent, filepath.Base(filepath.Dir(path)), filepath.Base(path))
	}
	for _, line := range strings.Split(string(tab), "\n") {
		// Num RefCount Protocol Flags Type St Inode Path
		if f := strings.Fields(line); len(f) >= 8 && f[3] == "00010000" && strings.HasSuffix(line, " "+path) {
			return true
		}
	}
	return false
}
