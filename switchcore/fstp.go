package switchcore

import (
	"bytes"
	"fmt"
	"math/bits"
	"time"
)

// FSTP, the C switch's "fast spanning tree" (vde-2 fstp.c), one instance per VLAN, kept
// interoperable with Debian's vde_switch -F: the same BPDUs, timers, state changes and
// outputs. Its state is guarded by Switch.mu. The frame path reads only what the view
// publishes (view.fstp, fwdPort.blocked and the flood lists, which leave blocked ports
// out); BPDUs reach the protocol through a bounded inbox that one goroutine (fstpLoop)
// serves, which also runs the timers and sends every BPDU.

const (
	fstpHello    = 4              // seconds between hellos
	fstpMaxAge   = 10 * fstpHello // advertised only
	fstpPortCost = 20000000       // every port's cost, as in C (no command changes it)
	fstpRootLoss = 3 * fstpHello  // root information expires after 3 hellos without it
	fstpTick     = 50 * time.Millisecond
	// fstpProbe is how long a port that joins an FSTP VLAN stays discarding while it
	// waits for the peer's first BPDU (ours; the C switch forwards at once). A peer
	// that is a switch answers within milliseconds; one that sends no BPDU is a host
	// and forwards after this.
	fstpProbe = 300 * time.Millisecond
	// fstpInbox bounds the BPDUs waiting for the protocol goroutine; more are dropped.
	fstpInbox = 512
	// A reader passes at most fstpRate BPDUs a second from its endpoint to the
	// protocol, in bursts of fstpBurst; more are dropped and counted as bad frames.
	fstpRate  = 256
	fstpBurst = 512
)

// Port states as the C switch encodes them in flags and debug lines.
const (
	stDiscarding = 0
	stForwarding = 3
)

// portBits is a set of port numbers.
type portBits []uint64

func (b portBits) has(p int) bool {
	return p>>6 < len(b) && b[p>>6]&(1<<(p&63)) != 0
}

func (b *portBits) set(p int) {
	for p>>6 >= len(*b) {
		*b = append(*b, 0)
	}
	(*b)[p>>6] |= 1 << (p & 63)
}

func (b portBits) clr(p int) {
	if p>>6 < len(b) {
		b[p>>6] &^= 1 << (p & 63)
	}
}

func (b portBits) zap() { clear(b) }

// each calls fn for every port in b, in increasing order.
func (b portBits) each(fn func(p int)) {
	for i, w := range b {
		for w != 0 {
			j := bits.TrailingZeros64(w)
			w &^= 1 << j
			fn(i<<6 | j)
		}
	}
}

// fstVLAN is the spanning tree of one VLAN (the C switch's struct vlst).
type fstVLAN struct {
	root      bridgeID
	rootCost  uint32
	desBridge bridgeID
	desPort   [2]byte
	rootPort  int // 0: this switch is the root
	bonusPort int
	bonusCost int
	tcTime    int64
	rootTime  int64     // switch seconds when the root information was last confirmed
	rootAt    time.Time // the same, precisely, for the root loss timeout

	untag, tagged portBits // active members by how frames leave them
	backup        portBits // alternate/backup ports
	edge          portBits // edge ports: no BPDUs sent or heard
	discard       portBits // discarding (the C switch's notlearning bit)
	pending       portBits // ours: joined, waiting for the peer's first BPDU (fstpProbe)
	rcv           [2]portBits
}

// fstPortMember is a port's VLAN membership as the protocol last saw it (active ports).
type fstPortMember struct {
	untag  uint16 // NoVLAN for none
	tagged vlanSet
}

// outBPDU is a BPDU waiting to be sent by the protocol goroutine.
type outBPDU struct {
	port int
	n    int
	b    [bpduLen + 4]byte
}

// inBPDU is a received BPDU on its way to the protocol goroutine (copied: the reader's
// buffer is reused).
type inBPDU struct {
	port   int
	vid    uint16
	tagged bool
	n      int
	b      [bpduLen + 4]byte
}

// fstp is the protocol state of a switch. All fields but inbox and kick are guarded by
// Switch.mu.
type fstp struct {
	s    *Switch
	on   bool
	myID bridgeID
	// quirk is what the C switch compares its root with before adopting a new one (it
	// resets the VLAN first when the root is not greater): its MAC and the two bytes
	// after it in its BPDU buffer, 00 27. A root id starts with the priority, so this
	// rarely holds; kept so that trees form as Debian's do.
	quirk [8]byte
	vl    [maxVLANs]*fstVLAN
	mem   []fstPortMember // by port number
	dirty bool            // a port state changed: publish a new view
	// reflush holds the VLANs whose topology changed since the last tick: their MAC
	// tables are flushed again then, forgetting what a reader still holding the old view
	// learned on a port that had just stopped forwarding.
	reflush vlanSet

	helloAt   time.Time // next hello
	hellos    int
	rcvIdx    int
	pendUntil []time.Time // by port: when its pending VLANs start forwarding

	out  []outBPDU // to send, in order
	out2 []outBPDU // the goroutine's spare list

	inbox    chan inBPDU
	kick     chan struct{}
	received uint64 // BPDUs the protocol took
}

func newFSTP(s *Switch) *fstp {
	f := &fstp{s: s, inbox: make(chan inBPDU, fstpInbox), kick: make(chan struct{}, 1)}
	f.myID = makeBridgeID(s.cfg.Priority&0xffff, s.mac)
	copy(f.quirk[:6], s.mac[:])
	f.quirk[6], f.quirk[7] = bpduLLCLen>>8, bpduLLCLen&0xff
	return f
}

func (f *fstp) active(v *fstVLAN, port int) bool {
	return v.rcv[0].has(port) || v.rcv[1].has(port)
}

func (v *fstVLAN) member(port int) bool { return v.untag.has(port) || v.tagged.has(port) }

// status is the port's state as BPDU flags and debug lines report it.
func (v *fstVLAN) status(port int) int {
	if v.discard.has(port) || v.pending.has(port) {
		return stDiscarding
	}
	return stForwarding
}

func vlanText(vid uint16) string { return fmt.Sprintf("VLAN %02x:%02x", vid>>8, vid&0xff) }

// setStatus is the C switch's port_set_status: discarding or forwarding for a member.
// Any decision of the protocol ends a port's probe.
func (f *fstp) setStatus(vid uint16, port int, st int) {
	v := f.vl[vid]
	if f.s.debugSubs.Load() > 0 {
		name := "discarding"
		if st == stForwarding {
			name = "learning+forwarding"
		}
		f.s.event(catFSTStatus, fmt.Sprintf("Port %04d %s %s", port, vlanText(vid), name))
	}
	if !v.member(port) {
		return
	}
	if st == stDiscarding {
		v.discard.set(port)
	} else {
		v.discard.clr(port)
	}
	v.pending.clr(port)
	f.dirty = true
}

func (f *fstp) rootEvent(vid uint16, port int, root bridgeID) {
	if f.s.debugSubs.Load() > 0 {
		r := root
		f.s.event(catFSTRoot, fmt.Sprintf("Port %04d %s -> %02x:%02x:%02x:%02x:%02x:%02x:%02x:%02x",
			port, vlanText(vid), r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]))
	}
}

// newVLAN is fstnewvlan: this switch becomes the VLAN's root again and its backup ports
// forward. It creates the VLAN's state when there is none.
func (f *fstp) newVLAN(vid uint16) {
	v := f.vl[vid]
	if v == nil {
		v = &fstVLAN{}
		f.vl[vid] = v
	}
	v.root = f.myID
	v.rootCost = 0
	v.desBridge = bridgeID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	v.desPort = [2]byte{}
	v.rootPort, v.rootTime, v.rootAt = 0, 0, time.Time{}
	f.rootEvent(vid, 0, v.root)
	v.backup.each(func(p int) {
		v.backup.clr(p)
		f.setStatus(vid, p, stForwarding)
	})
}

// flags is the C switch's STP_FLAGS.
func (f *fstp) flags(v *fstVLAN, port int, agr, tc, tcack bool) byte {
	var fl byte
	if tc {
		fl |= flagTC
	}
	if v.backup.has(port) {
		fl |= flagBackup
	} else {
		fl |= flagNotBackup
	}
	if v.rootPort != port {
		fl |= flagNotRoot
	}
	fl |= byte(v.status(port)) << 4
	if agr {
		fl |= flagAgreement
	}
	if tcack {
		fl |= flagTCAck
	}
	return fl
}

// sendBPDU is fst_sendbpdu: queue this VLAN's BPDU for port (tagged or not as the port
// is a member).
func (f *fstp) sendBPDU(vid uint16, port int, agr, tc, tcack bool) {
	if !f.on {
		return
	}
	v := f.vl[vid]
	tagged := v.tagged.has(port)
	if !tagged && !v.untag.has(port) {
		return
	}
	now := f.s.now()
	nowv := now
	if v.rootPort == 0 {
		nowv = 0
	}
	age := nowv - v.rootTime
	if age > 0xffff {
		age = 0xffff
	}
	b := bpdu{
		Flags: f.flags(v, port, agr, tc, tcack), Root: v.root, RootCost: v.rootCost, Bridge: f.myID,
		Port: portID(port), Age: uint16(age), MaxAge: fstpMaxAge, Hello: fstpHello,
	}
	f.out = append(f.out, outBPDU{port: port})
	o := &f.out[len(f.out)-1]
	o.n = len(appendBPDU(o.b[:0], f.s.mac, tagged, vid, &b))
}

// eachMember calls fn for the untagged members, then the tagged ones, as the C switch
// walks them.
func (v *fstVLAN) eachMember(fn func(p int)) {
	v.untag.each(fn)
	v.tagged.each(fn)
}

// topologyChange flushes the VLAN's MAC table and tells the other active designated
// ports (not genport).
func (f *fstp) topologyChange(vid uint16, genport int) {
	v := f.vl[vid]
	v.tcTime = f.s.now()
	f.s.flushVLAN(vid)
	if f.on {
		f.reflush.add(vid)
	}
	v.eachMember(func(p int) {
		if p != genport && !v.backup.has(p) && !v.edge.has(p) && f.active(v, p) {
			f.sendBPDU(vid, p, false, true, false)
		}
	})
}

// fastProtocol takes a new root port: every other active designated port discards and
// hears of the new root, then the root port forwards and gets an agreement.
func (f *fstp) fastProtocol(vid uint16, newRoot int) {
	v := f.vl[vid]
	v.eachMember(func(p int) {
		if p != newRoot && !v.backup.has(p) && !v.edge.has(p) && f.active(v, p) {
			f.setStatus(vid, p, stDiscarding)
			v.backup.set(p)
			f.sendBPDU(vid, p, false, false, false)
		}
	})
	v.backup.clr(newRoot)
	f.setStatus(vid, newRoot, stForwarding)
	f.sendBPDU(vid, newRoot, true, false, false)
}

// receive is fst_in_bpdu: frame f (tagged or not) came from port on VLAN vid.
func (f *fstp) receive(port int, vid uint16, tagged bool, frame []byte) {
	f.received++
	v := f.vl[vid]
	if v == nil || v.edge.has(port) || !v.member(port) {
		return // an edge port, or one that left since the BPDU came
	}
	if !f.active(v, port) && f.s.debugSubs.Load() > 0 {
		f.s.event(catFSTAdd, fmt.Sprintf("Port %04d %s", port, vlanText(vid)))
	}
	v.rcv[f.rcvIdx].set(port)
	b, err := decodeBPDU(frame, tagged)
	if err != nil {
		return
	}
	if b.Flags&flagTC != 0 {
		f.topologyChange(vid, port)
	}
	cost := fstpPortCost
	if port == v.bonusPort {
		cost -= v.bonusCost
	}
	b.RootCost += uint32(cost)
	val := bytes.Compare(v.root[:], b.Root[:])
	if val == 0 {
		switch {
		case v.rootCost < b.RootCost:
			val = -1
		case v.rootCost > b.RootCost:
			val = 1
		default:
			if val = bytes.Compare(v.desBridge[:], b.Bridge[:]); val == 0 {
				val = bytes.Compare(v.desPort[:], b.Port[:])
			}
		}
	}
	undecided := false
	switch {
	case val == 0: // the root confirmed
		v.rootTime, v.rootAt = f.s.now(), time.Now()
	case val > 0 || (port == v.rootPort && val < 0): // a better root, or news from ours
		if bytes.Compare(v.root[:], f.quirk[:]) <= 0 {
			f.newVLAN(vid)
		}
		v.root, v.rootCost, v.desBridge, v.desPort = b.Root, b.RootCost, b.Bridge, b.Port
		v.rootPort = port
		v.rootTime, v.rootAt = f.s.now(), time.Now()
		f.rootEvent(vid, port, v.root)
		f.fastProtocol(vid, port)
		f.topologyChange(vid, port)
	case v.root == b.Root: // the same root by a longer path
		if b.Flags&flagRoleMask == flagRoleRoot {
			if v.backup.has(port) { // backup -> designated
				v.backup.clr(port)
				f.setStatus(vid, port, stForwarding)
				f.topologyChange(vid, port)
			}
		} else if !v.backup.has(port) { // designated -> backup
			v.backup.set(port)
			f.setStatus(vid, port, stDiscarding)
			f.topologyChange(vid, port)
		}
	default: // a worse root: tell the sender of ours, and wait for its answer
		f.sendBPDU(vid, port, false, false, false)
		undecided = true
	}
	if !undecided && v.pending.has(port) {
		v.pending.clr(port)
		f.dirty = true
	}
}

// addPort is fstaddport: port joined VLAN vid, tagged or not. It forwards at once in C;
// here, with the protocol on, it stays discarding until the peer's first BPDU or
// fstpProbe, whichever comes first.
func (f *fstp) addPort(vid uint16, port int, tagged bool) {
	v := f.vl[vid]
	if tagged {
		v.tagged.set(port)
		v.untag.clr(port)
	} else {
		v.untag.set(port)
		v.tagged.clr(port)
	}
	v.backup.clr(port)
	v.edge.clr(port)
	v.discard.clr(port)
	v.rcv[0].clr(port)
	v.rcv[1].clr(port)
	if f.on {
		v.pending.set(port)
		for len(f.pendUntil) <= port {
			f.pendUntil = append(f.pendUntil, time.Time{})
		}
		f.pendUntil[port] = time.Now().Add(fstpProbe)
	}
	f.dirty = true
	f.sendBPDU(vid, port, false, false, false)
	f.topologyChange(vid, port)
}

// delPort is fstdelport: port left VLAN vid (or went inactive).
func (f *fstp) delPort(vid uint16, port int) {
	v := f.vl[vid]
	if f.active(v, port) && f.s.debugSubs.Load() > 0 {
		f.s.event(catFSTDel, fmt.Sprintf("Port %04d %s", port, vlanText(vid)))
	}
	v.untag.clr(port)
	v.tagged.clr(port)
	v.backup.clr(port)
	v.edge.clr(port)
	v.discard.clr(port)
	v.pending.clr(port)
	f.dirty = true
	if port == v.rootPort {
		f.newVLAN(vid)
	}
	f.topologyChange(vid, port)
}

// helloVLAN is fst_hello_vlan's sending half: a BPDU with the agreement flag to every
// non-edge member.
func (f *fstp) helloVLAN(vid uint16) {
	v := f.vl[vid]
	v.eachMember(func(p int) {
		if !v.edge.has(p) {
			f.sendBPDU(vid, p, true, false, false)
		}
	})
}

// updateBackup is fst_updatebackup: a backup port that heard no BPDU for two periods
// has no switch behind it any more and forwards.
func (f *fstp) updateBackup(vid uint16) {
	v := f.vl[vid]
	v.backup.each(func(p int) {
		if !f.active(v, p) {
			v.backup.clr(p)
			f.setStatus(vid, p, stForwarding)
		}
	})
	if f.s.debugSubs.Load() > 0 {
		v.eachMember(func(p int) {
			if v.rcv[f.rcvIdx].has(p) && !v.rcv[1-f.rcvIdx].has(p) {
				f.s.event(catFSTDel, fmt.Sprintf("Port %04d %s", p, vlanText(vid)))
			}
		})
	}
	v.rcv[f.rcvIdx].zap()
}

// tick runs the timers: root loss (checked precisely: 3 hellos after the root was last
// confirmed, where C checks only at hellos, in whole seconds), the end of probes, and
// the hello every fstpHello seconds with, every fourth, the backup check.
func (f *fstp) tick(now time.Time) {
	if !f.on {
		return
	}
	for w, word := range f.reflush {
		for ; word != 0; word &= word - 1 {
			f.s.flushVLAN(uint16(w<<6 | bits.TrailingZeros64(word)))
		}
		f.reflush[w] = 0
	}
	for vid, v := range f.vl {
		if v != nil && v.rootPort != 0 && now.Sub(v.rootAt) > fstpRootLoss*time.Second {
			f.newVLAN(uint16(vid))
			f.helloVLAN(uint16(vid)) // tell the others at once: who has a better root answers
		}
	}
	for port, t := range f.pendUntil {
		if !t.IsZero() && !now.Before(t) {
			f.pendUntil[port] = time.Time{}
			for _, v := range f.vl {
				if v != nil && v.pending.has(port) {
					v.pending.clr(port)
					f.dirty = true
				}
			}
		}
	}
	if now.Before(f.helloAt) {
		return
	}
	f.helloAt = f.helloAt.Add(fstpHello * time.Second)
	if f.helloAt.Before(now) {
		f.helloAt = now.Add(fstpHello * time.Second)
	}
	f.hellos++
	for vid, v := range f.vl {
		if v != nil {
			f.helloVLAN(uint16(vid))
		}
	}
	if f.hellos&3 == 0 {
		f.rcvIdx = 1 - f.rcvIdx
		for vid, v := range f.vl {
			if v != nil {
				f.updateBackup(uint16(vid))
			}
		}
	}
}

// setOn starts or stops the protocol (fstp/setfstp, -F). Stopping makes this switch
// the root of every VLAN again, its backup ports forwarding.
func (f *fstp) setOn(on bool) {
	if on == f.on {
		return
	}
	f.on = on
	f.dirty = true
	select { // wake the goroutine: its timers run only while the protocol does
	case f.kick <- struct{}{}:
	default:
	}
	if on {
		// C's first hello comes a period later; ours at once, so that loops closed while
		// the protocol was off break now.
		f.helloAt = time.Now()
		return
	}
	for vid, v := range f.vl {
		if v != nil {
			v.pending.zap()
			f.newVLAN(uint16(vid))
		}
	}
	clear(f.pendUntil)
}

// sync brings the protocol's VLANs and memberships in line with the switch's
// configuration: it is called by every publish, so every change of ports, endpoints
// and VLANs reaches the protocol as the C switch's fstaddport, fstdelport, fstnewvlan
// and fstremovevlan calls.
func (f *fstp) sync() {
	s := f.s
	if s.hub && f.on {
		f.setOn(false) // port/sethub 1 stops FSTP
	}
	for vid := range s.vlans {
		if s.vlans[vid] && f.vl[vid] == nil {
			f.newVLAN(uint16(vid))
		}
	}
	for len(f.mem) < len(s.ports) {
		f.mem = append(f.mem, fstPortMember{untag: NoVLAN})
	}
	for n := range f.mem {
		want := fstPortMember{untag: NoVLAN}
		if n < len(s.ports) {
			if p := s.ports[n]; p != nil && p.active() {
				want.tagged = p.tagged
				if p.untagged != NoVLAN {
					want.untag = p.untagged
					want.tagged.del(p.untagged)
				}
			}
		}
		have := &f.mem[n]
		if want == *have {
			continue
		}
		// Leaves first, then joins, as port/setvlan does in C.
		if have.untag != NoVLAN && have.untag != want.untag && f.vl[have.untag] != nil {
			f.delPort(have.untag, n)
		}
		for w := range have.tagged {
			gone := have.tagged[w] &^ want.tagged[w]
			for gone != 0 {
				j := bits.TrailingZeros64(gone)
				gone &^= 1 << j
				if vid := uint16(w<<6 | j); f.vl[vid] != nil {
					f.delPort(vid, n)
				}
			}
		}
		// Joins in VLAN order, as a port that becomes active joins in C.
		for w := range want.tagged {
			added := want.tagged[w] &^ have.tagged[w]
			if want.untag != NoVLAN && want.untag != have.untag && int(want.untag>>6) == w {
				added |= 1 << (want.untag & 63)
			}
			for added != 0 {
				j := bits.TrailingZeros64(added)
				added &^= 1 << j
				if vid := uint16(w<<6 | j); f.vl[vid] != nil && s.vlans[vid] {
					f.addPort(vid, n, vid != want.untag)
				}
			}
		}
		*have = want
	}
	for vid := range s.vlans {
		if !s.vlans[vid] && f.vl[vid] != nil {
			f.vl[vid] = nil // fstremovevlan: only a VLAN without members goes
		}
	}
}

// blocked fills set with the VLANs in which port must neither forward nor learn.
func (f *fstp) blocked(port int, set *vlanSet) {
	for vid, v := range f.vl {
		if v != nil && (v.discard.has(port) || v.pending.has(port)) {
			set.add(uint16(vid))
		}
	}
}

// takeOut hands the queued BPDUs to the goroutine, keeping its spare list for the next.
func (f *fstp) takeOut() []outBPDU {
	out := f.out
	f.out = f.out2[:0]
	f.out2 = nil
	return out
}

// kickLocked wakes the goroutine when BPDUs wait.
func (f *fstp) kickLocked() {
	if len(f.out) > 0 {
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
}

// fstpLoop is the protocol's goroutine: it takes received BPDUs from the inbox, runs
// the timers and sends what the protocol queued, through a reader of its own that never
// waits for a full receiver.
func (s *Switch) fstpLoop() {
	f := s.fst
	r := newReader(s)
	r.noWait = true
	t := time.NewTicker(fstpTick)
	defer t.Stop()
	on := false // the ticker is read only while the protocol runs
	for {
		var m inBPDU
		got, ticked := false, false
		var tick <-chan time.Time
		if on {
			tick = t.C
		}
		select {
		case <-s.done:
			return
		case m = <-f.inbox:
			got = true
		case <-f.kick:
		case <-tick:
			ticked = true
		}
		s.mu.Lock()
		if got && f.on {
			f.receive(m.port, m.vid, m.tagged, m.b[:min(m.n, len(m.b))])
			// Take what else waits, a bounded number, under the same lock.
			for i := 0; i < 64; i++ {
				select {
				case m = <-f.inbox:
					f.receive(m.port, m.vid, m.tagged, m.b[:min(m.n, len(m.b))])
					continue
				default:
				}
				break
			}
		}
		if ticked {
			f.tick(time.Now())
		}
		if f.dirty {
			s.publishLocked()
		}
		out := f.takeOut()
		s.mu.Unlock()
		if len(out) > 0 {
			v := s.view.Load()
			r.tap = s.plugins.tap.Load() // pdump and dump record BPDUs too, as Debian's
			for i := range out {
				o := &out[i]
				if o.port < len(v.ports) {
					if dp := v.ports[o.port]; dp != nil {
						r.queue(dp, o.b[:o.n], false)
					}
				}
			}
			r.flush()
			if r.tap != nil {
				r.tap.done()
				r.tap = nil
			}
		}
		s.mu.Lock()
		if f.out2 == nil {
			f.out2 = out[:0]
		}
		on = f.on
		s.mu.Unlock()
	}
}

// fstpIn passes a BPDU from a reader to the protocol, within the reader's rate; false
// means it was dropped (over the rate, or the inbox is full).
func (r *reader) fstpIn(port int, vid uint16, tagged bool, f []byte, now int64) bool {
	if now != r.bpduAt {
		r.bpduTokens = min(fstpBurst, r.bpduTokens+int(now-r.bpduAt)*fstpRate)
		if now < r.bpduAt {
			r.bpduTokens = fstpBurst
		}
		r.bpduAt = now
	}
	if r.bpduTokens <= 0 {
		return false
	}
	r.bpduTokens--
	m := inBPDU{port: port, vid: vid, tagged: tagged, n: len(f)}
	copy(m.b[:], f)
	select {
	case r.s.fst.inbox <- m:
		return true
	default:
		return false
	}
}
