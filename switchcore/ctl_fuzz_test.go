package switchcore

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/wire"
)

// ctlRig is a switch and the things a control request may name as its data socket.
type ctlRig struct {
	s     *Switch
	paths []string // by selector; index 0 is a client's bound datagram socket
}

func newCtlRig(tb testing.TB) *ctlRig {
	s := newTestSwitch(tb, Config{NumPorts: 8})
	s.logf = func(string, ...any) {}
	dir := tb.TempDir()
	rig := &ctlRig{s: s}
	sock := filepath.Join(dir, "client")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: sock}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	stream := filepath.Join(dir, "stream")
	ln, err := net.Listen("unix", stream)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	long := dir + "/" + strings.Repeat("l", wire.SunPathSize-2-len(dir))
	rig.paths = []string{sock, filepath.Join(dir, "missing"), file, dir, "", filepath.Join(s.CtlDir(), "ctl"), stream, long}
	return rig
}

// request builds the bytes of a control request: v3 (version word 3), v1 (version word 0
// or 1, which is then the type) or a bad version, naming the path of selector sel.
func (rig *ctlRig) request(version, typ uint32, sel uint8, descr []byte) []byte {
	b := binary.NativeEndian.AppendUint32(nil, wire.Magic)
	b = binary.NativeEndian.AppendUint32(b, version)
	if version == 0 || version == 1 {
		b = binary.NativeEndian.AppendUint32(b, typ) // part of v1's 6-byte addr
		b = append(b, byte(typ), byte(typ>>8))
	} else {
		b = binary.NativeEndian.AppendUint32(b, typ)
	}
	b = binary.NativeEndian.AppendUint16(b, unix.AF_UNIX)
	path := make([]byte, wire.SunPathSize)
	copy(path, rig.paths[int(sel&0x7f)%len(rig.paths)])
	b = append(b, path...)
	return append(b, descr...)
}

// FuzzCtlRequest plays a client of the control socket: a request (v3, v1, a bad
// version, a bad magic, cut anywhere, sent in two writes) naming a data socket that is a
// client's datagram socket or anything else (missing, a file, a directory, a stream
// socket, the switch's own ctl socket, nothing). The switch accepts exactly the requests
// that parse, name the datagram socket and ask for port 0 or a port in range: it replies
// with a data socket in its control directory and puts the endpoint on the port asked
// for (port 0 for a port-0 request, the first free port for "any"); a refused request
// gets its connection closed without a reply. Once the client is gone, the port is
// inactive again and the data socket file is removed.
func FuzzCtlRequest(f *testing.F) {
	rig := newCtlRig(f)
	// Seeds: testdata/fuzz/FuzzCtlRequest (the arguments: version word, type word, path
	// selector (0x80: bad magic), description, cut at, split at).
	f.Fuzz(func(t *testing.T, version, typ uint32, sel uint8, descr []byte, cut, split uint16) {
		raw := rig.request(version, typ, sel, descr)
		if sel&0x80 != 0 {
			raw[0] ^= 0xff
		}
		if cut > 0 && int(cut) < len(raw) {
			raw = raw[:cut]
		}
		// What the switch reads: at most wire.MaxRequestSize bytes.
		req, perr := wire.ParseRequest(raw[:min(len(raw), wire.MaxRequestSize)])
		want := perr == nil && req.Path == rig.paths[0] &&
			(req.Type == wire.ReqNewPort0 || req.Port >= 0 && req.Port < rig.s.numPorts)
		wantPort := req.Port
		switch {
		case req.Type == wire.ReqNewPort0:
			wantPort = 0
		case req.Port == 0:
			wantPort = 1 // every port is free again after each input
		}

		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: filepath.Join(rig.s.CtlDir(), "ctl"), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		at := min(int(split), len(raw))
		c.Write(raw[:at])
		if at < len(raw) {
			time.Sleep(time.Millisecond)
			c.Write(raw[at:])
		}
		c.CloseWrite()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		reply := make([]byte, 200)
		n, _ := readFull(c, reply)
		reply = reply[:n]
		switch {
		case !want && n > 0:
			t.Fatalf("request %x (%+v, %v): refusal expected, got reply %x", raw, req, perr, reply)
		case want && n != wire.SockaddrSize:
			t.Fatalf("request %x (%+v): reply of %d bytes", raw, req, n)
		case want:
			path, err := wire.ParseReply(reply)
			if err != nil || filepath.Dir(path) != rig.s.CtlDir() || !strings.HasPrefix(filepath.Base(path), itoa3(wantPort)+".") {
				t.Fatalf("request %+v: reply names %q (%v), want a data socket of port %d in %s", req, path, err, wantPort, rig.s.CtlDir())
			}
		}
		// The client is gone: the switch frees its port and removes its data socket.
		deadline := time.Now().Add(5 * time.Second)
		for {
			left := ctlLeftovers(rig.s)
			if left == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("request %+v (accepted %v): %s", req, want, left)
			}
			time.Sleep(time.Millisecond)
		}
	})
}

func itoa3(n int) string {
	s := itoa(n)
	for len(s) < 3 {
		s = "0" + s
	}
	return s
}

// readFull reads until EOF, an error or a full b.
func readFull(c *net.UnixConn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// ctlLeftovers describes what a gone client left behind: active ports, files other than
// the ctl socket in the control directory; "" when nothing.
func ctlLeftovers(s *Switch) string {
	s.mu.Lock()
	for _, p := range s.ports {
		if p != nil && p.active() {
			s.mu.Unlock()
			return "port " + itoa(p.num) + " still active"
		}
	}
	s.mu.Unlock()
	ents, _ := os.ReadDir(s.CtlDir())
	for _, e := range ents {
		if e.Name() != "ctl" {
			return "file " + e.Name() + " left in the control directory"
		}
	}
	return ""
}
