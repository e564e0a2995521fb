package switchcore

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestTagInsertStrip(t *testing.T) {
	tests := []struct {
		desc             string
		untagged, tagged string
		vid              uint16
	}{
		{"broadcast ARP-ish, VLAN 10",
			"ffffffffffff" + "020000000001" + "0806" + "0001",
			"ffffffffffff" + "020000000001" + "8100000a" + "0806" + "0001", 10},
		{"unicast IPv4, VLAN 4093",
			"020000000002" + "020000000001" + "0800" + "4500",
			"020000000002" + "020000000001" + "81000ffd" + "0800" + "4500", 4093},
	}
	for _, tt := range tests {
		in, want := mustHex(tt.untagged), mustHex(tt.tagged)
		got := insertTag(make([]byte, 64), in, tt.vid)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: insertTag\n got %x\nwant %x", tt.desc, got, want)
		}
		back := stripTag(make([]byte, 64), want)
		if !bytes.Equal(back, in) {
			t.Errorf("%s: stripTag\n got %x\nwant %x", tt.desc, back, in)
		}
		vid, tagged := frameVLAN(want)
		if !tagged || vid != tt.vid {
			t.Errorf("%s: frameVLAN = %d %v", tt.desc, vid, tagged)
		}
	}
	// Priority and CFI bits do not belong to the VLAN id.
	if vid, _ := frameVLAN(mustHex("ffffffffffff020000000001" + "8100e00a" + "0800")); vid != 10 {
		t.Errorf("PCP 7 VLAN 10 read as %d", vid)
	}
}

func TestMACTableLearnMoveAge(t *testing.T) {
	m := newMACTable(4)
	k := makeKey([]byte{2, 0, 0, 0, 0, 1}, 0)
	if got, _ := m.learn(k, 1, 10); got != learnNew {
		t.Fatalf("first learn: %v", got)
	}
	if m.lookup(k) != 1 {
		t.Fatalf("lookup after learn: %d", m.lookup(k))
	}
	if got, _ := m.learn(k, 1, 11); got != learnKnown {
		t.Fatalf("refresh: %v", got)
	}
	// Seen on port 2 within min persistence (3 s): stays on port 1.
	if got, old := m.learn(k, 2, 13); got != learnRefused || old != 1 || m.lookup(k) != 1 {
		t.Fatalf("early move: %v %d -> %d", got, old, m.lookup(k))
	}
	if got, old := m.learn(k, 2, 15); got != learnMoved || old != 1 || m.lookup(k) != 2 {
		t.Fatalf("move: %v %d -> %d", got, old, m.lookup(k))
	}
	// The same MAC on another VLAN is another entry.
	k10 := makeKey([]byte{2, 0, 0, 0, 0, 1}, 10)
	if m.lookup(k10) != -1 {
		t.Fatal("VLAN 10 entry before learning")
	}
	m.learn(k10, 3, 15)
	if gone := m.flushVLAN(10); len(gone) != 1 || m.lookup(k10) != -1 || m.lookup(k) != 2 {
		t.Fatalf("flushVLAN: %d gone", len(gone))
	}
	// Aging: not seen for more than expire seconds.
	if gone := m.expire(15+100, 100); len(gone) != 0 {
		t.Fatal("expired too early")
	}
	if gone := m.expire(15+101, 100); len(gone) != 1 || m.lookup(k) != -1 {
		t.Fatal("not expired")
	}
	// The limit stops learning and counts.
	for i := 0; i < 6; i++ {
		m.learnCount(makeKey([]byte{2, 0, 0, 0, 1, byte(i)}, 0), 1, 20)
	}
	if m.len() != 4 || m.full.Load() != 2 {
		t.Fatalf("limit: %d entries, %d refused", m.len(), m.full.Load())
	}
}

func TestMACTableGrowsAndKeepsEntries(t *testing.T) {
	m := newMACTable(10000)
	for i := 0; i < 5000; i++ {
		m.learn(makeKey([]byte{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}, 0), i%30+1, 1)
	}
	for i := 0; i < 5000; i++ {
		if p := m.lookup(makeKey([]byte{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}, 0)); p != i%30+1 {
			t.Fatalf("entry %d on port %d", i, p)
		}
	}
	if gone := m.flushPort(1); len(gone) != 167 {
		t.Fatalf("flushPort removed %d", len(gone))
	}
}

// The bucket hash is the C switch's: hash/print shows the same bucket numbers.
func TestMACHashMatchesC(t *testing.T) {
	// Entry observed in shared/spec/vde_switch.md §6.5: 52:54:00:00:00:01 VLAN 0 in bucket 30 of 128.
	k := makeKey([]byte{0x52, 0x54, 0, 0, 0, 1}, 0)
	if b := k.hash() & 127; b != 30 {
		t.Fatalf("bucket %d, want 30", b)
	}
}
