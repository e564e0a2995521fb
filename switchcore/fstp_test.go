package switchcore

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// debianBPDU is a BPDU captured from Debian's vde_switch -F (a root switch's hello on its
// port 2, shared/spec/vde_switch.md §7.6).
const debianBPDU = "0180c2000000" + "00ffff1bc143" + "0027" + "424203" + "0000" + "02" + "02" + "3c" +
	"800000ffff1bc143" + "00000000" + "800000ffff1bc143" + "8002" + "0000" + "2800" + "0400" + "0000" + "00"

func TestBPDUCodec(t *testing.T) {
	mac := [6]byte{0x00, 0xff, 0xff, 0x1b, 0xc1, 0x43}
	id := makeBridgeID(0x8000, mac)
	tests := []struct {
		desc   string
		frame  string
		tagged bool
		vid    uint16
		want   bpdu
	}{
		{
			desc:  "Debian's root hello, untagged",
			frame: debianBPDU,
			want:  bpdu{Flags: 0x3c, Root: id, Bridge: id, Port: [2]byte{0x80, 0x02}, MaxAge: 40, Hello: 4},
		},
		{
			desc: "tagged VLAN 10, big-endian cost, little-endian age, port 20",
			frame: "0180c2000000" + "00ffff1bc143" + "8100000a" + "0027" + "424203" + "0000" + "02" + "02" + "7d" +
				"100000ffff000001" + "01312d00" + "800000ffff1bc143" + "8114" + "0700" + "2800" + "0400" + "0000" + "00",
			tagged: true, vid: 10,
			want: bpdu{Flags: 0x7d, Root: bridgeID{0x10, 0, 0, 0xff, 0xff, 0, 0, 1}, RootCost: 20000000, Bridge: id,
				Port: portID(20), Age: 7, MaxAge: 40, Hello: 4},
		},
	}
	for _, tt := range tests {
		f := mustHex(tt.frame)
		got, err := decodeBPDU(f, tt.tagged)
		if err != nil || got != tt.want {
			t.Errorf("%s: decode = %+v, %v; want %+v", tt.desc, got, err, tt.want)
		}
		if enc := appendBPDU(nil, mac, tt.tagged, tt.vid, &tt.want); !bytes.Equal(enc, f) {
			t.Errorf("%s: encode\n got %x\nwant %x", tt.desc, enc, f)
		}
	}
	f := mustHex(debianBPDU)
	for _, bad := range []struct {
		desc   string
		frame  []byte
		tagged bool
		err    error
	}{
		{"50 bytes", f[:50], false, ErrBPDUShort},
		{"tagged, 54 bytes", append(append([]byte{}, f[:16]...), f[12:50]...), true, ErrBPDUShort},
		{"version 3", append(append(append([]byte{}, f[:19]...), 3), f[20:]...), false, ErrBPDUVersion},
		{"type 0 (config BPDU)", append(append(append([]byte{}, f[:20]...), 0), f[21:]...), false, ErrBPDUVersion},
	} {
		if _, err := decodeBPDU(bad.frame, bad.tagged); !errors.Is(err, bad.err) {
			t.Errorf("%s: err %v, want %v", bad.desc, err, bad.err)
		}
	}
	if _, err := decodeBPDU(f[:51], false); err != nil {
		t.Errorf("51 bytes (C's minimum): %v", err)
	}
	if portID(1) != [2]byte{0x80, 0x01} || portID(0x123) != [2]byte{0x92, 0x23} {
		t.Errorf("portID: %x %x", portID(1), portID(0x123))
	}
}

// peerBPDU builds the BPDU a peer switch would send.
func peerBPDU(root bridgeID, cost uint32, bridge bridgeID, port int, flags byte) []byte {
	b := bpdu{Flags: flags, Root: root, RootCost: cost, Bridge: bridge, Port: portID(port), MaxAge: 40, Hello: 4}
	return appendBPDU(nil, [6]byte{bridge[2], bridge[3], bridge[4], bridge[5], bridge[6], bridge[7]}, false, 0, &b)
}

// recvBPDU waits for the next BPDU on c, skipping other frames.
func recvBPDU(t *testing.T, c *wire.Conn, who string) bpdu {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		f := recvFrame(t, c, time.Until(deadline))
		if f == nil {
			break
		}
		if len(f) >= 14 && isBPDUDest(f) {
			b, err := decodeBPDU(f, false)
			if err != nil {
				t.Fatalf("%s: %v: %x", who, err, f)
			}
			return b
		}
	}
	t.Fatalf("%s: no BPDU", who)
	return bpdu{}
}

func fstpState(s *Switch, port int) (root bridgeID, rootPort int, backup, discard, pending bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.fst.vl[0]
	return v.root, v.rootPort, v.backup.has(port), v.discard.has(port), v.pending.has(port)
}

func fstpWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestFSTPStateMachine drives one switch from two ports that speak FSTP as switches
// would, and one host port: a better root is adopted with an agreement, a longer path
// to it blocks a port, a root-role BPDU opens it again, a lost root is forgotten.
func TestFSTPStateMachine(t *testing.T) {
	mac := [6]byte{0x00, 0xff, 0, 0, 0, 0x10}
	s := newTestSwitch(t, Config{FSTP: true, MAC: mac})
	me := makeBridgeID(0x8000, mac)
	host := dial(t, s, 3)
	p1 := dial(t, s, 1)

	// The port-add BPDU: we are the root; the new port is still probing (discarding).
	b := recvBPDU(t, p1, "port-add BPDU")
	if want := (bpdu{Flags: flagNotBackup | flagNotRoot, Root: me, Bridge: me, Port: portID(1), MaxAge: 40, Hello: 4}); b != want {
		t.Fatalf("port-add BPDU %+v, want %+v", b, want)
	}
	// A better root on port 1.
	r := makeBridgeID(0x1000, [6]byte{0x00, 0xff, 0, 0, 0, 0x01})
	p1.WriteBatch([][]byte{peerBPDU(r, 0, r, 2, flagNotBackup|flagNotRoot|0x30)})
	b = recvBPDU(t, p1, "agreement")
	if b.Flags != flagAgreement|0x30|flagNotBackup || b.Root != r || b.RootCost != fstpPortCost || b.Bridge != me {
		t.Fatalf("agreement %+v", b)
	}
	if root, rp, _, disc, pend := fstpState(s, 1); root != r || rp != 1 || disc || pend {
		t.Fatalf("after a better root: root %x port %d discard %v pending %v", root, rp, disc, pend)
	}
	out := runCmd(t, s, "fstp/print 0")
	for _, want := range []string{"FST DATA VLAN 0000  \n", " ++ root 10:00:00:ff:00:00:00:01\n", " ++ designated 10:00:00:ff:00:00:00:01\n",
		" ++ rootport 0001 cost 20000000 age 0 bonusport 0000 bonuscost 0\n",
		" -- Port 0001 tagged=0 portcost=20000000 role=Root\n", " -- Port 0003 tagged=0 portcost=20000000 role=Designated\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("fstp/print lacks %q:\n%s", want, out)
		}
	}

	// Port 2: a switch with the same root and a path no better than ours, designated on
	// its side: port 2 becomes backup and stops forwarding.
	p2 := dial(t, s, 2)
	recvBPDU(t, p2, "port-add BPDU on port 2")
	other := makeBridgeID(0x8000, [6]byte{0x00, 0xff, 0, 0, 0, 0x02})
	p2.WriteBatch([][]byte{peerBPDU(r, fstpPortCost, other, 7, flagNotBackup|flagNotRoot|0x30)})
	fstpWait(t, "port 2 backup", func() bool { _, _, bk, disc, _ := fstpState(s, 2); return bk && disc })
	if out := runCmd(t, s, "fstp/print"); !strings.Contains(out, " -- Port 0002 tagged=0 portcost=20000000 role=Alternate/Backup\n") {
		t.Fatalf("fstp/print:\n%s", out)
	}
	drain := func(c *wire.Conn) {
		for recvFrame(t, c, 50*time.Millisecond) != nil {
		}
	}
	drain(host)
	drain(p2)
	p2.WriteBatch([][]byte{frame(0xff, 0x22, "from a blocked port")})
	expectNothingBut(t, host, "host, from blocked port 2")
	host.WriteBatch([][]byte{frame(0xff, 0x33, "to a blocked port")})
	expectNothingBut(t, p2, "blocked port 2, from host")

	// A root-role BPDU on port 2: its far end chose us, port 2 designated again.
	p2.WriteBatch([][]byte{peerBPDU(r, 2*fstpPortCost, other, 7, flagNotBackup|0x30)})
	fstpWait(t, "port 2 forwarding", func() bool { _, _, bk, disc, _ := fstpState(s, 2); return !bk && !disc })
	drain(host)
	p2.WriteBatch([][]byte{frame(0xff, 0x22, "open")})
	expectFrame(t, host, frame(0xff, 0x22, "open"), "host, from reopened port 2")

	// The root falls silent: 12 s later it is forgotten (tick driven by hand).
	s.mu.Lock()
	s.fst.tick(time.Now().Add(13 * time.Second))
	s.mu.Unlock()
	if root, rp, _, _, _ := fstpState(s, 1); root != me || rp != 0 {
		t.Fatalf("after root loss: root %x port %d", root, rp)
	}
}

// expectNothingBut is expectNothing that ignores BPDUs.
func expectNothingBut(t *testing.T, c *wire.Conn, who string) {
	t.Helper()
	for end := time.Now().Add(quiet); time.Now().Before(end); {
		f := recvFrame(t, c, time.Until(end))
		if f == nil {
			return
		}
		if !isBPDUDest(f) {
			t.Fatalf("%s: unexpected frame %x", who, f)
		}
	}
}

// TestFSTPProbe: a new port discards until the peer's first BPDU or fstpProbe; a host
// (no BPDUs) forwards after the probe.
func TestFSTPProbe(t *testing.T) {
	s := newTestSwitch(t, Config{FSTP: true})
	a := dial(t, s, 1)
	time.Sleep(fstpProbe + 3*fstpTick)
	b := dial(t, s, 2)
	if _, _, _, _, pend := fstpState(s, 2); !pend {
		t.Fatal("new port not probing")
	}
	b.WriteBatch([][]byte{frame(0xff, 2, "early")})
	for {
		f := recvFrame(t, a, quiet)
		if f == nil {
			break
		}
		if !isBPDUDest(f) {
			t.Fatalf("a probing port's frame was forwarded: %x", f)
		}
	}
	fstpWait(t, "probe end", func() bool { _, _, _, _, pend := fstpState(s, 2); return !pend })
	b.WriteBatch([][]byte{frame(0xff, 2, "late")})
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		f := recvFrame(t, a, time.Until(deadline))
		if bytes.Equal(f, frame(0xff, 2, "late")) {
			return
		}
	}
	t.Fatal("a host port does not forward after the probe")
}

// TestFSTPCommands checks the commands' errors and outputs against the C switch's.
func TestFSTPCommands(t *testing.T) {
	s := newTestSwitch(t, Config{MAC: [6]byte{0, 0xff, 1, 2, 3, 4}, Priority: 0x1234})
	for _, tt := range []struct{ in, want string }{
		{"fstp/showinfo", "0000 DATA END WITH '.'\nMAC 00:ff:01:02:03:04 Priority 4660 (0x1234)\nFSTP=false\n.\n1000 Success\n"},
		{"fstp/setedge 0 1", "1022 Invalid argument\n"},
		{"fstp/setedge 5000 1 1", "1022 Invalid argument\n"},
		{"fstp/setedge 0 99 1", "1022 Invalid argument\n"},
		{"fstp/setedge 7 1 1", "1006 No such device or address\n"},
		{"fstp/setedge 0 1 1", "1000 Success\n"},
		{"fstp/bonus 0 1 0x100", "1000 Success\n"},
		{"fstp/print 4095", "0000 DATA END WITH '.'\n.\n1022 Invalid argument\n"},
		{"fstp/print 7", "0000 DATA END WITH '.'\n.\n1006 No such device or address\n"},
		{"fstp/print", "0000 DATA END WITH '.'\nFST DATA VLAN 0000 ROOTSWITCH FSTP IS DISABLED\n ++ root 12:34:00:ff:01:02:03:04\n" +
			" ++ designated ff:ff:ff:ff:ff:ff:ff:ff\n ++ rootport 0000 cost 0 age 0 bonusport 0001 bonuscost 256\n.\n1000 Success\n"},
		{"fstp/setfstp 1", "0000 DATA END WITH '.'\n.\n1000 Success\n"},
		{"fstp/showinfo", "0000 DATA END WITH '.'\nMAC 00:ff:01:02:03:04 Priority 4660 (0x1234)\nFSTP=true\n.\n1000 Success\n"},
		{"port/sethub 1", "1000 Success\n"},
		{"fstp/showinfo", "0000 DATA END WITH '.'\nMAC 00:ff:01:02:03:04 Priority 4660 (0x1234)\nFSTP=false\n.\n1000 Success\n"},
		{"fstp/setfstp 1", "0000 DATA END WITH '.'\nCan't use fstp in hub mode\n.\n1000 Success\n"},
	} {
		if got := runCmd(t, s, tt.in); got != tt.want {
			t.Errorf("%q:\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// TestFSTPHostileFlood: a client flooding forged BPDUs (a better root, topology
// changes) does not stop the switch: the readers pass at most fstpBurst + fstpRate a
// second of them, host ports keep forwarding meanwhile, and what the forged root did
// ends 3 hellos after the flood.
func TestFSTPHostileFlood(t *testing.T) {
	mac := [6]byte{0x00, 0xff, 0, 0, 0, 0x30}
	s := newTestSwitch(t, Config{FSTP: true, MAC: mac})
	evil, a, b := dial(t, s, 1), dial(t, s, 2), dial(t, s, 3)
	time.Sleep(fstpProbe + 3*fstpTick) // the hosts' probes end
	batch := make([][]byte, 32)
	for i := range batch {
		root := makeBridgeID(0, [6]byte{0, 0, 0, 0, 0, byte(i)})
		batch[i] = peerBPDU(root, uint32(i), root, i, flagTC|flagNotBackup|0x30)
	}
	start := time.Now()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				evil.WriteBatch(batch)
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	for i := 0; i < 5; i++ {
		a.WriteBatch([][]byte{frame(0xff, 2, "during the flood")})
		if f := recvFrame(t, b, time.Second); f == nil || !bytes.Contains(f, []byte("during the flood")) {
			for f != nil && isBPDUDest(f) {
				f = recvFrame(t, b, time.Second)
			}
			if f == nil {
				t.Fatal("a host port stopped forwarding during a BPDU flood")
			}
		}
	}
	if out := runCmd(t, s, "fstp/showinfo"); !strings.Contains(out, "FSTP=true") {
		t.Fatalf("console during the flood: %q", out)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-done
	secs := time.Since(start).Seconds()
	s.mu.Lock()
	got := s.fst.received
	s.mu.Unlock()
	if limit := uint64(fstpBurst + fstpRate*(secs+1)); got > limit {
		t.Errorf("the protocol took %d BPDUs in %.1f s, more than %d", got, secs, limit)
	}
	t.Logf("%d BPDUs taken in %.1f s of flood", got, secs)
	time.Sleep(100 * time.Millisecond)
	s.mu.Lock()
	s.fst.tick(time.Now().Add(13 * time.Second))
	v := s.fst.vl[0]
	root, rp := v.root, v.rootPort
	blocked := v.backup.has(2) || v.discard.has(2) || v.discard.has(3)
	s.mu.Unlock()
	if root != makeBridgeID(0x8000, mac) || rp != 0 || blocked {
		t.Fatalf("3 hellos after the flood: root %x port %d, a host port blocked %v", root, rp, blocked)
	}
}

// TestFSTPPerVLAN: each VLAN keeps its own tree; a tagged BPDU changes only its VLAN's,
// and the answer leaves tagged.
func TestFSTPPerVLAN(t *testing.T) {
	mac := [6]byte{0x00, 0xff, 0, 0, 0, 0x20}
	s := newTestSwitch(t, Config{FSTP: true, MAC: mac})
	me := makeBridgeID(0x8000, mac)
	mustCmd(t, s, "vlan/create 10")
	mustCmd(t, s, "port/create 1")
	mustCmd(t, s, "vlan/addport 10 1")
	p1 := dial(t, s, 1)
	r := makeBridgeID(0x1000, [6]byte{0x00, 0xff, 0, 0, 0, 0x01})
	b := bpdu{Flags: flagNotBackup | flagNotRoot | 0x30, Root: r, Bridge: r, Port: portID(9), MaxAge: 40, Hello: 4}
	p1.WriteBatch([][]byte{appendBPDU(nil, [6]byte{0x00, 0xff, 0, 0, 0, 0x01}, true, 10, &b)})
	fstpWait(t, "VLAN 10 root", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.fst.vl[10].root == r && s.fst.vl[10].rootPort == 1
	})
	s.mu.Lock()
	v0 := *s.fst.vl[0]
	s.mu.Unlock()
	if v0.root != me || v0.rootPort != 0 {
		t.Fatalf("VLAN 0 changed with VLAN 10: root %x port %d", v0.root, v0.rootPort)
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		f := recvFrame(t, p1, time.Until(end))
		if f == nil {
			break
		}
		if isBPDUDest(f) && len(f) == bpduLen+4 {
			got, err := decodeBPDU(f, true)
			if err == nil && got.Flags&flagAgreement != 0 && got.Root == r {
				if vid, _ := frameVLAN(f); vid != 10 {
					t.Fatalf("agreement on VLAN %d", vid)
				}
				out := runCmd(t, s, "fstp/print 10")
				if !strings.Contains(out, " -- Port 0001 tagged=1 portcost=20000000 role=Unknown\n") {
					t.Fatalf("fstp/print 10 (C calls tagged ports Unknown):\n%s", out)
				}
				if out := runCmd(t, s, "vlan/print"); out != "0000 DATA END WITH '.'\nVLAN 0000\nVLAN 0010\n.\n1000 Success\n" {
					t.Fatalf("vlan/print with FSTP on:\n%s", out)
				}
				return
			}
		}
	}
	t.Fatal("no tagged agreement on VLAN 10")
}

// TestFSTPForwardAllocatesNothing: with FSTP on, a batch of unicast frames and BPDUs
// (handed to the protocol, or dropped over the rate) allocates nothing on the frame path.
func TestFSTPForwardAllocatesNothing(t *testing.T) {
	rig := newForwardRig(t, 64)
	rig.s.mu.Lock()
	rig.s.fst.setOn(true)
	rig.s.publishLocked()
	rig.s.mu.Unlock()
	root := makeBridgeID(0x8000, [6]byte{0, 0xff, 9, 9, 9, 9})
	bp := peerBPDU(root, 0, root, 3, flagNotBackup|flagNotRoot|0x30)
	for i := 0; i < len(rig.r.bufs); i += 4 {
		copy(rig.r.bufs[i], bp)
		rig.r.sizes[i] = len(bp)
	}
	rig.r.forward(rig.src, wire.BatchSize)
	if n := testing.AllocsPerRun(200, func() { rig.r.forward(rig.src, wire.BatchSize) }); n != 0 {
		t.Fatalf("forward with FSTP on allocates %.1f times per batch", n)
	}
}

// TestFSTPDebugEvents: the fstp/* debug categories print the C switch's lines.
func TestFSTPDebugEvents(t *testing.T) {
	mgmt := filepath.Join(t.TempDir(), "mgmt")
	s := newTestSwitch(t, Config{MgmtPath: mgmt, FSTP: true, MAC: [6]byte{0, 0xff, 0, 0, 0, 0x40}})
	br := debugSession(t, mgmt, "fstp")
	p1 := dial(t, s, 1)
	r := makeBridgeID(0x1000, [6]byte{0x00, 0xff, 0, 0, 0, 0x01})
	p1.WriteBatch([][]byte{peerBPDU(r, 0, r, 2, flagNotBackup|flagNotRoot|0x30)})
	want := []string{
		"3041 fstp/+ Port 0001 VLAN 00:00",
		"3045 fstp/root Port 0001 VLAN 00:00 -> 10:00:00:ff:00:00:00:01",
		"3044 fstp/status Port 0001 VLAN 00:00 learning+forwarding",
	}
	var got []string
	for len(got) < len(want) {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%v after %q", err, got)
		}
		if l = strings.TrimSpace(strings.TrimPrefix(l, "vde$ ")); strings.HasPrefix(l, "30") {
			got = append(got, l)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// debugSession opens a session on the mgmt socket, subscribes it to the debug categories
// under path, and returns its reader positioned after the command's status line.
func debugSession(t *testing.T, mgmt, path string) *bufio.Reader {
	t.Helper()
	c, err := net.Dial("unix", mgmt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	c.Write([]byte("debug/add " + path + "\n"))
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(strings.TrimPrefix(l, "vde$ "), "1000 Success") {
			return br
		}
	}
}
