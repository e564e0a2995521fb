package tap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/wire"
	"github.com/vde-go/vde/tap/taptest"
)

// inNewNetns puts the test in a network namespace of its own (taptest.InNewNetns).
func inNewNetns(t *testing.T) { taptest.InNewNetns(t) }

func mustOpen(t *testing.T, c Config) *Device {
	t.Helper()
	d, err := OpenConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestOpenLeavesLinkAsTheCToolsDo(t *testing.T) {
	inNewNetns(t)
	d := mustOpen(t, Config{Name: "vt0"})
	if d.Name() != "vt0" {
		t.Errorf("Name() = %q", d.Name())
	}
	info, err := LinkInfo("vt0")
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Name: "vt0", Index: info.Index, MTU: 1500, HardwareAddr: info.HardwareAddr, IsTunTap: true, Owner: -1, Group: -1}
	if !infoEqual(info, want) {
		t.Errorf("LinkInfo = %+v, want %+v (down, not persistent, no owner)", info, want)
	}
	if as, err := Addrs("vt0"); err != nil || len(as) != 0 {
		t.Errorf("Addrs = %v, %v; want none", as, err)
	}
	d.Close()
	if _, err := LinkInfo("vt0"); !errors.Is(err, unix.ENODEV) {
		t.Errorf("after Close: LinkInfo err %v, want ENODEV (device gone)", err)
	}
}

func infoEqual(a, b Info) bool {
	return a.Name == b.Name && a.Index == b.Index && a.Up == b.Up && a.MTU == b.MTU &&
		bytes.Equal(a.HardwareAddr, b.HardwareAddr) && a.IsTunTap == b.IsTunTap && a.TUN == b.TUN &&
		a.Persist == b.Persist && a.Owner == b.Owner && a.Group == b.Group
}

func TestKernelPicksName(t *testing.T) {
	inNewNetns(t)
	d := mustOpen(t, Config{})
	if !strings.HasPrefix(d.Name(), "tap") {
		t.Errorf("Name() = %q, want tapN", d.Name())
	}
	d2 := mustOpen(t, Config{Name: "vde%d", TUN: true})
	if d2.Name() != "vde0" {
		t.Errorf("Name() = %q, want vde0", d2.Name())
	}
	if info, err := LinkInfo("vde0"); err != nil || !info.TUN {
		t.Errorf("LinkInfo(vde0) = %+v, %v; want a TUN", info, err)
	}
}

func TestOpenErrors(t *testing.T) {
	inNewNetns(t)
	tests := []struct {
		desc, name string
		op         string
		err        error
	}{
		{"name too long", "abcdefghijklmnop", "name", ErrNameTooLong},
		{"not a tun device", "lo", "TUNSETIFF", unix.EINVAL},
		{"busy", "vt1", "TUNSETIFF", unix.EBUSY},
	}
	mustOpen(t, Config{Name: "vt1"})
	for _, tc := range tests {
		_, err := Open(tc.name)
		var te *Error
		if !errors.As(err, &te) || te.Op != tc.op || !errors.Is(err, tc.err) {
			t.Errorf("%s: Open(%q) err %v, want %s: %v", tc.desc, tc.name, err, tc.op, tc.err)
			continue
		}
		if !strings.Contains(err.Error(), tc.name) || !strings.Contains(err.Error(), tc.op) {
			t.Errorf("%s: error %q does not name the interface and the step", tc.desc, err)
		}
	}
	_, err := OpenConfig(Config{Name: "vt2", Clone: "/nonexistent/tun"})
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "open /nonexistent/tun") {
		t.Errorf("missing clone device: err %v", err)
	}
}

func TestPersistOwnerGroup(t *testing.T) {
	inNewNetns(t)
	name, err := Create(Config{Name: "vt3", Owner: 65534, HasOwner: true, Group: 65533, HasGroup: true})
	if err != nil {
		t.Fatal(err)
	}
	if name != "vt3" {
		t.Errorf("Create returned %q", name)
	}
	info, err := LinkInfo("vt3")
	if err != nil {
		t.Fatalf("persistent device gone after Close: %v", err)
	}
	if !info.Persist || info.Owner != 65534 || info.Group != 65533 {
		t.Errorf("LinkInfo = %+v, want persistent, owner 65534, group 65533", info)
	}
	// Root may attach whatever the owner; the device keeps its settings.
	d := mustOpen(t, Config{Name: "vt3"})
	if err := d.SetOwner(0); err != nil {
		t.Fatal(err)
	}
	if err := d.SetOwner(-1); !errors.Is(err, unix.EINVAL) {
		t.Errorf("SetOwner(-1): %v, want EINVAL (the kernel cannot unset an owner)", err)
	}
	d.Close()
	if info, _ := LinkInfo("vt3"); info.Owner != 0 || info.Group != 65533 || !info.Persist {
		t.Errorf("after SetOwner(0): %+v", info)
	}
	if err := Release("vt3", Config{}); err != nil {
		t.Fatal(err)
	}
	if _, err := LinkInfo("vt3"); !errors.Is(err, unix.ENODEV) {
		t.Errorf("after Release: LinkInfo err %v, want ENODEV", err)
	}
}

func TestAddrsAndLinkState(t *testing.T) {
	inNewNetns(t)
	mustOpen(t, Config{Name: "vt4"})
	v4, v6 := netip.MustParsePrefix("10.9.1.1/24"), netip.MustParsePrefix("fd00:9::1/64")
	for _, p := range []netip.Prefix{v4, v6} {
		if err := AddAddr("vt4", p); err != nil {
			t.Fatal(err)
		}
	}
	if err := SetMTU("vt4", 9000); err != nil {
		t.Fatal(err)
	}
	mac := net.HardwareAddr{2, 0, 0, 0, 9, 4}
	if err := SetHardwareAddr("vt4", mac); err != nil {
		t.Fatal(err)
	}
	if err := SetUp("vt4"); err != nil {
		t.Fatal(err)
	}
	info, err := LinkInfo("vt4")
	if err != nil || !info.Up || info.MTU != 9000 || !bytes.Equal(info.HardwareAddr, mac) {
		t.Errorf("LinkInfo = %+v, %v; want up, mtu 9000, %v", info, err, mac)
	}
	as, err := Addrs("vt4")
	if err != nil {
		t.Fatal(err)
	}
	has := map[netip.Prefix]bool{}
	for _, a := range as {
		has[a] = true
	}
	if !has[v4] || !has[v6] {
		t.Errorf("Addrs = %v, want %v and %v among them", as, v4, v6)
	}
	if err := DelAddr("vt4", v4); err != nil {
		t.Fatal(err)
	}
	if err := SetDown("vt4"); err != nil {
		t.Fatal(err)
	}
	if info, _ := LinkInfo("vt4"); info.Up {
		t.Error("still up after SetDown")
	}
	as, _ = Addrs("vt4")
	for _, a := range as {
		if a == v4 {
			t.Errorf("%v still there after DelAddr", v4)
		}
	}
	err = SetUp("nosuch0")
	if !errors.Is(err, unix.ENODEV) || !strings.Contains(err.Error(), "tap nosuch0: link up") {
		t.Errorf("SetUp(nosuch0) err %v", err)
	}
}

// arpRequest asks who has target, from mac/sender.
func arpRequest(mac net.HardwareAddr, sender, target netip.Addr) []byte {
	f := make([]byte, 0, 42)
	f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	f = append(f, mac...)
	f = append(f, 0x08, 0x06)                   // ARP
	f = append(f, 0, 1, 0x08, 0x00, 6, 4, 0, 1) // Ethernet/IPv4, request
	f = append(f, mac...)                       // sender MAC
	f = append(f, sender.AsSlice()...)          // sender IP
	f = append(f, 0, 0, 0, 0, 0, 0)             // target MAC
	return append(f, target.AsSlice()...)       // target IP
}

// isARPReplyTo reports whether f is an ARP reply to mac about ip.
func isARPReplyTo(f []byte, mac net.HardwareAddr, ip netip.Addr) bool {
	return len(f) >= 42 && bytes.Equal(f[0:6], mac) && binary.BigEndian.Uint16(f[12:]) == 0x0806 &&
		binary.BigEndian.Uint16(f[20:]) == 2 && bytes.Equal(f[28:32], ip.AsSlice())
}

func TestFramesBothWays(t *testing.T) {
	for _, vnet := range []bool{false, true} {
		t.Run(fmt.Sprintf("vnet_hdr=%v", vnet), func(t *testing.T) { testFramesBothWays(t, vnet) })
	}
}

func testFramesBothWays(t *testing.T, vnet bool) {
	inNewNetns(t)
	exchangeARP(t, mustOpen(t, Config{Name: "vt5", VnetHdr: vnet}), "vt5")
}

// TestPersistentTapStateReset: a persistent TAP keeps the virtio_net_hdr size and the
// offloads its last user set (QEMU sets 12 bytes for virtio 1.0); Open sets its own.
func TestPersistentTapStateReset(t *testing.T) {
	inNewNetns(t)
	name, err := Create(Config{Name: "vt9"})
	if err != nil {
		t.Fatal(err)
	}
	defer Release(name, Config{})
	lastUserLeaves(t, name, func(fd int) error { return unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, 12) })
	exchangeARP(t, mustOpen(t, Config{Name: name, VnetHdr: true}), name)
}

// lastUserLeaves attaches to the persistent TAP name with IFF_VNET_HDR as QEMU does,
// changes the device's state with set, and detaches without undoing it.
func lastUserLeaves(t *testing.T, name string, set func(fd int) error) {
	t.Helper()
	fd, err := unix.Open(CloneDevice, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, _ := unix.NewIfreq(name)
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		t.Fatal(err)
	}
	if err := set(fd); err != nil {
		t.Fatal(err)
	}
}

// TestOffloadsFollowTheOpener: a tool killed while it had offloads on leaves them on a
// persistent TAP, and a C tool (no IFF_VNET_HDR) that opens it next would read GSO packets.
// Each of our opens sets the offloads its header needs, and Close turns them off.
func TestOffloadsFollowTheOpener(t *testing.T) {
	inNewNetns(t)
	name, err := Create(Config{Name: "vt8"})
	if err != nil {
		t.Fatal(err)
	}
	defer Release(name, Config{})
	killed := func() { // what a SIGKILLed virtio-style user leaves behind
		t.Helper()
		lastUserLeaves(t, name, func(fd int) error {
			return unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, unix.TUN_F_CSUM|unix.TUN_F_TSO4|unix.TUN_F_TSO6)
		})
	}
	check := func(when string, want bool) {
		t.Helper()
		if got := tsoOn(t, name); got != want {
			t.Errorf("%s: TSO on %v, want %v", when, got, want)
		}
	}
	killed()
	check("left by a killed user", true)
	d := mustOpen(t, Config{Name: name})
	check("opened without IFF_VNET_HDR", false)
	d.Close()

	killed()
	d = mustOpen(t, Config{Name: name, VnetHdr: true})
	check("opened with IFF_VNET_HDR", true)
	d.Close()
	check("closed", false)
}

// tsoOn asks the kernel (ETHTOOL_GTSO) whether TCP segmentation offload is on for the
// interface name, which must be in the calling thread's network namespace.
func tsoOn(t *testing.T, name string) bool {
	t.Helper()
	sock, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sock)
	value := struct{ cmd, data uint32 }{cmd: unix.ETHTOOL_GTSO}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer // a pointer, so that a moving stack keeps it right
		_    [16]byte
	}
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(&value)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(sock), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		t.Fatalf("ETHTOOL_GTSO %s: %v", name, e)
	}
	return value.data != 0
}

// exchangeARP checks frames both ways through d, the open TAP name: what is written while
// the link is down is dropped, and ARP requests written once it is up are answered.
func exchangeARP(t *testing.T, d *Device, name string) {
	t.Helper()
	mac := net.HardwareAddr{2, 0, 0, 0, 5, 1}
	host := netip.MustParseAddr("10.9.5.1")
	peers := []netip.Addr{netip.MustParseAddr("10.9.5.2"), netip.MustParseAddr("10.9.5.3"), netip.MustParseAddr("10.9.5.4")}

	// While the link is down the kernel refuses frames (EIO): dropped, not an error.
	n, err := d.WriteBatch([][]byte{arpRequest(mac, peers[0], host)})
	if n != 0 || err != nil || d.Dropped() != 1 {
		t.Errorf("write while down: n %d err %v dropped %d; want 0, nil, 1", n, err, d.Dropped())
	}

	if err := AddAddr(name, netip.PrefixFrom(host, 24)); err != nil {
		t.Fatal(err)
	}
	if err := SetUp(name); err != nil {
		t.Fatal(err)
	}
	var reqs [][]byte
	for _, p := range peers {
		reqs = append(reqs, arpRequest(mac, p, host))
	}
	reqs = append(reqs, make([]byte, 5)) // a runt the device refuses
	n, err = d.WriteBatch(reqs)
	if n != len(peers) || err != nil {
		t.Fatalf("WriteBatch = %d, %v; want %d, nil", n, err, len(peers))
	}

	got := map[netip.Addr]bool{}
	frames := make([][]byte, wire.BatchSize)
	for i := range frames {
		frames[i] = make([]byte, wire.MaxFrame)
	}
	sizes := make([]int, len(frames))
	timer := time.AfterFunc(5*time.Second, func() { d.Close() })
	defer timer.Stop()
	for len(got) < len(peers) {
		n, err := d.ReadBatch(frames, sizes)
		if err != nil {
			t.Fatalf("ReadBatch: %v (replies so far: %v)", err, got)
		}
		for i := 0; i < n; i++ {
			for _, p := range peers {
				if isARPReplyTo(frames[i][:sizes[i]], mac, host) && bytes.Equal(frames[i][38:42], p.AsSlice()) {
					got[p] = true
				}
			}
		}
	}
}

func TestCloseEndsRead(t *testing.T) {
	inNewNetns(t)
	d := mustOpen(t, Config{Name: "vt6"})
	done := make(chan error, 1)
	go func() {
		_, err := d.ReadBatch([][]byte{make([]byte, 2000)}, []int{0})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	d.Close()
	select {
	case err := <-done:
		var te *Error
		if !errors.As(err, &te) || te.Op != "read" {
			t.Errorf("ReadBatch after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadBatch still blocked after Close")
	}
	if _, err := d.WriteBatch([][]byte{make([]byte, 60)}); err == nil {
		t.Error("WriteBatch after Close: no error")
	}
}

func TestDeletedInterfaceEndsRead(t *testing.T) {
	inNewNetns(t)
	name, err := Create(Config{Name: "vt7"})
	if err != nil {
		t.Fatal(err)
	}
	d := mustOpen(t, Config{Name: name})
	done := make(chan error, 1)
	go func() {
		_, err := d.ReadBatch([][]byte{make([]byte, 2000)}, []int{0})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := Release(name, Config{}); !errors.Is(err, unix.EBUSY) {
		t.Errorf("Release of a device in use: %v, want EBUSY", err)
	}
	if err := d.SetPersist(false); err != nil {
		t.Fatal(err)
	}
	// Deleting the interface under an open descriptor (ip link del).
	l, err := link(name, "delete")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkDel(l); err != nil {
		t.Fatalf("delete %s: %v", name, err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, unix.EBADFD) {
			t.Errorf("ReadBatch after delete: %v, want EBADFD", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadBatch still blocked after the interface was deleted")
	}
}

func TestScheme(t *testing.T) {
	inNewNetns(t)
	e, err := wire.Open("tap://vt8", wire.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	d, ok := e.(*Device)
	if !ok || d.Name() != "vt8" {
		t.Fatalf("tap://vt8 opened %T %v", e, e)
	}
	if info, err := LinkInfo("vt8"); err != nil || info.Up {
		t.Errorf("tap://vt8: %+v, %v; want an existing, down TAP", info, err)
	}
	if _, err := wire.Open("tap://abcdefghijklmnop", wire.OpenOptions{}); !errors.Is(err, ErrNameTooLong) {
		t.Errorf("long name: %v", err)
	}
}

// TestTCPStreamMergedByTheKernel relays two TAPs, in two namespaces, through Devices
// opened with IFF_VNET_HDR and offloads, and checks that a TCP stream over IPv4 and one
// over IPv6 arrive intact while the reads cut GSO packets into frames and the writes
// merged frames again: both kernels' TCP took what the other side of the relay made.
func TestTCPStreamMergedByTheKernel(t *testing.T) {
	inNewNetns(t)
	noDAD(t)
	a := mustOpen(t, Config{Name: "vg0", VnetHdr: true})
	for _, p := range []string{"10.79.0.1/24", "fd79::1/64"} {
		if err := AddAddr("vg0", netip.MustParsePrefix(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := SetUp("vg0"); err != nil {
		t.Fatal(err)
	}

	// The other side: a namespace of its own on a thread that never leaves it; the
	// thread ends with its goroutine, and the namespace once the TAP and listener close.
	type other struct {
		d   *Device
		ln  [2]net.Listener // IPv4, IPv6
		udp net.PacketConn
		err error
	}
	oc := make(chan other)
	snmpB := make(chan chan string) // reads /proc/net/snmp in the other namespace
	defer close(snmpB)
	go func() {
		runtime.LockOSThread()
		var o other
		defer func() {
			oc <- o
			if o.err == nil {
				for reply := range snmpB {
					reply <- readSnmp()
				}
			}
		}()
		if o.err = unix.Unshare(unix.CLONE_NEWNET); o.err != nil {
			return
		}
		if o.err = writeNoDAD(); o.err != nil {
			return
		}
		if o.d, o.err = OpenConfig(Config{Name: "vg1", VnetHdr: true}); o.err != nil {
			return
		}
		for _, p := range []string{"10.79.0.2/24", "fd79::2/64"} {
			if o.err = AddAddr("vg1", netip.MustParsePrefix(p)); o.err != nil {
				return
			}
		}
		if o.err = SetUp("vg1"); o.err != nil {
			return
		}
		if o.ln[0], o.err = net.Listen("tcp4", "10.79.0.2:0"); o.err != nil {
			return
		}
		// Even without DAD the kernel makes the address usable after the link is up
		// from a work queue, later on a loaded machine.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if o.ln[1], o.err = net.Listen("tcp6", "[fd79::2]:0"); o.err == nil || time.Now().After(deadline) {
				break
			}
		}
		if o.err != nil {
			return
		}
		o.udp, o.err = net.ListenPacket("udp4", "10.79.0.2:0")
	}()
	o := <-oc
	t.Cleanup(func() {
		for _, c := range []io.Closer{o.d, o.ln[0], o.ln[1], o.udp} {
			if c != nil && !reflect.ValueOf(c).IsNil() {
				c.Close()
			}
		}
	})
	if o.err != nil {
		t.Fatalf("other namespace: %v", o.err)
	}
	b := o.d

	relay := func(from, to *Device) {
		frames := make([][]byte, wire.BatchSize)
		for i := range frames {
			frames[i] = make([]byte, wire.MaxFrame)
		}
		sizes := make([]int, len(frames))
		out := make([][]byte, len(frames))
		for {
			n, err := from.ReadBatch(frames, sizes)
			if err != nil {
				return
			}
			for i := range n {
				out[i] = frames[i][:sizes[i]]
			}
			if _, err := to.WriteBatch(out[:n]); err != nil {
				return
			}
		}
	}
	go relay(a, b)
	go relay(b, a)

	for _, c := range []struct {
		ln   net.Listener
		size int
	}{{o.ln[0], 24 << 20}, {o.ln[1], 8 << 20}} {
		want := make([]byte, c.size)
		rand.NewChaCha8([32]byte{byte(c.size >> 20)}).Read(want)
		got := make(chan []byte, 1)
		go func() {
			conn, err := c.ln.Accept()
			if err != nil {
				got <- nil
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			b, _ := io.ReadAll(conn)
			got <- b
		}()
		dst := c.ln.Addr().String()
		var conn net.Conn
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			// vg0's IPv6 address may not be usable yet either (see above).
			if conn, err = net.DialTimeout("tcp", dst, 5*time.Second); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatalf("dial %s: %v", dst, err)
		}
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		_, werr := conn.Write(want)
		conn.Close()
		if werr != nil {
			t.Fatalf("send to %s: %v", dst, werr)
		}
		if g := <-got; !bytes.Equal(g, want) {
			t.Fatalf("to %s: received %d bytes, sent %d; equal: %v", dst, len(g), len(want), bytes.Equal(g, want[:min(len(g), len(want))]))
		}
	}
	// UDP: with offloads the sender's kernel leaves each datagram's checksum to the
	// device, so the reader completes it; the receiving kernel checks it.
	uc, err := net.Dial("udp4", o.udp.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	o.udp.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2000)
	for _, size := range []int{1, 2, 100, 1471, 1472} {
		msg := bytes.Repeat([]byte{byte(size)}, size)
		if _, err := uc.Write(msg); err != nil {
			t.Fatal(err)
		}
		n, _, err := o.udp.ReadFrom(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("UDP datagram of %d bytes: got %d bytes, %v", size, n, err)
		}
	}

	// What was not merged reached the kernels' checksum checks: none may have failed.
	reply := make(chan string)
	snmpB <- reply
	for ns, snmp := range map[string]string{"vg0's": readSnmp(), "vg1's": <-reply} {
		for _, proto := range []string{"Tcp", "Udp"} {
			if v := snmpField(snmp, proto, "InCsumErrors"); v != 0 {
				t.Errorf("%s namespace: %s InCsumErrors %d", ns, proto, v)
			}
		}
	}

	if b.merged.Load() == 0 || a.gsoReads.Load() == 0 {
		t.Errorf("no segment was merged into a write to vg1, or no GSO packet read from vg0 (%d, %d)", b.merged.Load(), a.gsoReads.Load())
	}
	if a.Dropped()+b.Dropped() != 0 {
		t.Errorf("dropped: vg0 %d, vg1 %d; want none", a.Dropped(), b.Dropped())
	}
	t.Logf("GSO packets read from vg0 and cut: %d; frames merged into writes to vg1: %d", a.gsoReads.Load(), b.merged.Load())
}

// noDAD turns off IPv6 duplicate address detection for interfaces made after it in the
// calling thread's network namespace, so that addresses work at once.
func noDAD(t *testing.T) {
	t.Helper()
	if err := writeNoDAD(); err != nil {
		t.Fatal(err)
	}
}

func writeNoDAD() error {
	for _, conf := range []string{"all", "default"} {
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+conf+"/accept_dad", []byte("0"), 0); err != nil {
			return err
		}
	}
	return nil
}

// readSnmp reads the calling thread's network namespace's /proc/net/snmp.
func readSnmp() string {
	b, _ := os.ReadFile("/proc/thread-self/net/snmp")
	return string(b)
}

// snmpField finds a counter in /proc/net/snmp's text (a header line, then a value line,
// per protocol); -1 if it is not there.
func snmpField(snmp, proto, field string) int {
	var names []string
	for _, line := range strings.Split(snmp, "\n") {
		fs := strings.Fields(line)
		if len(fs) == 0 || fs[0] != proto+":" {
			continue
		}
		if names == nil {
			names = fs
			continue
		}
		for i, n := range names {
			if n == field && i < len(fs) {
				v, _ := strconv.Atoi(fs[i])
				return v
			}
		}
		return -1
	}
	return -1
}
