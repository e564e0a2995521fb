package dhcp

import "time"

// slotState is where a pool address is in its life.
type slotState uint8

const (
	slotFree    slotState = iota
	slotOffered           // offered in reply to a DISCOVER, not confirmed by a REQUEST yet
	slotBound             // ACKed: the client confirmed it
)

// slot is one pool address. Like slirp, a slot stays with its MAC: only the same MAC gets
// the address again, and there is no RELEASE handling. Unlike slirp, a full pool takes a
// slot back when it has to (see reclaim), so that a guest sending DISCOVERs from random
// MACs cannot lock the others out for good.
type slot struct {
	state slotState
	mac   [6]byte
	when  time.Time // of the offer or of the last ACK
}

// pool hands out addresses start, start+1, ... by slot index, in slirp's order. A MAC may
// end up holding more than one slot (by asking for another free address); like slirp, the
// older slot is not freed.
type pool struct {
	start uint32
	slots []slot
	lease time.Duration // a bound slot whose client has not renewed for this long is reclaimable
	// reclaimed counts slots taken back from a MAC that held them.
	reclaimed uint64
}

// take gives slot i to mac: offered, or bound when bind is set. A bound slot stays bound
// when offered again to its MAC.
func (p *pool) take(i int, mac [6]byte, bind bool, now time.Time) {
	s := &p.slots[i]
	if s.state != slotFree && s.mac != mac {
		p.reclaimed++
	}
	st := slotOffered
	if bind || (s.state == slotBound && s.mac == mac) {
		st = slotBound
	}
	*s = slot{state: st, mac: mac, when: now}
}

// request gives the slot of addr to mac if addr is in the pool and the slot is free or
// already mac's (slirp's request_addr).
func (p *pool) request(addr uint32, mac [6]byte, bind bool, now time.Time) (int, bool) {
	if addr < p.start || uint64(addr-p.start) >= uint64(len(p.slots)) {
		return 0, false
	}
	i := int(addr - p.start)
	s := &p.slots[i]
	if s.state != slotFree && s.mac != mac {
		return 0, false
	}
	p.take(i, mac, bind, now)
	return i, true
}

// assign gives mac the first slot that is free or already its own (slirp's get_new_addr);
// in a full pool, a reclaimable slot.
func (p *pool) assign(mac [6]byte, bind bool, now time.Time) (int, bool) {
	for i := range p.slots {
		s := &p.slots[i]
		if s.state == slotFree || s.mac == mac {
			p.take(i, mac, bind, now)
			return i, true
		}
	}
	i, ok := p.reclaim(now)
	if ok {
		p.take(i, mac, bind, now)
	}
	return i, ok
}

// reclaim picks the slot a full pool gives to a new MAC: the oldest offer nobody
// confirmed, else the oldest lease not renewed within the lease time. Bound leases that
// are still valid are never taken.
func (p *pool) reclaim(now time.Time) (int, bool) {
	best, found := 0, false
	for i, s := range p.slots {
		if s.state == slotOffered && (!found || s.when.Before(p.slots[best].when)) {
			best, found = i, true
		}
	}
	if found {
		return best, true
	}
	for i, s := range p.slots {
		if s.state == slotBound && now.Sub(s.when) >= p.lease && (!found || s.when.Before(p.slots[best].when)) {
			best, found = i, true
		}
	}
	return best, found
}

// find returns the first slot held by mac (slirp's find_addr).
func (p *pool) find(mac [6]byte) (int, bool) {
	for i, s := range p.slots {
		if s.state != slotFree && s.mac == mac {
			return i, true
		}
	}
	return 0, false
}

// addr returns the address of slot i.
func (p *pool) addr(i int) uint32 { return p.start + uint32(i) }
