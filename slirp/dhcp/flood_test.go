package dhcp

import (
	"bytes"
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

// FuzzPoolSequence runs a sequence of DISCOVERs and REQUESTs, each three bytes (client
// 0-31, message type and requested address, clock step), against a server whose clock the
// input moves, and checks the pool's promises: the table never outgrows the pool, and an
// address ACKed to one client is given to no other before its lease time has passed
// without a renewal.
func FuzzPoolSequence(f *testing.F) {
	f.Add([]byte{1, 0, 0, 2, 0, 0, 1, 0x80, 0})
	f.Add(bytes.Repeat([]byte{0x81, 0x10, 1}, 40))
	f.Add([]byte{1, 0x80, 0, 1, 0x80, 0xff, 2, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		c := slirpConfig()
		c.LeaseTime = time.Hour
		s := newServer(t, c)
		now := time.Unix(1e9, 0)
		s.now = func() time.Time { return now }
		type bound struct {
			mac  byte
			when time.Time
		}
		acked := map[netip.Addr]bound{}
		for len(ops) >= 3 {
			op, want, step := ops[0], ops[1], ops[2]
			ops = ops[3:]
			now = now.Add(time.Duration(step) * time.Minute)
			client := op & 0x1f
			mac := [6]byte{2, 0, 0, 0, 0, client}
			msgType := byte(1)
			if op&0x80 != 0 {
				msgType = 3
			}
			var req netip.Addr
			if op&0x40 != 0 {
				req = netip.AddrFrom4([4]byte{10, 0, 2, 15 + want&0x1f})
			}
			_, rmac, yi, ok := s.Handle(macMessage(mac, msgType, req))
			if n := len(s.Leases()); n > c.PoolSize {
				t.Fatalf("%d leases in a pool of %d", n, c.PoolSize)
			}
			if !ok || !yi.IsValid() {
				continue
			}
			if rmac[5] != client {
				t.Fatalf("answer to client %d went to %v", client, rmac)
			}
			if b, held := acked[yi]; held && b.mac != client && now.Sub(b.when) < c.LeaseTime {
				t.Fatalf("%v, ACKed to client %d %v ago, given to client %d", yi, b.mac, now.Sub(b.when), client)
			}
			if msgType == 3 {
				acked[yi] = bound{client, now}
			}
		}
	})
}
