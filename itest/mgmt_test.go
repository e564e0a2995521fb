package itest

// The management console: the -M socket compared with Debian's switch command by command,
// Debian's unixcmd as a client, the stdin console, and junk input.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vde-go/vde/switchcore/wire"
)

// mgmtScript is run on both switches in order; "{TMP}" is each switch's private directory.
// The state it builds up matters: later commands see the ports and VLANs earlier ones made.
var mgmtScript = []string{
	"help",
	"showinfo",
	"ds/showinfo",
	"port/showinfo",
	"port/print",
	"port/allprint",
	"port/print 2",
	"port/print 3",  // not allocated: ENXIO
	"port/print 99", // out of range: EINVAL
	"port/create 5",
	"port/create 5",     // EEXIST
	"port/setvlan 5 10", // VLAN 10 undefined: ENXIO
	"vlan/create 10",
	"vlan/create 0",    // EINVAL
	"vlan/create 4094", // EINVAL
	"vlan/create 10",   // EEXIST
	"port/setvlan 5 10",
	"vlan/print",
	"vlan/allprint",
	"vlan/allprint 0", // EINVAL (quirk)
	"vlan/allprint 10",
	"vlan/addport 10 6", // port 6 not allocated: ENXIO
	"vlan/addport 10 2",
	"vlan/print 10",
	"vlan/allprint 10",
	"vlan/delport 10 5", // 10 is port 5's untagged VLAN: EADDRINUSE
	"port/print 2",
	"hash/showinfo",
	"hash/print",
	"hash/find zz",
	"hash/find 00:11:22:33:44:55",
	"hash/find 02:00:00:00:00:02", // learned from the peer on port 2 (prints port+1)
	"fstp/showinfo",
	"debug/list",
	"plugin/list",
	"help port/set",
	"help vlan",
	"bogus",
	"showinfoXYZ", // prefix match runs showinfo
	"port",        // a menu header is not a command
	"port/setuser 5 nobody",
	"port/setgroup 5 users",
	"port/setuser 5 no-such-user-xyz", // EINVAL
	"port/allprint 5",
	"port/allocatable 5 1",
	"port/allprint 5",
	"port/createauto",
	"port/allprint",
	"port/remove 5",
	"port/remove 5", // ENXIO
	"port/allprint 5",
	"load /nonexistent",
	"load {TMP}/script.rc",
	"vlan/allprint 20",
	"vlan/remove 20", // port 12 is a member: EADDRINUSE
	"",
	"# comment",
	"   showinfo",
	"port/epclose 2 9999", // ENXIO
	"port/epclose 2",      // EINVAL
	"port/resetcounter",
	"port/print 2",
	"logout",
}

const mgmtRCScript = "# comment line\nvlan/create 20\nport/create 12\nport/setvlan 12 20\nbogus\n"

// TestMgmtMatchesDebian sends the same console commands to the switch under test and to
// Debian's and wants byte-identical responses once paths, pids, MACs, times, versions and
// fd numbers are normalised. In debian mode both switches are Debian's, which checks
// that the normalisation leaves no run-dependent noise.
func TestMgmtMatchesDebian(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	ref := startSwitch(t, referenceImpl)
	sut := startSwitch(t, impl)

	// The same scene on both: a client on port 2 that sent one frame, so that port/print
	// and hash/print have something to show, and an rc script for load.
	for _, sw := range []*Switch{ref, sut} {
		p := dialPeer(t, sw, 2, wire.DialOptions{Port: 2, Description: "itest-client", RawDescription: true})
		p.send(t, ethFrame(broadcast, p.MAC, "hello"))
		sw.WaitCmd(t, "hash/print", p.MAC.String())
		if err := os.WriteFile(filepath.Join(sw.Tmp, "script.rc"), []byte(mgmtRCScript), 0644); err != nil {
			t.Fatal(err)
		}
	}

	refM, sutM := dialMgmt(t, ref.Mgmt), dialMgmt(t, sut.Mgmt)
	if a, b := normalize(refM.Banner, ref.pathNames()), normalize(sutM.Banner, sut.pathNames()); a != b {
		t.Errorf("banner differs:\n%s: %q\n%s: %q", ref.Impl, refM.Banner, sut.Impl, sutM.Banner)
	}
	for _, cmd := range mgmtScript {
		a := refM.Do(t, strings.ReplaceAll(cmd, "{TMP}", ref.Tmp))
		b := sutM.Do(t, strings.ReplaceAll(cmd, "{TMP}", sut.Tmp))
		na, nb := normalize(a, ref.pathNames()), normalize(b, sut.pathNames())
		if ref.Impl != sut.Impl && strings.HasPrefix(cmd, "hash/find") {
			na = fixHashFindPort(na)
		}
		if sut.Impl == implOurs && ref.Impl != sut.Impl {
			var err error
			if nb, err = withoutOurAdditions(cmd, nb); err != nil {
				t.Errorf("%q: %v:\n%s", cmd, err, quoteLines(nb))
			}
		}
		if na != nb {
			t.Errorf("%q differs (normalised):\n%s:\n%s\n%s:\n%s\n%s",
				cmd, ref.Impl, quoteLines(na), sut.Impl, quoteLines(nb), firstDiff(na, nb))
		}
	}
}

// ourAdditions are the console lines our switch adds to Debian's (README.md, Compatibility
// notes): hash/setmax, upgrade, port/drops and the loop guard's and capture's menus in help, and the entry limit,
// the entries and the refused learnings in hash/showinfo. withoutOurAdditions takes out
// exactly these before the comparison. port/print and port/allprint have none: they are Debian's to the byte.
var ourAdditions = []struct {
	applies func(cmd string) bool
	text    *regexp.Regexp
}{
	{helpListing("hash/setmax"), regexp.MustCompile(`(?m)^hash/setmax        N               maximum number of hash entries\n`)},
	{helpListing("upgrade"), regexp.MustCompile(`(?m)^upgrade            \[path\]          exec path \(default: this binary\) in place, keeping every client\n`)},
	{helpListing("port/drops"), regexp.MustCompile(`(?m)^port/drops         \[N\]             print the dropped and bad frame counters\n`)},
	{helpListing("loopguard"), regexp.MustCompile(`(?m)^loopguard          =+    LOOP GUARD MENU\n(?:loopguard/.*\n)+`)},
	{helpListing("capture"), regexp.MustCompile(`(?m)^capture            =+    LIVE CAPTURE\n(?:capture/.*\n)+`)},
	{func(cmd string) bool { return strings.HasPrefix(cmd, "hash/showinfo") },
		regexp.MustCompile(`(?m)^Max entries [0-9]+\nEntries [0-9]+\nNot learned \(table full\) [0-9]+\n`)},
}

// helpListing reports whether help with cmd's argument lists command path.
func helpListing(path string) func(cmd string) bool {
	return func(cmd string) bool {
		arg, ok := strings.CutPrefix(cmd, "help")
		return ok && strings.HasPrefix(path, strings.TrimLeft(arg, " "))
	}
}

// withoutOurAdditions removes our additions from our response to cmd; an addition that
// should be there and is not, or is there twice, is an error.
func withoutOurAdditions(cmd, out string) (string, error) {
	for _, a := range ourAdditions {
		if !a.applies(cmd) {
			continue
		}
		if n := len(a.text.FindAllStringIndex(out, -1)); n != 1 {
			return out, fmt.Errorf("our addition %q appears %d times, want 1", a.text, n)
		}
		out = a.text.ReplaceAllString(out, "")
	}
	return out, nil
}

// fixHashFindPort undoes Debian's documented hash/find quirk (it prints port+1,
// shared/spec/vde_switch.md §6.5): ours prints the port hash/print shows.
func fixHashFindPort(s string) string {
	return hashFindPort.ReplaceAllStringFunc(s, func(m string) string {
		n, _ := strconv.Atoi(strings.TrimPrefix(m, "to port: "))
		return fmt.Sprintf("to port: %03d", n-1)
	})
}

var hashFindPort = regexp.MustCompile(`to port: [0-9]+`)

// quoteLines shows each line quoted, so that spaces and missing newlines are visible.
func quoteLines(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			fmt.Fprintf(&b, "    %q\n", l)
		}
	}
	return b.String()
}

func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return fmt.Sprintf("first difference at byte %d: %q vs %q", i, a[i:min(len(a), i+20)], b[i:min(len(b), i+20)])
}

// TestMgmtAnswers checks a few responses against the spec (vde_switch.md §5-§6) directly,
// so that a failure says what is wrong without a Debian switch to compare with.
func TestMgmtAnswers(t *testing.T) {
	t.Parallel()
	sw := startSwitch(t, impl)
	m := dialMgmt(t, sw.Mgmt)
	if !regexp.MustCompile(`^VDE switch V\.[0-9][^\n]*\n\(C\) [^\n]+\n$`).MatchString(m.Banner) {
		t.Errorf("banner %q: want \"VDE switch V.<version>\\n(C) <copyright>\\n\"", m.Banner)
	}
	tests := []struct {
		cmd  string
		want string // exact raw response
	}{
		{"port/showinfo", "0000 DATA END WITH '.'\nNumports=32\nHUB=false\ncounters=true\n.\n1000 Success\n" + prompt},
		{"hash/find zz", "0000 DATA END WITH '.'\n.\n1022 Invalid argument\n" + prompt},
		{"vlan/create 0", "1022 Invalid argument\n" + prompt},
		{"vlan/create 10", "1000 Success\n" + prompt},
		{"vlan/create 10", "1017 File exists\n" + prompt},
		{"port/setvlan 5 10", "1006 No such device or address\n" + prompt},
		{"bogus", "1038 Function not implemented\n" + prompt},
		{"", prompt},
		{"# comment", prompt},
		{"logout", endOfSession},
	}
	for _, tc := range tests {
		if got := m.Do(t, tc.cmd); got != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.cmd, got, tc.want)
		}
	}
}

// TestUnixcmd runs Debian's unixcmd with the shipped vdecmd script against the switch under
// test and against Debian's, and wants the same stdout bytes and exit status. (Debian's
// unixcmd puts a NUL after each data line and always exits 255: plug-dpipe-unixterm-vdeq.md
// §3.3. That is the client's quirk; it must look the same against both switches.)
func TestUnixcmd(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	requireTools(t, "unixcmd")
	if _, err := os.Stat("/etc/vde2/vdecmd"); err != nil {
		t.Skipf("needs /etc/vde2/vdecmd (Debian vde2): %v", err)
	}
	ref := startSwitch(t, referenceImpl)
	sut := startSwitch(t, impl)
	for _, args := range [][]string{
		{"port/showinfo"},
		{"vlan/create", "0"}, // fails: EINVAL
		{"bogus"},            // ENOSYS
		{"vlan/print"},
	} {
		name := strings.Join(args, " ")
		unixcmd := func(sw *Switch) (string, int) {
			out, err := tryRun("unixcmd", append([]string{"-f", "/etc/vde2/vdecmd", "-s", sw.Mgmt}, args...)...)
			code := 0
			if err != nil {
				code = exitCode(err)
			}
			return out, code
		}
		refOut, refCode := unixcmd(ref)
		sutOut, sutCode := unixcmd(sut)
		if refOut != sutOut || refCode != sutCode {
			t.Errorf("unixcmd %s:\n%s: status %d, output %q\n%s: status %d, output %q",
				name, ref.Impl, refCode, refOut, sut.Impl, sutCode, sutOut)
		}
		if name == "port/showinfo" && !strings.Contains(sutOut, "Numports=32\n") {
			t.Errorf("unixcmd port/showinfo against %s: output %q lacks Numports=32", sut.Impl, sutOut)
		}
	}
}

// TestUnixcmdPortPrint: Debian's unixcmd prints the same port/print and port/allprint
// from our switch as from Debian's, with the same clients attached (in-process peers, one
// of which sent a frame, Debian's vde_plug, and a created port that nobody uses), once the
// pids, endpoint ids and paths that legitimately differ are masked. The drop counters are
// ours, in port/drops, and never in these two (issue 20).
func TestUnixcmdPortPrint(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	requireTools(t, "/usr/bin/unixcmd", "vde_plug")
	if _, err := os.Stat("/etc/vde2/vdecmd"); err != nil {
		t.Skipf("needs /etc/vde2/vdecmd (Debian vde2): %v", err)
	}
	ref := startSwitch(t, referenceImpl)
	sut := startSwitch(t, impl)
	for _, sw := range []*Switch{ref, sut} {
		p1 := dialPeer(t, sw, 1, wire.DialOptions{})
		p2 := dialPeer(t, sw, 2, wire.DialOptions{Port: 4, Description: "itest-client port 4", RawDescription: true})
		plug := startProc(t, "vde_plug", "vde://"+sw.Dir)
		waitPlugged(t, sw, plug.PID())
		p2.send(t, ethFrame(broadcast, p2.MAC, "port-print"))
		p1.recv(t, "port-print")
		sw.MustCmd(t, "port/create 9")
		// The switch counts OUT before it sends, and the plug's copy went out too: both
		// switches have settled on the same counters.
		sw.WaitCmd(t, "port/print 4", " IN:  pkts          1 ")
	}
	unixcmd := func(sw *Switch, args ...string) (string, int) {
		out, err := tryRun("/usr/bin/unixcmd", append([]string{"-f", "/etc/vde2/vdecmd", "-s", sw.Mgmt}, args...)...)
		code := 0
		if err != nil {
			code = exitCode(err)
		}
		return out, code
	}
	for _, args := range [][]string{
		{"port/print"},
		{"port/allprint"},
		{"port/print", "4"},
		{"port/allprint", "9"},
		{"port/print", "9"}, // inactive: ENXIO, no data lines
	} {
		name := strings.Join(args, " ")
		refOut, refCode := unixcmd(ref, args...)
		sutOut, sutCode := unixcmd(sut, args...)
		na, nb := normalize(refOut, ref.pathNames()), normalize(sutOut, sut.pathNames())
		if na != nb || refCode != sutCode {
			t.Errorf("unixcmd %s (normalised):\n%s: status %d\n%s\n%s: status %d\n%s\n%s",
				name, ref.Impl, refCode, quoteLines(na), sut.Impl, sutCode, quoteLines(nb), firstDiff(na, nb))
		}
		if strings.Contains(sutOut, "DROP") || strings.Contains(sutOut, "drops") {
			t.Errorf("unixcmd %s against %s shows drop counters:\n%s", name, sut.Impl, quoteLines(sutOut))
		}
	}
	// The whole table has every client: a check that the comparison saw something.
	if out, _ := unixcmd(sut, "port/allprint"); !strings.Contains(out, ": itest-peer-1\n") ||
		!strings.Contains(out, ": itest-client port 4\n") || !strings.Contains(out, ": vdeplug: user=root pid=") ||
		!strings.Contains(out, "Port 0009 untagged_vlan=0000 INACTIVE - NOT Unnamed Allocatable\n") {
		t.Errorf("unixcmd port/allprint against %s lacks a client:\n%s", sut.Impl, quoteLines(out))
	}

	// Debian's client reads our port/drops like any command with data lines.
	if sut.Impl == implOurs {
		out, _ := unixcmd(sut, "port/drops", "4")
		if out != "Port 0004 drops 0 bad 0\n\x00" {
			t.Errorf("unixcmd port/drops 4: %q, want %q", out, "Port 0004 drops 0 bad 0\n\x00")
		}
		// One line per active port: peer 1 and the plug took the first free ones.
		raw := sut.Cmd(t, "port/drops")
		if r := parseResponse(raw); r.Code != 1000 || strings.Join(r.Data, "\n") != "Port 0001 drops 0 bad 0\nPort 0002 drops 0 bad 0\nPort 0004 drops 0 bad 0" {
			t.Errorf("port/drops: %q, want one line per active port (1, 2 and 4)", raw)
		}
	}
}

// exitCode is the exit status carried by an exec error, -1 if it carries none.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// TestConsoleStdin is the NixOS pattern: a foreground switch whose stdin is a pipe gets
// "showinfo\n" and prints the response on stdout.
func TestConsoleStdin(t *testing.T) {
	t.Parallel()
	tmp := testDir(t)
	dir := filepath.Join(tmp, "sw")
	sw := startSwitchArgs(t, impl, tmp, dir, "", []string{"--sock", dir, "--dirmode", "0700", "--hub"})
	if _, err := sw.Proc.Stdin.Write([]byte("showinfo\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, startTimeout, "1000 Success on stdout", func() (bool, string) {
		out := sw.Proc.Stdout.String()
		return strings.Contains(out, "1000 Success\n"), out
	})
	out := sw.Proc.Stdout.String()
	if !strings.HasPrefix(out, "0000 DATA END WITH '.'\n") || !strings.Contains(out, fmt.Sprintf("pid %d MAC", sw.Proc.PID())) {
		t.Errorf("stdout %q: want the showinfo data block with pid %d", out, sw.Proc.PID())
	}
	// --dirmode alone: directory D, sockets D & 0666 (vde_switch.md §3).
	if mode, _ := fileMode(t, dir); mode != 0700 {
		t.Errorf("ctl dir mode %04o, want 0700", mode)
	}
	if mode, _ := fileMode(t, filepath.Join(dir, "ctl")); mode != 0600 {
		t.Errorf("ctl socket mode %04o, want 0600", mode)
	}
	// The console keeps working: a second command, then EOF on stdin ends the switch.
	sw.Proc.Stdin.Write([]byte("port/showinfo\n"))
	waitFor(t, startTimeout, "HUB=true on stdout", func() (bool, string) {
		out := sw.Proc.Stdout.String()
		return strings.Contains(out, "HUB=true\n"), out
	})
	sw.Proc.Stdin.Close()
	if err := sw.Proc.Wait(stopTimeout); err != nil {
		t.Errorf("after EOF on stdin: %v", err)
	}
}

// TestConsoleJunk sends garbage and unknown commands on the mgmt socket: each gets 1038
// Function not implemented and the switch keeps answering.
func TestConsoleJunk(t *testing.T) {
	t.Parallel()
	sw := startSwitch(t, impl)
	m := dialMgmt(t, sw.Mgmt)
	for _, junk := range []string{
		"\x01\x02\x7f\xfe\xff garbage",
		"zzzz qqq",
		" \t bogus",
		"port",
		"port/",
		"hash/nothing 1 2 3",
		"SHOWINFO",
		strings.Repeat("x", 100),
	} {
		raw, err := m.DoRaw([]byte(junk + "\n"))
		if err != nil {
			t.Fatalf("%q: %v (got %q)", junk, err, raw)
		}
		if want := "1038 Function not implemented\n" + prompt; raw != want {
			t.Errorf("%q: got %q, want %q", junk, raw, want)
		}
	}
	r := parseResponse(m.Do(t, "showinfo"))
	if r.Code != 1000 || !strings.Contains(strings.Join(r.Data, "\n"), fmt.Sprintf("pid %d ", sw.Proc.PID())) {
		t.Errorf("showinfo after junk: %+v", r)
	}
	// A second session is unaffected too.
	sw.MustCmd(t, "port/showinfo")
}
