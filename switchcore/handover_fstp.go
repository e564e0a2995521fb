package switchcore

// The spanning tree across a hand-over (issue 22): each VLAN's root, costs and port
// roles go in the state's FSTP section, and the restored switch takes them up after its
// ports have joined the protocol again, so that no port probes anew (fstpProbe: a port
// that just came up forwards nothing until it heard its peer or the probe ran out).

import (
	"time"

	"github.com/vde-go/vde/switchcore/handover"
)

// snapshotFSTPLocked records the spanning tree into st, when the protocol runs. Call with
// s.mu held (it guards the protocol's state).
func (s *Switch) snapshotFSTPLocked(st *handover.State) error {
	f := s.fst
	if !f.on {
		return nil
	}
	fs := &handover.FSTP{}
	now := time.Now()
	for vid, v := range f.vl {
		if v == nil {
			continue
		}
		hv := handover.FSTPVLAN{VLAN: uint16(vid), Root: v.root, RootCost: v.rootCost, DesBridge: v.desBridge, DesPort: v.desPort,
			RootPort: v.rootPort, BonusPort: v.bonusPort, BonusCost: v.bonusCost, TCTime: v.tcTime, RootTime: v.rootTime,
			Backup: portList(v.backup), Edge: portList(v.edge), Discard: portList(v.discard), Pending: portList(v.pending),
			Rcv0: portList(v.rcv[0]), Rcv1: portList(v.rcv[1])}
		if !v.rootAt.IsZero() {
			hv.RootAgeNanos = int64(now.Sub(v.rootAt))
		}
		fs.VLANs = append(fs.VLANs, hv)
	}
	return st.SetFSTP(fs)
}

// restoreFSTPLocked puts a handed-over tree back over what the ports' joining made (call
// after publishLocked, with s.mu held): roles, root and costs as they were; a port that
// was not probing does not probe.
func (s *Switch) restoreFSTPLocked(fs *handover.FSTP) {
	f := s.fst
	if fs == nil || !f.on {
		return
	}
	now := time.Now()
	for _, hv := range fs.VLANs {
		v := f.vl[hv.VLAN]
		if v == nil {
			continue // a VLAN the switch no longer has
		}
		v.root, v.rootCost, v.desBridge, v.desPort = hv.Root, hv.RootCost, hv.DesBridge, hv.DesPort
		v.rootPort, v.bonusPort, v.bonusCost, v.tcTime, v.rootTime = hv.RootPort, hv.BonusPort, hv.BonusCost, hv.TCTime, hv.RootTime
		v.rootAt = time.Time{}
		if hv.RootTime != 0 || hv.RootAgeNanos != 0 {
			v.rootAt = now.Add(-time.Duration(hv.RootAgeNanos))
		}
		for _, b := range []struct {
			bits  *portBits
			ports []int
		}{{&v.backup, hv.Backup}, {&v.edge, hv.Edge}, {&v.discard, hv.Discard}, {&v.pending, hv.Pending}, {&v.rcv[0], hv.Rcv0}, {&v.rcv[1], hv.Rcv1}} {
			b.bits.zap()
			for _, p := range b.ports {
				b.bits.set(p)
			}
		}
	}
	f.dirty = true
}

// portList is the ports in b, in increasing order.
func portList(b portBits) []int {
	var ps []int
	b.each(func(p int) { ps = append(ps, p) })
	return ps
}
