package switchcore

// view is the immutable forwarding state the frame path reads through an atomic pointer:
// built under Switch.mu on every change of ports, endpoints, VLANs or hub mode, never
// modified after it is published, so readers need no lock.
type view struct {
	hub      bool
	fstp     bool       // FSTP runs: BPDUs go to it, fwdPort.blocked applies
	lg       bool       // the loop guard watches: flapping addresses are counted (loopguard.go)
	ports    []*fwdPort // by port number; nil when unallocated or inactive
	vlans    []*fwdVLAN // by VLAN id; nil when the VLAN is not defined
	hubPorts []*fwdPort // hub mode destinations: active ports but port 0
}

// fwdPort is an active port as the frame path sees it.
type fwdPort struct {
	num      int
	port     *Port
	eps      []*endpoint
	untagged uint16
	tagged   vlanSet
	blocked  vlanSet // VLANs where FSTP has the port discarding: out of the flood lists too
	// lgBlocked: the loop guard blocks the port: its frames are dropped, and it is out of
	// the flood lists (its addresses were forgotten, so no unicast goes there either).
	lgBlocked bool
	lg        *lgPort // the loop guard's counters of the port
}

// fwdVLAN lists the forwarding members of a VLAN by how frames leave them.
type fwdVLAN struct {
	untagged []*fwdPort
	tagged   []*fwdPort
}

func (s *Switch) publishLocked() {
	s.fst.sync()
	s.fst.dirty = false
	s.fst.kickLocked()
	s.lg.sync()
	v := &view{hub: s.hub, fstp: s.fst.on && !s.hub, ports: make([]*fwdPort, len(s.ports)), vlans: make([]*fwdVLAN, maxVLANs)}
	v.lg = s.lg.on && !v.fstp && !v.hub
	for vid := range s.vlans {
		if s.vlans[vid] {
			v.vlans[vid] = &fwdVLAN{}
		}
	}
	for n, p := range s.ports {
		if p == nil || !p.active() {
			continue
		}
		fp := &fwdPort{num: n, port: p, eps: p.eps, untagged: p.untagged, tagged: p.tagged, lg: s.lg.ports[n]}
		if v.fstp {
			s.fst.blocked(n, &fp.blocked)
		}
		fp.lgBlocked = v.lg && fp.lg.blocked
		v.ports[n] = fp
		if n != 0 {
			v.hubPorts = append(v.hubPorts, fp)
		}
		if fp.lgBlocked {
			continue // in no flood list
		}
		if p.untagged != NoVLAN && v.vlans[p.untagged] != nil && !fp.blocked.has(p.untagged) {
			vl := v.vlans[p.untagged]
			vl.untagged = append(vl.untagged, fp)
		}
		for vid := range v.vlans {
			if vl := v.vlans[vid]; vl != nil && uint16(vid) != p.untagged && p.tagged.has(uint16(vid)) && !fp.blocked.has(uint16(vid)) {
				vl.tagged = append(vl.tagged, fp)
			}
		}
	}
	s.view.Store(v)
}
