package itest

// Faults the switch must ride out: a client killed while it sends, clients that come and
// go by the thousand, and a process out of file descriptors. The figures the tests log on
// "RELIABILITY:" lines go to RELIABILITY.md.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// soak scales a count up tenfold for `make soak` (VDE_SOAK=1).
func soak(n int) int {
	if os.Getenv("VDE_SOAK") != "" {
		return 10 * n
	}
	return n
}

// steady sends count unicast frames from a to b, one per millisecond, while b counts what
// arrives; it returns how many of them b got.
func steady(t *testing.T, a, b *peer, tag string, count int) (got int) {
	t.Helper()
	var seen atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		timeout := time.NewTimer(time.Duration(count)*time.Millisecond + 10*time.Second)
		defer timeout.Stop()
		for int(seen.Load()) < count {
			select {
			case f, ok := <-b.rx:
				if !ok {
					return
				}
				if strings.Contains(string(f), tag+"-") {
					seen.Add(1)
				}
			case <-timeout.C:
				return
			}
		}
	}()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := 0; i < count; i++ {
		<-tick.C
		a.send(t, ethFrame(b.MAC, a.MAC, fmt.Sprintf("%s-%d", tag, i)))
	}
	<-done
	return int(seen.Load())
}

// TestClientKilledMidTransfer: Debian's vde_plug, sending as fast as its stdin feeds it, is
// SIGKILLed. Its port is freed at once, and two other ports that exchange 1,000 frames/s
// meanwhile lose none.
func TestClientKilledMidTransfer(t *testing.T) {
	requireTools(t, sshDebianPlug)
	sw := startSwitch(t, implOurs)
	a, b := dialPeer(t, sw, 1, wire.DialOptions{}), dialPeer(t, sw, 2, wire.DialOptions{})
	exchange(t, a, b, "learn")

	plug := startProc(t, sshDebianPlug, sw.Dir)
	waitPlugged(t, sw, plug.PID())
	// The plug's frames are addressed to itself: the switch reads and drops every one, so
	// they load the switch without filling a's or b's queues.
	self := []byte{2, 0, 0, 0, 0, 0x99}
	fr := ethFrame(self, self, strings.Repeat("x", 1000))
	rec := append([]byte{byte(len(fr) >> 8), byte(len(fr))}, fr...)
	var fed atomic.Int64
	go func() {
		batch := []byte(strings.Repeat(string(rec), 32))
		for {
			if _, err := plug.Stdin.Write(batch); err != nil {
				return
			}
			fed.Add(32)
		}
	}()

	result := make(chan int, 1)
	ticks := soak(3000)
	go func() { result <- steady(t, a, b, "tick", ticks) }()
	time.Sleep(time.Second)
	killedAt := time.Now()
	if err := plug.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	freed := time.Duration(0)
	waitFor(t, 5*time.Second, "the killed client's port to be freed", func() (bool, string) {
		out := sw.Cmd(t, "port/print")
		if strings.Contains(out, fmt.Sprintf(" pid=%d\n", plug.PID())) {
			return false, out
		}
		freed = time.Since(killedAt)
		return true, ""
	})
	got := <-result
	if got != ticks {
		t.Errorf("a->b at 1,000 frames/s across the kill: %d of %d arrived", got, ticks)
	}
	t.Logf("RELIABILITY: client SIGKILLed mid-transfer (%d frames fed): port freed after %v (<= one console round trip); a->b 1000 frames/s: %d/%d delivered", fed.Load(), freed.Round(time.Millisecond), got, ticks)
}

// drain drops the frames p has received and the test has not read.
func drain(p *peer) {
	for {
		select {
		case <-p.rx:
		default:
			return
		}
	}
}

// procFDs counts a process's open descriptors.
func procFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// procRSS is a process's VmRSS in KiB.
func procRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// dialWithin dials the switch, giving up after d (a switch that never answers would hang
// the dialer in its recv).
func dialWithin(dir string, d time.Duration) (*wire.Conn, error) {
	type res struct {
		c   *wire.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := wire.Dial(dir, wire.DialOptions{Description: "itest-fd"})
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-time.After(d):
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, fmt.Errorf("no answer within %v", d)
	}
}

// bannerOrRefusal connects to a management socket and reads until the banner's prompt
// or the switch hangs up, whichever comes first; it fails only if neither comes within d.
func bannerOrRefusal(path string, d time.Duration) error {
	c, err := net.DialTimeout("unix", path, d)
	if err != nil {
		return nil // refused at connect: not waiting either
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(d))
	var got []byte
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if strings.Contains(string(got), "$ ") || err == io.EOF || errors.Is(err, syscall.ECONNRESET) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("after %q: %v", got, err)
		}
	}
}

// waitEndpoints waits until the switch lists n endpoints.
func waitEndpoints(t *testing.T, sw *Switch, n int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%d endpoints", n), func() (bool, string) {
		out := sw.Cmd(t, "port/print")
		return strings.Count(out, " -- endpoint ID ") == n, out
	})
}

// TestChurnRealProcess: 2,000 clients (20,000 in soak) connect, send a frame and hang up; afterwards the
// switch holds exactly the descriptors it held before.
func TestChurnRealProcess(t *testing.T) {
	sw := startSwitch(t, implOurs)
	a, b := dialPeer(t, sw, 1, wire.DialOptions{}), dialPeer(t, sw, 2, wire.DialOptions{})
	pid := sw.Proc.PID()
	sw.MustCmd(t, "showinfo") // the console session exists before the count
	cycle := func(n int) {
		for i := 0; i < n; i++ {
			c, err := dialWithin(sw.Dir, 10*time.Second)
			if err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
			c.WriteBatch([][]byte{ethFrame(broadcast, peerMAC(3+i%200), "churn")})
			c.Close()
		}
		waitEndpoints(t, sw, 2)
	}
	cycle(100)
	fds, rss := procFDs(t, pid), procRSS(t, pid)
	start := time.Now()
	cycles := soak(2000)
	cycle(cycles)
	took := time.Since(start)
	fdsAfter, rssAfter := procFDs(t, pid), procRSS(t, pid)
	if fdsAfter != fds {
		t.Errorf("switch descriptors after %d cycles: %d, before: %d", cycles, fdsAfter, fds)
	}
	drain(a)
	drain(b)
	exchange(t, a, b, "after-churn")
	t.Logf("RELIABILITY: %d connect/disconnect cycles in %v: descriptors %d -> %d, VmRSS %d -> %d KiB", cycles, took.Round(time.Millisecond), fds, fdsAfter, rss, rssAfter)
}

// TestOutOfDescriptors: a switch under a small `ulimit -n` takes clients until it runs out of
// descriptors; then a new client is refused at once (not left waiting) with a logged reason,
// the ports already connected go on forwarding, the console answers, and once clients
// leave a new one is served again.
// Two limits one apart: each client costs two descriptors (control and data), so one of
// them runs out in accept and the other in socket.
func TestOutOfDescriptors(t *testing.T) {
	requireTools(t, "sh")
	for _, limit := range []int{40, 41} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) { outOfDescriptors(t, limit) })
	}
}

func outOfDescriptors(t *testing.T, limit int) {
	tmp := testDir(t)
	dir, mgmt := filepath.Join(tmp, "sw"), filepath.Join(tmp, "mgmt")
	bin := switchBin(t, implOurs)
	sw := runSwitch(t, implOurs, tmp, dir, mgmt, "sh", []string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, limit), bin, "-s", dir, "-M", mgmt})
	sw.MustCmd(t, "showinfo")
	a, b := dialPeer(t, sw, 1, wire.DialOptions{}), dialPeer(t, sw, 2, wire.DialOptions{})
	var conns []*wire.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var refusal error
	for i := 0; i < limit && refusal == nil; i++ {
		c, err := dialWithin(dir, 10*time.Second)
		if err != nil {
			refusal = err
			break
		}
		conns = append(conns, c)
	}
	if refusal == nil {
		t.Fatalf("%d clients were all served under ulimit -n %d", limit, limit)
	}
	served := 2 + len(conns)
	if strings.Contains(refusal.Error(), "no answer within") {
		t.Errorf("out of descriptors, a new client was left waiting: %v", refusal)
	}
	// Refused again, and again at once, while out of descriptors.
	if c, err := dialWithin(dir, 10*time.Second); err == nil {
		conns = append(conns, c)
		t.Errorf("a second client past the limit was served")
	}
	// The log line travels through a pipe: it may come a moment after the refusal.
	waitFor(t, 5*time.Second, "a logged reason for the refusals", func() (bool, string) {
		log := sw.Proc.Stderr.String()
		return strings.Contains(strings.ToLower(log), "too many open files"), log
	})
	exchange(t, a, b, "while-full")
	sw.MustCmd(t, "showinfo")
	// A new console connection is answered or refused at once, never left waiting.
	if err := bannerOrRefusal(mgmt, 5*time.Second); err != nil {
		t.Errorf("a new mgmt connection while out of descriptors: %v", err)
	}

	for _, c := range conns[:3] {
		c.Close()
	}
	conns = conns[3:]
	waitEndpoints(t, sw, 2+len(conns))
	// Three clients' descriptors are free: the next two clients are served, the first of
	// them too (it must not be taken for one more to refuse).
	var late []*peer
	for i := 0; i < 2; i++ {
		c, err := dialWithin(dir, 10*time.Second)
		if err != nil {
			t.Fatalf("after three clients left, new client %d: %v", i+1, err)
		}
		conns = append(conns, c)
		p := &peer{Name: fmt.Sprintf("late%d", i), Conn: c, MAC: peerMAC(9 + i), rx: make(chan []byte, 1024)}
		go p.readLoop()
		late = append(late, p)
	}
	exchange(t, a, late[0], "resumed")
	exchange(t, late[1], b, "resumed-too")
	t.Logf("RELIABILITY: ulimit -n %d: %d clients served, the next refused at once (%v); connected ports forward, console answers; served again after 3 left; the switch logged %q", limit, served, refusal, strings.SplitN(sw.Proc.Stderr.String(), "\n", 2)[0])
	t.Logf("switch log:\n%s", sw.Proc.Stderr.String())
}
