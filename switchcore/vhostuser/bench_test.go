package vhostuser

import "testing"

// BenchmarkRelay64 moves 64-byte frames from one guest's transmit ring through
// ReadBatch and WriteBatch into another guest's receive ring, as the switch does between
// two vhost-user ports, with the test drivers refilling both rings: the device's cost per
// frame, without the switch and with both guests on this CPU.
func BenchmarkRelay64(b *testing.B) {
	a := newFrontend(b, modern, Options{})
	c := newFrontend(b, modern, Options{})
	bufs, sizes := newBufs(32)
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = frame(64, byte(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 32 {
		a.TransmitHdr((i/32%8)*32, nil, frames...)
		c.PostRx((i/32%8)*32, 32, feBufSize)
		n, _ := a.dev.ReadBatch(bufs, sizes)
		out := bufs[:n]
		for k := range out {
			out[k] = out[k][:sizes[k]]
		}
		c.dev.WriteBatch(out)
		for k := range out {
			out[k] = out[k][:cap(out[k])]
		}
		a.Rings[1].Drain()
		c.Rings[0].Drain()
	}
}
