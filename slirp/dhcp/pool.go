package dhcp

// slot is one pool address. Once allocated it stays with its MAC for ever: slirp has no
// lease expiry and no RELEASE handling, so only the same MAC can get the address again.
type slot struct {
	allocated bool
	mac       [6]byte
}

// pool hands out addresses start, start+1, ... by slot index, in slirp's order. A MAC may
// end up holding more than one slot (by asking for another free address); like slirp, the
// older slot is not freed.
type pool struct {
	start uint32
	slots []slot
}

// request gives the slot of addr to mac if addr is in the pool and the slot is free or
// already mac's (slirp's request_addr).
func (p *pool) request(addr uint32, mac [6]byte) (int, bool) {
	if addr < p.start || uint64(addr-p.start) >= uint64(len(p.slots)) {
		return 0, false
	}
	i := addr - p.start
	s := &p.slots[i]
	if s.allocated && s.mac != mac {
		return 0, false
	}
	*s = slot{allocated: true, mac: mac}
	return int(i), true
}

// assign gives mac the first slot that is free or already its own (slirp's get_new_addr).
func (p *pool) assign(mac [6]byte) (int, bool) {
	for i := range p.slots {
		s := &p.slots[i]
		if !s.allocated || s.mac == mac {
			*s = slot{allocated: true, mac: mac}
			return i, true
		}
	}
	return 0, false
}

// find returns the first slot held by mac (slirp's find_addr).
func (p *pool) find(mac [6]byte) (int, bool) {
	for i, s := range p.slots {
		if s.allocated && s.mac == mac {
			return i, true
		}
	}
	return 0, false
}

// addr returns the address of slot i.
func (p *pool) addr(i int) uint32 { return p.start + uint32(i) }
