package switchcore

import (
	"testing"
)

// TestHandoverFSTP: a switch running FSTP, which adopted a better root on port 1 and
// blocked port 2 (another switch, no better path), hands over: the restored switch shows
// the same tree (fstp/print byte for byte), and no port probes anew: the host's port
// forwards at once, the blocked one stays blocked.
func TestHandoverFSTP(t *testing.T) {
	mac := [6]byte{0x00, 0xff, 0, 0, 0, 0x10}
	s := newTestSwitch(t, Config{FSTP: true, MAC: mac})
	dial(t, s, 3) // a host
	p1 := dial(t, s, 1)
	recvBPDU(t, p1, "port-add BPDU")
	r := makeBridgeID(0x1000, [6]byte{0x00, 0xff, 0, 0, 0, 0x01})
	p1.WriteBatch([][]byte{peerBPDU(r, 0, r, 2, flagNotBackup|flagNotRoot|0x30)})
	recvBPDU(t, p1, "agreement")
	p2 := dial(t, s, 2)
	recvBPDU(t, p2, "port-add BPDU on port 2")
	other := makeBridgeID(0x8000, [6]byte{0x00, 0xff, 0, 0, 0, 0x02})
	p2.WriteBatch([][]byte{peerBPDU(r, fstpPortCost, other, 7, flagNotBackup|flagNotRoot|0x30)})
	fstpWait(t, "port 2 backup", func() bool { _, _, bk, disc, _ := fstpState(s, 2); return bk && disc })
	fstpWait(t, "port 3 forwarding", func() bool { _, _, _, disc, pend := fstpState(s, 3); return !disc && !pend })
	before := runCmd(t, s, "fstp/print")

	state, files, err := s.Handover()
	if err != nil {
		t.Fatal(err)
	}
	s2 := restore(t, s, "B", state, files)
	if got := runCmd(t, s2, "fstp/print"); got != before {
		t.Fatalf("fstp/print after the hand-over:\n%s\nbefore:\n%s", got, before)
	}
	for port, want := range map[int][2]bool{1: {false, false}, 2: {true, true}, 3: {false, false}} {
		_, _, bk, disc, pend := fstpState(s2, port)
		if bk != want[0] || disc != want[1] || pend {
			t.Errorf("port %d after the hand-over: backup %v discard %v pending %v, want backup %v discard %v, not pending", port, bk, disc, pend, want[0], want[1])
		}
	}
	if root, rp, _, _, _ := fstpState(s2, 1); root != r || rp != 1 {
		t.Errorf("after the hand-over: root %x on port %d, want %x on port 1", root, rp, r)
	}
}
