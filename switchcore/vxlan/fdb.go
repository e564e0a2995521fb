package vxlan

import (
	"net/netip"
	"sync/atomic"
)

// fdb maps MAC addresses to the VTEP they were last seen behind, as the kernel's vxlan
// forwarding database does. It is direct-mapped, as vdeplug4's table is: a new address
// takes its slot from whatever held it. It has one writer (the endpoint's reader, which
// learns) and any number of readers (senders looking up destinations); a slot is
// published under a sequence count, so a reader never pairs one address with another's
// VTEP, and neither side takes a lock or allocates.
type fdb struct {
	slots  []fdbSlot
	mask   uint64
	expire int64 // seconds an entry is believed after it was last refreshed
}

type fdbSlot struct {
	seq  atomic.Uint32 // odd while the writer changes the slot
	key  atomic.Uint64 // the MAC in the low 48 bits, bit 63 when the slot is in use
	vtep atomic.Pointer[vtep]
	seen atomic.Int64 // seconds
}

const keyUsed = 1 << 63

// newFDB returns a table of at least size slots (a power of two), or nil for size 0:
// no table, everything is flooded.
func newFDB(size int, expire int64) *fdb {
	if size <= 0 {
		return nil
	}
	n := 1
	for n < size {
		n <<= 1
	}
	return &fdb{slots: make([]fdbSlot, n), mask: uint64(n - 1), expire: expire}
}

// macKey packs a 6-byte MAC address.
func macKey(mac []byte) uint64 {
	return uint64(mac[0])<<40 | uint64(mac[1])<<32 | uint64(mac[2])<<24 |
		uint64(mac[3])<<16 | uint64(mac[4])<<8 | uint64(mac[5]) | keyUsed
}

func (t *fdb) slot(key uint64) *fdbSlot {
	x := key
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return &t.slots[x&t.mask]
}

// lookup returns the VTEP mac was learned behind, or nil if it is unknown or expired.
func (t *fdb) lookup(mac []byte, now int64) *vtep {
	key := macKey(mac)
	s := t.slot(key)
	for {
		seq := s.seq.Load()
		if seq&1 != 0 {
			continue // the writer is in the middle of this slot: a few instructions
		}
		k, v, seen := s.key.Load(), s.vtep.Load(), s.seen.Load()
		if s.seq.Load() != seq {
			continue
		}
		if k != key || now-seen > t.expire {
			return nil
		}
		return v
	}
}

// learn records that mac was seen behind v at now. Only one goroutine may learn.
func (t *fdb) learn(mac []byte, v *vtep, now int64) {
	key := macKey(mac)
	s := t.slot(key)
	if s.key.Load() == key && s.vtep.Load() == v {
		if s.seen.Load() != now {
			s.seen.Store(now)
		}
		return
	}
	s.seq.Add(1)
	s.key.Store(key)
	s.vtep.Store(v)
	s.seen.Store(now)
	s.seq.Add(1)
}

// forget drops every entry that points at v (a vxvde peer that said goodbye).
func (t *fdb) forget(v *vtep) {
	for i := range t.slots {
		s := &t.slots[i]
		if s.vtep.Load() == v {
			s.seq.Add(1)
			s.key.Store(0)
			s.vtep.Store(nil)
			s.seq.Add(1)
		}
	}
}

// entries counts the live entries (for tests and logs).
func (t *fdb) entries(now int64) (n int) {
	for i := range t.slots {
		s := &t.slots[i]
		if s.key.Load()&keyUsed != 0 && now-s.seen.Load() <= t.expire {
			n++
		}
	}
	return n
}

// isUnicast tells whether a destination MAC names one station (the I/G bit is clear).
func isUnicast(mac []byte) bool { return mac[0]&1 == 0 }

// vteps interns tunnel endpoints by address, so that the table and the message headers can
// point at one stable sockaddr per VTEP. It belongs to the endpoint's reader.
type vteps struct {
	byAddr map[netip.AddrPort]*vtep
	last   *vtep // most datagrams of a batch come from the same VTEP
	max    int
}

func newVTEPs(max int) *vteps { return &vteps{byAddr: make(map[netip.AddrPort]*vtep), max: max} }

// get returns the VTEP of ap, making it if it is new.
func (s *vteps) get(ap netip.AddrPort) *vtep {
	if s.last != nil && s.last.addr == ap {
		return s.last
	}
	v := s.byAddr[ap]
	if v == nil {
		if len(s.byAddr) >= s.max {
			// Full (members come and go on new ports; a flood of made-up sources):
			// start again from the configured peers. MAC entries keep the VTEPs they
			// point at until they expire; one seen again is made anew.
			for k, old := range s.byAddr {
				if !old.peer {
					delete(s.byAddr, k)
				}
			}
			s.last = nil
			if len(s.byAddr) >= s.max {
				return nil
			}
		}
		v = newVTEP(ap, 0)
		s.byAddr[ap] = v
	}
	s.last = v
	return v
}

// lookup returns the VTEP of ap if it is known.
func (s *vteps) lookup(ap netip.AddrPort) *vtep {
	if s.last != nil && s.last.addr == ap {
		return s.last
	}
	if v := s.byAddr[ap]; v != nil {
		s.last = v
		return v
	}
	return nil
}

// add interns a configured VTEP.
func (s *vteps) add(v *vtep) { s.byAddr[v.addr] = v }
