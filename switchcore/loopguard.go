package switchcore

import (
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// The loop guard breaks loops of switches that run no FSTP. A loop shows in the MAC table:
// the same source addresses arrive on two ports at once, the table refuses to move them
// (min persistence), and it does so at the rate of the storm, with the same frames coming
// back lap after lap. The guard counts those refusals, of frames the port saw before,
// where the table learns (the rare path: a known address on its own port costs nothing
// more), and a goroutine that runs only while there is something to watch blocks a port
// when the rate stays high: frames from it are dropped unlearned, frames to it are not
// sent. The block expires (2 s, doubling up to 64 s, with jitter) and, if the loop is
// still there, the storm starts again and the port is blocked again at once.
//
// Three switches of a triangle see the same storm at the same moment, and without a
// protocol between them each could block a port of its own: three cut cables. So the
// guards do not act at once:
//   - A switch acts only after the rate stayed high for its detection delay: 50 ms, plus
//     150 ms for each doubling of the age (in seconds, plus one) of its newest flapping
//     port (at most 10), plus up to 250 ms of random jitter; and only on a tick with at
//     least half the storm's recent strength. The first switch to act breaks the loop;
//     the storm stops within milliseconds, and the others see a weaker tick, then quiet
//     ones, before they act.
//     The age term makes the ends of the newest cable (both plugged at the same moment:
//     the cable that closed the loop) act first, and if both do, they cut the same cable;
//     it is larger than the jitter once the other cables are a few seconds older (a
//     cable of 0.5 s against one of 4 s: 260 ms). The jitter parts switches whose newest
//     ports are alike in age.
//   - A switch blocks its newest flapping port: the endpoint that connected last.
//   - A port whose block ended less than 3 s ago is blocked again as soon as it flaps (one
//     tick): the switch that broke the loop keeps breaking it, before the others' delays.
//   - Only frames that come back count: real traffic on table entries that still point
//     the old way after another switch broke the loop (for up to 2 s: flapLive) is not
//     repeated, nor is that of a host that moved, or is bonded to two ports.
//
// Which port flaps: an address refused on port P while its entry, on port Q, was refreshed
// within the last second is blamed on P, unless P is where the table first learned it (its
// home, kept across moves and flushes while P stays active): then Q holds an address that
// is not its own, and Q is blamed. A client that sends another port's addresses is thus
// blamed itself, whichever of the two holds the entry, even when it connects (which
// flushes the VLAN's table) and spoofs at once; and whatever a client does, a block ends
// after at most 64 s (80 with jitter).
//
// FSTP, when on, has the loops: the guard stands aside (counts nothing, blocks nothing).
// A hub learns nothing, so the guard sees nothing there and blocks nothing.

const (
	// flapLive is how recently (switch seconds) an entry must have been refreshed on its
	// port for a refusal elsewhere to count as the address being live on two ports.
	flapLive = 1
	// lgTick is the guard goroutine's period while it watches.
	lgTick = 10 * time.Millisecond
	// lgDefaultRate is the flapping rate (frames/s) that makes a port hot. A frame that
	// circles a triangle of switches passes each port once a lap: a storm of a few
	// broadcasts flaps 1000-3000 frames/s per port here (the cables count ten times as
	// many), and more as broadcasts pile up. Hosts send few identical frames: a host
	// that moved, or is bonded to two ports, flaps no frame twice.
	lgDefaultRate = 250
	lgDetect      = 50 * time.Millisecond
	lgAgeStep     = 150 * time.Millisecond
	lgAgeCap      = 10 // doublings of age that lengthen the delay (17 minutes)
	lgJitter      = 250 * time.Millisecond
	// lgCool is how long an episode may stay quiet (a starved reader, a loaded machine)
	// before it counts as over.
	lgCool      = 50 * time.Millisecond
	lgBlockMin  = 2 * time.Second
	lgBlockMax  = 64 * time.Second
	lgProbation = 3 * time.Second
	// lgPeakDecay: the storm's remembered strength falls by a tick's share of it a tick,
	// so that one tick that counted a backlog (a starved reader) does not set the bar for
	// long.
	lgPeakDecay = 500 * time.Millisecond
	// lgForget: a port that stayed open this long starts its backoff again from lgBlockMin.
	lgForget = 2 * lgBlockMax
	// lgIdle: the goroutine sleeps after this long with nothing to watch.
	lgIdle = time.Second
)

// lgPort is the guard's state of one port. The atomics are the frame path's; the rest is
// guarded by Switch.mu.
type lgPort struct {
	flaps atomic.Uint64 // frames blamed on the port since the last tick
	peer  atomic.Int32  // the other port of the latest of them
	held  atomic.Uint64 // frames that arrived while it was blocked, dropped

	num         int
	ep0         *endpoint // the newest endpoint, to notice a new one
	since       time.Time // when the newest endpoint connected
	blocked     bool
	until       time.Time
	blockedAt   time.Time
	unblockedAt time.Time
	blockLen    time.Duration
	level       int // backoff: the next block lasts lgBlockMin << level
	blocks      uint64
	rate        uint64 // flapping frames/s in the last tick
	lastPeer    int    // the other port named when it was last blocked
	lastRate    uint64 // the rate that got it blocked
	reflush     bool   // flush its MAC entries again at the next tick
}

// loopGuard is a switch's loop guard. Fields but kick, idle and blocks are guarded by
// Switch.mu.
type loopGuard struct {
	s     *Switch
	on    bool
	rate  int
	ports []*lgPort // by port number

	epStart   time.Time     // the current episode (ports hot) began; zero for none
	epDelay   time.Duration // how long it must last before this switch acts
	epLastHot time.Time
	smooth    uint64 // the total flapping rate, averaged over the last ticks
	epPeak    uint64 // the storm's strength: the highest smoothed rate, decaying
	lastTick  time.Time
	dirty     bool // a block changed: publish a new view
	hot       []*lgPort
	rnd       *rand.Rand

	kick   chan struct{}
	idle   atomic.Bool
	blocks atomic.Uint64 // blocks since start
}

func newLoopGuard(s *Switch) *loopGuard {
	g := &loopGuard{s: s, on: true, rate: lgDefaultRate, kick: make(chan struct{}, 1),
		rnd: rand.New(rand.NewPCG(rand.Uint64(), uint64(time.Now().UnixNano())))}
	g.idle.Store(true)
	return g
}

// wake starts the goroutine when it sleeps: called on the flap path only.
func (g *loopGuard) wake() {
	if g.idle.Load() && g.idle.CompareAndSwap(true, false) {
		select {
		case g.kick <- struct{}{}:
		default:
		}
	}
}

// sync follows the port table: it is called by every publish, so it sees each new
// endpoint (the newest is first in Port.eps) and each port that went inactive.
func (g *loopGuard) sync() {
	s := g.s
	for len(g.ports) < len(s.ports) {
		g.ports = append(g.ports, &lgPort{num: len(g.ports), lastPeer: -1})
	}
	now := time.Now()
	for n, lp := range g.ports {
		var ep0 *endpoint
		if n < len(s.ports) && s.ports[n] != nil && s.ports[n].active() {
			ep0 = s.ports[n].eps[0]
		}
		if ep0 == lp.ep0 {
			continue
		}
		lp.ep0 = ep0
		lp.since = now
		if ep0 == nil {
			s.macs.forgetHomes(n)
			if lp.blocked {
				// A reconnection is a new endpoint: it is not punished for the old one, but
				// it is on probation (blocked at once if it closes the loop again).
				g.unblock(lp, now, "its endpoints are gone")
			}
		}
	}
}

// setOn turns the guard on or off (loopguard/set); off lifts every block.
func (g *loopGuard) setOn(on bool) {
	g.on = on
	if !on {
		g.liftAll(time.Now(), "the guard is off")
	}
}

func (g *loopGuard) liftAll(now time.Time, why string) {
	for _, lp := range g.ports {
		if lp.blocked {
			g.unblock(lp, now, why)
		}
	}
	g.epStart = time.Time{}
}

// delay is how long an episode whose newest hot port is p must last before this switch acts.
func (g *loopGuard) delay(p *lgPort, now time.Time) time.Duration {
	age := now.Sub(p.since).Seconds()
	doublings := min(math.Log2(1+max(age, 0)), lgAgeCap)
	return lgDetect + time.Duration(doublings*float64(lgAgeStep)) + time.Duration(g.rnd.Int64N(int64(lgJitter)))
}

// block blocks p: its frames are dropped and it leaves the flood lists; its MAC entries
// are forgotten now and again at the next tick (a reader that still holds the old view
// may learn one more).
func (g *loopGuard) block(p *lgPort, now time.Time) {
	if p.blocks > 0 && now.Sub(p.unblockedAt) <= lgForget {
		p.level = min(p.level+1, 8)
	} else {
		p.level = 0
	}
	d := min(lgBlockMin<<p.level, lgBlockMax)
	// Jitter: two switches that both blocked (a rare double act) unblock apart.
	d = time.Duration(float64(d) * (0.75 + 0.5*g.rnd.Float64()))
	p.blocked, p.until, p.blockedAt, p.blockLen = true, now.Add(d), now, d
	p.blocks++
	g.blocks.Add(1)
	p.lastPeer, p.lastRate = g.peerOf(p), p.rate
	p.reflush = true
	g.dirty = true
	g.s.flushPortMACs(p.num)
	g.s.logf("loop guard: port %d blocked for %.1f s: addresses flap between port %d and port %d (%d frames/s)",
		p.num, d.Seconds(), p.num, p.lastPeer, p.rate)
}

// peerOf names the other port of p's loop: the other port that flapped most in this
// tick (the other end of the loop, or what a spoofer spoofs), else the port of the
// address last blamed on p.
func (g *loopGuard) peerOf(p *lgPort) int {
	best := (*lgPort)(nil)
	for _, q := range g.ports {
		if q != p && q.rate > 0 && !q.blocked && (best == nil || q.rate > best.rate) {
			best = q
		}
	}
	if best != nil {
		return best.num
	}
	return int(p.peer.Load())
}

func (g *loopGuard) unblock(p *lgPort, now time.Time, why string) {
	p.blocked = false
	p.unblockedAt = now
	g.dirty = true
	g.s.logf("loop guard: port %d unblocked after %.1f s: %s", p.num, now.Sub(p.blockedAt).Seconds(), why)
}

// tick is one look at the counters; it reports whether there is nothing left to watch.
func (g *loopGuard) tick(now time.Time) (idle bool) {
	elapsed := now.Sub(g.lastTick)
	if elapsed <= 0 || elapsed > 10*lgTick {
		elapsed = lgTick
	}
	g.lastTick = now
	v := g.s.view.Load()
	watching := v.lg
	if !watching {
		for _, lp := range g.ports {
			lp.flaps.Store(0)
		}
		if g.on && (v.fstp || v.hub) {
			g.liftAll(now, "FSTP or hub mode took over")
		}
		return true
	}
	busy := false
	var total uint64
	g.hot = g.hot[:0]
	for _, lp := range g.ports {
		n := lp.flaps.Swap(0)
		lp.rate = uint64(float64(n) * float64(time.Second) / float64(elapsed))
		if lp.reflush {
			lp.reflush = false
			g.s.flushPortMACs(lp.num)
		}
		if lp.blocked {
			busy = true
			if !now.Before(lp.until) {
				g.unblock(lp, now, "its block expired")
			}
			continue
		}
		if n > 0 || (!lp.unblockedAt.IsZero() && now.Sub(lp.unblockedAt) < lgProbation) {
			busy = true
		}
		total += lp.rate
		if lp.ep0 != nil && lp.rate >= uint64(g.rate) {
			g.hot = append(g.hot, lp)
		}
	}
	g.smooth = (g.smooth + total) / 2
	decay := max(0, 1-float64(elapsed)/float64(lgPeakDecay))
	g.epPeak = max(g.smooth, uint64(float64(g.epPeak)*decay))
	if len(g.hot) == 0 || total*8 < g.epPeak {
		if g.epPeak > 0 {
			busy = true
		}
		if !g.epStart.IsZero() && now.Sub(g.epLastHot) >= lgCool {
			g.epStart = time.Time{}
		}
		return !busy
	}
	g.epLastHot = now
	for _, lp := range g.hot {
		if !lp.unblockedAt.IsZero() && now.Sub(lp.unblockedAt) < lgProbation {
			g.block(lp, now) // this switch broke the loop before: it breaks it again, first
			g.epStart = time.Time{}
			return false
		}
	}
	newest := g.hot[0]
	for _, lp := range g.hot[1:] {
		if !lp.since.Before(newest.since) {
			newest = lp
		}
	}
	if g.epStart.IsZero() {
		g.epStart, g.epDelay = now, g.delay(newest, now)
	}
	// Act only on a tick at the storm's strength: in the tick after another switch broke
	// the loop, the storm ran for part of it only.
	if now.Sub(g.epStart) >= g.epDelay && total*2 >= g.epPeak {
		g.block(newest, now)
		g.epStart = time.Time{}
	}
	return false
}

// loopGuardLoop runs the guard: it sleeps until the frame path reports a flapping address,
// then looks every lgTick until for lgIdle there is nothing to watch.
func (s *Switch) loopGuardLoop() {
	g := s.lg
	t := time.NewTicker(lgTick)
	defer t.Stop()
	var quietSince time.Time
	for {
		if g.idle.Load() {
			t.Stop()
			select {
			case <-s.done:
				return
			case <-g.kick:
			}
			t.Reset(lgTick)
			quietSince = time.Time{}
			s.mu.Lock()
			g.lastTick = time.Now()
			s.mu.Unlock()
			continue
		}
		select {
		case <-s.done:
			return
		case <-g.kick:
			continue
		case now := <-t.C:
			s.mu.Lock()
			idle := g.tick(now)
			if g.dirty {
				g.dirty = false
				s.publishLocked()
			}
			s.mu.Unlock()
			switch {
			case !idle:
				quietSince = time.Time{}
			case quietSince.IsZero():
				quietSince = now
			case now.Sub(quietSince) >= lgIdle:
				g.idle.Store(true)
			}
		}
	}
}

// flushPortMACs forgets the addresses learned on port n.
func (s *Switch) flushPortMACs(n int) {
	for _, e := range s.macs.flushPort(n) {
		s.hashEvent(catHashDel, e)
	}
}

// lgSeenSlots is the size of a reader's memory of flapped frames (a power of two).
const lgSeenSlots = 64

var lgSeed = maphash.MakeSeed()

// flap is the frame path's report of frame f of k arriving on port arrival while the
// table holds k, freshly refreshed, on port owner. Only a frame this port has seen before
// counts: a loop brings the same frame back lap after lap, while a host bonded to two
// ports (bonding://) or a spoofer sends each frame once.
func (r *reader) flap(v *view, f []byte, k macKey, arrival, owner int) {
	if r.lgSeen == nil {
		r.lgSeen = new([lgSeenSlots]uint64)
	}
	h := maphash.Bytes(lgSeed, f)
	if seen := &r.lgSeen[h&(lgSeenSlots-1)]; *seen != h {
		*seen = h
		return
	}
	blamed, peer := arrival, owner
	if r.s.macs.home(k) == arrival {
		blamed, peer = owner, arrival
	}
	if blamed < len(v.ports) {
		if fp := v.ports[blamed]; fp != nil && fp.lg != nil {
			fp.lg.flaps.Add(1)
			if fp.lg.peer.Load() != int32(peer) {
				fp.lg.peer.Store(int32(peer))
			}
		}
	}
	r.s.lg.wake()
}

// lgHeld drops a batch of n frames that arrived on a blocked port, counting them.
func (r *reader) lgHeld(src *Port, sp *fwdPort, n int) {
	var bytes uint64
	for _, size := range r.sizes[:n] {
		bytes += uint64(size)
	}
	src.counters.inPkts.Add(uint64(n))
	src.counters.inBytes.Add(bytes)
	sp.lg.held.Add(uint64(n))
}

// lgPortState is one port's guard state as loopguard/print and Stats show it.
type lgPortState struct {
	num            int
	blocked        bool
	left, blockLen time.Duration
	next           time.Duration
	blocks         uint64
	peer           int
	rate, held     uint64
	sinceUnblock   time.Duration
}

// lgStates lists the ports the guard has blocked at least once. Switch.mu is held.
func (g *loopGuard) lgStates(now time.Time) []lgPortState {
	var out []lgPortState
	for _, lp := range g.ports {
		if lp.blocks == 0 {
			continue
		}
		st := lgPortState{num: lp.num, blocked: lp.blocked, blockLen: lp.blockLen, blocks: lp.blocks,
			peer: lp.lastPeer, rate: lp.lastRate, held: lp.held.Load()}
		if lp.blocked {
			st.left = lp.until.Sub(now)
		} else {
			st.sinceUnblock = now.Sub(lp.unblockedAt)
		}
		level := lp.level + 1
		if !lp.blocked && now.Sub(lp.unblockedAt) > lgForget {
			level = 0
		}
		st.next = min(lgBlockMin<<level, lgBlockMax)
		out = append(out, st)
	}
	return out
}

func (st lgPortState) String() string {
	if st.blocked {
		return fmt.Sprintf("Port %04d BLOCKED %.1f s more of %.1f s: flapping with port %04d at %d frames/s; block %d, next %.0f s; %d frames held",
			st.num, st.left.Seconds(), st.blockLen.Seconds(), st.peer, st.rate, st.blocks, st.next.Seconds(), st.held)
	}
	return fmt.Sprintf("Port %04d open for %.1f s: last flapped with port %04d at %d frames/s; %d blocks, next %.0f s; %d frames held",
		st.num, st.sinceUnblock.Seconds(), st.peer, st.rate, st.blocks, st.next.Seconds(), st.held)
}
