package main

// Many-port traffic for the switch rows: N ports of one switch, each with a counter, flows
// of batched senders between them, and one timed window over all of them.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// portMAC is the locally administered unicast MAC of port i of a many-port test (distinct
// from macA and macB, and for every i < 4096).
func portMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x76, 0x64, 0x65, byte(0x10 + i>>8), byte(i)}
}

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ports is n ports of one switch, port i speaking as portMAC(i), each with a counter.
type ports struct {
	sw    *switchProc
	conns []*wire.Conn
	rx    []*counter
}

// dialPorts attaches n ports to sw, each with a counter, and makes the switch learn every MAC.
func dialPorts(ctx context.Context, sw *switchProc, n int) (*ports, error) {
	ps := &ports{sw: sw}
	for i := range n {
		c, err := wire.Dial(sw.ctlDir, wire.DialOptions{Description: fmt.Sprintf("bench-%d", i)})
		if err != nil {
			ps.close()
			return nil, fmt.Errorf("dial port %d of %d: %w", i+1, n, err)
		}
		ps.conns = append(ps.conns, c)
		ps.rx = append(ps.rx, startCounter(c.Datagram))
	}
	if err := ps.learn(ctx); err != nil {
		ps.close()
		return nil, err
	}
	return ps, nil
}

// learn has each port in turn send a 64 B broadcast from its MAC until every other port
// has seen it: the switch then knows every port's MAC, and traffic between them is known
// unicast.
func (ps *ports) learn(ctx context.Context) error {
	const size = 64
	for _, k := range ps.rx {
		k.want.Store(size)
	}
	base := make([]int64, len(ps.rx))
	for i, c := range ps.conns {
		for j, k := range ps.rx {
			base[j] = k.frames.Load()
		}
		f := makeFrame(broadcastMAC, portMAC(i), size)
		deadline := time.Now().Add(3 * time.Second)
		for {
			if _, err := c.WriteBatch([][]byte{f}); err != nil {
				return fmt.Errorf("learning: send from port %d: %w", i, err)
			}
			if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
				return err
			}
			missing := 0
			for j, k := range ps.rx {
				if j != i && k.frames.Load() == base[j] {
					missing++
				}
			}
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("learning: a broadcast from port %d reached %d of the other %d ports in 3s", i, len(ps.rx)-1-missing, len(ps.rx)-1)
			}
		}
	}
	return quiesceAll(ctx, ps.rx)
}

func (ps *ports) close() {
	for _, k := range ps.rx {
		k.closing.Store(true)
	}
	for _, c := range ps.conns {
		c.Close()
	}
	for _, k := range ps.rx {
		select {
		case <-k.done:
		case <-time.After(2 * time.Second):
		}
	}
	ps.conns, ps.rx = nil, nil
}

// quiesceAll waits until nothing has arrived at any of rx for 50ms (at most 3s).
func quiesceAll(ctx context.Context, rx []*counter) error {
	total := func() (n int64) {
		for _, k := range rx {
			n += k.frames.Load() + k.bad.Load()
		}
		return n
	}
	deadline := time.Now().Add(3 * time.Second)
	prev := total()
	for time.Now().Before(deadline) {
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
		cur := total()
		if cur == prev {
			return nil
		}
		prev = cur
	}
	return nil
}

// flowSpec is one sender: a port and the frame it sends again and again.
type flowSpec struct {
	from  *wire.Datagram
	frame []byte
}

// flowResult is one timed window of several flows.
type flowResult struct {
	fps     float64   // frames/s of the right size received, all receivers together
	perRx   []float64 // frames/s of the right size received, per receiver
	sentFPS float64   // frames/s the kernel accepted from all senders
	frames  int64     // frames of the right size received in the window, in total
	bad     int64     // frames of another size received in the window
	copies  int       // receivers each sent frame is meant for (broadcast); 0 means 1
	cpu     cpuWindow
	err     error
}

// measureFlow runs every flow at once for cfg.warmup+cfg.duration and reports what rx
// received during cfg.duration. sw is the switch in between (nil: none, as for the
// socketpair ceiling); its CPU time over the window goes in the result.
func measureFlow(ctx context.Context, cfg *config, sw *switchProc, flows []flowSpec, rx []*counter, size int) flowResult {
	if err := quiesceAll(ctx, rx); err != nil {
		return flowResult{err: err}
	}
	for _, k := range rx {
		k.want.Store(int64(size))
	}
	ss := make([]*sender, len(flows))
	for i, f := range flows {
		ss[i] = startSender(f.from, f.frame, cfg.backoff)
	}
	halted := false
	halt := func() error {
		if halted {
			return nil
		}
		halted = true
		var errs []error
		for i, s := range ss {
			if err := s.halt(); err != nil {
				errs = append(errs, fmt.Errorf("sender %d: %w", i, err))
			}
		}
		return errors.Join(errs...)
	}
	defer halt()
	snap := func() (got []int64, bad, sent int64) {
		got = make([]int64, len(rx))
		for i, k := range rx {
			got[i] = k.frames.Load()
			bad += k.bad.Load()
		}
		for _, s := range ss {
			sent += s.sent.Load()
		}
		return got, bad, sent
	}

	if err := sleepCtx(ctx, cfg.warmup); err != nil {
		return flowResult{err: err}
	}
	c0 := sampleCPU(sw)
	t0 := time.Now()
	g0, b0, s0 := snap()
	err := sleepCtx(ctx, cfg.duration)
	t1 := time.Now()
	g1, b1, s1 := snap()
	c1 := sampleCPU(sw)
	if err != nil {
		return flowResult{err: err}
	}
	if err := halt(); err != nil {
		return flowResult{err: err}
	}
	if sw != nil {
		if gone, werr := sw.exited(); gone {
			return flowResult{err: fmt.Errorf("switch exited during the measurement (%v); output:\n%s", werr, sw.out.String())}
		}
	}
	dt := t1.Sub(t0).Seconds()
	r := flowResult{sentFPS: float64(s1-s0) / dt, bad: b1 - b0, cpu: cpuBetween(c0, c1)}
	for i := range rx {
		n := g1[i] - g0[i]
		r.frames += n
		r.perRx = append(r.perRx, float64(n)/dt)
	}
	r.fps = float64(r.frames) / dt
	var errs []error
	for i, k := range rx {
		if err := k.err(); err != nil {
			errs = append(errs, fmt.Errorf("receiver %d: %w", i, err))
		}
	}
	if r.frames == 0 {
		errs = append(errs, fmt.Errorf("no %d B frame arrived (%d of another size)", size, r.bad))
	}
	r.err = errors.Join(errs...)
	return r
}

// describeFlow is the console line of one window.
func describeFlow(r flowResult) string {
	if r.err != nil && r.frames == 0 {
		return "error: " + r.err.Error()
	}
	s := fmt.Sprintf("%9s frames/s received (%s/s accepted from the senders", thousands(r.fps), thousands(r.sentFPS))
	if r.sentFPS > 0 {
		s += fmt.Sprintf(", %.1f%% delivered", 100*r.fps/(r.sentFPS*float64(max(1, r.copies))))
	}
	s += ")"
	if len(r.perRx) > 1 {
		lo, hi := r.perRx[0], r.perRx[0]
		for _, v := range r.perRx {
			lo, hi = min(lo, v), max(hi, v)
		}
		s += fmt.Sprintf("  per receiver %s..%s", thousands(lo), thousands(hi))
	}
	if c := r.cpu.String(); c != "" {
		s += "  [" + c + "]"
	}
	if r.bad > 0 {
		s += fmt.Sprintf("  %d frames of a wrong size", r.bad)
	}
	if r.err != nil {
		s += "  error: " + r.err.Error()
	}
	return s
}
