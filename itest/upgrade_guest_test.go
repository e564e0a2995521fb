package itest

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// upgradesUnderLoad is how many in-place upgrades TestUpgradeUnderGuests makes.
const upgradesUnderLoad = 20

var upgradePause = regexp.MustCompile(`serves the handed-over switch, ([0-9.]+) ms after the old one stopped reading`)

var pingReply = regexp.MustCompile(`^\[(\d+\.\d+)\] \d+ bytes from .* icmp_seq=(\d+)`)

// TestUpgradeUnderGuests: a QEMU guest (-netdev vde, libvdeplug's protocol) pinged every
// 10 ms from a host on Debian's vde_plug tap://, and a TCP stream between two more such
// hosts, while our switch upgrades itself in place 20 times (SIGUSR2). Debian's plugs and
// QEMU never reconnect: they must not notice. The guest loses at most one ping per
// upgrade, the stream never resets, the pid, the endpoints and the descriptor count stay.
// The pauses are measured as the longest gaps between ping replies and logged.
func TestUpgradeUnderGuests(t *testing.T) {
	oursOnly(t, "Debian's switch ignores SIGUSR2")
	requireTools(t, "qemu-system-x86_64", "iperf3", "ping")
	tinyGuest(t)
	sw := startSwitch(t, implOurs)
	pid := sw.Proc.PID()
	pinger := plugTap(t, sw, 0, "10.0.6.1/24")
	src := plugTap(t, sw, 0, "10.0.6.2/24")
	dst := plugTap(t, sw, 0, "10.0.6.3/24")
	guest := nativeGuest(t, "guest1", guestMAC1, sw.Dir, guestAppend("vde.ip=10.0.6.101/24", "vde.hold=1"))
	waitFor(t, guestTimeout, "the guest's scenario", func() (bool, string) {
		if guest.Proc.Exited() {
			t.Fatalf("QEMU exited: %v\n%s", guest.Proc.waitErr, tail(guest.Console(), 3000))
		}
		return strings.Contains(guest.Console(), "VDE-GUEST-DONE"), tail(guest.Console(), 500)
	})
	waitPing(t, pinger.NS, "10.0.6.101")
	waitPing(t, src.NS, dst.Addr)

	endpoints := func() string { return portsWithoutCounters(t, sw) }
	fdCount := func() int { return procFDs(t, pid) }
	ports, fds := endpoints(), fdCount()
	forgetSession(sw) // an exec ends the shared mgmt session

	server := startProc(t, "ip", "netns", "exec", dst.NS, "iperf3", "-s", "-1", "-B", dst.Addr, "-p", "5301")
	server.Name = "iperf3-server"
	time.Sleep(300 * time.Millisecond) // its listening socket (a client retries below anyway)
	streamSecs := 4 + upgradesUnderLoad/2
	client := startProc(t, "ip", "netns", "exec", src.NS, "iperf3", "-c", dst.Addr, "-p", "5301",
		"-t", strconv.Itoa(streamSecs), "--connect-timeout", "5000")
	client.Name = "iperf3-client"
	ping := startProc(t, "ip", "netns", "exec", pinger.NS, "ping", "-n", "-D", "-i", "0.01", "-W", "1", "10.0.6.101")
	ping.Name = "ping"

	time.Sleep(time.Second)
	// Each SIGUSR2 after the last upgrade served: one that comes while an upgrade is
	// under way is ignored (the exec in progress is that upgrade).
	for i := 1; i <= upgradesUnderLoad; i++ {
		upgradeInPlace(t, sw, i)
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	ping.Cmd.Process.Signal(syscall.SIGINT)
	ping.Wait(10 * time.Second)
	if err := client.Wait(time.Duration(streamSecs+30) * time.Second); err != nil {
		t.Fatalf("the TCP stream failed across the upgrades: %v\n%s%s", err, client.Stdout.String(), client.Stderr.String())
	}

	// Lost pings and the gaps between replies.
	var seqs []int
	var times []float64
	for _, l := range strings.Split(ping.Stdout.String(), "\n") {
		if m := pingReply.FindStringSubmatch(l); m != nil {
			ts, _ := strconv.ParseFloat(m[1], 64)
			seq, _ := strconv.Atoi(m[2])
			seqs, times = append(seqs, seq), append(times, ts)
		}
	}
	if len(seqs) < 100 {
		t.Fatalf("%d ping replies:\n%s", len(seqs), tail(ping.Stdout.String(), 2000))
	}
	slices.Sort(seqs)
	sent := seqs[len(seqs)-1] // the last ones answered; what came after is in flight
	lost := sent - len(slices.Compact(seqs))
	var gaps []float64
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, (times[i]-times[i-1])*1000)
	}
	slices.Sort(gaps)
	top := gaps[max(0, len(gaps)-upgradesUnderLoad):]
	t.Logf("%d upgrades: %d pings answered of %d sent, %d lost; the %d longest gaps between replies (ms, one per upgrade at most): median %.1f, max %.1f; all: %.1f",
		upgradesUnderLoad, len(seqs), sent, lost, len(top), top[len(top)/2], top[len(top)-1], top)
	t.Logf("TCP stream across the upgrades:\n%s", tail(client.Stdout.String(), 800))
	var pauses []float64 // what each new image logged: from the old one's stop to serving
	for _, m := range upgradePause.FindAllStringSubmatch(sw.Proc.Stderr.String(), -1) {
		ms, _ := strconv.ParseFloat(m[1], 64)
		pauses = append(pauses, ms)
	}
	if len(pauses) != upgradesUnderLoad {
		t.Errorf("%d upgrades logged their pause, want %d:\n%s", len(pauses), upgradesUnderLoad, sw.Proc.Stderr.String())
	} else {
		slices.Sort(pauses)
		t.Logf("the switch did not read for (ms, sorted): median %.1f, max %.1f: %.1f", pauses[len(pauses)/2], pauses[len(pauses)-1], pauses)
	}
	if lost > upgradesUnderLoad {
		t.Errorf("%d pings lost in %d upgrades, want at most one per upgrade", lost, upgradesUnderLoad)
	}
	if sw.Proc.PID() != pid || sw.Proc.Exited() {
		t.Fatalf("the switch is not the same process")
	}
	if got := endpoints(); got != ports {
		t.Errorf("port/print after the upgrades:\n%s\nbefore:\n%s", got, ports)
	}
	if n := fdCount(); n > fds {
		t.Errorf("%d descriptors after the upgrades, %d before", n, fds)
	}
	if guest.Proc.Exited() {
		t.Errorf("QEMU exited: %v", guest.Proc.waitErr)
	}
}
