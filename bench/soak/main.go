// Command soak is `make soak`: it runs the reliability tests of ./itest (faults, floods,
// hostile clients) at soak scale (VDE_SOAK=1 makes them longer and bigger), shows their
// output as it comes, and writes RELIABILITY.md: one row per fault with the command that
// tries it and the outcome the test measured (its "RELIABILITY:" log lines).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"
)

// trial is one fault, flood or hostile input and the test that tries it.
type trial struct {
	test string
	what string
}

// trials are the rows of RELIABILITY.md, in its order.
var trials = []trial{
	{"TestClientKilledMidTransfer", "a client (Debian's vde_plug) SIGKILLed while it sends; two other ports exchange 1,000 frames/s"},
	{"TestChurnRealProcess", "clients connect, send a frame and hang up, thousands of times"},
	{"TestOutOfDescriptors", "the switch runs out of file descriptors (`ulimit -n 40` and 41)"},
	{"TestFloodMACTable", "a MAC flood: 100,000 random source addresses from one port"},
	{"TestFloodBroadcastStorm", "a broadcast storm from one port while two TAP hosts ping each other"},
	{"TestDataSocketHijack", "a client names root's datagram socket (like /dev/log) as its data socket, directly and by symlink"},
	{"TestSwitchAccessControl", "users outside the ctl socket's group, and on ports set to other users or groups (port/setuser, port/setgroup)"},
	{"TestMgmtAccess", "a user outside the mgmt socket's group; a member who sends shutdown"},
	{"TestBadRequests", "malformed control requests, and junk after the handshake"},
	{"TestJunkAfterHandshake", "a client that writes on its control connection after the handshake"},
	{"TestReconnectSwitchKilledEndsClients", "the switch SIGKILLed under every form of vde_plug and slirpvde"},
	{"TestReconnectStaleDirReclaimed", "a new switch on a killed switch's directory; another on a live one"},
	{"TestReconnect", "the switch killed and restarted under `vde_plug --reconnect` and `slirpvde --reconnect`"},
	{"TestSlirpHostileLoopback", "a guest tries the host's loopback through the router address, 127/8 and ::1 (`--no-host-loopback`)"},
	{"TestSlirpHostileForwardBind", "port forwards reached at addresses other than the one configured"},
	{"TestSlirpHostileFlood", "a guest floods slirpvde: UDP flows to thousands of host:port pairs, random-MAC DHCP DISCOVERs, DNS queries"},
	{"TestSlirpHostileTCP", "a guest holds 1,500 NATed TCP connections"},
	{"TestSlirpHostileLowNofile", "a UDP and DNS flood against slirpvde run under RLIMIT_NOFILE 700"},
}

var (
	eventRE = regexp.MustCompile(`^\s*=== (RUN|CONT|NAME|PAUSE)\s+(\S+)`)
	doneRE  = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(([0-9.]+s)\)`)
	relRE   = regexp.MustCompile(`RELIABILITY: (.*)$`)
)

type outcome struct {
	status string
	took   string
	lines  []string
}

func main() {
	out := flag.String("out", "RELIABILITY.md", "the file to write")
	timeout := flag.Duration("timeout", 60*time.Minute, "go test -timeout")
	only := flag.String("only", "", "run only the trials whose test name contains this")
	flag.Parse()

	var names []string
	var chosen []trial
	for _, tr := range trials {
		if strings.Contains(tr.test, *only) {
			names = append(names, tr.test)
			chosen = append(chosen, tr)
		}
	}
	// A trial's name is a prefix: TestReconnect covers TestReconnectPlug, TestReconnectSlirp...
	pattern := "^(" + strings.Join(names, "|") + ")"
	args := []string{"test", "-count=1", "-v", "-timeout", timeout.String(), "-run", pattern, "./itest/"}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "VDE_SOAK=1")
	cmd.Stderr = os.Stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fatal(err)
	}
	results := collect(io.TeeReader(pipe, os.Stdout))
	runErr := cmd.Wait()
	took := time.Since(start)

	if err := write(*out, chosen, results, "VDE_SOAK=1 go "+strings.Join(quote(args), " "), took); err != nil {
		fatal(err)
	}
	fmt.Printf("soak: wrote %s (%v)\n", *out, took.Round(time.Second))
	if runErr != nil {
		fmt.Fprintln(os.Stderr, "soak: go test:", runErr)
		os.Exit(1)
	}
}

// collect reads `go test -v` output and gathers, per top-level test, its status and the
// RELIABILITY lines logged while it (or a subtest, or its re-run in a private namespace)
// was the test speaking.
func collect(r io.Reader) map[string]*outcome {
	res := map[string]*outcome{}
	get := func(name string) *outcome {
		top, _, _ := strings.Cut(name, "/")
		if res[top] == nil {
			res[top] = &outcome{}
		}
		return res[top]
	}
	current := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := eventRE.FindStringSubmatch(line); m != nil {
			current = m[2]
			continue
		}
		if m := doneRE.FindStringSubmatch(line); m != nil {
			if !strings.Contains(m[2], "/") && !strings.HasPrefix(line, " ") {
				o := get(m[2])
				o.status, o.took = m[1], m[3]
			}
			continue
		}
		if m := relRE.FindStringSubmatch(line); m != nil && current != "" {
			o := get(current)
			if !contains(o.lines, m[1]) {
				o.lines = append(o.lines, m[1])
			}
		}
	}
	return res
}

func write(path string, trials []trial, res map[string]*outcome, command string, took time.Duration) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Reliability\n\n")
	fmt.Fprintf(&b, "What the switch, its plugs and slirpvde survive: each fault, flood and hostile input below\n")
	fmt.Fprintf(&b, "is a test in `./itest` (run by `make test` at normal scale); `make soak` runs them at soak\n")
	fmt.Fprintf(&b, "scale (`VDE_SOAK=1`: longer and bigger) and writes this file. Outcomes are the figures\n")
	fmt.Fprintf(&b, "the tests measured in that run.\n\n")
	fmt.Fprintf(&b, "- run: %s, %s, %d CPUs, %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.Version(), runtime.NumCPU(), kernel())
	fmt.Fprintf(&b, "- command: `%s` (%v)\n", command, took.Round(time.Second))
	fmt.Fprintf(&b, "- try one: `go test -count=1 -v -run '^TestName$' ./itest/` (as root), with `VDE_SOAK=1` for soak scale\n\n")
	fmt.Fprintf(&b, "| fault / flood / hostile input | test | result | outcome |\n|---|---|---|---|\n")
	seen := map[string]bool{}
	row := func(what, test string, o *outcome) {
		status, lines := "not run", "(the test does not exist yet or did not run)"
		if o != nil {
			status = o.status + " " + o.took
			if len(o.lines) > 0 {
				lines = strings.Join(o.lines, "<br>")
			} else {
				lines = "(no figures logged)"
			}
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", what, test, status, cell(lines))
	}
	for _, tr := range trials {
		var names []string
		for name := range res {
			if strings.HasPrefix(name, tr.test) && !seen[name] {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		if len(names) == 0 {
			row(tr.what, tr.test, nil)
		}
		for _, name := range names {
			seen[name] = true
			row(tr.what, name, res[name])
		}
	}
	var extra []string
	for name, o := range res {
		if !seen[name] && len(o.lines) > 0 {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		row("", name, res[name])
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func quote(args []string) []string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^$|() ") {
			a = "'" + a + "'"
		}
		q[i] = a
	}
	return q
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return runtime.GOOS
	}
	return "Linux " + strings.TrimSpace(string(b))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "soak:", err)
	os.Exit(1)
}
