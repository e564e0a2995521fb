package itest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/vde-go/vde/switchcore/wire"
)

// ipv4TestFrame is an Ethernet frame carrying an IPv4 header from srcIP, which iplog
// watches, then the tag.
func ipv4TestFrame(dst, src net.HardwareAddr, srcIP net.IP, tag string) []byte {
	f := append(append(append([]byte(nil), dst...), src...), 0x08, 0x00)
	ip := make([]byte, 20)
	ip[0] = 0x45
	copy(ip[12:16], srcIP.To4())
	return append(append(f, ip...), tag...)
}

// pcapMagic starts a pcap file (little endian): a capture has it once.
var pcapMagic = []byte{0xd4, 0xc3, 0xb2, 0xa1}

// pluginRig is a switch with pdump (capturing to a file), iplog (logging to a file, one
// range) and dump loaded, and two wire clients, a on port 1 and b on port 2.
type pluginRig struct {
	sw               *Switch
	a, b             *peer
	capFile, logFile string
}

// pluginViews are the console commands whose output an upgrade must not change.
var pluginViews = []string{"plugin/list", "help", "debug/list", "pdump/filename", "iplog/showinfo", "iplog/list", "iplog/iplist", "iplog/ipport 1"}

func startPluginRig(t *testing.T) *pluginRig {
	sw := startSwitch(t, implOurs)
	r := &pluginRig{sw: sw, a: dialPeer(t, sw, 1, wire.DialOptions{Port: 1}), b: dialPeer(t, sw, 2, wire.DialOptions{Port: 2})}
	dir := testDir(t)
	r.capFile, r.logFile = filepath.Join(dir, "cap.pcap"), filepath.Join(dir, "ip.log")
	for _, cmd := range []string{"plugin/add pdump", "pdump/filename " + r.capFile, "pdump/active 1",
		"plugin/add iplog", "iplog/logfile " + r.logFile, "iplog/ipadd 10.0.22.0/24", "iplog/setexpire 3600",
		"plugin/add dump", "dump/active 1"} {
		sw.MustCmd(t, cmd)
	}
	return r
}

// send sends an IPv4 frame from a (IP ip) to b, tagged tag, and waits until iplog lists ip.
func (r *pluginRig) send(t *testing.T, ip, tag string) {
	t.Helper()
	r.a.send(t, ipv4TestFrame(r.b.MAC, r.a.MAC, net.ParseIP(ip), tag))
	r.b.recv(t, tag)
	r.sw.WaitCmd(t, "iplog/iplist", "ipv4 "+ip+" port=1")
}

// views are the outputs of pluginViews.
func (r *pluginRig) views(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, v := range pluginViews {
		out[v] = r.sw.Cmd(t, v)
	}
	return out
}

// check wants the views as before, and, after a frame tagged tag from a new address ip,
// the capture and the iplog file to go on: one pcap header, two records (in and out) of
// the frames tagged before and tag, a log line for each of the two addresses.
func (r *pluginRig) check(t *testing.T, when string, before map[string]string, ip, tag string) {
	t.Helper()
	for v, got := range r.views(t) {
		if got != before[v] {
			t.Errorf("%s %s:\n%s\nbefore:\n%s", v, when, got, before[v])
		}
	}
	r.send(t, ip, tag)
	waitFor(t, startTimeout, "the new address in the iplog file", func() (bool, string) {
		log, _ := os.ReadFile(r.logFile)
		return bytes.Contains(log, []byte("ipv4 "+ip+" ")), string(log)
	})
	if log, _ := os.ReadFile(r.logFile); bytes.Count(log, []byte("\n")) != 2 {
		t.Fatalf("the iplog file %s (want a line for each of two addresses):\n%s", when, log)
	}
	waitFor(t, startTimeout, "the frame "+when+" in the capture", func() (bool, string) {
		data, _ := os.ReadFile(r.capFile)
		return bytes.Count(data, []byte(tag)) == 2, fmt.Sprintf("%d bytes", len(data))
	})
	data, _ := os.ReadFile(r.capFile)
	if !bytes.HasPrefix(data, pcapMagic) || bytes.Count(data, pcapMagic) != 1 || bytes.Count(data, []byte("before")) != 2 {
		t.Fatalf("the capture %s: %d pcap headers, %d records of the frame before (want 1 and 2)",
			when, bytes.Count(data, pcapMagic), bytes.Count(data, []byte("before")))
	}
}

// TestUpgradePlugins: our switch with pdump, iplog and dump loaded upgrades itself on
// SIGUSR2 (issue 22): plugin/list, help, debug/list and every plugin's print commands
// answer byte for byte as before, the capture goes on in the same file (one header, frames
// from before and after), iplog logs the next new address to the same file and still
// lists the one it saw, and the process holds no descriptor more.
func TestUpgradePlugins(t *testing.T) {
	oursOnly(t, "Debian's switch ignores SIGUSR2")
	r := startPluginRig(t)
	sw := r.sw
	pid := sw.Proc.PID()
	r.send(t, "10.0.22.1", "before")
	before, fds := r.views(t), procFDs(t, pid)

	upgradeBySignal(t, sw, 1)
	if sw.Proc.PID() != pid {
		t.Fatalf("pid %d, was %d", sw.Proc.PID(), pid)
	}
	r.check(t, "after the upgrade", before, "10.0.22.2", "after")
	waitFor(t, startTimeout, fmt.Sprintf("at most %d descriptors", fds), func() (bool, string) {
		n := procFDs(t, pid)
		return n <= fds, fmt.Sprintf("%d open: %s", n, fdList(pid))
	})
}
