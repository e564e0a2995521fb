package itest

// vdeplug4's multiplexers and point-to-point schemes (switch://, hub://, multi://,
// bonding://, ptp://, seqpacket://): each against Debian's vde_plug with the same URL at
// the other end, both ways round. Every plug runs on its stdin/stdout stream, which the
// test drives as a peer.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

const debianPlug = "/usr/bin/vde_plug"

// plugEnds is the pair of plugs a test runs: one hosts (or opens first), the other joins.
type plugEnds struct{ name, host, join string }

func bothWays(t *testing.T) []plugEnds {
	requireRoot(t)
	requireTools(t, "vde_plug")
	ours := appletPath(t, "vde_plug")
	return []plugEnds{{"ours-hosts", ours, debianPlug}, {"debian-hosts", debianPlug, ours}}
}

// stdioPlug runs a plug whose stdin/stdout stream is a peer numbered n (its MAC). Closing
// the peer's endpoint closes stdin, and both plugs exit at its EOF; at cleanup one that
// has not is sent SIGTERM by PID.
func stdioPlug(t *testing.T, bin string, n int, args ...string) *peer {
	t.Helper()
	return stdioPlugFiles(t, bin, n, nil, args...)
}

func stdioPlugFiles(t *testing.T, bin string, n int, extra []*os.File, args ...string) *peer {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.ExtraFiles = extra
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		in.Close()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(stopTimeout):
				cmd.Process.Kill()
				<-done
			}
		}
		if t.Failed() {
			t.Logf("%s %v (pid %d) stderr: %s", bin, args, cmd.Process.Pid, stderr.String())
		}
	})
	return newPeer(t, filepath.Base(bin)+"#"+string(rune('0'+n)), n, wire.NewStream(out, in, in.Close))
}

// waitCtl waits until a node's control socket listens. It looks in /proc/net/unix rather
// than connecting: Debian's node spins on a connection that closes without a request (it
// never closes its end), for as long as it runs.
func waitCtl(t *testing.T, dir string) {
	t.Helper()
	// thread-self: /proc/net is the main thread's, which a test's setns may have moved.
	waitCtlIn(t, dir, "/proc/thread-self/net/unix")
}

// waitCtlIn is waitCtl for a node in another network namespace, whose sockets its
// /proc/PID/net/unix lists.
func waitCtlIn(t *testing.T, dir, table string) {
	t.Helper()
	ctl := filepath.Join(dir, "ctl")
	waitFor(t, startTimeout, ctl+" listening", func() (bool, string) {
		tab, err := os.ReadFile(table)
		if err != nil {
			return probeSocket(ctl) == nil, err.Error()
		}
		for _, line := range strings.Split(string(tab), "\n") {
			// Num RefCount Protocol Flags Type St Inode Path; Flags 00010000: listening.
			f := strings.Fields(line)
			if len(f) == 8 && f[7] == ctl && f[3] == "00010000" {
				return true, ""
			}
		}
		return false, ""
	})
}

// joinNode connects an in-process client to the node at dir as peer n.
func joinNode(t *testing.T, dir string, n int) *peer {
	t.Helper()
	c, err := wire.Dial(dir, wire.DialOptions{Description: "itest"})
	if err != nil {
		t.Fatalf("join %s: %v", dir, err)
	}
	return newPeer(t, "wire#"+string(rune('0'+n)), n, c)
}

// reach sends broadcasts tagged tag from `from` until every one of to has one: a plug
// started a moment ago may not have joined yet.
func reach(t *testing.T, from *peer, tag string, to ...*peer) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	waiting := append([]*peer(nil), to...)
	for len(waiting) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: a broadcast %q did not reach %s within %v", from.Name, tag, waiting[0].Name, startTimeout)
		}
		from.send(t, ethFrame(broadcast, from.MAC, tag))
		var still []*peer
		for _, p := range waiting {
			if _, ok := p.tryRecv(tag, 200*time.Millisecond); !ok {
				still = append(still, p)
			}
		}
		waiting = still
	}
}

// startNode starts a node (scheme, opts) with tc.host on its stdio, tc.join joining it
// with vde:// and an in-process client.
func startNode(t *testing.T, tc plugEnds, scheme, opts string) (host, join, third *peer) {
	t.Helper()
	dir := filepath.Join(testDir(t), "node")
	host = stdioPlug(t, tc.host, 1, scheme+dir+opts)
	waitCtl(t, dir)
	return host, stdioPlug(t, tc.join, 2, "vde://"+dir), joinNode(t, dir, 3)
}

// threeOnANode is startNode, then waits until broadcasts from the first two reach the
// others.
func threeOnANode(t *testing.T, tc plugEnds, scheme, opts string) (host, join, third *peer) {
	t.Helper()
	host, join, third = startNode(t, tc, scheme, opts)
	reach(t, join, "j-bcast", host, third)
	reach(t, host, "h-bcast", join, third)
	return host, join, third
}

// TestSwitchScheme: a switch:// node with a plug on its stdio, Debian's or ours joining
// with vde:// on theirs, and an in-process client: broadcasts reach everybody, and once
// the addresses are learned a unicast frame reaches its addressee only.
func TestSwitchScheme(t *testing.T) {
	t.Parallel()
	for _, tc := range bothWays(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host, join, third := threeOnANode(t, tc, "switch://", "[hashsize=64/expiretime=60]")
			reach(t, third, "t-bcast", host, join)

			host.send(t, ethFrame(join.MAC, host.MAC, "h2j-unicast"))
			join.recv(t, "h2j-unicast")
			join.send(t, ethFrame(host.MAC, join.MAC, "j2h-unicast"))
			host.recv(t, "j2h-unicast")
			third.send(t, ethFrame(join.MAC, third.MAC, "t2j-unicast"))
			join.recv(t, "t2j-unicast")
			third.recvNone(t, "h2j-unicast")
			third.recvNone(t, "j2h-unicast")
			host.recvNone(t, "t2j-unicast")

			// vdeplug4's switch has no VLANs: 802.1Q frames pass as they are.
			host.send(t, vlanFrame(broadcast, host.MAC, 5, "tagged-bcast"))
			join.recv(t, "tagged-bcast")
			third.recv(t, "tagged-bcast")
			join.send(t, vlanFrame(host.MAC, join.MAC, 5, "tagged-j2h"))
			if f := host.recv(t, "tagged-j2h"); f[12] != 0x81 || f[15] != 5 {
				t.Errorf("a frame tagged for VLAN 5 arrived as % x", f[:18])
			}
			third.recvNone(t, "tagged-j2h")
		})
	}
}

// TestHubScheme: the same with hub://, where every frame reaches every member but its
// sender, whoever it is addressed to.
func TestHubScheme(t *testing.T) {
	t.Parallel()
	for _, tc := range bothWays(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host, join, third := threeOnANode(t, tc, "hub://", "")

			host.send(t, ethFrame(join.MAC, host.MAC, "h2j-unicast"))
			join.recv(t, "h2j-unicast")
			third.recv(t, "h2j-unicast")
			join.send(t, ethFrame(host.MAC, join.MAC, "j2h-unicast"))
			host.recv(t, "j2h-unicast")
			third.recv(t, "j2h-unicast")
			join.recvNone(t, "j2h-unicast")
		})
	}
}

// TestNodeModes: the directory and ctl socket a switch:// node creates have the modes and
// group Debian's give them for the same options, and the directory goes when the node ends.
func TestNodeModes(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	requireTools(t, "vde_plug")
	ours := appletPath(t, "vde_plug")
	for _, opts := range []string{"", "[mode=0666]", "[m=0640/grp=nogroup]", "[dirmode=0750]", "[mode=0660/dirmode=02775/grp=65534]"} {
		t.Run(opts, func(t *testing.T) {
			t.Parallel()
			type modes struct{ dir, dirGid, ctl, ctlGid uint32 }
			var got [2]modes
			for i, bin := range []string{debianPlug, ours} {
				dir := filepath.Join(testDir(t), "node")
				p := stdioPlug(t, bin, 1, "switch://"+dir+opts)
				waitCtl(t, dir)
				m := &got[i]
				// Debian's listens last; ours chmods the listening socket: wait for it.
				waitFor(t, startTimeout, "the modes Debian's node has", func() (bool, string) {
					m.dir, m.dirGid = fileMode(t, dir)
					m.ctl, m.ctlGid = fileMode(t, filepath.Join(dir, "ctl"))
					return i == 0 || *m == got[0], fmt.Sprintf("%o", *m)
				})
				p.endpoint().Close() // stdin's EOF ends the plug
				waitFor(t, stopTimeout, dir+" removed", func() (bool, string) {
					_, err := os.Lstat(dir)
					return os.IsNotExist(err), ""
				})
			}
			if got[0] != got[1] {
				t.Errorf("switch://DIR%s: Debian's node has dir %#o gid %d, ctl %#o gid %d; ours dir %#o gid %d, ctl %#o gid %d", opts,
					got[0].dir, got[0].dirGid, got[0].ctl, got[0].ctlGid, got[1].dir, got[1].dirGid, got[1].ctl, got[1].ctlGid)
			}
		})
	}
}

// waitEnded waits until p's plug has ended: its stdout reached EOF.
func waitEnded(t *testing.T, p *peer) {
	t.Helper()
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-p.rx:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatalf("%s still running %v after its peer ended", p.Name, stopTimeout)
		}
	}
}

// waitSocket waits until path is a socket file.
func waitSocket(t *testing.T, path string) {
	t.Helper()
	waitFor(t, startTimeout, path+" bound", func() (bool, string) {
		st, err := os.Lstat(path)
		return err == nil && st.Mode()&os.ModeSocket != 0, ""
	})
}

// TestPtpScheme: ptp://PATH with one plug opening first (it binds PATH) and the other
// second (PATH+), Debian's and ours both ways round; frames both ways, a third plug
// refused, and a second end that is replaced is talked to again.
func TestPtpScheme(t *testing.T) {
	t.Parallel()
	for _, tc := range bothWays(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(testDir(t), "cable")
			first := stdioPlug(t, tc.host, 1, "ptp://"+path)
			waitSocket(t, path)
			second := stdioPlug(t, tc.join, 2, "ptp://"+path)
			waitSocket(t, path+"+")
			reach(t, second, "second-to-first", first)
			reach(t, first, "first-to-second", second)
			first.send(t, ethFrame(second.MAC, first.MAC, "unicast-1to2"))
			second.recv(t, "unicast-1to2")

			third := exec.Command(appletPath(t, "vde_plug"), "ptp://"+path)
			if out, err := third.CombinedOutput(); err == nil || !strings.Contains(string(out), "both ends are taken") {
				t.Errorf("a third end on %s: %v, %q; want it refused, both ends taken", path, err, out)
			}

			second.endpoint().Close()
			waitEnded(t, second)
			if _, err := os.Lstat(path + "+"); !os.IsNotExist(err) {
				t.Errorf("%s+ still there after its plug ended: %v", path, err)
			}
			// The first end forgets a second end that went away when it next sends (the
			// connection fails); until then a new second end cannot connect to it.
			probe, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(probe)
			waitFor(t, startTimeout, "the first end free again", func() (bool, string) {
				first.send(t, ethFrame(broadcast, first.MAC, "to-nobody"))
				time.Sleep(20 * time.Millisecond)
				err := syscall.Connect(probe, &syscall.SockaddrUnix{Name: path})
				return err == nil, fmt.Sprint(err)
			})
			again := stdioPlug(t, tc.join, 3, "ptp://"+path)
			waitSocket(t, path+"+")
			reach(t, first, "first-to-new-second", again)
			reach(t, again, "new-second-to-first", first)
		})
	}
}

// TestSeqpacketScheme: the two ends of a SOCK_SEQPACKET socketpair given to two plugs as
// seqpacket://3, Debian's and ours: frames both ways, and when one plug ends, so does the
// other.
func TestSeqpacketScheme(t *testing.T) {
	t.Parallel()
	for _, tc := range bothWays(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0) // no other child may inherit it
			if err != nil {
				t.Fatal(err)
			}
			a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
			one := stdioPlugFiles(t, tc.host, 1, []*os.File{a}, "seqpacket://3")
			two := stdioPlugFiles(t, tc.join, 2, []*os.File{b}, "seqpacket://3")
			a.Close()
			b.Close()
			reach(t, one, "one-to-two", two)
			reach(t, two, "two-to-one", one)
			jumbo := ethFrame(one.MAC, two.MAC, "jumbo"+strings.Repeat("j", 9000))
			two.send(t, jumbo)
			if f := one.recv(t, "jumbo"); len(f) != len(jumbo) {
				t.Errorf("a %d-byte frame arrived as %d bytes", len(jumbo), len(f))
			}
			one.endpoint().Close()
			waitEnded(t, two)
		})
	}
}

// TestPtpModes: the socket files of ptp:// ends have the mode and group Debian's get from
// vde_plug's -m and -g (0700 and the plug's group without them).
func TestPtpModes(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	requireTools(t, "vde_plug")
	ours := appletPath(t, "vde_plug")
	for _, tc := range []struct {
		opts []string
		mode uint32 // what Debian's vde_plug gives both files
	}{{nil, 0700}, {[]string{"-m", "0660"}, 0660}, {[]string{"-m", "666", "-g", "nogroup"}, 0666}} {
		t.Run(strings.Join(tc.opts, " "), func(t *testing.T) {
			t.Parallel()
			var gids [2][2]uint32 // [debian, ours][first, second]
			for i, bin := range []string{debianPlug, ours} {
				path := filepath.Join(testDir(t), "cable")
				for end, name := range []string{path, path + "+"} {
					stdioPlug(t, bin, end+1, append(tc.opts, "ptp://"+path)...)
					// Bound first, then chmod'ed: wait for the mode.
					waitFor(t, startTimeout, fmt.Sprintf("%s of mode %o", name, tc.mode), func() (bool, string) {
						st, err := os.Lstat(name)
						if err != nil {
							return false, err.Error()
						}
						return uint32(st.Mode().Perm()) == tc.mode, st.Mode().String()
					})
					_, gids[i][end] = fileMode(t, name)
				}
			}
			if gids[0] != gids[1] {
				t.Errorf("vde_plug %v ptp://: Debian's files have gids %d, ours %d", tc.opts, gids[0], gids[1])
			}
		})
	}
}

// TestMultiScheme: multi:// sends every frame of its plug on every link, learned address
// or not, and a link's frames to its plug only, never to another link.
func TestMultiScheme(t *testing.T) {
	t.Parallel()
	for _, tc := range bothWays(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host, join, third := startNode(t, tc, "multi://", "[mode=0600]")
			reach(t, join, "j-bcast", host)
			reach(t, third, "t-bcast", host)
			reach(t, host, "h-bcast", join, third)
			host.send(t, ethFrame(join.MAC, host.MAC, "h2j-unicast"))
			join.recv(t, "h2j-unicast")
			third.recv(t, "h2j-unicast")
			third.recvNone(t, "j-bcast")
			join.recvNone(t, "t-bcast")
			join.send(t, ethFrame(third.MAC, join.MAC, "j2t-unicast"))
			host.recv(t, "j2t-unicast")
			third.recvNone(t, "j2t-unicast")
		})
	}
}

// TestBondingScheme: bonding:// sends its plug's frames on its links in turn, and a link's
// frames to its plug only.
func TestBondingScheme(t *testing.T) {
	t.Parallel()
	for _, tc := range bothWays(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host, join, third := startNode(t, tc, "bonding://", "")
			reach(t, join, "j-bcast", host)
			reach(t, third, "t-bcast", host)
			third.recvNone(t, "j-bcast")
			join.recvNone(t, "t-bcast")

			const n = 6
			for i := 0; i < n; i++ {
				host.send(t, ethFrame(broadcast, host.MAC, fmt.Sprintf("turn-%d-", i)))
			}
			got := map[*peer][]int{}
			seen := map[int]int{}
			total, deadline := 0, time.Now().Add(recvTimeout)
			for quiet := 0; quiet < 2; { // until n frames came, then a quiet period
				wait := 20 * time.Millisecond
				if total >= n || time.Now().After(deadline) {
					wait, quiet = quietPeriod, quiet+1
				}
				for _, p := range []*peer{join, third} {
					if f, ok := p.tryRecv("turn-", wait); ok {
						var i int
						fmt.Sscanf(string(f[bytes.Index(f, []byte("turn-")):]), "turn-%d-", &i)
						got[p] = append(got[p], i)
						seen[i]++
						total++
						quiet = 0
					}
				}
			}
			for i := 0; i < n; i++ {
				if seen[i] != 1 {
					t.Errorf("frame %d reached %d links, want 1", i, seen[i])
				}
			}
			if len(got[join]) != n/2 || len(got[third]) != n/2 {
				t.Errorf("frames by link: join %v, third %v; want them in turn", got[join], got[third])
			}
		})
	}
}

// tapOn runs plug url tap://TAP in a new namespace, with cidr on the TAP once it is there.
func tapOn(t *testing.T, plug, url, cidr string) *tapHost {
	t.Helper()
	requireTun(t)
	h := &tapHost{NS: newNetns(t), Tap: tapName()}
	h.Plug = startProc(t, "ip", "netns", "exec", h.NS, plug, url, "tap://"+h.Tap)
	waitFor(t, startTimeout, "TAP "+h.Tap+" in "+h.NS, func() (bool, string) {
		if h.Plug.Exited() {
			t.Fatalf("%s %s exited: %v\n%s", plug, url, h.Plug.waitErr, h.Plug.Stderr.String())
		}
		out, err := tryRun("ip", "-n", h.NS, "link", "show", h.Tap)
		return err == nil, out
	})
	h.Addr, _, _ = strings.Cut(cidr, "/")
	run(t, "ip", "-n", h.NS, "addr", "add", cidr, "dev", h.Tap)
	run(t, "ip", "-n", h.NS, "link", "set", h.Tap, "up")
	return h
}

// TestNodesCarryIP: TAP hosts ping each other through a switch:// node and through a
// ptp:// cable, with Debian's plug at one end and ours at the other, both ways round.
func TestNodesCarryIP(t *testing.T) {
	t.Parallel()
	for _, tc := range bothWays(t) {
		for _, scheme := range []string{"switch", "ptp"} {
			t.Run(tc.name+"/"+scheme, func(t *testing.T) {
				t.Parallel()
				path := filepath.Join(testDir(t), "node")
				a := tapOn(t, tc.host, scheme+"://"+path, "10.77.0.1/24")
				if scheme == "switch" {
					waitCtlIn(t, path, fmt.Sprintf("/proc/%d/net/unix", a.Plug.PID()))
					scheme = "vde"
				}
				b := tapOn(t, tc.join, scheme+"://"+path, "10.77.0.2/24")
				waitPing(t, a.NS, b.Addr)
				waitPing(t, b.NS, a.Addr)
			})
		}
	}
}
