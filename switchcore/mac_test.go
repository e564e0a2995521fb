package switchcore

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vde-go/vde/switchcore/wire"
)

// learnCount is learn plus the count a switch's reader keeps of frames not learned.
func (t *macTable) learnCount(k macKey, port int, now int64) (learnResult, int) {
	res, old := t.learn(k, port, now)
	if res == learnFull {
		t.full.Add(1)
	}
	return res, old
}

func testKey(i int) macKey {
	return makeKey([]byte{2, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}, 0)
}

// TestMACTableBound: a full table learns nothing new and counts each refused frame; known
// entries still refresh and move; expiry, flushes and a raised limit make room again; a
// limit lowered below the count removes nothing.
func TestMACTableBound(t *testing.T) {
	m := newMACTable(4)
	for i := 0; i < 6; i++ {
		res, _ := m.learnCount(testKey(i), 1, 20)
		if want := learnNew; i >= 4 {
			if res != learnFull {
				t.Fatalf("key %d in a full table: %v, want refused", i, res)
			}
		} else if res != want {
			t.Fatalf("key %d: %v, want new", i, res)
		}
	}
	if m.len() != 4 || m.full.Load() != 2 {
		t.Fatalf("limit 4: %d entries, %d refused; want 4, 2", m.len(), m.full.Load())
	}
	// The count is of frames: the same refused source again counts again.
	m.learnCount(testKey(5), 1, 21)
	if m.full.Load() != 3 || m.lookup(testKey(5)) != -1 {
		t.Fatalf("refused again: %d refused, lookup %d", m.full.Load(), m.lookup(testKey(5)))
	}
	// Known entries refresh and move while the table is full.
	if res, _ := m.learnCount(testKey(0), 1, 60); res != learnKnown {
		t.Fatalf("refresh in a full table: %v", res)
	}
	if res, old := m.learnCount(testKey(1), 2, 60); res != learnMoved || old != 1 || m.lookup(testKey(1)) != 2 {
		t.Fatalf("move in a full table: %v from %d, now on %d", res, old, m.lookup(testKey(1)))
	}
	if m.len() != 4 || m.full.Load() != 3 {
		t.Fatalf("after refresh and move: %d entries, %d refused", m.len(), m.full.Load())
	}
	// Expiry frees room: keys 2 and 3 (last seen at 20) go, 0 and 1 (at 60) stay.
	if gone := m.expire(125, 100); len(gone) != 2 || m.len() != 2 {
		t.Fatalf("expire: %d gone, %d left", len(gone), m.len())
	}
	for i := 10; i < 13; i++ {
		m.learnCount(testKey(i), 3, 125)
	}
	if m.len() != 4 || m.full.Load() != 4 || m.lookup(testKey(10)) != 3 || m.lookup(testKey(12)) != -1 {
		t.Fatalf("after expiry: %d entries, %d refused", m.len(), m.full.Load())
	}
	// A raised limit makes room.
	m.setLimit(6)
	for i := 12; i < 16; i++ {
		m.learnCount(testKey(i), 3, 126)
	}
	if m.len() != 6 || m.full.Load() != 6 {
		t.Fatalf("limit 6: %d entries, %d refused; want 6, 6", m.len(), m.full.Load())
	}
	// A limit below the count keeps every entry and learns nothing new...
	m.setLimit(3)
	if m.len() != 6 || m.lookup(testKey(0)) != 1 || m.lookup(testKey(13)) != 3 {
		t.Fatalf("limit lowered to 3: %d entries", m.len())
	}
	if res, _ := m.learnCount(testKey(20), 4, 127); res != learnFull || m.len() != 6 {
		t.Fatalf("new key over a lowered limit: %v, %d entries", res, m.len())
	}
	// ...until the count is below it again.
	m.flushPort(3) // keys 10, 11, 12, 13: 2 left
	if res, _ := m.learnCount(testKey(20), 4, 127); res != learnNew || m.len() != 3 {
		t.Fatalf("after the flush: %v, %d entries", res, m.len())
	}
	if res, _ := m.learnCount(testKey(21), 4, 127); res != learnFull {
		t.Fatalf("at the lowered limit: %v", res)
	}
}

// TestMACTableShrinksAfterFlood: the slots a flood grew are given back when its entries
// expire, and what stays is still found.
func TestMACTableShrinksAfterFlood(t *testing.T) {
	m := newMACTable(DefaultMACLimit)
	for i := 0; i < 100000; i++ {
		m.learnCount(testKey(i), 1, 10)
	}
	if m.len() != DefaultMACLimit || m.full.Load() != 100000-DefaultMACLimit {
		t.Fatalf("flood: %d entries, %d refused", m.len(), m.full.Load())
	}
	if n := len(m.tab.Load().slots); n > 2*DefaultMACLimit {
		t.Fatalf("%d slots for %d entries", n, DefaultMACLimit)
	}
	m.learnCount(testKey(7), 1, 50) // one flood entry stays fresh
	m.expire(115, 100)
	if m.len() != 1 || m.lookup(testKey(7)) != 1 {
		t.Fatalf("after expiry: %d entries, key 7 on %d", m.len(), m.lookup(testKey(7)))
	}
	if n := len(m.tab.Load().slots); n != 256 {
		t.Fatalf("after expiry: %d slots, want 256", n)
	}
	if res, _ := m.learnCount(testKey(200000), 2, 115); res != learnNew {
		t.Fatalf("learning after expiry: %v", res)
	}
}

// TestFullTableStillForwards: with the table full, unicast between known ports goes
// where it went, a frame from an unknown source is forwarded (its source not learned and
// counted), frames to it flood, and hash/setmax lets it be learned.
func TestFullTableStillForwards(t *testing.T) {
	s := newTestSwitch(t, Config{})
	// D connects first: a port joining a VLAN flushes the VLAN's entries.
	a, b, c, d := dial(t, s, 1), dial(t, s, 2), dial(t, s, 3), dial(t, s, 4)
	mustCmd(t, s, "hash/setmax 3")
	for i, x := range []*wire.Conn{a, b, c} {
		x.WriteBatch([][]byte{frame(0xff, byte(i+1), "hello")})
	}
	waitFor(t, func() bool { return s.macs.len() == 3 })
	for _, x := range []*wire.Conn{a, b, c, d} {
		for recvFrame(t, x, quiet) != nil {
		}
	}
	// D (unknown, not learnable) to A: delivered to A only.
	f := frame(1, 4, "d to a")
	d.WriteBatch([][]byte{f})
	expectFrame(t, a, f, "A, from unlearned D")
	expectNothing(t, b, "B, unicast D->A")
	if out := runCmd(t, s, "hash/showinfo"); !strings.Contains(out, "Max entries 3\nEntries 3\nNot learned (table full) 1\n") {
		t.Fatalf("hash/showinfo:\n%s", out)
	}
	// A to D: D is unknown, so the frame floods, and D gets it.
	f = frame(4, 1, "a to d")
	a.WriteBatch([][]byte{f})
	expectFrame(t, d, f, "D, flooded")
	expectFrame(t, b, f, "B, flooded")
	expectFrame(t, c, f, "C, flooded")
	// Known unicast is unaffected.
	f = frame(2, 1, "a to b")
	a.WriteBatch([][]byte{f})
	expectFrame(t, b, f, "B, known unicast in a full table")
	expectNothing(t, c, "C, known unicast A->B")
	// Room for one more: D is learned, and A's frames to it go to D only.
	mustCmd(t, s, "hash/setmax 4")
	d.WriteBatch([][]byte{frame(1, 4, "d again")})
	expectFrame(t, a, frame(1, 4, "d again"), "A, from D")
	waitFor(t, func() bool { return s.macs.lookup(makeKey([]byte{2, 0, 0, 0, 0, 4}, 0)) == 4 })
	f = frame(4, 1, "a to learned d")
	a.WriteBatch([][]byte{f})
	expectFrame(t, d, f, "D, learned")
	expectNothing(t, b, "B, unicast A->D")
}

// TestForwardFullTableAllocatesNothing: a batch of frames from new sources into a full
// table (a MAC flood) is switched without allocation or lock, and counted.
func TestForwardFullTableAllocatesNothing(t *testing.T) {
	rig := newForwardRig(t, 64)
	rig.s.macs.setLimit(rig.s.macs.len())
	for i := range rig.r.bufs {
		copy(rig.r.bufs[i][6:12], []byte{2, 0xf, 0, 0, 0, byte(i)}) // unknown sources, to B
	}
	rig.r.forward(rig.src, wire.BatchSize)
	before := rig.s.macs.full.Load()
	if n := testing.AllocsPerRun(200, func() { rig.r.forward(rig.src, wire.BatchSize) }); n != 0 {
		t.Fatalf("forward into a full table allocates %.1f times per batch", n)
	}
	if got := rig.s.macs.full.Load() - before; got != 201*wire.BatchSize {
		t.Fatalf("refused %d frames, want %d", got, 201*wire.BatchSize)
	}
	if rig.s.macs.len() != 2 {
		t.Fatalf("%d entries, want 2", rig.s.macs.len())
	}
	if !bytes.Equal(rig.r.bufs[0][:6], []byte{2, 0, 0, 0, 0, 2}) {
		t.Fatal("rig frames are not to B")
	}
}
