package switchcore

import (
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// PortStats are one port's counters, the figures port/print and port/drops show.
type PortStats struct {
	// Port is the port's number.
	Port int
	// Active says that at least one endpoint is attached.
	Active bool
	// Endpoints counts the attached endpoints.
	Endpoints int
	// User is the uid of the attached endpoints, -1 when inactive.
	User int
	// InFrames and InBytes count what the port's endpoints sent to the switch.
	InFrames, InBytes uint64
	// OutFrames and OutBytes count what the switch queued to the port.
	OutFrames, OutBytes uint64
	// Drops counts frames the port's full (or gone) receivers did not take.
	Drops uint64
	// Bad counts frames the port sent that were not forwarded (too short or long, a VLAN
	// it is not on).
	Bad uint64
	// Queued is how many frames wait in the port's queues for a slow receiver now.
	Queued int
	// LoopBlocked says that the loop guard blocks the port now (loopguard/print).
	LoopBlocked bool
	// Faults are the counts of the port's endpoints that report faults
	// (wire.FaultReporter), by reason; nil when none does.
	Faults map[string]uint64
}

// Stats is a snapshot of the switch's counters.
type Stats struct {
	// Ports are the allocated ports, in order.
	Ports []PortStats
	// MACs is the number of entries of the MAC table, MACLimit its bound (hash/setmax).
	MACs, MACLimit int
	// NotLearned counts frames whose new source the full MAC table did not learn.
	NotLearned uint64
	// LoopBlocks counts the loop guard's blocks since the switch started.
	LoopBlocks uint64
	// Start is when the switch started.
	Start time.Time
}

// Stats takes a snapshot of the counters. It holds the switch's lock only to walk the
// port table: the counters themselves are atomics the readers update.
func (s *Switch) Stats() Stats {
	st := Stats{
		MACs:       s.macs.len(),
		MACLimit:   int(s.macs.limit.Load()),
		NotLearned: s.macs.full.Load(),
		LoopBlocks: s.lg.blocks.Load(),
		Start:      s.start,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.ports {
		if p == nil {
			continue
		}
		k := &p.counters
		ps := PortStats{
			Port:      p.num,
			Active:    p.active(),
			Endpoints: len(p.eps),
			User:      p.curUser,
			InFrames:  k.inPkts.Load(),
			InBytes:   k.inBytes.Load(),
			OutFrames: k.outPkts.Load(),
			OutBytes:  k.outBytes.Load(),
			Drops:     k.drops.Load(),
			Bad:       k.bad.Load(),
		}
		if p.num < len(s.lg.ports) {
			ps.LoopBlocked = s.lg.ports[p.num].blocked
		}
		for _, ep := range p.eps {
			if ep.queue != nil {
				ps.Queued += int(ep.queue.pending.Load())
			}
			if fr, ok := ep.data.(wire.FaultReporter); ok {
				if ps.Faults == nil {
					ps.Faults = map[string]uint64{}
				}
				fr.ReportFaults(func(reason string, n uint64) { ps.Faults[reason] += n })
			}
		}
		st.Ports = append(st.Ports, ps)
	}
	return st
}
