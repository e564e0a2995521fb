package vxlan

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"
)

// Drop is why a datagram was not taken, or a frame not sent.
type Drop int

// The kinds of drop, each counted and logged apart.
const (
	DropShort    Drop = iota // shorter than a VXLAN header and an Ethernet header
	DropFlags                // flags other than 0x08, reserved bits set
	DropVNI                  // another VNI
	DropStranger             // from a VTEP that is not a peer (unicast mode without learn)
	DropOversize             // a frame larger than the buffer
	DropSend                 // the kernel refused to send (no route, too big)
	nDrops
)

var dropNames = [nDrops]string{
	DropShort:    "too short",
	DropFlags:    "bad flags",
	DropVNI:      "other VNI",
	DropStranger: "not from a peer",
	DropOversize: "oversized",
	DropSend:     "send failed",
}

func (d Drop) String() string { return dropNames[d] }

// Stats are an endpoint's counters.
type Stats struct {
	// In and Out count frames received from and sent to the tunnel (one per VTEP a
	// flooded frame went to).
	In, Out atomic.Uint64
	// Dropped counts what was not forwarded, by kind.
	Dropped [nDrops]atomic.Uint64
}

// logInterval is the least time between two log lines about one kind of drop.
const logInterval = 10 * time.Second

// dropLog reports drops at most once per kind per logInterval: the counters say how many,
// the line says how many since the last line and who sent the last one. Its owner (the
// reader, or the sender under its lock) calls note per drop and report once per batch,
// so a flood of bad datagrams costs a counter increment each.
type dropLog struct {
	logf    func(format string, args ...any)
	stats   *Stats
	what    string
	pending bool
	last    [nDrops]netip.AddrPort
	lastErr [nDrops]error
	logged  [nDrops]uint64
	next    [nDrops]time.Time
}

func (l *dropLog) note(d Drop, from netip.AddrPort, err error) {
	l.stats.Dropped[d].Add(1)
	l.last[d], l.lastErr[d] = from, err
	l.pending = true
}

func (l *dropLog) report(now time.Time) {
	if !l.pending {
		return
	}
	l.pending = false
	for d := Drop(0); d < nDrops; d++ {
		n := l.stats.Dropped[d].Load()
		if n == l.logged[d] {
			continue
		}
		if now.Before(l.next[d]) {
			l.pending = true // said later, once the interval is over
			continue
		}
		detail := ""
		if l.lastErr[d] != nil {
			detail = fmt.Sprintf(": %v", l.lastErr[d])
		}
		dir := "from"
		if d == DropSend {
			dir = "to"
		}
		l.logf("%s: %d datagrams dropped (%s), the last %s %s%s", l.what, n-l.logged[d], d, dir, l.last[d], detail)
		l.logged[d] = n
		l.next[d] = now.Add(logInterval)
	}
}
