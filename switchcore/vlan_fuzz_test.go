package switchcore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sync"
	"testing"

	"github.com/vde-go/vde/switchcore/wire"
)

// captureEndpoint is an in-process endpoint that keeps what the switch writes to it and
// never sends anything: the test plays its sender through a reader of its own.
type captureEndpoint struct {
	mu     sync.Mutex
	frames [][]byte
	done   chan struct{}
	once   sync.Once
}

func newCaptureEndpoint() *captureEndpoint { return &captureEndpoint{done: make(chan struct{})} }

func (e *captureEndpoint) ReadBatch([][]byte, []int) (int, error) {
	<-e.done
	return 0, io.EOF
}

func (e *captureEndpoint) WriteBatch(frames [][]byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range frames {
		e.frames = append(e.frames, bytes.Clone(f))
	}
	return len(frames), nil
}

func (e *captureEndpoint) Close() error {
	e.once.Do(func() { close(e.done) })
	return nil
}

// take returns the frames written since the last take.
func (e *captureEndpoint) take() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.frames
	e.frames = nil
	return f
}

// vlanRig is a switch whose ports have different VLAN configurations, each with one
// capturing endpoint, and a reader that plays any of them as the sender.
type vlanRig struct {
	s     *Switch
	r     *reader
	ports []*Port // by rig index
	eps   []*captureEndpoint
}

// The rig's ports, by index: [untagged VLANs, tagged VLANs]; NoVLAN is no untagged VLAN.
// VLAN 40 exists with no port in it; VLAN 50 does not exist.
var vlanRigPorts = []struct {
	untagged uint16
	tagged   []uint16
}{
	{0, nil},                     // a plain host on the default VLAN
	{10, nil},                    // a host on VLAN 10
	{10, []uint16{20}},           // VLAN 10 untagged, 20 tagged
	{0, []uint16{10, 20, 4093}},  // a trunk that keeps VLAN 0 untagged
	{NoVLAN, []uint16{10, 4093}}, // a tagged-only trunk
	{20, []uint16{0}},            // VLAN 20 untagged, VLAN 0 tagged
	{4093, nil},                  // a host on the highest VLAN
}

func newVLANRig(tb testing.TB) *vlanRig {
	// No loop guard: the rig lives across fuzz inputs, and the same source addresses sent
	// from different ports in quick succession look like a loop to it (the model has none),
	// so it blocked rig ports now and then.
	s := newTestSwitch(tb, Config{NumPorts: 16, NoLoopGuard: true})
	s.logf = func(string, ...any) {}
	// A learned MAC never moves: what a frame teaches the table depends only on the frames
	// before it in the same input, and the model below can follow it.
	s.macs.minPers.Store(math.MaxInt64 / 2)
	for _, v := range []int{10, 20, 40, 4093} {
		rigCmd(tb, s, fmt.Sprintf("vlan/create %d", v))
	}
	rig := &vlanRig{s: s, r: newReader(s)}
	rig.r.bufs = newSlab()
	for i, pc := range vlanRigPorts {
		ep := newCaptureEndpoint()
		n, err := s.AttachEndpoint(ep, 100+i, "test", fmt.Sprintf("rig %d", i))
		if err != nil {
			tb.Fatal(err)
		}
		rigCmd(tb, s, fmt.Sprintf("port/setvlan %d %d", n, pc.untagged))
		for _, v := range pc.tagged {
			rigCmd(tb, s, fmt.Sprintf("vlan/addport %d %d", v, n))
		}
		s.mu.Lock()
		rig.ports = append(rig.ports, s.ports[n])
		s.mu.Unlock()
		rig.eps = append(rig.eps, ep)
	}
	return rig
}

func rigCmd(tb testing.TB, s *Switch, line string) {
	tb.Helper()
	if out := runCmd(tb, s, line); !bytes.HasSuffix([]byte(out), []byte("1000 Success\n")) {
		tb.Fatalf("%s: %s", line, out)
	}
}

// vlanRecord is one frame of a fuzz input: who sends it, and whether it starts a batch.
type vlanRecord struct {
	src   int
	newB  bool
	frame []byte // as received: may be shorter than 14 or longer than wire.MaxFrame
	size  int    // what the reader's receive reports (at most bufStride)
}

// parseVLANRecords reads records: a header byte (low bits: the sender's rig index, 0x80:
// start a new batch), a 2-byte big-endian size, a length byte n and n bytes of frame,
// padded with zeros or cut to size. Big frames need few input bytes this way.
func parseVLANRecords(in []byte) []vlanRecord {
	var recs []vlanRecord
	for len(in) >= 4 && len(recs) < 3*wire.BatchSize {
		h, size, n := in[0], int(binary.BigEndian.Uint16(in[1:3])), int(in[3])
		in = in[4:]
		n = min(n, len(in))
		f := make([]byte, size)
		copy(f, in[:n])
		in = in[n:]
		recs = append(recs, vlanRecord{src: int(h&0x7f) % len(vlanRigPorts), newB: h&0x80 != 0, frame: f, size: min(size, bufStride)})
	}
	return recs
}

// vlanModel is what the switch should do, worked out from the port configuration alone.
type vlanModel struct {
	rig  *vlanRig
	macs map[macKey]int // rig index a (MAC, VLAN) was learned on
}

// expect returns what frame f from rig port src must make each rig port receive, and
// whether src must count it as bad; dropsAt counts, per port, frames too long to leave
// it tagged.
func (m *vlanModel) expect(src int, f []byte, out [][][]byte, dropsAt []int) (bad bool) {
	if len(f) < wire.MinFrame || len(f) > wire.MaxFrame {
		return true
	}
	sp := m.rig.ports[src]
	var vid uint16
	tagged := binary.BigEndian.Uint16(f[12:14]) == 0x8100
	if tagged {
		if len(f) < 18 {
			return true
		}
		vid = binary.BigEndian.Uint16(f[14:16]) & 0x0fff
		if sp.untagged != vid && !sp.tagged.has(vid) {
			return true
		}
	} else if vid = sp.untagged; vid == NoVLAN {
		return true
	}
	if !m.rig.s.vlans[vid] {
		return true
	}
	if f[6]&1 == 0 {
		if _, ok := m.macs[makeKey(f[6:12], vid)]; !ok {
			m.macs[makeKey(f[6:12], vid)] = src
		}
	}
	untaggedForm, taggedForm := f, f
	if tagged {
		untaggedForm = append(bytes.Clone(f[:12]), f[16:]...)
	} else {
		taggedForm = append(bytes.Clone(f[:12]), byte(0x81), 0, byte(vid>>8), byte(vid))
		taggedForm = append(taggedForm, f[12:]...)
	}
	deliver := func(d int) {
		dp := m.rig.ports[d]
		switch {
		case dp.untagged == vid:
			out[d] = append(out[d], untaggedForm)
		case dp.tagged.has(vid):
			if len(taggedForm) > wire.MaxFrame {
				dropsAt[d]++
				return
			}
			out[d] = append(out[d], taggedForm)
		}
	}
	if f[0]&1 == 0 {
		if d, ok := m.macs[makeKey(f[0:6], vid)]; ok {
			if d != src {
				deliver(d)
			}
			return false
		}
	}
	for d := range m.rig.ports {
		if d != src {
			deliver(d)
		}
	}
	return false
}

// FuzzVLANForward sends arbitrary frames (tagged, untagged, truncated, odd TPIDs, too
// long) from ports of different VLAN configurations through the switch's forwarding
// path, in batches as a port reader gets them, and checks every port's output against a
// model of 802.1Q: a frame reaches only ports of its VLAN, never its sender, untagged
// where that VLAN is the port's untagged one and tagged (4 bytes longer, the tag of the
// ingress port's VLAN, or the frame's own tag kept) where it is a tagged one; known
// unicast reaches only the port its MAC was learned on; nothing leaves longer than
// wire.MaxFrame or shorter than wire.MinFrame; and the sender's bad counter and the
// receivers' drop counters count what the model drops.
func FuzzVLANForward(f *testing.F) {
	rig := newVLANRig(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		recs := parseVLANRecords(in)
		rig.s.macs.flushAll()
		for _, e := range rig.eps {
			e.take()
		}
		m := &vlanModel{rig: rig, macs: map[macKey]int{}}
		for start := 0; start < len(recs); {
			// A batch: consecutive frames of one sender, at most wire.BatchSize.
			src, end := recs[start].src, start+1
			for end < len(recs) && end-start < wire.BatchSize && recs[end].src == src && !recs[end].newB {
				end++
			}
			want := make([][][]byte, len(rig.ports))
			wantDrops := make([]int, len(rig.ports))
			wantBad := 0
			for i, rec := range recs[start:end] {
				copy(rig.r.bufs[i], rec.frame[:rec.size])
				rig.r.sizes[i] = rec.size
				if m.expect(src, rec.frame[:rec.size], want, wantDrops) {
					wantBad++
				}
			}
			bad0 := rig.ports[src].counters.bad.Load()
			drops0 := make([]uint64, len(rig.ports))
			for d, p := range rig.ports {
				drops0[d] = p.counters.drops.Load()
			}
			rig.r.forward(rig.ports[src], end-start)
			for d, e := range rig.eps {
				got := e.take()
				for _, g := range got {
					if len(g) < wire.MinFrame || len(g) > wire.MaxFrame {
						t.Fatalf("port %d (rig %d) got a frame of %d bytes", rig.ports[d].num, d, len(g))
					}
				}
				if len(got) != len(want[d]) {
					t.Fatalf("batch of %d from rig port %d: rig port %d got %d frames, want %d", end-start, src, d, len(got), len(want[d]))
				}
				for k := range got {
					if !bytes.Equal(got[k], want[d][k]) {
						t.Fatalf("batch of %d from rig port %d: rig port %d frame %d:\n got %x\nwant %x", end-start, src, d, k, got[k], want[d][k])
					}
				}
				if n := rig.ports[d].counters.drops.Load() - drops0[d]; n != uint64(wantDrops[d]) {
					t.Fatalf("batch from rig port %d: rig port %d counted %d drops, want %d", src, d, n, wantDrops[d])
				}
			}
			if n := rig.ports[src].counters.bad.Load() - bad0; n != uint64(wantBad) {
				t.Fatalf("batch of %d from rig port %d: %d counted bad, want %d", end-start, src, n, wantBad)
			}
			start = end
		}
	})
}
