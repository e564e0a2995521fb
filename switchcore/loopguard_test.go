package switchcore

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// guardRig is a switch with clients on ports 1, 2 and 3 (connected in that order) whose
// loop guard is driven by hand: the test sets the flap counters and calls tick with a
// clock of its own, so delays, backoff and expiry are checked without waiting for them.
type guardRig struct {
	t   *testing.T
	s   *Switch
	now time.Time
	log *logLines
}

// logLines collects a switch's log lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, a ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, a...))
	l.mu.Unlock()
}

func (l *logLines) grep(sub string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			out = append(out, s)
		}
	}
	return out
}

func captureLog(t *testing.T, s *Switch) *logLines {
	l := &logLines{}
	s.mu.Lock()
	s.logf = func(format string, a ...any) { t.Logf("switch: "+format, a...); l.logf(format, a...) }
	s.mu.Unlock()
	return l
}

func newGuardRig(t *testing.T) *guardRig {
	s := newTestSwitch(t, Config{})
	rig := &guardRig{t: t, s: s, log: captureLog(t, s)}
	for p := 1; p <= 3; p++ {
		dial(t, s, p)
	}
	rig.now = time.Now()
	s.mu.Lock()
	// Ports 1 and 2 connected 100 s and 10 s ago, port 3 just now.
	s.lg.ports[1].since = rig.now.Add(-100 * time.Second)
	s.lg.ports[2].since = rig.now.Add(-10 * time.Second)
	s.lg.ports[3].since = rig.now
	s.lg.lastTick = rig.now
	s.mu.Unlock()
	return rig
}

// step advances the clock by one tick in which each port of flaps was blamed for that
// many frames/s, and runs the guard's tick.
func (g *guardRig) step(flaps map[int]uint64) {
	g.now = g.now.Add(lgTick)
	s := g.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, rate := range flaps {
		s.lg.ports[p].flaps.Add(rate * uint64(lgTick) / uint64(time.Second))
	}
	s.lg.tick(g.now)
	if s.lg.dirty {
		s.lg.dirty = false
		s.publishLocked()
	}
}

// stepUntilBlocked runs ticks with flaps until a port is blocked and returns it and how
// many ticks it took; fails after limit ticks.
func (g *guardRig) stepUntilBlocked(flaps map[int]uint64, limit int) (int, int) {
	g.t.Helper()
	for i := 1; i <= limit; i++ {
		g.step(flaps)
		if p := g.blocked(); p >= 0 {
			return p, i
		}
	}
	g.t.Fatalf("no port blocked after %d ticks of %v", limit, flaps)
	return -1, 0
}

// blocked is the port the guard blocks, -1 for none (the lowest when several).
func (g *guardRig) blocked() int {
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	for _, lp := range g.s.lg.ports {
		if lp.blocked {
			return lp.num
		}
	}
	return -1
}

func (g *guardRig) port(n int) lgPort {
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	lp := g.s.lg.ports[n]
	return lgPort{num: lp.num, blocked: lp.blocked, until: lp.until, blockLen: lp.blockLen, level: lp.level, blocks: lp.blocks, lastPeer: lp.lastPeer}
}

const storm = 50000 // frames/s, as a triangle's storm

// TestLoopGuardBlocksNewestAfterDelay: two ports flap at storm rate; after the detection
// delay (50 ms + 150 ms per doubling of the newest port's age + jitter) the newer one is
// blocked, the view drops it from the flood lists, and one log line names both ports.
func TestLoopGuardBlocksNewestAfterDelay(t *testing.T) {
	g := newGuardRig(t)
	p, ticks := g.stepUntilBlocked(map[int]uint64{1: storm, 2: storm}, 200)
	if p != 2 {
		t.Fatalf("blocked port %d, want 2 (the newer)", p)
	}
	// The episode began at the first tick; the port 2 is 10 s old.
	minDelay := lgDetect + time.Duration(3.45*float64(lgAgeStep))
	maxDelay := lgDetect + time.Duration(3.47*float64(lgAgeStep)) + lgJitter + lgTick
	if d := time.Duration(ticks-1) * lgTick; d < minDelay-lgTick || d > maxDelay {
		t.Errorf("blocked after %v of storm, want %v..%v", d, minDelay, maxDelay)
	}
	st := g.port(2)
	if st.blockLen < lgBlockMin*3/4 || st.blockLen > lgBlockMin*5/4 || st.lastPeer != 1 {
		t.Errorf("first block %v (want %v ± 25%%), peer %d", st.blockLen, lgBlockMin, st.lastPeer)
	}
	v := g.s.view.Load()
	if !v.ports[2].lgBlocked || v.ports[1].lgBlocked {
		t.Errorf("view: port 2 blocked %v, port 1 blocked %v", v.ports[2].lgBlocked, v.ports[1].lgBlocked)
	}
	for _, fp := range v.vlans[0].untagged {
		if fp.num == 2 {
			t.Error("a blocked port is in VLAN 0's flood list")
		}
	}
	if l := g.log.grep("loop guard: port 2 blocked"); len(l) != 1 || !strings.Contains(l[0], "between port 2 and port 1") {
		t.Errorf("log: %q", l)
	}
	out := runCmd(t, g.s, "loopguard/print")
	if !strings.Contains(out, "Port 0002 BLOCKED") || !strings.Contains(out, "flapping with port 0001 at 50000 frames/s") || !strings.Contains(out, "Loop guard ON\n") {
		t.Errorf("loopguard/print:\n%s", out)
	}
	// port/print is Debian's: no trace of the guard.
	if out := runCmd(t, g.s, "port/print 2"); strings.Contains(strings.ToLower(out), "block") {
		t.Errorf("port/print shows the guard:\n%s", out)
	}
}

// TestLoopGuardStandsDown: a switch whose storm stops before its delay ends (another
// switch broke the loop), or within the tick in which it ends, blocks nothing; nor does a
// rate below the threshold.
func TestLoopGuardStandsDown(t *testing.T) {
	g := newGuardRig(t)
	// The storm stops within the tick in which this switch's delay ends: that tick is
	// weaker than the storm, and it does not act.
	hot := map[int]uint64{1: storm, 2: storm}
	g.step(hot)
	g.s.mu.Lock()
	ticks := int(g.s.lg.epDelay / lgTick)
	g.s.mu.Unlock()
	for range ticks - 1 {
		g.step(hot)
	}
	g.step(map[int]uint64{1: storm / 4, 2: storm / 4})
	for range 100 {
		g.step(nil)
	}
	for range 3 {
		g.step(map[int]uint64{1: storm, 2: storm})
	}
	for range 100 {
		g.step(nil)
	}
	for range 3 {
		g.step(map[int]uint64{1: storm, 2: storm})
	}
	for range 200 {
		g.step(map[int]uint64{1: lgDefaultRate / 2, 2: lgDefaultRate / 2})
	}
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	if n := g.s.lg.blocks.Load(); n != 0 {
		t.Fatalf("%d blocks", n)
	}
	if !g.s.lg.epStart.IsZero() {
		t.Error("an episode is still open")
	}
}

// TestLoopGuardBackoff: a block expires; a port that flaps again within the probation is
// blocked again at the next tick for twice as long, up to the cap; a port left alone for
// lgForget starts again from lgBlockMin.
func TestLoopGuardBackoff(t *testing.T) {
	g := newGuardRig(t)
	hot := map[int]uint64{1: storm, 2: storm}
	g.stepUntilBlocked(hot, 200)
	want := lgBlockMin
	for i := 0; i < 8; i++ {
		st := g.port(2)
		if st.blockLen < want*3/4 || st.blockLen > want*5/4 {
			t.Fatalf("block %d lasts %v, want %v ± 25%%", i+1, st.blockLen, want)
		}
		// Expiry: nothing changes before it, the port opens after it.
		g.now = st.until.Add(-2 * lgTick)
		g.step(nil)
		if !g.port(2).blocked {
			t.Fatalf("block %d ended before its time", i+1)
		}
		g.step(nil)
		g.step(nil)
		if g.port(2).blocked {
			t.Fatalf("block %d did not expire", i+1)
		}
		if l := g.log.grep("loop guard: port 2 unblocked"); len(l) != i+1 {
			t.Fatalf("unblock log lines: %q", l)
		}
		// The loop is still there: blocked again at the first tick of storm.
		if p, ticks := g.stepUntilBlocked(hot, 1); p != 2 || ticks != 1 {
			t.Fatalf("reblocked port %d after %d ticks", p, ticks)
		}
		want = min(want*2, lgBlockMax)
	}
	if got := g.port(2).blocks; got != 9 {
		t.Errorf("%d blocks, want 9", got)
	}
	// Left alone for lgForget after its block, the port starts from lgBlockMin again.
	st := g.port(2)
	g.now = st.until
	g.step(nil)
	g.now = g.now.Add(lgForget + time.Second)
	g.step(nil)
	g.stepUntilBlocked(hot, 200)
	if st := g.port(2); st.blockLen > lgBlockMin*5/4 {
		t.Errorf("after a long calm the block lasts %v", st.blockLen)
	}
}

// TestLoopGuardJitter: delays and block lengths differ between switches (and episodes),
// inside their bounds, so that three switches of a loop rarely act in the same tick.
func TestLoopGuardJitter(t *testing.T) {
	s := newTestSwitch(t, Config{})
	dial(t, s, 1)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	lp := s.lg.ports[1]
	lp.since = now
	seen := map[time.Duration]bool{}
	for range 50 {
		d := s.lg.delay(lp, now)
		if d < lgDetect || d >= lgDetect+lgJitter {
			t.Fatalf("delay of a new port %v", d)
		}
		seen[d/lgTick] = true
	}
	if len(seen) < 10 {
		t.Errorf("50 delays fall in %d ticks", len(seen))
	}
	lp.since = now.Add(-time.Hour) // an hour-old port waits lgAgeCap doublings longer
	if d := s.lg.delay(lp, now); d < lgDetect+lgAgeCap*lgAgeStep || d >= lgDetect+lgAgeCap*lgAgeStep+lgJitter {
		t.Errorf("delay of an hour-old port %v", d)
	}
}

// neverBlocks checks that no port is blocked after a tick, nor after 200 ticks of flaps.
func (g *guardRig) neverBlocks(flaps map[int]uint64, what string) {
	g.t.Helper()
	g.step(nil)
	for i := 0; i <= 200; i++ {
		if p := g.blocked(); p >= 0 {
			g.t.Fatalf("port %d blocked %s after %d ticks", p, what, i)
		}
		g.step(flaps)
	}
}

// TestLoopGuardStandsAsideForFSTP: with FSTP on the guard counts nothing, blocks nothing
// and lifts a block it had; loopguard/set 0 does the same; hub mode has no learning.
func TestLoopGuardStandsAsideForFSTP(t *testing.T) {
	g := newGuardRig(t)
	hot := map[int]uint64{1: storm, 2: storm}
	g.stepUntilBlocked(hot, 200)
	runCmd(t, g.s, "fstp/setfstp 1")
	g.neverBlocks(hot, "under FSTP")
	if out := runCmd(t, g.s, "loopguard/print"); !strings.Contains(out, "standing aside: FSTP is on") {
		t.Errorf("loopguard/print under FSTP:\n%s", out)
	}
	runCmd(t, g.s, "fstp/setfstp 0")
	g.stepUntilBlocked(hot, 200)
	if out := runCmd(t, g.s, "loopguard/set 0"); !strings.Contains(out, "1000 Success") {
		t.Fatalf("loopguard/set 0: %s", out)
	}
	g.neverBlocks(hot, "with the guard off")
	if out := runCmd(t, g.s, "loopguard/print"); !strings.HasPrefix(out, "0000 DATA END WITH '.'\nLoop guard OFF\n") {
		t.Errorf("loopguard/print off:\n%s", out)
	}
	runCmd(t, g.s, "loopguard/set 1")
	runCmd(t, g.s, "port/sethub 1")
	if out := runCmd(t, g.s, "loopguard/print"); !strings.Contains(out, "standing aside: hub mode") {
		t.Errorf("loopguard/print in hub mode:\n%s", out)
	}
	if g.s.view.Load().lg {
		t.Error("the guard watches a hub")
	}
}

// TestMACHomes: an address's home survives a flush of its VLAN, and is forgotten when
// its port goes inactive or the address has been gone for an expiry time.
func TestMACHomes(t *testing.T) {
	m := newMACTable(100)
	k := makeKey([]byte{2, 0, 0, 0, 0, 9}, 0)
	m.learn(k, 1, 10)
	m.flushVLAN(0)
	m.learn(k, 2, 11)
	if h := m.home(k); h != 1 {
		t.Fatalf("home after a flush %d, want 1", h)
	}
	m.forgetHomes(1)
	m.flushVLAN(0)
	m.learn(k, 2, 12)
	if h := m.home(k); h != 2 {
		t.Fatalf("home after its port went %d, want 2", h)
	}
	m.flushVLAN(0)
	m.expire(50, 100) // gone for less than an expiry time: kept
	m.learn(k, 3, 51)
	if h := m.home(k); h != 2 {
		t.Fatalf("home %d, want 2", h)
	}
	m.flushVLAN(0)
	m.expire(200, 100)
	m.learn(k, 3, 200)
	if h := m.home(k); h != 3 {
		t.Fatalf("home after an expiry time %d, want 3", h)
	}
}

// TestLoopGuardCommands: the setters' errors and effects.
func TestLoopGuardCommands(t *testing.T) {
	g := newGuardRig(t)
	for line, want := range map[string]string{
		"loopguard/setrate":     "1022 Invalid argument",
		"loopguard/setrate 0":   "1022 Invalid argument",
		"loopguard/setrate 500": "1000 Success",
		"loopguard/unblock":     "1022 Invalid argument",
		"loopguard/unblock 99":  "1022 Invalid argument",
		"loopguard/unblock 2":   "1002 No such file or directory",
	} {
		if out := runCmd(t, g.s, line); !strings.Contains(out, want) {
			t.Errorf("%s: %q, want %s", line, out, want)
		}
	}
	// At 500 frames/s, 600 is a storm.
	if p, _ := g.stepUntilBlocked(map[int]uint64{3: 600}, 200); p != 3 {
		t.Fatalf("blocked %d", p)
	}
	if out := runCmd(t, g.s, "loopguard/unblock 3"); !strings.Contains(out, "1000 Success") || g.blocked() >= 0 {
		t.Fatalf("loopguard/unblock 3: %s", out)
	}
}

// relay joins two clients of a switch like a cable (a loop through the switch when both
// are on it) until the test ends.
func relay(t *testing.T, a, b *wire.Conn) {
	var wg sync.WaitGroup
	move := func(from, to *wire.Conn) {
		defer wg.Done()
		bufs := make([][]byte, wire.BatchSize)
		for i := range bufs {
			bufs[i] = make([]byte, wire.MaxFrame+1)
		}
		sizes := make([]int, wire.BatchSize)
		out := make([][]byte, wire.BatchSize)
		for {
			k, err := from.ReadBatch(bufs, sizes)
			if err != nil {
				return
			}
			for i := 0; i < k; i++ {
				out[i] = bufs[i][:sizes[i]]
			}
			to.WriteBatch(out[:k])
		}
	}
	wg.Add(2)
	go move(a, b)
	go move(b, a)
	t.Cleanup(func() { a.Close(); b.Close(); wg.Wait() })
}

// TestLoopGuardBreaksRealLoop: ports 1 and 2 of one switch joined by a cable; a host on
// port 3 broadcasts and the frame circles for ever. The guard blocks an end of the cable
// (the newer, port 2, when both directions storm), after which a broadcast crosses the
// cable once and is held at the blocked end.
func TestLoopGuardBreaksRealLoop(t *testing.T) {
	s := newTestSwitch(t, Config{})
	log := captureLog(t, s)
	c1 := dial(t, s, 1)
	time.Sleep(10 * time.Millisecond) // port 2 connects later than port 1
	c2 := dial(t, s, 2)
	host := dial(t, s, 3)
	relay(t, c1, c2)
	// The host speaks first (its address is at home on port 3), then broadcasts into the loop.
	host.WriteBatch([][]byte{frame(0xff, 3, "hello")})
	waitFor(t, func() bool { return len(log.grep("blocked for")) > 0 })
	l := log.grep("blocked for")[0]
	// The newer end, port 2, when both directions storm. The relay drops what a full
	// socket does not take, and one direction often dies at once: then only one end
	// flaps, and the other port named may be the host's, whose address came back.
	b, peers := 2, "13"
	if strings.Contains(l, "port 1 blocked") {
		b, peers = 1, "23"
	}
	if want := fmt.Sprintf("loop guard: port %d blocked for ", b); !strings.HasPrefix(l, want) {
		t.Errorf("log: %q", l)
	}
	if _, rest, ok := strings.Cut(l, fmt.Sprintf("between port %d and port ", b)); !ok || !strings.ContainsAny(rest[:1], peers) {
		t.Errorf("log: %q", l)
	}
	// Hold the block for the rest of the test (it would expire in about 2 s).
	s.mu.Lock()
	s.lg.ports[b].until = time.Now().Add(time.Hour)
	s.mu.Unlock()
	if out := runCmd(t, s, "loopguard/print"); !strings.Contains(out, fmt.Sprintf("Port %04d BLOCKED", b)) {
		t.Errorf("loopguard/print:\n%s", out)
	}
	// The storm is over: what the host receives now ends. Drain it, then one broadcast
	// goes out the other end only, crosses the cable, and is held at the blocked one.
	for recvFrame2(host, 50*time.Millisecond) {
	}
	held := s.lg.ports[b].held.Load()
	host.WriteBatch([][]byte{frame(0xff, 3, "once")})
	waitFor(t, func() bool { return s.lg.ports[b].held.Load() > held })
	if recvFrame2(host, 100*time.Millisecond) {
		t.Error("the host got its broadcast back through a blocked loop")
	}
}

// recvFrame2 reports whether c received a frame within d.
func recvFrame2(c *wire.Conn, d time.Duration) bool {
	bufs := [][]byte{make([]byte, wire.MaxFrame+10)}
	sizes := []int{0}
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	n, _ := c.ReadBatch(bufs, sizes)
	return n > 0
}

// TestLoopGuardSpoofer: a client that sends another port's address at a storm's rate
// blames itself, whether it connected before its victim or after, even when it connects
// after the victim spoke (its port joining VLAN 0 flushes the table) and spoofs first:
// the victim's port is never blocked and its frames still arrive.
func TestLoopGuardSpoofer(t *testing.T) {
	for _, order := range []string{"spoofer first", "victim first", "spoofer joins late"} {
		t.Run(order, func(t *testing.T) {
			s := newTestSwitch(t, Config{})
			log := captureLog(t, s)
			var spoofer, victim, other *wire.Conn
			switch order {
			case "spoofer first":
				spoofer, victim, other = dial(t, s, 1), dial(t, s, 2), dial(t, s, 3)
				victim.WriteBatch([][]byte{frame(0xff, 2, "victim")})
				recvFrame(t, other, time.Second)
			case "victim first":
				victim, spoofer, other = dial(t, s, 2), dial(t, s, 1), dial(t, s, 3)
				victim.WriteBatch([][]byte{frame(0xff, 2, "victim")})
				recvFrame(t, other, time.Second)
			case "spoofer joins late":
				victim, other = dial(t, s, 2), dial(t, s, 3)
				victim.WriteBatch([][]byte{frame(0xff, 2, "victim")})
				recvFrame(t, other, time.Second)
				spoofer = dial(t, s, 1)
				spoofer.WriteBatch([][]byte{frame(0xff, 2, "spoof")})
				recvFrame(t, other, time.Second)
				if p := s.macs.lookup(makeKey([]byte{2, 0, 0, 0, 0, 2}, 0)); p != 1 {
					t.Fatalf("the spoofer did not take the address: port %d", p)
				}
			}
			// Both send the victim's address (2) as fast as they can until the guard acts.
			done := make(chan struct{})
			var wg sync.WaitGroup
			send := func(c *wire.Conn, payload string) {
				defer wg.Done()
				batch := make([][]byte, 16)
				for i := range batch {
					batch[i] = frame(3, 2, payload)
				}
				for {
					select {
					case <-done:
						return
					default:
					}
					c.WriteBatch(batch)
					time.Sleep(time.Millisecond)
				}
			}
			wg.Add(3)
			go send(spoofer, "spoof")
			go send(victim, "victim")
			go func() { // the other host reads, so that nobody waits for it
				defer wg.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					recvFrame2(other, 20*time.Millisecond)
				}
			}()
			waitFor(t, func() bool { return len(log.grep("blocked for")) > 0 })
			close(done)
			wg.Wait()
			if l := log.grep("blocked for"); !strings.Contains(l[0], "port 1 blocked") {
				t.Fatalf("the guard blocked the victim: %q", l)
			}
			s.mu.Lock()
			vb := s.lg.ports[2].blocks
			s.mu.Unlock()
			if vb != 0 {
				t.Errorf("the victim's port was blocked %d times", vb)
			}
			// The victim's frames reach the other host (its address is its own again).
			for recvFrame2(other, 50*time.Millisecond) {
			}
			victim.WriteBatch([][]byte{frame(3, 2, "after")})
			if f := recvFrame(t, other, time.Second); !strings.HasSuffix(string(f), "after") {
				t.Errorf("the other host got %q", f)
			}
		})
	}
}

// TestLoopGuardBondedHost: a host bonded to two ports (bonding://, each frame sent once on
// one of its links) flaps at its own high rate, with no frame repeated: nothing is
// blocked. The same host resending the same frames is a loop as far as the guard sees.
func TestLoopGuardBondedHost(t *testing.T) {
	s := newTestSwitch(t, Config{})
	link1, link2 := dial(t, s, 1), dial(t, s, 2)
	dial(t, s, 3) // the host's peer, not reading: its queue drops
	send := func(repeat bool, n int) {
		batch := make([][]byte, 16)
		for i := 0; i < n; i++ {
			for j := range batch {
				payload := fmt.Sprintf("frame %d %d", i, j)
				if repeat {
					payload = fmt.Sprintf("frame %d", j)
				}
				batch[j] = frame(3, 1, payload)
			}
			link := link1
			if i%2 == 1 {
				link = link2
			}
			link.WriteBatch(batch)
			time.Sleep(100 * time.Microsecond)
		}
	}
	send(false, 2000) // 32000 frames, half of them flapping
	if n := s.lg.blocks.Load(); n != 0 {
		t.Fatalf("a bonded host's port was blocked %d times", n)
	}
	for i := 0; i < 20 && s.lg.blocks.Load() == 0; i++ {
		send(true, 200)
	}
	if s.lg.blocks.Load() == 0 {
		t.Error("repeated frames flapping between two ports blocked nothing")
	}
}
