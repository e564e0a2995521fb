package main

// The batched-relay floor: a child process that does nothing but move datagrams from one
// unix socket to another with recvmmsg and sendmmsg (32 per call, waiting in poll(2) when
// its input is empty or its output full), fed and drained by the same load generator as
// the switches. Any switch pays at least one datagram receive and one send per forwarded
// frame; this relay pays nothing else, so its CPU time per frame is the least a switch can
// cost on this kernel, and the switches' CPU per frame read against it says how much is
// left to win. Measured in every round of the A→B table, right after the ceiling.

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

// relayChildArg as bench's only argument makes the process the relay: frames from fd 3 go
// to fd 4 until either fails or the parent dies.
const relayChildArg = "-relay-child"

const relayBatch = 32

// runRelayChild is the relay process's main.
func runRelayChild() int {
	runtime.LockOSThread()
	const in, out = 3, 4
	hdrs := make([]unix.Mmsghdr, relayBatch)
	iovs := make([]unix.Iovec, relayBatch)
	bufs := make([][]byte, relayBatch)
	for i := range hdrs {
		bufs[i] = make([]byte, wire.MaxFrame+1)
		iovs[i].Base = &bufs[i][0]
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.Iovlen = 1
	}
	mmsg := func(nr uintptr, fd int, h []unix.Mmsghdr, flags int) (int, syscall.Errno) {
		r, _, e := unix.Syscall6(nr, uintptr(fd), uintptr(unsafe.Pointer(&h[0])), uintptr(len(h)), uintptr(flags), 0, 0)
		return int(r), e
	}
	// wait polls fd for ev, a second at a time, and ends the relay when the parent is gone.
	wait := func(fd int, ev int16) bool {
		for {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: ev}}
			n, err := unix.Poll(pfd, 1000)
			if err == unix.EINTR || (err == nil && n == 0 && os.Getppid() != 1) {
				continue
			}
			return err == nil && n > 0
		}
	}
	for {
		for i := range hdrs {
			iovs[i].SetLen(len(bufs[i]))
		}
		n, e := mmsg(unix.SYS_RECVMMSG, in, hdrs, unix.MSG_DONTWAIT)
		if e == unix.EAGAIN {
			if !wait(in, unix.POLLIN) {
				return 0
			}
			continue
		}
		if e != 0 || n <= 0 {
			return 1
		}
		for i := 0; i < n; i++ {
			iovs[i].SetLen(int(hdrs[i].Len))
		}
		for sent := 0; sent < n; {
			m, e := mmsg(unix.SYS_SENDMMSG, out, hdrs[sent:n], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
			switch {
			case e == unix.EAGAIN:
				if !wait(out, unix.POLLOUT) {
					return 0
				}
			case e != 0:
				return 1
			default:
				sent += m
			}
		}
	}
}

// measureRelay runs one A→B flow of size-byte frames through a fresh relay process.
func measureRelay(ctx context.Context, cfg *config, size int) flowResult {
	self, err := os.Executable()
	if err != nil {
		return flowResult{err: fmt.Errorf("relay: own executable: %w", err)}
	}
	pair := func() (gen *wire.Datagram, relay *os.File, err error) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("relay: socketpair(AF_UNIX, SOCK_DGRAM): %w", err)
		}
		if gen, err = wire.NewDatagram(fds[0], "relay-gen"); err != nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
			return nil, nil, err
		}
		return gen, os.NewFile(uintptr(fds[1]), "relay-side"), nil
	}
	a, ain, err := pair()
	if err != nil {
		return flowResult{err: err}
	}
	defer a.Close()
	b, bout, err := pair()
	if err != nil {
		ain.Close()
		return flowResult{err: err}
	}
	defer b.Close()
	rx := startCounter(b)
	defer func() {
		rx.closing.Store(true)
		b.Close()
		select {
		case <-rx.done:
		case <-time.After(2 * time.Second):
		}
	}()

	cmd := exec.Command(self, relayChildArg)
	cmd.ExtraFiles = []*os.File{ain, bout}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	sp := &switchProc{bin: "relay", out: &tailBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = sp.out, sp.out
	err = cmd.Start()
	ain.Close()
	bout.Close()
	if err != nil {
		return flowResult{err: fmt.Errorf("relay: start %s: %w", self, err)}
	}
	sp.watch(cmd)
	defer func() {
		cmd.Process.Kill()
		<-sp.done
	}()
	return measureFlow(ctx, cfg, sp, []flowSpec{{a, makeFrame(portMAC(1), portMAC(0), size)}}, []*counter{rx}, size)
}

// relayRow is the relay floor of the A→B rows of one frame size.
type relayRow struct {
	size int
	cpu  []float64 // relay CPU ns per frame, per round
	kern []float64 // share of that CPU spent in the kernel (%), per round
	fps  []float64 // frames/s through the relay, per round
}

// relayRound measures the relay floor of every A→B frame size for one round.
func (s *suite) relayRound(ctx context.Context, round int) error {
	for _, rr := range s.relay {
		r := measureRelay(ctx, s.cfg, rr.size)
		if r.err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Printf("round %d/%d  %-6s %5d B  %s\n", round, s.cfg.rounds, "relay", rr.size, describeFlow(r))
		cpu, kern, fps := math.NaN(), math.NaN(), math.NaN()
		if r.err == nil {
			cpu, kern, fps = r.cpu.perFrameNS(r.frames), r.cpu.kernelPercent(), r.fps
		}
		rr.cpu = append(rr.cpu, cpu)
		rr.kern = append(rr.kern, kern)
		rr.fps = append(rr.fps, fps)
	}
	return nil
}

const (
	headRelayCPU  = "relay CPU per frame (ns) min / median / max"
	headRelayFPS  = "relay frames/s median"
	headRelayKern = "relay CPU in the kernel (%) median"
	headOursRelay = "ours/relay CPU: per-round median | of medians"
	headDebRelay  = "debian/relay CPU: per-round median | of medians"
)

// relayCells are the rows of the relay-floor table.
func (s *suite) relayCells() [][]string {
	var rows [][]string
	for _, rr := range s.relay {
		st := fstatsOf(rr.cpu)
		cell := "failed"
		if st.n > 0 {
			cell = fmt.Sprintf("%.0f / %.0f / %.0f", st.min, st.median, st.max)
		}
		row := []string{fmt.Sprintf("A→B %d B", rr.size), cell, thousands(fstatsOf(rr.fps).median), fmt.Sprintf("%.1f", fstatsOf(rr.kern).median)}
		for _, name := range []string{"ours", "debian"} {
			mor, rom := ratios(s.m[fmt.Sprintf("cpu/uni/%d", rr.size)].vals[name], rr.cpu)
			row = append(row, ratio(mor)+" | "+ratio(rom))
		}
		rows = append(rows, row)
	}
	return rows
}

func (s *suite) printRelay(w io.Writer) {
	fmt.Fprintln(w, "batched relay (recvmmsg -> sendmmsg, nothing else), same load generator: the floor of a switch's CPU per frame")
	printRows(w, []string{"traffic", headRelayCPU, headRelayFPS, headRelayKern, headOursRelay, headDebRelay}, s.relayCells())
}

func (s *suite) relayMarkdown(b *strings.Builder) {
	b.WriteString("\n## Batched relay floor\n\n")
	b.WriteString("A child process that only moves datagrams from one unix socket to another with `recvmmsg` and " +
		"`sendmmsg` (32 per call, `poll(2)` when its input is empty or its output full), between the same load " +
		"generator's sender and counter, measured in each round right after the ceiling. A switch pays at least " +
		"this receive and send per frame, so the relay's CPU time per frame (from its /proc/PID/stat, like the " +
		"switches') is the least any switch can cost here, and nearly all of it is the kernel's; the ratio columns are each switch's CPU per frame " +
		"(the A→B rows below) over it.\n\n")
	mdTable(b, []string{"traffic", headRelayCPU, headRelayFPS, headRelayKern, headOursRelay, headDebRelay}, "|---|---:|---:|---:|---:|---:|", s.relayCells())
}
