package vhostuser

import (
	"encoding/binary"
	"testing"
	"time"
)

// FuzzMessages feeds any byte stream to a device's protocol side: it must end the
// connection or go on, never panic or hang.
func FuzzMessages(f *testing.F) {
	msg := func(req Request, p []byte) []byte {
		b := make([]byte, headerSize, headerSize+len(p))
		binary.LittleEndian.PutUint32(b, uint32(req))
		binary.LittleEndian.PutUint32(b[4:], flagVersion|flagNeedReply)
		binary.LittleEndian.PutUint32(b[8:], uint32(len(p)))
		return append(b, p...)
	}
	f.Add(msg(ReqGetFeatures, nil))
	f.Add(append(msg(ReqSetFeatures, u64(modern)), msg(ReqSetProtocolFeatures, u64(ProtoReplyAck))...))
	f.Add(msg(ReqSetVringNum, state(1, 256)))
	f.Add(msg(ReqSetVringAddr, make([]byte, 40)))
	f.Add(msg(ReqSetMemTable, append(binary.LittleEndian.AppendUint32(nil, 1), make([]byte, 36)...)))
	f.Add(msg(ReqSetVringKick, u64(1|kickNoFD)))
	f.Add(msg(ReqGetVringBase, state(0, 0)))
	f.Add(msg(ReqSetVringEnable, state(1, 1)))
	f.Fuzz(func(t *testing.T, stream []byte) {
		fe := newFrontend(t, modern, Options{})
		fe.Conn.Write(stream)
		fe.Conn.CloseWrite()
		select {
		case err := <-fe.served:
			fe.served <- err
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not end after the frontend stopped writing")
		}
	})
}

// FuzzRings lets a frontend write anything into its descriptor tables and rings: the
// device must neither panic nor touch memory outside the table.
func FuzzRings(f *testing.F) {
	f.Add([]byte{}, []byte{}, uint16(1), uint16(1))
	f.Add(make([]byte, 64), []byte{0, 0, 1, 0}, uint16(3), uint16(2))
	f.Fuzz(func(t *testing.T, descs, ring []byte, txIdx, rxIdx uint16) {
		fe := newFrontend(t, modern, Options{})
		for _, r := range fe.Rings {
			copy(fe.Mem[r.DescOff:r.DescOff+16*r.Num], descs)
			copy(fe.Mem[r.AvailOff+4:r.AvailOff+4+2*r.Num], ring)
		}
		fe.Rings[1].AvailIdx = txIdx - 1
		fe.Rings[1].Offer()
		fe.Rings[0].AvailIdx = rxIdx - 1
		fe.Rings[0].Offer()
		bufs, sizes := newBufs(8)
		fe.dev.mu.RLock()
		n := fe.dev.pollTx(bufs, sizes, nil)
		fe.dev.mu.RUnlock()
		for i := 0; i < n; i++ {
			if sizes[i] > len(bufs[i]) {
				t.Fatalf("frame %d: size %d over its buffer", i, sizes[i])
			}
		}
		fe.dev.WriteBatch([][]byte{frame(64, 1), frame(3000, 2)})
	})
}
