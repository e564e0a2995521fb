package itest

// vdeplug4's multiplexers and point-to-point schemes (switch://, hub://, multi://,
// bonding://, ptp://, seqpacket://): each against Debian's vde_plug with the same URL at
// the other end, both ways round. Every plug runs on its stdin/stdout stream, which the
// test drives as a peer.

import (
	"os"
	"os/exec"
	"path/filepath"
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

// waitCtl waits until a node's control socket takes connections.
func waitCtl(t *testing.T, dir string) {
	t.Helper()
	waitFor(t, startTimeout, dir+"/ctl accepting", func() (bool, string) {
		err := probeSocket(filepath.Join(dir, "ctl"))
		return err == nil, ""
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

// threeOnANode starts a node (scheme, opts) with tc.host on its stdio, tc.join joining it
// with vde:// and an in-process client, and waits until broadcasts from the first two
// reach the others.
func threeOnANode(t *testing.T, tc plugEnds, scheme, opts string) (host, join, third *peer) {
	t.Helper()
	dir := filepath.Join(testDir(t), "node")
	host = stdioPlug(t, tc.host, 1, scheme+dir+opts)
	waitCtl(t, dir)
	join = stdioPlug(t, tc.join, 2, "vde://"+dir)
	third = joinNode(t, dir, 3)
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
				m.dir, m.dirGid = fileMode(t, dir)
				m.ctl, m.ctlGid = fileMode(t, filepath.Join(dir, "ctl"))
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
