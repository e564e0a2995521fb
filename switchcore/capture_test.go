package switchcore

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/vde-go/vde/switchcore/capture"
)

// countFrames reads a pcapng stream: its frames, by interface name.
func countFrames(t *testing.T, b []byte) map[string]int {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{})
	if err != nil {
		t.Fatalf("pcapng: %v", err)
	}
	out := map[string]int{}
	for {
		_, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("pcapng: %v", err)
		}
		f, _ := r.Interface(ci.InterfaceIndex)
		out[f.Name]++
	}
}

// Two captures at once, over the mgmt socket: one of port 1, one of all ports, each ended
// by its count; the frame path is left without a tap afterwards.
func TestCaptureTwoAtOnce(t *testing.T) {
	mgmt := filepath.Join(t.TempDir(), "mgmt")
	s := newTestSwitch(t, Config{MgmtPath: mgmt})
	a, b := dial(t, s, 1), dial(t, s, 2)
	one, err := capture.Dial(mgmt, capture.Args{Count: 2, Ports: []int{1}})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	all, err := capture.Dial(mgmt, capture.Args{Count: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	// Dial returns after the status line; the switch joins the capture to the tap right
	// after it, before the stream's header.
	hdr := make([]byte, 1)
	for _, st := range []*capture.Stream{one, all} {
		if _, err := io.ReadFull(st, hdr); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		a.WriteBatch([][]byte{frame(0xff, 1, "hello")})
		recvFrame(t, b, 5*time.Second)
	}
	rest1, err1 := io.ReadAll(one)
	rest2, err2 := io.ReadAll(all)
	if err1 != nil || err2 != nil {
		t.Fatalf("reading the streams: %v, %v", err1, err2)
	}
	if got := countFrames(t, append(append([]byte(nil), hdr...), rest1...)); got["port1"] != 2 || len(got) != 1 {
		t.Errorf("capture of port 1: %v, want 2 frames of port1", got)
	}
	if got := countFrames(t, append(append([]byte(nil), hdr...), rest2...)); got["port1"] != 2 || got["port2"] != 2 {
		t.Errorf("capture of all ports: %v, want 2 frames of port1 and 2 of port2", got)
	}
	if s.plugins.tap.Load() != nil {
		t.Error("the frame tap is still set after both captures ended")
	}
}

// A capture the switch cannot give is refused with the console's status line and a
// reason; the session goes on as a console.
func TestCaptureRefused(t *testing.T) {
	mgmt := filepath.Join(t.TempDir(), "mgmt")
	s := newTestSwitch(t, Config{MgmtPath: mgmt})
	_, err := capture.Dial(mgmt, capture.Args{Ports: []int{99}})
	if !errors.Is(err, capture.ErrRefused) || !strings.Contains(err.Error(), "1022") && !strings.Contains(err.Error(), "Invalid argument") {
		t.Errorf("port 99: %v", err)
	}
	if got := runCmd(t, s, "capture/pcapng"); got != "capture: only a management socket's session can carry the stream\n1022 Invalid argument\n" {
		t.Errorf("capture/pcapng on the console: %q", got)
	}
	if got := runCmd(t, s, "capture/pcapng bogus=1"); !strings.Contains(got, "1022 Invalid argument") {
		t.Errorf("capture/pcapng bogus=1: %q", got)
	}
	dial(t, s, 3)
	if got := runCmd(t, s, "capture/ports"); !strings.HasPrefix(got, "0000 DATA END WITH '.'\n3 test") || !strings.HasSuffix(got, "\n.\n1000 Success\n") {
		t.Errorf("capture/ports: %q", got)
	}
}

// BenchmarkForwardFiltered64Capturing is BenchmarkForwardFiltered64 with a capture of all
// ports running: what a capture adds per frame (a timestamp and a copy into its ring).
func BenchmarkForwardFiltered64Capturing(b *testing.B) {
	rig := newForwardRig(b, 64)
	sess, err := capture.New(capture.Config{NumPorts: rig.s.numPorts})
	if err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	go sess.Run(io.Discard, stop)
	defer close(stop)
	p := &rig.s.plugins
	p.mu.Lock()
	p.captures = []*captureRun{{sess: sess}}
	p.retapLocked()
	p.mu.Unlock()
	defer func() { // before the switch closes: this capture has no connection to end
		p.mu.Lock()
		p.captures = nil
		p.retapLocked()
		p.mu.Unlock()
	}()
	f := frame(1, 1, string(make([]byte, 64-14)))
	for i := range rig.r.bufs {
		copy(rig.r.bufs[i], f)
		rig.r.sizes[i] = len(f)
	}
	rig.r.forward(rig.src, 32)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rig.r.forward(rig.src, 32)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*32), "ns/frame")
}
