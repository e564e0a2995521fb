package itest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// portsWithoutCounters is port/print without its counters, which frames change.
func portsWithoutCounters(t testing.TB, sw *Switch) string {
	t.Helper()
	var keep []string
	for _, l := range sw.MustCmd(t, "port/print") {
		if !strings.Contains(l, "pkts") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestUpgradeInPlace: our switch with three wire clients exchanging frames is upgraded
// three times in a row (issue 22): on SIGUSR2 to the same binary, by the console's
// `upgrade PATH` to a build with another version string, and to a binary that exits at
// once, which the switch refuses before handing anything over. After each: the same pid,
// the same port/print, frames through without any client reconnecting, no descriptor
// more. The pause (from the command to the first frame through after it) is logged.
func TestUpgradeInPlace(t *testing.T) {
	oursOnly(t, "Debian's switch ignores SIGUSR2 and has no upgrade command")
	sw := startSwitch(t, implOurs)
	pid := sw.Proc.PID()
	peers := []*peer{
		dialPeer(t, sw, 1, wire.DialOptions{Port: 1}),
		dialPeer(t, sw, 2, wire.DialOptions{Port: 2}),
		dialPeer(t, sw, 3, wire.DialOptions{Port: 3}),
	}
	exchange := func(tag string) {
		t.Helper()
		for i, from := range peers {
			to := peers[(i+1)%len(peers)]
			tg := fmt.Sprintf("%s %s->%s", tag, from.Name, to.Name)
			from.send(t, ethFrame(to.MAC, from.MAC, tg))
			to.recv(t, tg)
		}
	}
	exchange("before")
	fdCount := func() int { return procFDs(t, pid) }
	endpoints := func() string { return portsWithoutCounters(t, sw) }
	ports := endpoints()
	fds := fdCount()

	// A build with another version string, and a binary that exits at once.
	newBin := buildSwitchVariant(t, "..", "9.9.9-test")
	failing := filepath.Join(testDir(t), "fails")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	upgrade := func(name string, trigger func() string, wantRefused bool) {
		t.Helper()
		start := time.Now()
		reply := trigger()
		// The first frame through after the command: sent again every 10 ms until one
		// arrives (the later copies are discarded by the next recv).
		tag := name + " first"
		var pause time.Duration
		for deadline := time.Now().Add(recvTimeout); ; {
			peers[0].send(t, ethFrame(peers[1].MAC, peers[0].MAC, tag))
			if _, ok := peers[1].tryRecv(tag, 10*time.Millisecond); ok {
				pause = time.Since(start)
				break
			}
			if time.Now().After(deadline) {
				sw.Proc.log(t)
				t.Fatalf("%s: no frame through within %v", name, recvTimeout)
			}
		}
		t.Logf("%s: first frame through %v after the command (reply %q)", name, pause.Round(time.Microsecond), reply)
		if sw.Proc.Exited() {
			sw.Proc.log(t)
			t.Fatalf("%s: the switch exited: %v", name, sw.Proc.waitErr)
		}
		if sw.Proc.PID() != pid {
			t.Fatalf("%s: pid %d, was %d", name, sw.Proc.PID(), pid)
		}
		if !wantRefused {
			forgetSession(sw) // an exec closed it
		}
		if got := endpoints(); got != ports {
			t.Fatalf("%s: port/print:\n%s\nbefore:\n%s", name, got, ports)
		}
		exchange(name)
		// The exec'd image has the same descriptors once its start-up is over.
		waitFor(t, startTimeout, fmt.Sprintf("%s: at most %d descriptors", name, fds), func() (bool, string) {
			n := fdCount()
			return n <= fds, fmt.Sprintf("%d open", n)
		})
	}

	upgrade("SIGUSR2", func() string {
		if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		return ""
	}, false)
	command := func(path string) func() string {
		return func() string {
			m := dialMgmt(t, sw.Mgmt)
			defer m.Close()
			// On success the exec closes the session: EOF, no status line.
			raw, _ := m.DoRaw([]byte("upgrade " + path + "\n"))
			return raw
		}
	}
	upgrade("upgrade to 9.9.9-test", command(newBin), false)
	if info := sw.Cmd(t, "showinfo"); !strings.Contains(info, "V.9.9.9-test") {
		t.Fatalf("showinfo after the upgrade to 9.9.9-test:\n%s", info)
	}
	upgrade("upgrade to a binary that exits", func() string {
		raw := command(failing)()
		if parseResponse(raw).Code == 1000 {
			t.Fatalf("upgrade to %s: %q, want a refusal", failing, raw)
		}
		return raw
	}, true)
	if info := sw.Cmd(t, "showinfo"); !strings.Contains(info, "V.9.9.9-test") {
		t.Fatalf("showinfo after the failed upgrade:\n%s", info)
	}
	t.Logf("the switch's log:\n%s", sw.Proc.Stderr.String())
}

// TestUpgradeInPlaceTAP: a switch started with -t is upgraded on SIGUSR2 (issue 22): the
// TAP's descriptor passes to the new image, which reads and writes the same interface, so
// that a host on the switch pings the TAP's address before and after, through the same
// port, with the same pid.
func TestUpgradeInPlaceTAP(t *testing.T) {
	oursOnly(t, "Debian's switch ignores SIGUSR2")
	requireTools(t, "ping")
	sw, swHost := switchTapHost(t, implOurs, "10.0.22.1/24")
	h := plug2tapHost(t, implOurs, sw, "10.0.22.2/24")
	waitPing(t, h.NS, swHost.Addr)
	pid := sw.Proc.PID()
	before := sw.Cmd(t, "port/print")
	upgradeBySignal(t, sw, 1)
	waitPing(t, h.NS, swHost.Addr)
	waitPing(t, swHost.NS, h.Addr)
	if sw.Proc.PID() != pid {
		t.Fatalf("pid %d, was %d", sw.Proc.PID(), pid)
	}
	tuntap := regexp.MustCompile(`(?m)^  -- endpoint ID \d+ module tuntap +: .*$`)
	if got, want := tuntap.FindString(sw.Cmd(t, "port/print")), tuntap.FindString(before); got == "" || got != want {
		t.Fatalf("the TAP's endpoint after the upgrade: %q, before %q", got, want)
	}
}
