package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

// Locally administered unicast MACs of the two ports, and the IEEE "local experimental"
// EtherType, so that no switch treats the frames as anything but opaque unicast.
var (
	macA = net.HardwareAddr{0x02, 0x76, 0x64, 0x65, 0x00, 0x0a}
	macB = net.HardwareAddr{0x02, 0x76, 0x64, 0x65, 0x00, 0x0b}
)

const etherType = 0x88b5

// makeFrame builds an Ethernet frame of size bytes (header included) from src to dst.
func makeFrame(dst, src net.HardwareAddr, size int) []byte {
	f := make([]byte, size)
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], etherType)
	for i := 14; i < size; i++ {
		f[i] = byte(i)
	}
	return f
}

// counter is a port's reader: it counts what arrives, split by whether the size is the
// one currently expected.
type counter struct {
	want    atomic.Int64 // expected frame size
	frames  atomic.Int64 // frames of the expected size
	bytes   atomic.Int64 // their bytes
	bad     atomic.Int64 // frames of any other size
	badSize atomic.Int64 // size of the last such frame
	errs    atomic.Int64 // read errors other than our own Close
	lastErr atomic.Pointer[error]
	closing atomic.Bool
	done    chan struct{}
}

func startCounter(c *wire.Datagram) *counter {
	k := &counter{done: make(chan struct{})}
	go k.run(c)
	return k
}

func (k *counter) run(c *wire.Datagram) {
	defer close(k.done)
	frames := make([][]byte, wire.BatchSize)
	sizes := make([]int, wire.BatchSize)
	for i := range frames {
		frames[i] = make([]byte, wire.MaxFrame)
	}
	for {
		n, err := c.ReadBatch(frames, sizes)
		if err != nil {
			if k.closing.Load() {
				return
			}
			// Not ours: remember it and go on, but never spin.
			k.errs.Add(1)
			k.lastErr.Store(&err)
			time.Sleep(time.Millisecond)
			continue
		}
		want := k.want.Load()
		var good, nbytes, bad int64
		badSize := int64(-1)
		for i := 0; i < n; i++ {
			if int64(sizes[i]) == want {
				good++
				nbytes += int64(sizes[i])
			} else {
				bad++
				badSize = int64(sizes[i])
			}
		}
		if good > 0 {
			k.frames.Add(good)
			k.bytes.Add(nbytes)
		}
		if bad > 0 {
			k.badSize.Store(badSize)
			k.bad.Add(bad)
		}
	}
}

func (k *counter) err() error {
	if p := k.lastErr.Load(); p != nil {
		return fmt.Errorf("%d read errors, last: %w", k.errs.Load(), *p)
	}
	return nil
}

// pair is two ports of one switch, A (the sender) and B (the receiver), each with a counter.
type pair struct {
	sw     *switchProc
	a, b   *wire.Conn
	rxA    *counter // stray frames at A (only during learning)
	rxB    *counter
	procs  []int // other processes whose CPU the window samples too (a cable's plugs)
	closed bool
}

// openPair dials ports A and B and makes the switch learn both MACs.
func openPair(ctx context.Context, sw *switchProc) (*pair, error) {
	p := &pair{sw: sw}
	var err error
	if p.a, err = wire.Dial(sw.ctlDir, wire.DialOptions{Description: "bench-A"}); err != nil {
		return nil, fmt.Errorf("dial port A: %w", err)
	}
	if p.b, err = wire.Dial(sw.ctlDir, wire.DialOptions{Description: "bench-B"}); err != nil {
		p.a.Close()
		return nil, fmt.Errorf("dial port B: %w", err)
	}
	p.rxA = startCounter(p.a.Datagram)
	p.rxB = startCounter(p.b.Datagram)
	if err := p.learn(ctx); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// learn sends a few frames each way so that A→B traffic is switched as known unicast.
// A speaks first (unknown B: flooded to B), then B answers (A known: unicast).
func (p *pair) learn(ctx context.Context) error {
	const size, count = 64, 4
	p.rxA.want.Store(size)
	p.rxB.want.Store(size)
	steps := []struct {
		from     *wire.Conn
		dst, src net.HardwareAddr
		rx       *counter
		desc     string
	}{
		{p.a, macB, macA, p.rxB, "A to B"},
		{p.b, macA, macB, p.rxA, "B to A"},
	}
	for _, s := range steps {
		f := makeFrame(s.dst, s.src, size)
		deadline := time.Now().Add(3 * time.Second)
		for s.rx.frames.Load() < count {
			if _, err := s.from.WriteBatch([][]byte{f}); err != nil {
				return fmt.Errorf("learning: send %s: %w", s.desc, err)
			}
			if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("learning: switch forwarded %d of the frames sent %s in 3s", s.rx.frames.Load(), s.desc)
			}
		}
	}
	return p.quiesce(ctx)
}

// quiesce waits until nothing has arrived at B for 50ms (at most 3s).
func (p *pair) quiesce(ctx context.Context) error {
	deadline := time.Now().Add(3 * time.Second)
	prev := p.rxB.frames.Load() + p.rxB.bad.Load()
	for time.Now().Before(deadline) {
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
		cur := p.rxB.frames.Load() + p.rxB.bad.Load()
		if cur == prev {
			return nil
		}
		prev = cur
	}
	return nil
}

func (p *pair) close() {
	if p.closed {
		return
	}
	p.closed = true
	p.rxA.closing.Store(true)
	p.rxB.closing.Store(true)
	p.a.Close()
	p.b.Close()
	for _, k := range []*counter{p.rxA, p.rxB} {
		select {
		case <-k.done:
		case <-time.After(2 * time.Second):
		}
	}
}

// result is one measurement: one frame size on one switch for one round.
type result struct {
	fps       float64 // frames/s of the right size received at B in the window
	sentFPS   float64 // frames/s the kernel accepted from A in the window
	bitRate   float64 // bits/s of frame data received at B in the window
	bad       int64   // frames of another size received at B in the window
	badSize   int64   // the size of the last of them
	truncated bool    // every frame arrived with another size than sent
	frames    int64   // frames of the right size received at B in the window
	cpu       cpuWindow
	procs     []procWindow // CPU of pair.procs in the window, in their order
	err       error
}

// cpuPerFrame is the switch's CPU time per frame received in the window, in ns (NaN if unknown).
func (r result) cpuPerFrame() float64 { return r.cpu.perFrameNS(r.frames) }

func (r result) ok() bool { return r.err == nil && !r.truncated }

// backoff is what the sender does when the kernel accepted fewer frames than offered.
type backoff string

const (
	// backoffPoll waits in poll(2) for POLLOUT on A's socket, at most 1ms.
	backoffPoll backoff = "poll"
	// backoffYield calls runtime.Gosched.
	backoffYield backoff = "yield"
	// backoffSleep sleeps 20µs.
	backoffSleep backoff = "sleep"
)

func parseBackoff(s string) (backoff, error) {
	switch b := backoff(s); b {
	case backoffPoll, backoffYield, backoffSleep:
		return b, nil
	}
	return "", fmt.Errorf("unknown -backoff %q (want poll, yield or sleep)", s)
}

// sender blasts one frame, in batches, from A until told to stop.
type sender struct {
	sent atomic.Int64 // frames the kernel accepted
	stop atomic.Bool
	err  error // valid after done
	done chan struct{}
}

func startSender(c *wire.Datagram, frame []byte, how backoff) *sender {
	s := &sender{done: make(chan struct{})}
	batch := make([][]byte, wire.BatchSize)
	for i := range batch {
		batch[i] = frame // sendmmsg copies; one buffer serves the whole batch
	}
	rc := c.RawConn()
	pfd := []unix.PollFd{{Events: unix.POLLOUT}}
	wait := func(fd uintptr) {
		pfd[0].Fd = int32(fd)
		unix.Poll(pfd, 1)
	}
	go func() {
		defer close(s.done)
		for !s.stop.Load() {
			n, err := c.WriteBatch(batch) // never waits: the backoff below decides
			s.sent.Add(int64(n))
			if err != nil {
				s.err = err
				return
			}
			if n == len(batch) {
				continue
			}
			switch how {
			case backoffPoll:
				rc.Control(wait)
			case backoffYield:
				runtime.Gosched()
			case backoffSleep:
				time.Sleep(20 * time.Microsecond)
			}
		}
	}()
	return s
}

func (s *sender) halt() error {
	s.stop.Store(true)
	select {
	case <-s.done:
		return s.err
	case <-time.After(5 * time.Second):
		return errors.New("sender did not stop within 5s")
	}
}

// measure sends size-byte frames A→B for warmup+dur and reports what B received during dur.
func (p *pair) measure(ctx context.Context, size int, dur, warmup time.Duration, how backoff) result {
	if err := p.quiesce(ctx); err != nil {
		return result{err: err}
	}
	rx := p.rxB
	rx.want.Store(int64(size))
	g0, b0 := rx.frames.Load(), rx.bad.Load()
	s := startSender(p.a.Datagram, makeFrame(macB, macA, size), how)
	stopped := false
	halt := func() error {
		if stopped {
			return nil
		}
		stopped = true
		return s.halt()
	}
	defer halt()

	if err := sleepCtx(ctx, warmup); err != nil {
		return result{err: err}
	}
	// A switch that cuts big frames delivers none of the right size: no need to go on.
	if rx.frames.Load() == g0 && rx.bad.Load() > b0 {
		return result{truncated: true, badSize: rx.badSize.Load()}
	}
	c0, x0 := sampleCPU(p.sw), sampleProcs(p.procs)
	t0, f0, s0, bad0, by0 := time.Now(), rx.frames.Load(), s.sent.Load(), rx.bad.Load(), rx.bytes.Load()
	err := sleepCtx(ctx, dur)
	t1, f1, s1, bad1, by1 := time.Now(), rx.frames.Load(), s.sent.Load(), rx.bad.Load(), rx.bytes.Load()
	c1, x1 := sampleCPU(p.sw), sampleProcs(p.procs)
	if err != nil {
		return result{err: err}
	}
	if err := halt(); err != nil {
		return result{err: fmt.Errorf("sender: %w", err)}
	}
	if gone, werr := p.sw.exited(); gone {
		return result{err: fmt.Errorf("switch exited during the measurement (%v); output:\n%s", werr, p.sw.out.String())}
	}
	dt := t1.Sub(t0).Seconds()
	r := result{
		fps:     float64(f1-f0) / dt,
		sentFPS: float64(s1-s0) / dt,
		bitRate: 8 * float64(by1-by0) / dt,
		bad:     bad1 - bad0,
		badSize: rx.badSize.Load(),
		frames:  f1 - f0,
		cpu:     cpuBetween(c0, c1),
		procs:   procsBetween(x0, x1),
	}
	if r.bad > 0 && f1 == f0 {
		r.truncated = true
	}
	if err := rx.err(); err != nil {
		r.err = fmt.Errorf("receiver at B: %w", err)
	}
	return r
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
