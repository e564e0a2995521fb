package itest

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// vhostUpgrades is how many in-place upgrades the vhost-user upgrade tests make.
const vhostUpgrades = 3

// upgradeInPlace sends the switch SIGUSR2 and waits until the new image logs that it
// serves; the shared mgmt session, which the exec ends, is dropped first.
func upgradeInPlace(t *testing.T, sw *Switch, n int) {
	t.Helper()
	sw.mu.Lock()
	if sw.session != nil {
		sw.session.Close()
		sw.session = nil
	}
	sw.mu.Unlock()
	served := func() int { return len(upgradePause.FindAllString(sw.Proc.Stderr.String(), -1)) }
	before := served()
	if err := syscall.Kill(sw.Proc.PID(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, fmt.Sprintf("upgrade %d to serve", n), func() (bool, string) {
		if sw.Proc.Exited() {
			sw.Proc.log(t)
			t.Fatalf("upgrade %d: the switch exited: %v", n, sw.Proc.waitErr)
		}
		return served() > before, tail(sw.Proc.Stderr.String(), 1500)
	})
}

// TestUpgradeVhostUserGuest: a QEMU guest (TCG) on a vhost-user port, pinged every 10 ms
// from a host on Debian's vde_plug tap://, while our switch upgrades itself in place three
// times (SIGUSR2). QEMU's vhost-user connection, its guest memory and its rings cross each
// upgrade: the guest loses at most one ping per upgrade and QEMU never reconnects (a
// reconnect would be a new port, with a new endpoint in port/print); the pid, the
// endpoints and the descriptor count stay.
func TestUpgradeVhostUserGuest(t *testing.T) {
	oursOnly(t, "vhost-user ports and upgrades in place are ours")
	requireTools(t, "qemu-system-x86_64", "ping")
	tinyGuest(t)
	sock := filepath.Join(testDir(t), "vhost.sock")
	sw := startSwitch(t, implOurs, "--vhost-user", sock)
	pid := sw.Proc.PID()
	pinger := plugTap(t, sw, 0, "10.0.8.1/24")
	guest := vhostGuest(t, "vhguest", guestMAC1, sock, guestAppend("vde.ip=10.0.8.101/24", "vde.hold=1"))
	waitFor(t, guestTimeout, "the guest's scenario", func() (bool, string) {
		if guest.Proc.Exited() {
			t.Fatalf("QEMU exited: %v\n%s", guest.Proc.waitErr, tail(guest.Console(), 3000))
		}
		return strings.Contains(guest.Console(), "VDE-GUEST-DONE"), tail(guest.Console(), 500)
	})
	waitPing(t, pinger.NS, "10.0.8.101")
	ports, fds := portsWithoutCounters(t, sw), procFDs(t, pid)
	if !strings.Contains(ports, "module vhost-user") {
		t.Fatalf("no vhost-user endpoint in port/print:\n%s", ports)
	}

	ping := startProc(t, "ip", "netns", "exec", pinger.NS, "ping", "-n", "-D", "-i", "0.01", "-W", "1", "10.0.8.101")
	ping.Name = "ping"
	time.Sleep(time.Second)
	for i := 1; i <= vhostUpgrades; i++ {
		upgradeInPlace(t, sw, i)
		time.Sleep(time.Second)
	}
	ping.Cmd.Process.Signal(syscall.SIGINT)
	ping.Wait(10 * time.Second)

	var seqs []int
	for _, l := range strings.Split(ping.Stdout.String(), "\n") {
		if m := pingReply.FindStringSubmatch(l); m != nil {
			seq, _ := strconv.Atoi(m[2])
			seqs = append(seqs, seq)
		}
	}
	if len(seqs) < 100 {
		t.Fatalf("%d ping replies:\n%s", len(seqs), tail(ping.Stdout.String(), 2000))
	}
	slices.Sort(seqs)
	sent := seqs[len(seqs)-1]
	lost := sent - len(slices.Compact(seqs))
	t.Logf("%d upgrades under a vhost-user guest: %d pings answered of %d sent, %d lost", vhostUpgrades, len(seqs), sent, lost)
	if lost > vhostUpgrades {
		t.Errorf("%d pings lost in %d upgrades, want at most one per upgrade", lost, vhostUpgrades)
	}
	if sw.Proc.PID() != pid || sw.Proc.Exited() {
		t.Fatalf("the switch is not the same process")
	}
	if got := portsWithoutCounters(t, sw); got != ports {
		t.Errorf("port/print after the upgrades:\n%s\nbefore:\n%s", got, ports)
	}
	if n := procFDs(t, pid); n > fds {
		t.Errorf("%d descriptors after the upgrades, %d before", n, fds)
	}
	if guest.Proc.Exited() {
		t.Errorf("QEMU exited: %v", guest.Proc.waitErr)
	}
	// The guest's NIC is the same device: QEMU logged no reconnect or failure.
	for _, bad := range []string{"vhost-user", "Failed", "disconnect"} {
		if strings.Contains(guest.Proc.Stderr.String(), bad) {
			t.Errorf("QEMU's stderr mentions %q:\n%s", bad, tail(guest.Proc.Stderr.String(), 2000))
		}
	}
}

// TestUpgradeVhostUserTestpmd: DPDK's testpmd keeps frames circling through the switch
// between its two virtio_user ports across three upgrades in place: its two ports stay
// (the same port numbers, testpmd's pid, no new port: virtio_user does not reconnect) and
// their counters go on rising after each upgrade.
func TestUpgradeVhostUserTestpmd(t *testing.T) {
	oursOnly(t, "vhost-user ports and upgrades in place are ours")
	sock := filepath.Join(testDir(t), "vhost.sock")
	sw := startSwitch(t, implOurs, "--vhost-user", sock)
	pid := sw.Proc.PID()
	pmd := startTestpmd(t, sock)
	var ports map[int][2]uint64
	busy := func(min uint64) (bool, string) {
		if pmd.Exited() {
			t.Fatalf("testpmd exited: %v\n%s", pmd.waitErr, tail(pmd.Stdout.String()+pmd.Stderr.String(), 3000))
		}
		ports = vhostPorts(t, sw, pmd.PID())
		n := 0
		for _, c := range ports {
			if c[0] > min && c[1] > min {
				n++
			}
		}
		return len(ports) == 2 && n == 2, fmt.Sprintf("vhost-user ports: %v", ports)
	}
	waitFor(t, 60*time.Second, "testpmd's frames through both vhost-user ports", func() (bool, string) { return busy(1000) })
	endpoints, fds := portsWithoutCounters(t, sw), procFDs(t, pid)
	for i := 1; i <= vhostUpgrades; i++ {
		before := ports
		upgradeInPlace(t, sw, i)
		var floor uint64
		for _, c := range before {
			floor = max(floor, c[0], c[1])
		}
		waitFor(t, 30*time.Second, fmt.Sprintf("frames through both ports after upgrade %d", i), func() (bool, string) { return busy(floor) })
		for n := range before {
			if _, ok := ports[n]; !ok {
				t.Fatalf("upgrade %d: testpmd's ports were %v, now %v", i, before, ports)
			}
		}
		t.Logf("after upgrade %d: vhost-user ports (in, out): %v", i, ports)
	}
	if got := portsWithoutCounters(t, sw); got != endpoints {
		t.Errorf("port/print after the upgrades:\n%s\nbefore:\n%s", got, endpoints)
	}
	if n := procFDs(t, pid); n > fds {
		t.Errorf("%d descriptors after the upgrades, %d before", n, fds)
	}
	if sw.Proc.PID() != pid || sw.Proc.Exited() {
		t.Fatalf("the switch is not the same process")
	}
}
