package switchcore

import (
	"bytes"
	"testing"
	"time"
)

// FuzzBPDU feeds any frame to the BPDU decoder and to the protocol of a running switch
// with members on VLAN 0 (untagged) and VLAN 10 (tagged): nothing may panic, a decoded
// BPDU encodes back to the bytes it was read from, and the protocol's state stays
// coherent (the root port is a member or 0; a member that forwards is not a backup
// unless it is an edge port).
func FuzzBPDU(f *testing.F) {
	f.Add(mustHex(debianBPDU), false, uint8(1))
	f.Add(mustHex("0180c2000000"+"00ffff1bc143"+"8100000a"+"0027"+"424203"+"0000"+"02"+"02"+"7d"+
		"100000ffff000001"+"01312d00"+"800000ffff1bc143"+"8114"+"0700"+"2800"+"0400"+"0000"+"00"), true, uint8(2))
	f.Add(mustHex(debianBPDU)[:51], false, uint8(3))
	f.Add([]byte{}, true, uint8(0))
	s := newTestSwitch(f, Config{FSTP: true, NumPorts: 8})
	if out := runCmd(f, s, "vlan/create 10"); out != "1000 Success\n" {
		f.Fatal(out)
	}
	s.mu.Lock()
	fs := s.fst
	for p := 1; p < 4; p++ {
		fs.addPort(0, p, false)
		fs.addPort(10, p, true)
	}
	fs.takeOut()
	s.mu.Unlock()
	f.Fuzz(func(t *testing.T, frame []byte, tagged bool, port uint8) {
		if b, err := decodeBPDU(frame, tagged); err == nil {
			var src [6]byte
			if len(frame) >= 12 {
				copy(src[:], frame[6:12])
			}
			vid := uint16(0)
			if tagged {
				vid = uint16(frame[14]&0x0f)<<8 | uint16(frame[15])
			}
			enc := appendBPDU(nil, src, tagged, vid, &b)
			// The decoder ignores the LLC header, the length and the protocol id.
			off := 0
			if tagged {
				off = 4
			}
			end := off + 51
			if len(frame) > end {
				end++
			}
			if !bytes.Equal(enc[off+19:end], frame[off+19:end]) {
				t.Fatalf("re-encoded BPDU differs:\n got %x\nfrom %x", enc, frame)
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		vid := uint16(0)
		if tagged {
			vid = 10
		}
		fs.receive(int(port%6), vid, tagged, frame)
		fs.tick(time.Now())
		fs.takeOut()
		for _, vid := range []uint16{0, 10} {
			v := fs.vl[vid]
			if v.rootPort != 0 && !v.member(v.rootPort) {
				t.Fatalf("VLAN %d: root port %d is not a member", vid, v.rootPort)
			}
		}
	})
}
