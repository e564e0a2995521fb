package netnode

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// FuzzFanoutHandshake sends any bytes as a request to a running multi:// node, then checks
// that a good client still joins and gets the plug's frames.
func FuzzFanoutHandshake(f *testing.F) {
	good, _ := wire.AppendRequest(nil, wire.Request{Type: wire.ReqNewControl, Path: "/nonexistent/sock", Description: "x"})
	port0, _ := wire.AppendRequest(nil, wire.Request{Type: wire.ReqNewPort0, Path: "/tmp", Description: "x"})
	for _, seed := range [][]byte{nil, {0}, good, port0, good[:50], append(good, make([]byte, 300)...)} {
		f.Add(seed)
	}
	dir := filepath.Join(f.TempDir(), "n")
	host, err := wire.Open("multi://"+dir, wire.OpenOptions{})
	if err != nil {
		f.Fatal(err)
	}
	defer host.Close()
	ctl := filepath.Join(dir, "ctl")
	f.Fuzz(func(t *testing.T, req []byte) {
		c, err := net.DialTimeout("unix", ctl, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(req)
		c.Close()
		client, err := wire.Dial(dir, wire.DialOptions{Description: "fuzz"})
		if err != nil {
			t.Fatalf("a good client after %q: %v", req, err)
		}
		defer client.Close()
		r := reader(client)
		send(t, host, frame(0xff, 9, "after"))
		expect(t, r, "after", true)
	})
}
