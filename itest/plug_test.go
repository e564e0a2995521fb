package itest

// vde_plug: ours and Debian's on both switches, in every form that joins two networks:
// a cable between two switches, a stream over a command's stdio (so our stream framing
// meets Debian's in both directions), cmd://, udp://, null://; and how a plug ends.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// crossTraffic checks that peers on two switches joined by some cable reach each other
// both ways, with broadcast and unicast.
func crossTraffic(t *testing.T, a, b *Switch) {
	t.Helper()
	pa := dialPeer(t, a, 11, wire.DialOptions{})
	pb := dialPeer(t, b, 12, wire.DialOptions{})
	// The cable may still be coming up: retry the first broadcast.
	waitFor(t, startTimeout, "first frame across the cable", func() (bool, string) {
		pa.send(t, ethFrame(broadcast, pa.MAC, "hello-b"))
		_, ok := pb.tryRecv("hello-b", 200*time.Millisecond)
		return ok, ""
	})
	for i := 0; i < 20; i++ {
		tag := fmt.Sprintf("to-a-%d", i)
		pb.send(t, ethFrame(pa.MAC, pb.MAC, tag))
		pa.recv(t, tag)
		tag = fmt.Sprintf("to-b-%d", i)
		pa.send(t, ethFrame(pb.MAC, pa.MAC, tag))
		pb.recv(t, tag)
	}
	big := strings.Repeat("J", 1400)
	pa.send(t, ethFrame(pb.MAC, pa.MAC, big))
	if f := pb.recv(t, big); len(f) != 14+len(big) {
		t.Fatalf("1414-byte frame arrived as %d bytes", len(f))
	}
}

func TestPlugCableBetweenSwitches(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	plug := appletPath(t, "vde_plug")
	a, b := startSwitch(t, implOurs), startSwitch(t, implDebian)
	p := startProc(t, plug, "vde://"+a.Dir, b.Dir)
	waitPlugged(t, a, p.PID())
	crossTraffic(t, a, b)
	if out := a.Cmd(t, "port/print"); !strings.Contains(out, fmt.Sprintf("vdeplug: user=root pid=%d", p.PID())) {
		t.Fatalf("description:\n%s", out)
	}
}

// The stream form, with our plug on one end and Debian's on the other, both ways round:
// the 2-byte framing must match byte for byte.
func TestPlugStreamInteroperates(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	requireTools(t, "vde_plug")
	plug := appletPath(t, "vde_plug")
	for _, tc := range []struct{ name, left, right string }{
		{"ours=debian", plug, "vde_plug"},
		{"debian=ours", "vde_plug", plug},
		{"ours=ours", plug, plug},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := startSwitch(t, implOurs), startSwitch(t, implDebian)
			p := startProc(t, tc.left, a.Dir, "=", tc.right, b.Dir)
			waitPlugged(t, a, p.PID())
			crossTraffic(t, a, b)
		})
	}
}

func TestPlugCmdScheme(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	requireTools(t, "vde_plug")
	plug := appletPath(t, "vde_plug")
	a, b := startSwitch(t, implOurs), startSwitch(t, implOurs)
	p := startProc(t, plug, a.Dir, "cmd://vde_plug "+b.Dir)
	waitPlugged(t, a, p.PID())
	crossTraffic(t, a, b)
}

func TestPlugUDPCable(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	requireTools(t, "vde_plug")
	plug := appletPath(t, "vde_plug")
	for _, other := range []struct{ name, bin string }{{"ours", plug}, {"debian", "vde_plug"}} {
		t.Run("other-end-"+other.name, func(t *testing.T) {
			pa, pb := freeUDPPort(t), freeUDPPort(t)
			a, b := startSwitch(t, implOurs), startSwitch(t, implOurs)
			p1 := startProc(t, plug, a.Dir, fmt.Sprintf("udp://127.0.0.1:%d->127.0.0.1:%d", pa, pb))
			p2 := startProc(t, other.bin, b.Dir, fmt.Sprintf("udp://127.0.0.1:%d->127.0.0.1:%d", pb, pa))
			waitPlugged(t, a, p1.PID())
			waitPlugged(t, b, p2.PID())
			crossTraffic(t, a, b)
			// And hosts ping across the cable.
			requireTools(t, "ping")
			subnet := map[string]string{"ours": "10.216.1.", "debian": "10.216.2."}[other.name]
			ha := plugTapWith(t, plug, a, 0, subnet+"1/24")
			hb := plugTap(t, b, 0, subnet+"2/24")
			waitPing(t, ha.NS, hb.Addr)
			waitPing(t, hb.NS, ha.Addr)
		})
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func TestPlugNullSinks(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	plug := appletPath(t, "vde_plug")
	a := startSwitch(t, implOurs)
	p := startProc(t, plug, a.Dir, "null://")
	waitPlugged(t, a, p.PID())
	pa := dialPeer(t, a, 21, wire.DialOptions{})
	for i := 0; i < 100; i++ {
		pa.send(t, ethFrame(broadcast, pa.MAC, "into the void"))
	}
	out := a.Cmd(t, "port/print")
	if p.Exited() || !strings.Contains(out, fmt.Sprintf("pid=%d", p.PID())) {
		t.Fatalf("null plug gone:\n%s", out)
	}
}

// A switch that accepts but never answers (as Debian's does for a refused port): our plug
// gives up with one line and status 1 instead of hanging.
func TestPlugGivesUpOnSilentSwitch(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	plug := appletPath(t, "vde_plug")
	dir := filepath.Join(testDir(t), "silent.ctl")
	if err := os.Mkdir(dir, 0700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "ctl"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	p := startProc(t, plug, dir)
	if err := p.Wait(15 * time.Second); p.ExitCode() != 1 {
		t.Fatalf("exit %d (%v), want 1", p.ExitCode(), err)
	}
	stderr := strings.TrimSpace(p.Stderr.String())
	if strings.Count(stderr, "\n") != 0 || !strings.HasPrefix(stderr, "vde_open "+dir+": ") {
		t.Fatalf("stderr %q", stderr)
	}
}

// When the switch goes away, the plug ends (status 0, like Debian's) and says nothing
// alarming; when the plug goes away, the switch frees its port.
func TestPlugEnds(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	plug := appletPath(t, "vde_plug")
	a, b := startSwitch(t, implOurs), startSwitch(t, implOurs)
	p := startProc(t, plug, a.Dir, b.Dir)
	waitPlugged(t, a, p.PID())
	b.Proc.Stop()
	if err := p.Wait(stopTimeout); err != nil || p.ExitCode() != 0 {
		t.Fatalf("plug after its switch died: exit %d, %v\n%s", p.ExitCode(), err, p.Stderr.String())
	}
	a.WaitCmd(t, "port/allprint", "INACTIVE")

	q := startProc(t, plug, a.Dir, "=", "cat")
	waitPlugged(t, a, q.PID())
	q.Stop()
	waitFor(t, stopTimeout, "port freed after the plug was killed", func() (bool, string) {
		out := a.Cmd(t, "port/print")
		return !strings.Contains(out, fmt.Sprintf("pid=%d", q.PID())), out
	})
}

// vde_plug -d returns once the daemon is attached; -p names it and goes with it.
func TestPlugDaemon(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	plug := appletPath(t, "vde_plug")
	a, b := startSwitch(t, implOurs), startSwitch(t, implDebian)
	pidfile := filepath.Join(testDir(t), "plug.pid")
	run(t, plug, "-d", "-p", pidfile, a.Dir, b.Dir)
	data, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("pid file after -d returned: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pid file %q", data)
	}
	proc, _ := os.FindProcess(pid)
	t.Cleanup(func() { proc.Kill() })
	if out := a.Cmd(t, "port/print"); !strings.Contains(out, fmt.Sprintf("pid=%d", pid)) {
		t.Fatalf("daemon %d not attached when -d returned:\n%s", pid, out)
	}
	crossTraffic(t, a, b)
	proc.Signal(syscall.SIGTERM)
	waitFor(t, stopTimeout, "pid file removed", func() (bool, string) {
		_, err := os.Stat(pidfile)
		return os.IsNotExist(err), ""
	})
}

// Our vde_plug on Debian's switch and Debian's on ours: TAP hosts ping and move 20 MB.
func TestPlugTAPHosts(t *testing.T) {
	t.Parallel()
	requireTools(t, "socat", "ping", "vde_plug")
	plug := appletPath(t, "vde_plug")
	for i, sw := range []*Switch{startSwitch(t, implDebian), startSwitch(t, implOurs)} {
		net := fmt.Sprintf("10.214.%d.", i+1)
		ours := plugTapWith(t, plug, sw, 0, net+"1/24")
		theirs := plugTap(t, sw, 0, net+"2/24")
		waitPing(t, ours.NS, theirs.Addr)
		waitPing(t, theirs.NS, ours.Addr)
		moveFile(t, ours, theirs, 20<<20)
		moveFile(t, theirs, ours, 20<<20)
	}
}
