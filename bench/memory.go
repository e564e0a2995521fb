package main

// Memory of a switch with many ports: VmRSS of a fresh switch (`-n` sized for them) idle,
// then with every port attached after some frames flowed: one broadcast from each port (so
// the switch learns every MAC and writes to every port) and a burst of unicast between
// neighbours.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// rssResult is one switch's memory: idle and with the ports attached, in KiB.
type rssResult struct {
	idle, full int64
	ports      int
	fds        int // descriptors the switch had open with the ports attached
	err        error
}

func (r rssResult) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	return fmt.Sprintf("VmRSS %.1f MiB idle, %.1f MiB with %d ports attached (%d fds open in the switch)", float64(r.idle)/1024, float64(r.full)/1024, r.ports, r.fds)
}

// drain reads and discards what arrives on a port, with small buffers: 256 full counters
// would cost the benchmark 75 MB.
type drain struct {
	frames  atomic.Int64
	closing atomic.Bool
	done    chan struct{}
}

func startDrain(d *wire.Datagram) *drain {
	k := &drain{done: make(chan struct{})}
	go func() {
		defer close(k.done)
		frames := make([][]byte, 4)
		sizes := make([]int, 4)
		for i := range frames {
			frames[i] = make([]byte, 2048)
		}
		for {
			n, err := d.ReadBatch(frames, sizes)
			if err != nil {
				if k.closing.Load() {
					return
				}
				time.Sleep(time.Millisecond)
				continue
			}
			k.frames.Add(int64(n))
		}
	}()
	return k
}

// rssOnce starts a switch with room for n ports, reads its RSS, attaches n ports, makes
// frames flow, waits a little and reads its RSS again.
func rssOnce(ctx context.Context, im impl, n int) (res rssResult) {
	res.ports = n
	// `-n` is the port count option of both switches (Debian's default is 32).
	sw, err := startSwitchCmd(ctx, im.path, nil, false, append(slices.Clone(im.args), "-n", strconv.Itoa(max(300, n+n/8)))...)
	if err != nil {
		return rssResult{err: err}
	}
	defer sw.stop()
	pid := sw.cmd.Process.Pid
	if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
		return rssResult{err: err}
	}
	if res.idle, err = rssKiB(pid); err != nil {
		return rssResult{err: err}
	}

	var conns []*wire.Conn
	var drains []*drain
	defer func() {
		for _, k := range drains {
			k.closing.Store(true)
		}
		for _, c := range conns {
			c.Close()
		}
		for _, k := range drains {
			select {
			case <-k.done:
			case <-time.After(2 * time.Second):
			}
		}
	}()
	for i := range n {
		c, err := wire.Dial(sw.ctlDir, wire.DialOptions{Description: fmt.Sprintf("bench-rss-%d", i)})
		if err != nil {
			return rssResult{err: fmt.Errorf("dial port %d of %d: %w", i+1, n, err)}
		}
		conns = append(conns, c)
		drains = append(drains, startDrain(c.Datagram))
		if ctx.Err() != nil {
			return rssResult{err: ctx.Err()}
		}
	}
	// One broadcast from each port: n-1 copies each.
	for i, c := range conns {
		if _, err := c.WriteBatch([][]byte{makeFrame(broadcastMAC, portMAC(i), 64)}); err != nil {
			return rssResult{err: fmt.Errorf("broadcast from port %d: %w", i, err)}
		}
		if err := sleepCtx(ctx, 200*time.Microsecond); err != nil {
			return rssResult{err: err}
		}
	}
	// A burst of known unicast between neighbours, 64 B and 1500 B.
	for i, c := range conns {
		batch := make([][]byte, 0, 16)
		for _, size := range []int{64, 1500} {
			f := makeFrame(portMAC(i^1), portMAC(i), size)
			for range 8 {
				batch = append(batch, f)
			}
		}
		if _, err := c.WriteBatch(batch); err != nil {
			return rssResult{err: fmt.Errorf("unicast from port %d: %w", i, err)}
		}
	}
	if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
		return rssResult{err: err}
	}
	var got int64
	for _, k := range drains {
		got += k.frames.Load()
	}
	if got == 0 {
		return rssResult{err: fmt.Errorf("no frame arrived at any of the %d ports", n)}
	}
	if gone, werr := sw.exited(); gone {
		return rssResult{err: fmt.Errorf("switch exited (%v); output:\n%s", werr, sw.out.String())}
	}
	if res.full, err = rssKiB(pid); err != nil {
		return rssResult{err: err}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		res.fds = len(ents)
	}
	return res
}
