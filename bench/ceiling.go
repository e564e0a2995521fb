package main

// The bare-socketpair ceiling: the same load generator (batched sendmmsg sender, batched
// recvmmsg counter, same backoff) over unix datagram socketpairs with no switch in between.
// It is what this machine's kernel and this generator can move at all; a switch, which
// adds a receive and a send per frame, can only approach it. Measured in every round, right
// after the switches, so that each switch figure has a ceiling from the same minute.

import (
	"context"
	"fmt"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

// sockpair is one socketpair: a sends, b receives and counts.
type sockpair struct {
	a, b *wire.Datagram
	rx   *counter
}

func openSockpair() (*sockpair, error) {
	// Non-blocking like a dialled port's data socket; the receive queue is capped by the
	// same net.unix.max_dgram_qlen.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair(AF_UNIX, SOCK_DGRAM): %w", err)
	}
	a, err := wire.NewDatagram(fds[0], "ceiling-a")
	if err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, err
	}
	b, err := wire.NewDatagram(fds[1], "ceiling-b")
	if err != nil {
		a.Close()
		unix.Close(fds[1])
		return nil, err
	}
	return &sockpair{a: a, b: b, rx: startCounter(b)}, nil
}

func (p *sockpair) close() {
	p.rx.closing.Store(true)
	p.a.Close()
	p.b.Close()
	select {
	case <-p.rx.done:
	case <-time.After(2 * time.Second):
	}
}

// measureCeiling runs n socketpairs at once, one sender and one counter each, with
// size-byte frames. n=1 is the ceiling of the A→B rows, n=4 that of the 4→4 rows.
func measureCeiling(ctx context.Context, cfg *config, n, size int) flowResult {
	var flows []flowSpec
	var rx []*counter
	for i := range n {
		p, err := openSockpair()
		if err != nil {
			return flowResult{err: err}
		}
		defer p.close()
		flows = append(flows, flowSpec{p.a, makeFrame(portMAC(n+i), portMAC(i), size)})
		rx = append(rx, p.rx)
	}
	return measureFlow(ctx, cfg, nil, flows, rx, size)
}
