package main

// Round-trip latency through a switch: port A sends one 64 B frame to B, B sends it back
// with the addresses swapped, A waits for it and takes the time; one frame in flight.
// Both ends run on their own locked OS thread and wait in poll(2) on the raw socket, so the
// figure has no Go scheduler hand-off in it (the sockets are never read through the
// runtime's poller here).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

const (
	latencyFrame  = 64
	latencyWarmup = 1000 // round trips before the timed ones
	latencySettle = 300 * time.Millisecond
	// latencyWarmupTime is the least time the untimed round trips take: the row after a
	// busy one found whichever implementation ran first slower for a while (in the
	// suite, p50 +10-40% for the first, ours or Debian's, against the second).
	latencyWarmupTime = time.Second
	latencyWait       = 100 // ms without the echo before the ping counts as lost and is sent again
	latencyLost       = 100 // this many lost pings end the measurement with an error
)

// latencyResult is one run of round trips.
type latencyResult struct {
	rtts []time.Duration // sorted
	lost int
	err  error
}

func (r latencyResult) pct(p float64) time.Duration {
	if len(r.rtts) == 0 {
		return 0
	}
	i := min(len(r.rtts)-1, int(p/100*float64(len(r.rtts))))
	return r.rtts[i]
}

func usec(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func (r latencyResult) String() string {
	if len(r.rtts) == 0 {
		return fmt.Sprintf("error: %v", r.err)
	}
	s := fmt.Sprintf("%d round trips: p50 %.1f µs, p90 %.1f, p99 %.1f, p99.9 %.1f, max %.1f µs",
		len(r.rtts), usec(r.pct(50)), usec(r.pct(90)), usec(r.pct(99)), usec(r.pct(99.9)), usec(r.rtts[len(r.rtts)-1]))
	if r.lost > 0 {
		s += fmt.Sprintf(", %d pings lost and sent again", r.lost)
	}
	if r.err != nil {
		s += fmt.Sprintf("  error: %v", r.err)
	}
	return s
}

// latencyOnce starts a fresh switch, attaches A and B and times n round trips after the
// warm-up (which also makes the switch learn both MACs).
func latencyOnce(ctx context.Context, im impl, n int) latencyResult {
	sw, err := startSwitch(ctx, im.path, im.args...)
	if err != nil {
		return latencyResult{err: err}
	}
	defer sw.stop()
	a, err := wire.Dial(sw.ctlDir, wire.DialOptions{Description: "bench-ping"})
	if err != nil {
		return latencyResult{err: fmt.Errorf("dial A: %w", err)}
	}
	defer a.Close()
	b, err := wire.Dial(sw.ctlDir, wire.DialOptions{Description: "bench-echo"})
	if err != nil {
		return latencyResult{err: fmt.Errorf("dial B: %w", err)}
	}
	defer b.Close()

	// The ends run in this process: what earlier rows left for its garbage collector, and
	// the previous switch's teardown, would fall on whichever switch is timed first after
	// them (ours, every round). Collect now, let the machine settle, and keep the
	// collector off while timing.
	runtime.GC()
	time.Sleep(latencySettle)
	defer debug.SetGCPercent(debug.SetGCPercent(-1))

	var stop atomic.Bool
	echoDone := make(chan error, 1)
	go func() { echoDone <- echo(b.FD(), &stop) }()
	r := ping(ctx, a.FD(), n)
	stop.Store(true)
	if eerr := <-echoDone; eerr != nil && r.err == nil {
		r.err = fmt.Errorf("echo: %w", eerr)
	}
	if gone, werr := sw.exited(); gone && r.err == nil {
		r.err = fmt.Errorf("switch exited during the measurement (%v); output:\n%s", werr, sw.out.String())
	}
	return r
}

// echo sends back everything that arrives on fd, addresses swapped, until stop.
func echo(fd int, stop *atomic.Bool) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, wire.MaxFrame)
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	var mac [6]byte
	for !stop.Load() {
		if k, err := unix.Poll(pfd, 20); k <= 0 {
			if err != nil && err != unix.EINTR {
				return fmt.Errorf("poll: %w", err)
			}
			continue
		}
		for {
			n, err := unix.Read(fd, buf)
			if err == unix.EAGAIN {
				break
			}
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("read: %w", err)
			}
			if n < 14 {
				continue
			}
			copy(mac[:], buf[0:6])
			copy(buf[0:6], buf[6:12])
			copy(buf[6:12], mac[:])
			if err := writeWait(fd, buf[:n]); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeWait writes one datagram on a non-blocking socket, waiting in poll while it is full.
func writeWait(fd int, b []byte) error {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for {
		_, err := unix.Write(fd, b)
		switch err {
		case nil:
			return nil
		case unix.EAGAIN, unix.ENOBUFS:
			unix.Poll(pfd, 10)
		case unix.EINTR:
		default:
			return fmt.Errorf("write: %w", err)
		}
	}
}

// ping times round trips on fd: at least latencyWarmup untimed, for at least
// latencyWarmupTime, then n timed.
func ping(ctx context.Context, fd, n int) latencyResult {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var r latencyResult
	rtts := make([]time.Duration, 0, n)
	frame := makeFrame(macB, macA, latencyFrame)
	buf := make([]byte, wire.MaxFrame)
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	var seq uint64
	start, warm := time.Now(), false
	for done := 0; len(rtts) < n; {
		if seq%256 == 0 && ctx.Err() != nil {
			r.err = ctx.Err()
			break
		}
		seq++
		binary.BigEndian.PutUint64(frame[14:22], seq)
		t0 := time.Now()
		if err := writeWait(fd, frame); err != nil {
			r.err = err
			break
		}
		var rtt time.Duration
		got := false
		for !got {
			k, err := unix.Poll(pfd, latencyWait)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				r.err = fmt.Errorf("poll: %w", err)
				break
			}
			if k == 0 {
				break // lost: send another
			}
			for {
				m, err := unix.Read(fd, buf)
				if err == unix.EAGAIN {
					break
				}
				if err == unix.EINTR {
					continue
				}
				if err != nil {
					r.err = fmt.Errorf("read: %w", err)
					break
				}
				if m == latencyFrame && binary.BigEndian.Uint64(buf[14:22]) == seq {
					rtt, got = time.Since(t0), true
					break
				}
				// An echo of a ping given up for lost: drop it.
			}
			if r.err != nil {
				break
			}
		}
		if r.err != nil {
			break
		}
		if !got {
			r.lost++
			if r.lost >= latencyLost {
				r.err = errors.New("too many pings lost")
				break
			}
			continue
		}
		if warm {
			rtts = append(rtts, rtt)
		}
		done++
		warm = warm || done >= latencyWarmup && time.Since(start) >= latencyWarmupTime
	}
	slices.Sort(rtts)
	r.rtts = rtts
	if len(rtts) == 0 && r.err == nil {
		r.err = errors.New("no round trip completed")
	}
	return r
}

// latencyOnly is `-only latency`: the round-trip rows alone, for tuning, on the console.
func latencyOnly(ctx context.Context, cfg *config, impls []impl) int {
	p50s, p99s := map[string][]float64{}, map[string][]float64{}
	for round := 1; round <= cfg.rounds; round++ {
		for _, im := range inRoundOrder(impls, round) {
			r := latencyOnce(ctx, im, cfg.rtts)
			if ctx.Err() != nil {
				return 130
			}
			fmt.Printf("round %d/%d  %-6s ping-pong %d B  %s\n", round, cfg.rounds, im.name, latencyFrame, r)
			if r.err == nil {
				p50s[im.name] = append(p50s[im.name], usec(r.pct(50)))
				p99s[im.name] = append(p99s[im.name], usec(r.pct(99)))
			}
		}
	}
	status := 0
	for _, im := range impls {
		if len(p50s[im.name]) == 0 {
			fmt.Printf("%-6s every round failed\n", im.name)
			status = 1
			continue
		}
		fmt.Printf("%-6s median p50 %.1f µs, median p99 %.1f µs\n", im.name, median(p50s[im.name]), median(p99s[im.name]))
	}
	return status
}
