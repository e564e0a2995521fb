package switchcore

import (
	"testing"

	"github.com/vde-go/vde/switchcore/wire"
)

// BenchmarkForwardFiltered64 measures the frame path without its system calls: a batch of
// frames to the sender's own MAC, learned and then filtered (nothing is sent), so that the
// cost of the plugin hook (one atomic load per batch, a nil check per frame) is not lost
// in sendmmsg's noise.
func BenchmarkForwardFiltered64(b *testing.B) {
	rig := newForwardRig(b, 64)
	f := frame(1, 1, string(make([]byte, 64-14)))
	for i := range rig.r.bufs {
		copy(rig.r.bufs[i], f)
		rig.r.sizes[i] = len(f)
	}
	rig.r.forward(rig.src, wire.BatchSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rig.r.forward(rig.src, wire.BatchSize)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*wire.BatchSize), "ns/frame")
}
