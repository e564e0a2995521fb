package itest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/vde-go/vde/switchcore/wire"
)

// The switch's plugins: our built-in pdump, iplog and dump answer on the console as
// Debian's switch answers with its pdump.so, iplog.so and dump.so loaded.

const debianPluginDir = "/usr/lib/vde2/plugins"

func requireDebianPlugins(t *testing.T) {
	t.Helper()
	requireTools(t, debianSwitch)
	for _, p := range []string{"pdump.so", "iplog.so", "dump.so"} {
		if _, err := os.Stat(filepath.Join(debianPluginDir, p)); err != nil {
			t.Skipf("Debian's plugin %s: %v", p, err)
		}
	}
}

// TestPluginConsoleMatchesDebian runs the same plugin commands on both switches and
// compares the answers byte for byte, paths and numbers masked. (Commands that crash
// Debian's switch are left out: pdump/filename after a failed one, iplog/logfile after
// "-", and pdump/active 0 while iplog is loaded, which removes iplog's hook instead.)
func TestPluginConsoleMatchesDebian(t *testing.T) {
	requireDebianPlugins(t)
	cmds := func(tmp string) []string {
		return []string{
			"plugin/list",
			"plugin/add pdump.so",
			"plugin/add",
			"plugin/add /etc/passwd",
			"plugin/add libc.so.6",
			"plugin/add pdump",
			"plugin/add pdump",
			"plugin/add " + debianPluginDir + "/pdump.so",
			"plugin/list",
			"help pdump",
			"debug/list pdump",
			"pdump/filename",
			"pdump/active 0",
			"pdump/buffered 1",
			"pdump/buffered 0",
			"pdump/filename " + tmp + "/a.cap",
			"pdump/active 1",
			"pdump/active 1",
			"pdump/active 0",
			"pdump/active 0",
			"plugin/add " + debianPluginDir + "/iplog",
			"help iplog",
			"debug/list iplog",
			"iplog/showinfo",
			"iplog/logfile /nonexistent/x",
			"iplog/logfile " + tmp + "/ip.log",
			"iplog/showinfo",
			"iplog/logfile -",
			"iplog/showinfo",
			"iplog/list",
			"iplog/ipadd 10.0.0.1/8",
			"iplog/ipadd 10.0.0.0/8",
			"iplog/ipadd fd00::1/64",
			"iplog/ipadd 192.168.1.1",
			"iplog/ipadd 10.1.2.3/33",
			"iplog/ipadd 10.1.2.3/-1",
			"iplog/ipadd 10.1.2.3/abc",
			"iplog/ipadd 0x0a.010.0.1",
			"iplog/ipadd ::1",
			"iplog/ipadd 1.2.3.4.5",
			"iplog/list",
			"iplog/ipdel 10.0.0.0/8",
			"iplog/ipdel 10.0.0.0/8",
			"iplog/list",
			"iplog/setgcint 5",
			"iplog/setexpire 30",
			"iplog/showinfo",
			"iplog/iplist",
			"iplog/ipport 1",
			"iplog/ipuser root",
			"iplog/ipuser 0",
			"iplog/ipuser no-such-user-here",
			"iplog/ipsearch 10.0.0.1",
			"iplog/ipsearch 1.2.3.4.5",
			"plugin/add dump",
			"help dump",
			"debug/list dump",
			"dump/active 1",
			"dump/active 1",
			"dump/active 0",
			"plugin/list",
			"plugin/list ip",
			"plugin/list x",
			"plugin/del dump.so",
			"plugin/del pd",
			"pdump/active 1",
			"help pdump",
			"plugin/del",
			"plugin/list",
			"plugin/del dump",
			"plugin/del dump",
			"plugin/list",
			"debug/list dump",
		}
	}
	run := func(which string) string {
		sw := startSwitch(t, which)
		var b strings.Builder
		for _, c := range cmds(sw.Tmp) {
			fmt.Fprintf(&b, "> %s\n%s", c, sw.Cmd(t, c))
		}
		return normalize(b.String(), sw.pathNames())
	}
	deb, our := run(referenceImpl), run(impl)
	t.Logf("our session:\n%s", our)
	if deb != our {
		dl, ol := strings.Split(deb, "\n"), strings.Split(our, "\n")
		for i := 0; i < len(dl) || i < len(ol); i++ {
			var d, o string
			if i < len(dl) {
				d = dl[i]
			}
			if i < len(ol) {
				o = ol[i]
			}
			if d != o {
				t.Errorf("first difference at line %d:\nDebian: %q\nours:   %q\n\nDebian's whole session:\n%s\nours:\n%s", i+1, d, o, deb, our)
				break
			}
		}
	}
}

// pingWithPlugins starts a switch of impl whose rc file loads pdump and iplog by their
// Debian paths, joins two TAP hosts and pings between them; it returns the pcap file, the
// iplog file and the iplog/newip lines a debug session saw.
func pingWithPlugins(t *testing.T, which string) (capFile, logFile string, newip []string) {
	t.Helper()
	tmp := testDir(t)
	capFile, logFile = filepath.Join(tmp, "ping.cap"), filepath.Join(tmp, "ip.log")
	rc := filepath.Join(tmp, "plugins.rc")
	os.WriteFile(rc, []byte(strings.Join([]string{
		"plugin/add " + debianPluginDir + "/pdump.so",
		"pdump/filename " + capFile,
		"pdump/active 1",
		"plugin/add iplog",
		"iplog/logfile " + logFile,
		"iplog/ipadd 10.95.0.0/16",
		""}, "\n")), 0644)
	sw := startSwitch(t, which, "-f", rc)
	m := dialMgmt(t, sw.Mgmt)
	if r := m.Do(t, "debug/add iplog/newip"); !strings.Contains(r, "1000 Success") {
		t.Fatalf("%s: debug/add iplog/newip: %q", which, r)
	}
	a := plugTap(t, sw, 0, "10.95.0.1/24")
	plugTap(t, sw, 0, "10.95.0.2/24")
	waitPing(t, a.NS, "10.95.0.2")
	nsRun(t, a.NS, "ping", "-n", "-c", "3", "-i", "0.2", "10.95.0.2")
	sw.MustCmd(t, "pdump/active 0") // flushes
	newipLine := regexp.MustCompile(`(?m)^3\d{3} iplog/newip .*$`)
	waitFor(t, startTimeout, which+"'s iplog/newip lines", func() (bool, string) {
		newip = append(newip, newipLine.FindAllString(m.Do(t, "plugin/list"), -1)...)
		return len(newip) >= 2, strings.Join(newip, "\n")
	})
	return capFile, logFile, newip
}

// TestPdumpPingCapture: tcpdump reads the file our pdump writes, and it holds the ping
// between two TAP hosts as Debian's pdump records it: each frame once coming in and once
// going out.
func TestPdumpPingCapture(t *testing.T) {
	requireDebianPlugins(t)
	requireTools(t, "tcpdump", "ping")
	count := func(which string) (req, rep int, out string) {
		capFile, _, _ := pingWithPlugins(t, which)
		out = run(t, "tcpdump", "-n", "-r", capFile, "icmp")
		req = strings.Count(out, "10.95.0.1 > 10.95.0.2: ICMP echo request")
		rep = strings.Count(out, "10.95.0.2 > 10.95.0.1: ICMP echo reply")
		return req, rep, out
	}
	dreq, drep, dout := count(referenceImpl)
	req, rep, out := count(impl)
	t.Logf("Debian's capture:\n%s\nours:\n%s", dout, out)
	if req < 8 || rep != req || req%2 != 0 {
		t.Errorf("ours: %d echo requests and %d replies, want each ping twice (>= 4 pings):\n%s", req, rep, out)
	}
	if dreq%2 != 0 || drep != dreq {
		t.Logf("Debian's pdump: %d requests, %d replies:\n%s", dreq, drep, dout)
	}
	// The whole 98-byte frames are there (tcpdump shows the ICMP length).
	if !strings.Contains(out, "length 64") {
		t.Errorf("ours: no full ICMP payload in the capture:\n%s", out)
	}
}

// TestIplogLinesMatchDebian: the lines iplog writes for the same ping, to its file and to a
// session subscribed to iplog/newip, have the same shape on both switches (time, MACs and
// pids masked).
func TestIplogLinesMatchDebian(t *testing.T) {
	requireDebianPlugins(t)
	requireTools(t, "ping")
	mask := []struct {
		re   *regexp.Regexp
		repl string
	}{
		{regexp.MustCompile(`^[A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9] `), "<TIME> "},
		{regexp.MustCompile(`mac=[0-9a-f]{2}(:[0-9a-f]{2}){5}`), "mac=<MAC>"},
		{regexp.MustCompile(`pid=\d+`), "pid=<PID>"},
	}
	lines := func(which string) []string {
		_, logFile, newip := pingWithPlugins(t, which)
		st, err := os.Stat(logFile)
		if err != nil || st.Mode().Perm() != 0600 {
			t.Errorf("%s: iplog file %v, %v; want mode 0600", which, st, err)
		}
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(string(mustReadFile(t, logFile))), "\n") {
			for _, m := range mask {
				l = m.re.ReplaceAllString(l, m.repl)
			}
			out = append(out, l)
		}
		for _, l := range newip { // the same lines to debug sessions, without the time
			for _, m := range mask {
				l = m.re.ReplaceAllString(l, m.repl)
			}
			out = append(out, l)
		}
		sort.Strings(out)
		return out
	}
	deb, our := lines(referenceImpl), lines(impl)
	t.Logf("our lines:\n%s", strings.Join(our, "\n"))
	if strings.Join(deb, "\n") != strings.Join(our, "\n") {
		t.Errorf("iplog lines differ:\nDebian:\n%s\nours:\n%s", strings.Join(deb, "\n"), strings.Join(our, "\n"))
	}
	if len(our) != 4 {
		t.Errorf("ours: %d lines, want one per host in the file and to the debug session:\n%s", len(our), strings.Join(our, "\n"))
	}
}

// TestDumpMatchesDebian: with dump active, a session subscribed to dump/packetin and
// dump/packetout sees each frame in hex, in and out, as Debian's dump.so shows it.
func TestDumpMatchesDebian(t *testing.T) {
	requireDebianPlugins(t)
	dumpLines := regexp.MustCompile(`(?m)^3\d{3} dump/packet(in|out) Pkt: .*$`)
	run := func(which string) string {
		sw := startSwitch(t, which)
		sw.MustCmd(t, "plugin/add dump")
		m := dialMgmt(t, sw.Mgmt)
		if r := m.Do(t, "debug/add dump/"); !strings.Contains(r, "1000 Success") {
			t.Fatalf("%s: debug/add dump/: %q", which, r)
		}
		sw.MustCmd(t, "dump/active 1")
		a, b := dialPeer(t, sw, 1, wire.DialOptions{}), dialPeer(t, sw, 2, wire.DialOptions{})
		f := ethFrame(peerMAC(2), peerMAC(1), strings.Repeat("dump me ", 8))
		a.send(t, f)
		b.recv(t, "dump me")
		var got []string
		waitFor(t, startTimeout, which+" to show the frame in and out", func() (bool, string) {
			got = append(got, dumpLines.FindAllString(m.Do(t, "plugin/list"), -1)...)
			return len(got) >= 2, strings.Join(got, "\n")
		})
		sw.MustCmd(t, "dump/active 0")
		return strings.Join(got, "\n")
	}
	deb, our := run(referenceImpl), run(impl)
	if deb != our {
		t.Errorf("dump lines differ:\nDebian:\n%s\nours:\n%s", deb, our)
	}
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
