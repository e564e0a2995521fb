package itest

// Real guests on the switch: QEMU under TCG boots the tiny guest (guest_test.go), whose
// /init runs the scenario on its kernel command line and prints VDE-GUEST-* markers on
// the serial console (QEMU's stdout with -nographic). The seed README's two QEMU set-ups:
//
//   - QEMU-Slirp: our switch and our slirpvde -dhcp; two guests lease 10.0.2.15 and
//     10.0.2.16, ping 10.0.2.2 and fetch a file by HTTP from a server on 127.0.0.1 of
//     slirpvde's namespace (10.0.2.2 is the host's loopback); the checksums match.
//   - QEMU tap: the switch with -t TAP in a namespace, the TAP 10.0.3.1/24; two guests with
//     static 10.0.3.101 and .102 ping each other and the host, and the host pings them.
//
// Each is run with QEMU's native syntax (-netdev vde); TestVdeqSeedLines runs the
// QEMU-Slirp guests with the seed's own `vdeq qemu ... -net nic,vlan=1 -net vde,vlan=1`
// lines (only the disk options swapped for -kernel/-initrd/-append, and -nographic).
// After every guest, the switch must free the guest's port within 2 s of QEMU's exit
// (the guest powering off, or QEMU stopped by PID).

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// guestTimeout bounds a guest's boot and scenario; a run takes a few seconds (the
	// log says how long), this is for a loaded machine, not an assertion on speed.
	guestTimeout = 150 * time.Second
	// portFreeLimit is how soon after QEMU exits the switch must have freed its port.
	portFreeLimit = 2 * time.Second

	guestMAC1 = "52:54:00:12:01:00" // the seed's MACs
	guestMAC2 = "52:54:00:12:02:00"

	guestFilePath = "/vde-guest-file"
	guestFileSize = 256 << 10
)

// guestVM is a QEMU (or a wrapper such as vdeq) running the tiny guest.
type guestVM struct {
	Name  string
	Proc  *Proc
	Start time.Time

	mu       sync.Mutex
	doneAt   time.Time // when the test first saw VDE-GUEST-DONE
	exitedAt time.Time // when the process ended
}

// guestAppend is the guest's kernel command line: the serial console, quiet, reboot (so
// QEMU -no-reboot exits) on a panic, and the scenario words.
func guestAppend(scenario ...string) string {
	return strings.Join(append([]string{"console=ttyS0", "quiet", "panic=-1"}, scenario...), " ")
}

// guestMachine are the QEMU options of a native guest without its network: TCG, one CPU,
// 128 MiB, no display (the serial console is stdout), exit instead of rebooting.
func guestMachine(t testing.TB, appendLine string) []string {
	t.Helper()
	kernel, initrd := tinyGuest(t)
	return []string{"-machine", "pc,accel=tcg", "-smp", "1", "-m", "128",
		"-nographic", "-no-reboot", "-no-user-config",
		"-kernel", kernel, "-initrd", initrd, "-append", appendLine}
}

// nativeGuest starts qemu-system-x86_64 with a -netdev vde on sock and an e1000 with mac
// and no option ROM.
func nativeGuest(t *testing.T, name, mac, sock, appendLine string) *guestVM {
	t.Helper()
	args := append(guestMachine(t, appendLine),
		"-netdev", "vde,id=n0,sock="+sock,
		"-device", "e1000,netdev=n0,mac="+mac+",romfile=")
	return startGuest(t, name, append([]string{"qemu-system-x86_64"}, args...)...)
}

// startGuest runs argv (QEMU, or a wrapper that runs it) and returns at once. The process
// is stopped by PID at cleanup; if the test failed, the console's tail is logged.
func startGuest(t *testing.T, name string, argv ...string) *guestVM {
	t.Helper()
	vm := &guestVM{Name: name, Start: time.Now()}
	vm.Proc = startProc(t, argv[0], argv[1:]...)
	vm.Proc.Name = name
	go func() {
		<-vm.Proc.done
		vm.mu.Lock()
		vm.exitedAt = time.Now()
		vm.mu.Unlock()
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s (pid %d) console tail:\n%s", name, vm.Proc.PID(), tail(vm.Console(), 6000))
		}
	})
	return vm
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("(%d bytes before) ...", len(s)-n) + s[len(s)-n:]
}

// Console is the serial console so far, without CRs.
func (vm *guestVM) Console() string {
	return strings.ReplaceAll(vm.Proc.Stdout.String(), "\r", "")
}

func (vm *guestVM) Markers() []guestMarker { return parseGuestMarkers(vm.Console()) }

func (vm *guestVM) times() (done, exited time.Time) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.doneAt, vm.exitedAt
}

// marker is the first marker of kind and step ("" matches any step).
func (vm *guestVM) marker(kind, step string) (guestMarker, bool) {
	for _, m := range vm.Markers() {
		if m.Kind == kind && (step == "" || m.Step == step) {
			return m, true
		}
	}
	return guestMarker{}, false
}

// waitGuests waits until every guest has printed VDE-GUEST-DONE, failing if one exits
// before; it then fails the test for every VDE-GUEST-FAIL marker.
func waitGuests(t *testing.T, vms ...*guestVM) {
	t.Helper()
	waitFor(t, guestTimeout, "the guests' VDE-GUEST-DONE", func() (bool, string) {
		all := true
		var state []string
		for _, vm := range vms {
			if d, _ := vm.times(); !d.IsZero() {
				continue
			}
			// Exited first: the guest powers off right after DONE, and an exited QEMU's
			// console is complete, so a DONE line still being written when the markers
			// were read is found on the next look rather than failing the test.
			exited := vm.Proc.Exited()
			if _, ok := vm.marker("DONE", ""); ok {
				vm.mu.Lock()
				vm.doneAt = time.Now()
				vm.mu.Unlock()
				continue
			}
			if exited {
				t.Fatalf("%s exited before VDE-GUEST-DONE: %v\nstderr: %s\nconsole:\n%s",
					vm.Name, vm.Proc.waitErr, vm.Proc.Stderr.String(), tail(vm.Console(), 6000))
			}
			all = false
			state = append(state, fmt.Sprintf("%s: %q", vm.Name, tail(vm.Console(), 300)))
		}
		return all, strings.Join(state, "; ")
	})
	for _, vm := range vms {
		start, _ := vm.marker("START", "")
		done, _ := vm.marker("DONE", "")
		d, _ := vm.times()
		t.Logf("%s: %s ... %s; done %.1fs after QEMU started",
			vm.Name, start.Line, done.Line, d.Sub(vm.Start).Seconds())
		for _, m := range vm.Markers() {
			if m.Kind == "FAIL" {
				t.Errorf("%s: %s", vm.Name, m.Line)
			}
		}
		if f := guestFields(done.Rest); f["rc"] != "0" {
			t.Errorf("%s: %s", vm.Name, done.Line)
		}
	}
}

// --- the switch's ports ----------------------------------------------------------------------

var portLine = regexp.MustCompile(`^Port (\d{4}) `)

// switchPorts parses port/print into port number -> its block of lines.
func switchPorts(t testing.TB, sw *Switch) map[int]string {
	t.Helper()
	r := parseResponse(sw.Cmd(t, "port/print"))
	ports := map[int]string{}
	cur := -1
	for _, l := range r.Data {
		if m := portLine.FindStringSubmatch(l); m != nil {
			cur, _ = strconv.Atoi(m[1])
		}
		if cur >= 0 {
			ports[cur] += l + "\n"
		}
	}
	return ports
}

// guestPorts are the guests' switch ports: port -> the guests on it.
type guestPorts map[int][]*guestVM

// findGuestPorts finds each guest's switch port: the one whose endpoint names the guest's
// process id (QEMU's -netdev vde says "QEMU user=U pid=P"). Guests whose pid no endpoint
// names (a wrapper may describe itself otherwise) share the other ports that are new
// since before.
func findGuestPorts(t *testing.T, sw *Switch, before map[int]string, vms ...*guestVM) guestPorts {
	t.Helper()
	var owners guestPorts
	waitFor(t, startTimeout, "the guests' ports", func() (bool, string) {
		ports := switchPorts(t, sw)
		owners = guestPorts{}
		matched := map[*guestVM]bool{}
		for n, block := range ports {
			for _, vm := range vms {
				if strings.Contains(block, fmt.Sprintf(" pid=%d\n", vm.Proc.PID())) {
					owners[n] = append(owners[n], vm)
					matched[vm] = true
				}
			}
		}
		var rest []*guestVM
		for _, vm := range vms {
			if !matched[vm] {
				rest = append(rest, vm)
			}
		}
		newPorts := 0
		for n := range ports {
			if _, old := before[n]; old {
				continue
			}
			newPorts++
			if _, ok := owners[n]; !ok && len(rest) > 0 {
				owners[n] = rest
			}
		}
		return newPorts >= len(vms), fmt.Sprintf("%d new ports, want %d: %v", newPorts, len(vms), ports)
	})
	for n, vms := range owners {
		t.Logf("port %d: %s", n, guestNames(vms))
	}
	return owners
}

// checkPortsFreed waits until every guest has exited and its port is gone from
// port/print, and fails for a port still there portFreeLimit after its QEMU exited (the
// last exit among the guests on a shared port, see findGuestPorts).
func checkPortsFreed(t *testing.T, sw *Switch, owners guestPorts, exitLimit time.Duration) {
	t.Helper()
	done := map[int]bool{}
	goneAt := map[int]time.Time{}
	deadline := time.Now().Add(exitLimit)
	for {
		now := time.Now()
		cur := switchPorts(t, sw)
		pending := false
		for n, vms := range owners {
			if done[n] {
				continue
			}
			var last time.Time // the last exit among the owners; zero while one runs
			for _, vm := range vms {
				_, ex := vm.times()
				if ex.IsZero() {
					last = time.Time{}
					break
				}
				if ex.After(last) {
					last = ex
				}
			}
			_, present := cur[n]
			if !present && goneAt[n].IsZero() {
				goneAt[n] = now
			}
			switch {
			case !present && !last.IsZero():
				t.Logf("port %d (%s) freed within %v of QEMU's exit", n, guestNames(vms),
					max(0, goneAt[n].Sub(last)).Round(time.Millisecond))
				done[n] = true
			case !present && len(vms) == 1 && now.Sub(goneAt[n]) > portFreeLimit:
				// (The port may go a moment before the test sees the exit.)
				t.Errorf("port %d (%s) vanished while QEMU still runs", n, guestNames(vms))
				done[n] = true
			case present && !last.IsZero() && now.Sub(last) > portFreeLimit:
				t.Errorf("port %d (%s) still in port/print %v after QEMU exited:\n%s",
					n, guestNames(vms), now.Sub(last).Round(time.Millisecond), cur[n])
				done[n] = true
			default:
				pending = true
			}
		}
		if !pending {
			return
		}
		if now.After(deadline) {
			t.Fatalf("guests still running or ports still there after %v: %v", exitLimit, cur)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func guestNames(vms []*guestVM) string {
	var s []string
	for _, vm := range vms {
		s = append(s, vm.Name)
	}
	return strings.Join(s, ",")
}

// --- QEMU-Slirp ------------------------------------------------------------------------------

// guestLauncher starts one guest with mac on the switch at sock.
type guestLauncher func(t *testing.T, name, mac, sock, appendLine string) *guestVM

// runGuestSlirp is the seed's QEMU-Slirp set-up: a switch, slirpvde -dhcp in namespace S
// with an HTTP server on S's 127.0.0.1, and two guests (started by launch) that lease,
// ping 10.0.2.2, fetch the file and power off.
func runGuestSlirp(t *testing.T, launch guestLauncher, switchArgs ...string) {
	requireTools(t, "qemu-system-x86_64")
	tinyGuest(t) // build before the clock of the world starts

	w := &slirpWorld{Dir: testDir(t)}
	w.S = newNetns(t)
	run(t, "ip", "netns", "exec", w.S, "sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647")
	w.Resolv = filepath.Join(w.Dir, "resolv.conf")
	w.setResolv(t, "127.0.0.1")
	w.Sw = startSwitch(t, impl, switchArgs...)

	payload := make([]byte, guestFileSize)
	rand.Read(payload)
	sum := sha256Hex(payload)
	l := listenIn(t, w.S, "tcp4", "127.0.0.1:0")
	var mu sync.Mutex
	var remotes []string
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != guestFilePath {
			http.NotFound(rw, r)
			return
		}
		mu.Lock()
		remotes = append(remotes, r.RemoteAddr)
		mu.Unlock()
		rw.Header().Set("Content-Type", "application/octet-stream")
		rw.Write(payload)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	url := fmt.Sprintf("http://%s:%d%s", slirpRouter, l.Addr().(*net.TCPAddr).Port, guestFilePath)
	w.startSlirp(t)

	before := switchPorts(t, w.Sw)
	appendLine := guestAppend("vde.dhcp=1", "vde.ping="+slirpRouter, "vde.get="+url, "vde.sha="+sum)
	vms := []*guestVM{
		launch(t, "guest1", guestMAC1, w.Sw.Dir, appendLine),
		launch(t, "guest2", guestMAC2, w.Sw.Dir, appendLine),
	}
	ports := findGuestPorts(t, w.Sw, before, vms...)
	waitGuests(t, vms...)
	w.checkAlive(t)

	ips := map[string]string{}
	for _, vm := range vms {
		m, ok := vm.marker("OK", "dhcp")
		if !ok {
			t.Errorf("%s: no lease", vm.Name)
			continue
		}
		lease := guestFields(m.Rest)
		ips[lease["ip"]] = vm.Name
		if lease["router"] != slirpRouter || lease["mask"] != "24" || lease["dns"] != slirpDNS {
			t.Errorf("%s: lease %s, want router %s mask 24 dns %s", vm.Name, m.Rest, slirpRouter, slirpDNS)
		}
		if _, ok := vm.marker("OK", "ping"); !ok {
			t.Errorf("%s: no answer from %s", vm.Name, slirpRouter)
		}
		g, ok := vm.marker("OK", "get")
		if got := guestFields(g.Rest); !ok || got["sha256"] != sum || got["bytes"] != strconv.Itoa(guestFileSize) {
			t.Errorf("%s: fetched %q, want sha256=%s bytes=%d", vm.Name, g.Rest, sum, guestFileSize)
		}
	}
	if ips[slirpFirst] == "" || ips[slirpSecond] == "" {
		t.Errorf("leases %v, want %s and %s", ips, slirpFirst, slirpSecond)
	}
	mu.Lock()
	t.Logf("HTTP requests from %v", remotes)
	for _, r := range remotes {
		if h, _, _ := net.SplitHostPort(r); h != "127.0.0.1" {
			t.Errorf("HTTP request from %s, want 127.0.0.1 (slirp's host loopback)", r)
		}
	}
	if len(remotes) < 2 {
		t.Errorf("%d HTTP requests, want one per guest", len(remotes))
	}
	mu.Unlock()

	// The guests power off by themselves; QEMU exits 0 and the ports go.
	checkPortsFreed(t, w.Sw, ports, 60*time.Second)
	for _, vm := range vms {
		if err := vm.Proc.Wait(time.Second); err != nil {
			t.Errorf("%s: %v\n%s", vm.Name, err, vm.Proc.Stderr.String())
		}
		_, ex := vm.times()
		t.Logf("%s: QEMU ran %.1fs", vm.Name, ex.Sub(vm.Start).Seconds())
	}
	w.checkAlive(t)
}

// TestGuestSlirp: the QEMU-Slirp set-up with QEMU's native -netdev vde.
func TestGuestSlirp(t *testing.T) {
	t.Parallel()
	runGuestSlirp(t, nativeGuest)
}

// TestVdeqSeedLines: the QEMU-Slirp set-up with the seed's vdeq lines, verbatim but for
// the disk options (-kernel/-initrd/-append instead) and -nographic:
//
//	vdeq qemu -m 660 -net nic,vlan=1,macaddr=52:54:00:12:01:00 \
//	-net vde,vlan=1,sock=/var/run/vde2/vde0.ctl -boot c -hda Debian1.img
func TestVdeqSeedLines(t *testing.T) {
	t.Parallel()
	vdeq := appletPath(t, "vdeq")
	runGuestSlirp(t, func(t *testing.T, name, mac, sock, appendLine string) *guestVM {
		kernel, initrd := tinyGuest(t)
		return startGuest(t, name, vdeq, "qemu", "-m", "660",
			"-net", "nic,vlan=1,macaddr="+mac,
			"-net", "vde,vlan=1,sock="+sock,
			"-kernel", kernel, "-initrd", initrd, "-append", appendLine, "-nographic")
	})
}

// --- QEMU tap --------------------------------------------------------------------------------

// TestGuestTap: the seed's QEMU tap set-up. The switch runs in a namespace with -t TAP,
// the TAP is 10.0.3.1/24; guests with static 10.0.3.101 and .102 ping each other and the
// host, the host pings them; then QEMU is stopped by PID and the ports go.
func TestGuestTap(t *testing.T) {
	t.Parallel()
	requireTools(t, "qemu-system-x86_64", "ip", "ping")
	tinyGuest(t)
	ns := newNetns(t)
	tap := tapName()
	sw := startSwitchInNetns(t, impl, ns, "-t", tap)
	waitTap(t, ns, tap, sw.Proc)
	run(t, "ip", "-n", ns, "addr", "add", "10.0.3.1/24", "dev", tap)
	run(t, "ip", "-n", ns, "link", "set", tap, "up")

	before := switchPorts(t, sw)
	// guest1 is started with the seed's "QEMU usage" vdeq line, guest2 natively.
	kernel, initrd := tinyGuest(t)
	vms := []*guestVM{
		startGuest(t, "guest1", appletPath(t, "vdeq"), "qemu", "-m", "660",
			"-net", "nic,vlan=1,macaddr="+guestMAC1,
			"-net", "vde,vlan=1,sock="+sw.Dir,
			"-kernel", kernel, "-initrd", initrd, "-nographic",
			"-append", guestAppend("vde.ip=10.0.3.101/24", "vde.ping=10.0.3.102,10.0.3.1", "vde.hold=1")),
		nativeGuest(t, "guest2", guestMAC2, sw.Dir,
			guestAppend("vde.ip=10.0.3.102/24", "vde.ping=10.0.3.101,10.0.3.1", "vde.hold=1")),
	}
	ports := findGuestPorts(t, sw, before, vms...)
	waitGuests(t, vms...)
	for i, vm := range vms {
		for _, a := range []string{"10.0.3.1", fmt.Sprintf("10.0.3.%d", 102-i)} {
			if _, ok := findMarker(vm.Markers(), "OK", "ping", a); !ok {
				t.Errorf("%s: no answer from %s", vm.Name, a)
			}
		}
	}
	waitPing(t, ns, "10.0.3.101")
	waitPing(t, ns, "10.0.3.102")

	// Stop QEMU by PID; the switch frees the ports.
	for _, vm := range vms {
		vm.Proc.Cmd.Process.Signal(syscall.SIGTERM)
	}
	checkPortsFreed(t, sw, ports, stopTimeout)
	if _, present := switchPorts(t, sw)[tapPort(before)]; !present {
		t.Errorf("the TAP port went with the guests")
	}
}

// findMarker finds an OK/FAIL marker whose rest starts with word.
func findMarker(ms []guestMarker, kind, step, word string) (guestMarker, bool) {
	for _, m := range ms {
		if m.Kind == kind && m.Step == step && strings.HasPrefix(m.Rest+" ", word+" ") {
			return m, true
		}
	}
	return guestMarker{}, false
}

// tapPort is the one port of before (the -t TAP's).
func tapPort(before map[int]string) int {
	for n := range before {
		return n
	}
	return -1
}
