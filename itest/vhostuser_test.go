package itest

// vhost-user ports (vde_switch --vhost-user PATH) with real frontends:
//
//   - QEMU (TCG) with -netdev vhost-user and a virtio-net NIC: the seed's QEMU-Slirp set-up,
//     the guests leasing from our slirpvde, pinging it and fetching a file through it.
//   - DPDK's testpmd with two virtio_user ports (Debian's dpdk package, without hugepages),
//     forwarding between them through the switch while a datagram client on a third port
//     sees their broadcasts; testpmd killed mid-stream, then started again (reconnect).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/vhostuser/vhosttest"
	"github.com/vde-go/vde/switchcore/wire"
)

// vhostGuest starts QEMU with a virtio-net NIC on the vhost-user socket sock. vhost-user
// needs the guest's RAM shareable: a memfd backend as big as -m. Under TCG, QEMU 7.2
// crashes (SIGSEGV) when the guest starts a vhost-user virtio-net device that has MSI-X
// vectors (without KVM there are no irqfds, and its fallback path for vhost-user MSI-X
// faults); vectors=0 makes the device use its legacy interrupt, which works.
func vhostGuest(t *testing.T, name, mac, sock, appendLine string) *guestVM {
	t.Helper()
	args := guestMachine(t, appendLine)
	for i, a := range args {
		if a == "-machine" {
			args[i+1] += ",memory-backend=mem0"
		}
	}
	args = append(args,
		"-object", "memory-backend-memfd,id=mem0,size=128M,share=on",
		"-chardev", "socket,id=c0,path="+sock,
		"-netdev", "vhost-user,id=n0,chardev=c0",
		"-device", "virtio-net-pci,netdev=n0,mac="+mac+",romfile=,vectors=0")
	return startGuest(t, name, append([]string{"qemu-system-x86_64"}, args...)...)
}

// TestVhostUserGuestSlirp: the QEMU-Slirp set-up with the guests on vhost-user ports.
func TestVhostUserGuestSlirp(t *testing.T) {
	t.Parallel()
	oursOnly(t, "vhost-user ports are ours")
	sock := filepath.Join(testDir(t), "vhost.sock")
	runGuestSlirp(t, func(t *testing.T, name, mac, _, appendLine string) *guestVM {
		return vhostGuest(t, name, mac, sock, appendLine)
	}, "--vhost-user", sock)
}

const (
	testpmdMAC0 = "02:00:00:00:0a:01"
	testpmdMAC1 = "02:00:00:00:0a:02"
)

// startTestpmd runs one testpmd with two virtio_user ports on sock, forwarding in mac
// mode: what port 1 receives leaves port 0 as a broadcast, what port 0 receives leaves
// port 1 to port 0's MAC, so frames circle through the switch, flooding on one leg.
// Without hugepages and with its own file prefix; its run directory goes at cleanup.
func startTestpmd(t *testing.T, sock string) *Proc {
	t.Helper()
	requireTools(t, "dpdk-testpmd")
	prefix := "vdeitest" + uniqueSuffix()
	t.Cleanup(func() { os.RemoveAll(filepath.Join("/var/run/dpdk", prefix)) })
	p := startProc(t, "dpdk-testpmd", "--lcores", "0@0,1@0", "--no-huge", "-m", "256", "--no-pci",
		"--no-shconf", "--file-prefix", prefix,
		"--vdev=net_virtio_user0,path="+sock+",queues=1,mac="+testpmdMAC0,
		"--vdev=net_virtio_user1,path="+sock+",queues=1,mac="+testpmdMAC1,
		"--", "--total-num-mbufs=8192", "--forward-mode=mac",
		"--eth-peer=0,ff:ff:ff:ff:ff:ff", "--eth-peer=1,"+testpmdMAC0, "--tx-first", "--stats-period", "1")
	p.Name = "testpmd"
	return p
}

var portCounters = regexp.MustCompile(`(?m)^Port (\d+) .*\n.*\n IN:  pkts\s+(\d+).*\n OUT: pkts\s+(\d+).*\n((?:  -- endpoint.*\n)*)`)

// vhostPorts returns the switch's ports with a vhost-user endpoint of pid: port ->
// frames in and out.
func vhostPorts(t testing.TB, sw *Switch, pid int) map[int][2]uint64 {
	t.Helper()
	out := map[int][2]uint64{}
	text := strings.Join(parseResponse(sw.Cmd(t, "port/print")).Data, "\n") + "\n"
	for _, m := range portCounters.FindAllStringSubmatch(text, -1) {
		if !strings.Contains(m[4], "module vhost-user") || !strings.Contains(m[4], fmt.Sprintf(" pid=%d\n", pid)) {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		in, _ := strconv.ParseUint(m[2], 10, 64)
		o, _ := strconv.ParseUint(m[3], 10, 64)
		out[n] = [2]uint64{in, o}
	}
	return out
}

func TestVhostUserTestpmd(t *testing.T) {
	t.Parallel()
	oursOnly(t, "vhost-user ports are ours")
	sock := filepath.Join(testDir(t), "vhost.sock")
	sw := startSwitch(t, impl, "--vhost-user", sock)
	dg := dialPeer(t, sw, 1, wire.DialOptions{})
	mac0, _ := net.ParseMAC(testpmdMAC0)

	for round := 1; round <= 2; round++ { // the second: a frontend that comes back
		pmd := startTestpmd(t, sock)
		var ports map[int][2]uint64
		waitFor(t, 60*time.Second, "testpmd's frames through both vhost-user ports", func() (bool, string) {
			if pmd.Exited() {
				t.Fatalf("testpmd exited: %v\n%s", pmd.waitErr, tail(pmd.Stdout.String()+pmd.Stderr.String(), 3000))
			}
			ports = vhostPorts(t, sw, pmd.PID())
			busy := 0
			for _, c := range ports {
				if c[0] > 1000 && c[1] > 1000 {
					busy++
				}
			}
			return len(ports) == 2 && busy == 2, fmt.Sprintf("vhost-user ports: %v", ports)
		})
		t.Logf("round %d: vhost-user ports (in, out): %v", round, ports)

		// The datagram client on the third port sees the broadcasts of testpmd's port 0.
		deadline := time.Now().Add(recvTimeout)
		seen := false
		for !seen && time.Now().Before(deadline) {
			select {
			case f := <-dg.rx:
				seen = len(f) >= 14 && bytes.Equal(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) && bytes.Equal(f[6:12], mac0)
			case <-time.After(time.Second):
			}
		}
		if !seen {
			t.Fatalf("round %d: the datagram client saw no broadcast from %s", round, testpmdMAC0)
		}

		// Killed mid-stream: both ports go, the switch goes on.
		pmd.Cmd.Process.Signal(syscall.SIGKILL)
		pmd.Wait(10 * time.Second)
		waitFor(t, 10*time.Second, "the killed frontend's ports to go", func() (bool, string) {
			left := vhostPorts(t, sw, pmd.PID())
			return len(left) == 0, fmt.Sprintf("still there: %v", left)
		})
		dg.send(t, ethFrame(broadcastMAC, dg.MAC, "still-alive"))
		if sw.Proc.Exited() {
			t.Fatalf("the switch died with the frontend")
		}
	}
}

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// TestVdeqVhostUser: the seed's vdeq lines with --vhost-user: vdeq finds the switch's
// vhost-user socket through its control directory and gives QEMU a virtio-net NIC there,
// with the shared memory backend (and, under TCG, vectors=0) it needs.
func TestVdeqVhostUser(t *testing.T) {
	t.Parallel()
	oursOnly(t, "vhost-user ports are ours")
	vdeq := appletPath(t, "vdeq")
	sock := filepath.Join(testDir(t), "vhost.sock")
	runGuestSlirp(t, func(t *testing.T, name, mac, ctl, appendLine string) *guestVM {
		kernel, initrd := tinyGuest(t)
		return startGuest(t, name, vdeq, "qemu", "--vhost-user", "-m", "128",
			"-net", "nic,vlan=1,macaddr="+mac,
			"-net", "vde,vlan=1,sock="+ctl,
			"-kernel", kernel, "-initrd", initrd, "-append", appendLine, "-nographic")
	}, "--vhost-user", sock)
}

// TestVhostUserHostileFrontend: a frontend that points descriptors outside its memory,
// loops a descriptor chain, breaks its ring, shrinks its memory under the switch and
// disconnects with frames in flight costs its own frames and port only: the switch and
// two datagram clients on other ports go on.
func TestVhostUserHostileFrontend(t *testing.T) {
	t.Parallel()
	oursOnly(t, "vhost-user ports are ours")
	sock := filepath.Join(testDir(t), "vhost.sock")
	msock := filepath.Join(testDir(t), "metrics.sock")
	sw := startSwitch(t, impl, "--vhost-user", sock, "--metrics", msock)
	a := dialPeer(t, sw, 1, wire.DialOptions{})
	b := dialPeer(t, sw, 2, wire.DialOptions{})
	alive := func(step string) {
		t.Helper()
		a.send(t, ethFrame(b.MAC, a.MAC, "alive-"+step))
		b.recv(t, "alive-"+step)
		if sw.Proc.Exited() {
			t.Fatalf("%s: the switch died", step)
		}
	}
	alive("start")

	fe := vhosttest.Dial(t, sock, vhosttest.FeatVersion1|vhosttest.FeatMrgRxbuf|vhosttest.FeatEventIdx|vhosttest.FeatProtocolFeatures)
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 0x66}
	fe.Transmit(0, ethFrame(broadcastMAC, mac, "vhost-hello"))
	a.recv(t, "vhost-hello")

	tx := fe.Rings[1]
	bad := []struct {
		step string
		set  func(i int)
	}{
		{"outside-memory", func(i int) { tx.SetDesc(i, 0x1000, 100, 0, 0) }},
		{"past-the-end", func(i int) { tx.SetDesc(i, vhosttest.GuestBase+vhosttest.MemSize-10, 100, 0, 0) }},
		{"chain-loop", func(i int) { tx.SetDesc(i, tx.GPA(tx.BufOff), 100, vhosttest.DescNext, uint16(i)) }},
		{"indirect", func(i int) { tx.SetDesc(i, tx.GPA(tx.BufOff), 16, vhosttest.DescIndirect, 0) }},
	}
	for k, c := range bad {
		i := 1 + k
		c.set(i)
		tx.Offer(i)
		fe.KickTx()
		// The next good frame still goes through: only the bad one was lost.
		fe.Transmit(10+k, ethFrame(broadcastMAC, mac, "after-"+c.step))
		a.recv(t, "after-"+c.step)
		alive(c.step)
	}
	// The metrics count the bad descriptors on the frontend's port.
	var hostilePort int
	for n, block := range switchPorts(t, sw) {
		if strings.Contains(block, "module vhost-user") {
			hostilePort = n
		}
	}
	sample := fmt.Sprintf(`vde_switch_port_endpoint_faults_total{port="%d",reason="bad_descriptor"}`, hostilePort)
	if v := metricValue(t, scrapeUnix(t, msock), sample); v < float64(len(bad)) {
		t.Errorf("%s = %v after %d bad descriptors", sample, v, len(bad))
	}

	// A head index out of range breaks the ring: the port's frames stop, nothing else.
	binary.LittleEndian.PutUint16(fe.Mem[tx.AvailOff+4+2*int(tx.AvailIdx%uint16(tx.Num)):], 999)
	tx.AvailIdx++
	tx.Offer()
	fe.KickTx()
	waitFor(t, 10*time.Second, "the switch to stop the broken ring", func() (bool, string) {
		log := sw.Proc.Stderr.String()
		return strings.Contains(log, "ring stopped"), log
	})
	alive("broken-ring")

	// Its memory shrinks under the switch; then it goes with frames in flight.
	fe2 := vhosttest.Dial(t, sock, vhosttest.FeatVersion1|vhosttest.FeatMrgRxbuf|vhosttest.FeatEventIdx|vhosttest.FeatProtocolFeatures)
	fe2.PostRx(0, 8, vhosttest.BufSize)
	unix.Ftruncate(fe2.MemFD, 0)
	waitFor(t, 10*time.Second, "a fault on the shrunk memory", func() (bool, string) {
		a.send(t, ethFrame(broadcastMAC, a.MAC, "to-the-shrunk"))
		log := sw.Proc.Stderr.String()
		return strings.Contains(log, "fault on guest memory"), log
	})
	alive("truncated-memory")
	for i := 0; i < 64; i++ {
		fe.Transmit(20+i, ethFrame(broadcastMAC, mac, "in-flight"))
	}
	fe.Conn.Close()
	fe2.Conn.Close()
	alive("disconnected")
	waitFor(t, 10*time.Second, "the hostile frontends' ports to go", func() (bool, string) {
		ports := switchPorts(t, sw)
		for n, block := range ports {
			if strings.Contains(block, "module vhost-user") {
				return false, fmt.Sprintf("port %d still there:\n%s", n, block)
			}
		}
		return true, ""
	})
	alive("end")
	t.Logf("switch log:\n%s", sw.Proc.Stderr.String())
}
