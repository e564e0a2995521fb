package dhcp

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// macMessage is a DISCOVER (1) or REQUEST (3) from mac, asking for requested if valid.
func macMessage(mac [6]byte, msgType byte, requested netip.Addr) []byte {
	m := Message{Op: OpRequest, HType: 1, HLen: 6, XID: rand.Uint32()}
	copy(m.CHAddr[:], mac[:])
	m.Options = append(m.Options, Option{optMessageType, []byte{msgType}})
	if requested.IsValid() {
		a := requested.As4()
		m.Options = append(m.Options, Option{optRequestedIP, a[:]})
	}
	b, err := m.Append(nil)
	if err != nil {
		panic(err)
	}
	return b
}

// TestDiscoverFlood: 10,000 DISCOVERs from random MACs keep the table at the pool size,
// take nothing from a client that confirmed its lease, and a client that comes after
// the flood still gets an address (an unconfirmed offer of the flood's).
func TestDiscoverFlood(t *testing.T) {
	s := newServer(t, slirpConfig())
	early := [6]byte{0x52, 0x54, 0, 0xaa, 0, 1}
	_, _, yi, ok := s.Handle(macMessage(early, 3, netip.Addr{}))
	if !ok || !yi.IsValid() {
		t.Fatal("no ACK for the early client")
	}
	offers := 0
	for range 10000 {
		var mac [6]byte
		for i := range mac {
			mac[i] = byte(rand.Uint32())
		}
		mac[0] &^= 1
		if _, _, a, ok := s.Handle(macMessage(mac, 1, netip.Addr{})); ok && a.IsValid() {
			offers++
			if a == yi {
				t.Fatalf("the early client's %v offered to %x", yi, mac)
			}
		}
		if n := len(s.Leases()); n > 16 {
			t.Fatalf("%d leases in a pool of 16", n)
		}
	}
	t.Logf("RELIABILITY: dhcp: 10000 DISCOVERs from random MACs: %d offers, %d leases in the table (pool 16), %d offers reclaimed", offers, len(s.Leases()), s.Reclaimed())
	late := [6]byte{0x52, 0x54, 0, 0xaa, 0, 2}
	_, _, offer, ok := s.Handle(macMessage(late, 1, netip.Addr{}))
	if !ok || !offer.IsValid() || offer == yi {
		t.Fatalf("late client: offer %v ok %v", offer, ok)
	}
	if _, _, ack, ok := s.Handle(macMessage(late, 3, offer)); !ok || ack != offer {
		t.Fatalf("late client: REQUEST %v answered %v ok %v", offer, ack, ok)
	}
	if _, _, ack, ok := s.Handle(macMessage(early, 3, yi)); !ok || ack != yi {
		t.Fatalf("early client renewing %v: %v ok %v", yi, ack, ok)
	}
}

// TestExpiredLeaseReclaimed: a pool of confirmed leases gives nothing to a new MAC until
// one lease goes a lease time unrenewed; that one is given.
func TestExpiredLeaseReclaimed(t *testing.T) {
	s := newServer(t, slirpConfig())
	now := time.Unix(1e9, 0)
	s.now = func() time.Time { return now }
	for i := range 16 {
		_, _, a, ok := s.Handle(macMessage([6]byte{2, 0, 0, 0, 0, byte(i)}, 3, netip.Addr{}))
		if !ok || !a.IsValid() {
			t.Fatalf("client %d: no lease", i)
		}
		now = now.Add(time.Minute)
	}
	newcomer := [6]byte{2, 0, 0, 0, 1, 0}
	if _, _, a, ok := s.Handle(macMessage(newcomer, 1, netip.Addr{})); ok {
		t.Fatalf("full pool of valid leases offered %v", a)
	}
	// Client 0 renews; client 1 is then the least recently renewed.
	s.Handle(macMessage([6]byte{2, 0, 0, 0, 0, 0}, 3, netip.MustParseAddr("10.0.2.15")))
	now = now.Add(24 * time.Hour)
	_, _, a, ok := s.Handle(macMessage(newcomer, 1, netip.Addr{}))
	if !ok || a != netip.MustParseAddr("10.0.2.16") {
		t.Fatalf("after a lease time: offered %v ok %v, want 10.0.2.16", a, ok)
	}
}
