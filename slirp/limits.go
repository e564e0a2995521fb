package slirp

import (
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds on what a guest can make the router hold (issue 8: one hostile guest must not
// take the router down or exhaust the host). A real VM stays far below each. A guest
// that hits one is refused (a UDP flow gets an ICMP port unreachable, a TCP connection a
// reset, a DNS query or TFTP request is dropped or answered with an error), the refusal
// is counted (Router.Stats) and logged at most once per logEvery.
const (
	// maxFlows bounds the TCP and UDP flows NATed at once and the connections of -L
	// forwards, each of which holds a host socket. RLIMIT_NOFILE can lower it (flowBudget).
	// When it is reached, a new flow takes the place of a UDP flow idle for at least
	// udpEvictIdle (the least recently active of a sample), so that a guest that filled
	// the table does not keep the others' new flows out for the whole udpIdle.
	maxFlows = 4096
	// evictSample is how many UDP flows an eviction looks at.
	evictSample = 64
	// fdReserve descriptors under RLIMIT_NOFILE are left to everything else: the switch
	// link, the listeners of forwards, ICMP sockets, resolv.conf, the Go runtime.
	fdReserve = 128
	// maxDNSFlows bounds the UDP flows to the DNS proxy waiting for an answer, each a
	// host socket to the nameserver. A flow ends once its queries are answered, or after
	// dnsUDPIdle.
	maxDNSFlows = 256
	// dnsRate queries a second go to the host's nameserver, in bursts of up to dnsBurst;
	// the rest are dropped (a resolver asks again).
	dnsRate  = 200
	dnsBurst = 400
	// maxTFTP bounds the TFTP transfers at once, each an open file.
	maxTFTP = 32
	// maxForwardPeers bounds the host peers of one UDP forward (-U) with a flow into the
	// guest; more are dropped until one idles out.
	maxForwardPeers = 1024
	// logEvery is the shortest time between two log lines of one kind of refusal.
	logEvery = 10 * time.Second
)

// Stats counts the router's flows and what its bounds refused.
type Stats struct {
	Flows, DNSFlows int64 // open now
	TCPFlows        int64 // of Flows, the NATed TCP connections
	UDPFlows        int64 // of Flows, the NATed UDP flows (the rest are -L connections)
	TCPOpened       uint64
	UDPOpened       uint64 // NATed UDP flows, the DNS proxy's apart
	DNSQueries      uint64 // UDP queries the DNS proxy took
	Pings           uint64 // echo requests sent to hosts
	Leases          int    // DHCP addresses given out (offered or leased)
	FlowLimit       int64  // maxFlows, or less under a low RLIMIT_NOFILE
	FlowsRefused    uint64
	FlowsEvicted    uint64 // idle UDP flows closed to make room for new ones
	DNSRefused      uint64 // new DNS flows over maxDNSFlows
	DNSRateDropped  uint64 // queries over dnsRate
	TFTPRefused     uint64
	PeersRefused    uint64 // UDP forward peers over maxForwardPeers
	LoopbackRefused uint64 // flows and pings to the host's loopback under NoHostLoopback
	GSOPackets      uint64 // TCP GSO packets taken whole from the switch (takeOffload)
	GSOSent         uint64 // TCP GSO packets sent whole to the switch (link, host GSO)
}

// counters are the Stats kept as the router runs.
type counters struct {
	flowsRefused, flowsEvicted, dnsRefused, dnsRateDropped, tftpRefused, peersRefused, loopbackRefused atomic.Uint64
	tcpOpened, udpOpened, dnsQueries, pings                                                            atomic.Uint64
	tcpOpen                                                                                            atomic.Int64
	gsoPackets, gsoSent                                                                                atomic.Uint64
}

// Stats returns the flows open and the refusals so far.
func (r *Router) Stats() Stats {
	return Stats{
		Flows:           r.flows.Load(),
		DNSFlows:        r.dnsFlows.Load(),
		TCPFlows:        r.count.tcpOpen.Load(),
		UDPFlows:        r.udpFlowsOpen(),
		TCPOpened:       r.count.tcpOpened.Load(),
		UDPOpened:       r.count.udpOpened.Load(),
		DNSQueries:      r.count.dnsQueries.Load(),
		Pings:           r.count.pings.Load(),
		Leases:          r.leases(),
		FlowLimit:       r.flowLimit,
		FlowsRefused:    r.count.flowsRefused.Load(),
		FlowsEvicted:    r.count.flowsEvicted.Load(),
		DNSRefused:      r.count.dnsRefused.Load(),
		DNSRateDropped:  r.count.dnsRateDropped.Load(),
		TFTPRefused:     r.count.tftpRefused.Load(),
		PeersRefused:    r.count.peersRefused.Load(),
		LoopbackRefused: r.count.loopbackRefused.Load(),
		GSOPackets:      r.count.gsoPackets.Load(),
		GSOSent:         r.count.gsoSent.Load(),
	}
}

func (r *Router) udpFlowsOpen() int64 {
	r.udpMu.Lock()
	defer r.udpMu.Unlock()
	return int64(len(r.udpFlows))
}

// leases counts the DHCP server's addresses given out (0 without DHCP).
func (r *Router) leases() int {
	if r.dhcp == nil {
		return 0
	}
	return len(r.dhcp.Leases())
}

// flowBudget is maxFlows, lowered so that the flows, the DNS flows and the TFTP files at
// their bounds leave fdReserve descriptors under the soft RLIMIT_NOFILE (the Go runtime
// raises it to the hard limit at start).
func flowBudget() int64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return maxFlows
	}
	avail := int64(rl.Cur) - fdReserve - maxDNSFlows - maxTFTP
	return max(min(avail, maxFlows), 16)
}

// takeFlow reserves a flow, for the UDP flow f if not nil. In a full table it takes the
// place of the least recently active of a sample of UDP flows idle for udpEvictIdle, and
// closes that; false (counted, logged) when there is none.
func (r *Router) takeFlow(what string, f *udpFlow) bool {
	if r.flows.Add(1) <= r.flowLimit {
		if f != nil {
			r.udpMu.Lock()
			r.udpFlows[f] = struct{}{}
			r.udpMu.Unlock()
		}
		return true
	}
	r.flows.Add(-1)
	now := time.Now()
	r.udpMu.Lock()
	var victim *udpFlow
	var oldest int64
	n := 0
	for v := range r.udpFlows {
		if l := v.last.Load(); now.Sub(time.Unix(0, l)) >= time.Duration(r.evictIdle.Load()) && (victim == nil || l < oldest) {
			victim, oldest = v, l
		}
		if n++; n >= evictSample {
			break
		}
	}
	if victim != nil { // its place in the count is the new flow's
		delete(r.udpFlows, victim)
		if f != nil {
			r.udpFlows[f] = struct{}{}
		}
	}
	r.udpMu.Unlock()
	if victim == nil {
		r.count.flowsRefused.Add(1)
		r.logLimited("flows", "%s: refused: %d flows open already", what, r.flowLimit)
		return false
	}
	victim.close()
	r.count.flowsEvicted.Add(1)
	r.logLimited("evict", "%s: %d flows open already: closed a UDP flow idle for %v", what, r.flowLimit, now.Sub(time.Unix(0, oldest)).Round(time.Second))
	return true
}

// udpEvictIdle is how long a UDP flow must have been idle before a full table may close
// it for a new one (Router.evictIdle, which tests change).
const udpEvictIdle = 5 * time.Second

// udpFlow is a NATed UDP flow, which a full table may evict.
type udpFlow struct {
	last atomic.Int64 // UnixNano of the last datagram either way

	mu     sync.Mutex
	closed bool
	conns  []io.Closer
}

// attach makes c close with the flow; false (c closed) if the flow was evicted already.
func (f *udpFlow) attach(c io.Closer) bool {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		c.Close()
		return false
	}
	f.conns = append(f.conns, c)
	f.mu.Unlock()
	return true
}

func (f *udpFlow) close() {
	f.mu.Lock()
	f.closed = true
	cs := f.conns
	f.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// takeUDPFlow reserves a flow for a new UDP flow (takeFlow); nil when there is none.
func (r *Router) takeUDPFlow(what string) *udpFlow {
	f := &udpFlow{}
	f.last.Store(time.Now().UnixNano())
	if !r.takeFlow(what, f) {
		return nil
	}
	return f
}

// endUDPFlow gives f's place back, unless an eviction gave it to another flow.
func (r *Router) endUDPFlow(f *udpFlow) {
	r.udpMu.Lock()
	_, ok := r.udpFlows[f]
	delete(r.udpFlows, f)
	r.udpMu.Unlock()
	if ok {
		r.flows.Add(-1)
	}
}

// hostLoopback reports whether a guest sending to dst would reach the host's loopback:
// 127.0.0.0/8, ::1, an IPv4-mapped form of those, or the unspecified address (which
// connects to the host itself).
func hostLoopback(dst netip.Addr) bool {
	dst = dst.Unmap()
	return dst.IsLoopback() || dst.IsUnspecified()
}

// loopbackRefused reports (and counts) a destination that NoHostLoopback forbids.
func (r *Router) loopbackRefused(dst netip.Addr) bool {
	if r.cfg.NoHostLoopback && hostLoopback(dst) {
		r.count.loopbackRefused.Add(1)
		r.logLimited("loopback", "%v: refused: host loopback disabled", dst)
		return true
	}
	return false
}

// logLimiter lets one line of each kind through per logEvery and tells, with the next
// line of the kind, how many it held back.
type logLimiter struct {
	logf func(format string, args ...any)

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

func newLogLimiter(logf func(string, ...any)) *logLimiter {
	return &logLimiter{logf: logf, last: map[string]time.Time{}, held: map[string]int{}}
}

// log logs a line of kind key (a constant: the maps stay small) unless one was logged
// less than logEvery ago.
func (l *logLimiter) log(key, format string, args ...any) {
	now := time.Now()
	l.mu.Lock()
	if t, ok := l.last[key]; ok && now.Sub(t) < logEvery {
		l.held[key]++
		l.mu.Unlock()
		return
	}
	held := l.held[key]
	l.held[key] = 0
	l.last[key] = now
	l.mu.Unlock()
	if held > 0 {
		format += fmt.Sprintf(" (and %d more like it since the last report)", held)
	}
	l.logf(format, args...)
}

// logLimited logs through the router's limiter.
func (r *Router) logLimited(key, format string, args ...any) { r.logs.log(key, format, args...) }

// tokenBucket admits rate events a second, up to burst at once.
type tokenBucket struct {
	rate, burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newTokenBucket(rate, burst float64) *tokenBucket {
	return &tokenBucket{rate: rate, burst: burst, tokens: burst}
}

// take spends a token if there is one.
func (b *tokenBucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// qdiscLen is the length of the router's outbound packet queue: 16384 MTU-sized packets
// (about 25 MB at most) hold two TCP connections' full 8 MiB send buffers (router.go)
// in MSS-sized packets. Packets that find it full are dropped, and a TCP sender that
// loses a burst there recovers slowly.
const qdiscLen = 16384
