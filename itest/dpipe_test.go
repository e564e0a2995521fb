package itest

// dpipe, ours and Debian's (vdeplug4) side by side: every scenario runs on both and must
// give what the C tool was seen to give. No root needed; only sh and coreutils.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const debianDpipe = "/usr/bin/dpipe"

// dpipeImpl is a dpipe to run.
type dpipeImpl struct {
	name string
	bin  string
}

// dpipeImpls is the dpipe under test (ours, or Debian's with VDE_ITEST_IMPL=debian)
// and, when installed, Debian's as the reference, which checks the expectations.
func dpipeImpls(t *testing.T) []dpipeImpl {
	t.Helper()
	var out []dpipeImpl
	if impl == implOurs {
		out = append(out, dpipeImpl{implOurs, appletPath(t, "dpipe")})
	}
	if _, err := os.Stat(debianDpipe); err == nil {
		out = append(out, dpipeImpl{implDebian, debianDpipe})
	} else {
		t.Logf("no %s (Debian package vdeplug): checking ours alone", debianDpipe)
	}
	if len(out) == 0 {
		t.Skipf("needs %s (Debian package vdeplug)", debianDpipe)
	}
	return out
}

// dpipeProc is a running dpipe. It is its own process group (Setpgid), so that the C
// tool's kill(-getpgrp()) on a usage error reaches no one else; its stdout and stderr
// are files, so that Wait does not wait for commands that inherited them.
type dpipeProc struct {
	impl dpipeImpl
	cmd  *exec.Cmd
	dir  string
	errf string
	done chan struct{}
}

func startDpipe(t *testing.T, d dpipeImpl, dir string, args ...string) *dpipeProc {
	t.Helper()
	errf, err := os.CreateTemp(dir, "stderr-")
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	p := &dpipeProc{impl: d, dir: dir, errf: errf.Name(), done: make(chan struct{})}
	p.cmd = exec.Command(d.bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout = errf
	p.cmd.Stderr = errf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", d.bin, err)
	}
	pgid := p.cmd.Process.Pid
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			p.cmd.Process.Kill()
			<-p.done
		}
		killGroup(pgid)
	})
	return p
}

func (p *dpipeProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for dpipe to end and describes how: "exit N" or "signal NAME".
func (p *dpipeProc) wait(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s dpipe (pid %d) still running after %v; stderr: %s", p.impl.name, p.cmd.Process.Pid, timeout, p.stderr())
	}
	ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exit %d", ws.ExitStatus())
}

// stderr is what dpipe and its commands wrote, with the binary's path spelled "dpipe".
func (p *dpipeProc) stderr() string {
	b, _ := os.ReadFile(p.errf)
	return strings.ReplaceAll(string(b), p.impl.bin, "dpipe")
}

// runDpipe runs dpipe to the end and describes the outcome: status and stderr.
func runDpipe(t *testing.T, d dpipeImpl, dir string, args ...string) string {
	t.Helper()
	p := startDpipe(t, d, dir, args...)
	status := p.wait(t, 20*time.Second)
	return status + "\n" + p.stderr()
}

// waitStarted waits until dpipe has started its n commands (counting the processes of
// its group, dpipe included, against min) and is waiting for them: it has let go of its
// stdout (C closes it, ours puts /dev/null there) and sleeps. Only then does the C tool
// know the last command's pid, which a SIGTERM handler needs to end it.
func (p *dpipeProc) waitStarted(t *testing.T, min int) {
	t.Helper()
	pid := p.cmd.Process.Pid
	waitFor(t, startTimeout, "dpipe to start its commands", func() (bool, string) {
		n := len(groupPIDs(pid))
		out, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", pid))
		state := ""
		for _, ps := range liveProcs() {
			if ps.pid == pid {
				state = ps.state
			}
		}
		ok := n >= min && (out == "" || out == os.DevNull) && state == "S"
		return ok, fmt.Sprintf("%d processes in the group, stdout %q, state %q", n, out, state)
	})
}

// procStat is the part of /proc/PID/stat the tests look at.
type procStat struct {
	pid, ppid, pgrp, sid int
	state                string
}

// liveProcs lists the processes that are not zombies.
func liveProcs() []procStat {
	var out []procStat
	for _, p := range allProcs() {
		if p.state != "Z" && p.state != "X" {
			out = append(out, p)
		}
	}
	return out
}

// allProcs parses /proc/PID/stat of every process, zombies included: liveProcs and
// childrenOf (which wants those too) share the parsing.
func allProcs() []procStat {
	ents, _ := os.ReadDir("/proc")
	var out []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // state ppid pgrp session ...
		if len(f) < 4 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		sid, _ := strconv.Atoi(f[3])
		out = append(out, procStat{pid: pid, ppid: ppid, pgrp: pgrp, sid: sid, state: f[0]})
	}
	return out
}

// groupPIDs are the live processes of process group pgid.
func groupPIDs(pgid int) []int {
	var pids []int
	for _, p := range liveProcs() {
		if p.pgrp == pgid {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// killGroup SIGKILLs, by pid, what is left of a process group that a test started
// (dpipe's commands run in dpipe's group).
func killGroup(pgid int) {
	for _, pid := range groupPIDs(pgid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// waitGroupEmpty waits until process group pgid has no live process.
func waitGroupEmpty(t *testing.T, pgid int, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("process group %d to end", pgid), func() (bool, string) {
		pids := groupPIDs(pgid)
		return len(pids) == 0, fmt.Sprintf("live: %v", pids)
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err != nil {
		return "<missing>"
	}
	return string(b)
}

// dpipeUsageText is vdeplug4's usage text for argv[0] "dpipe".
const dpipeUsageText = `Usage:
  dpipe [OPTIONS} cmd1 [arg1...] = cmd2 [arg2...] [ = cmd3 [arg3...] ]
    using: ... =} cmd [arg] }= ...
       or: ... ={ cmd [arg] {= ...
    instead of ... = cmd [arg] = ...
  means that the intermediate command processes data flowing in one direction only
  (left to right, or right to left respectively as indicated by the brackets)
OPTIONS:
  -p PIDFILE | --pidfile PIDFILE     write process id to PIDFILE
  -P PGRPFILE | --pgrpfile PGRPFILE  write process group id to PIDFILE
  -d | --daemon                      daemonize the process group
  -n | --nowrapproc                  do not create the dpipe parent process
  -N | --nowrapnoclean               -n and do not remove pid/pgrp file
  -h | --help                        show this short summary
`

// TestDpipeExitStatus: the exit status is the last command's, whatever the order in
// which they end; a command that cannot run is 127 without a word; a usage error is the
// usage text and status 0 (the C tool SIGTERMs its own group and its handler exits 0);
// getopt's complaints are warnings.
func TestDpipeExitStatus(t *testing.T) {
	impls := dpipeImpls(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "noshebang")
	if err := os.WriteFile(script, []byte("echo script-ran >&2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc string
		args []string
		want string
	}{
		{"the last command's status", []string{"sh", "-c", "exit 3", "=", "sh", "-c", "sleep 0.2; exit 5"}, "exit 5\n"},
		{"the last command's status when it ends first", []string{"sh", "-c", "sleep 0.2; exit 3", "=", "sh", "-c", "exit 5"}, "exit 5\n"},
		{"the middle command's status does not count", []string{"true", "=", "sh", "-c", "exit 4", "=", "sh", "-c", "sleep 0.2; exit 6"}, "exit 6\n"},
		{"a signal is WEXITSTATUS 0", []string{"true", "=", "sh", "-c", "kill -KILL $$"}, "exit 0\n"},
		{"cmd1 not found", []string{"dpipe-itest-no-such-command", "=", "cat"}, "exit 0\n"},
		{"last command not found", []string{"cat", "=", "dpipe-itest-no-such-command"}, "exit 127\n"},
		{"last command not executable", []string{"true", "=", "/etc/passwd"}, "exit 127\n"},
		{"empty last command", []string{"true", "=", ""}, "exit 127\n"},
		{"a script without #! runs under sh", []string{script, "=", script}, "exit 0\nscript-ran\nscript-ran\n"},
		{"a lone separator word", []string{"sh", "-c", "exit 1", "==", "sh", "-c", "exit 2"}, "exit 2\n"},

		{"usage: one command", []string{"true"}, "exit 0\n" + dpipeUsageText},
		{"usage: trailing separator", []string{"true", "="}, "exit 0\n" + dpipeUsageText},
		{"usage: leading separator", []string{"=", "true"}, "exit 0\n" + dpipeUsageText},
		{"usage: empty middle command", []string{"true", "=", "=", "true"}, "exit 0\n" + dpipeUsageText},
		{"usage: unclosed =}", []string{"true", "=}", "true"}, "exit 0\n" + dpipeUsageText},
		{"usage: an empty word before =", []string{"echo", "", "=", "cat"}, "exit 0\n" + dpipeUsageText},
		{"usage: nothing", nil, "exit 0\n" + dpipeUsageText},
		{"usage: -p without a file", []string{"-p"}, "exit 0\ndpipe: option requires an argument -- 'p'\n" + dpipeUsageText},

		{"unknown option is a warning", []string{"-x", "true", "=", "true"}, "exit 0\ndpipe: invalid option -- 'x'\n"},
		{"ambiguous option is a warning", []string{"--n", "true", "=", "sh", "-c", "exit 2"}, "exit 2\ndpipe: option '--n' is ambiguous; possibilities: '--nowrapproc' '--nowrapnoclean'\n"},
		{"options only before cmd1", []string{"true", "=", "sh", "-c", "exit 3", "-x"}, "exit 3\n"},

		{"-h: usage, then SIGTERM", []string{"-x", "-h", "true", "=", "true"}, "signal terminated\ndpipe: invalid option -- 'x'\n" + dpipeUsageText},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			for _, d := range impls {
				if got := runDpipe(t, d, dir, tt.args...); got != tt.want {
					t.Errorf("%s dpipe %q:\n got %q\nwant %q", d.name, tt.args, got, tt.want)
				}
			}
		})
	}
}

// TestDpipeThreeCommands moves data through a middle command both ways: it reads cmd1 on
// stdin and writes cmd3 on fd 4 (ALTERNATE_STDOUT), and reads cmd3 on fd 3
// (ALTERNATE_STDIN) and writes cmd1 on stdout. Every step ends by EOF, so the chain
// ends by itself. The one-way form =} ... }= makes the cycle cmd1 > tr > cmd3 > cmd1.
func TestDpipeThreeCommands(t *testing.T) {
	impls := dpipeImpls(t)
	for _, d := range impls {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			a, b, env := filepath.Join(dir, "A"), filepath.Join(dir, "B"), filepath.Join(dir, "ENV")
			got := runDpipe(t, d, dir,
				"sh", "-c", `printf hello; exec >&-; cat >"$0"`, a,
				"=", "sh", "-c", `tr a-z A-Z <&3 3<&- 4>&- & exec tr a-z A-Z >&4 3<&- 4>&-`,
				"=", "sh", "-c", `echo "$ALTERNATE_STDIN $ALTERNATE_STDOUT" >"$1"; cat >"$0"; printf world`, b, env)
			if got != "exit 0\n" {
				t.Errorf("dpipe: %q, want exit 0 and no message", got)
			}
			for _, f := range []struct{ path, want string }{
				{a, "WORLD"},   // cmd3 > middle's fd 3 > middle's stdout > cmd1
				{b, "HELLO"},   // cmd1 > middle's stdin > middle's fd 4 > cmd3
				{env, "3 4\n"}, // exported to every command
			} {
				if got := readFile(t, f.path); got != f.want {
					t.Errorf("%s: %q, want %q", filepath.Base(f.path), got, f.want)
				}
			}

			one := filepath.Join(dir, "ONEWAY")
			got = runDpipe(t, d, dir,
				"sh", "-c", `printf hello; exec >&-; cat >"$0"`, one,
				"=}", "tr", "a-z", "A-Z",
				"}=", "sh", "-c", `cat; printf " back"`)
			if got != "exit 0\n" {
				t.Errorf("dpipe =} }=: %q, want exit 0 and no message", got)
			}
			if got := readFile(t, one); got != "HELLO back" {
				t.Errorf("ONEWAY: %q, want %q", got, "HELLO back")
			}
		})
	}
}

// TestDpipeEOF: when one side ends the other sees EOF on its stdin, in both directions;
// and the commands inherit SIGPIPE ignored, so writing to a side that is gone is EPIPE.
func TestDpipeEOF(t *testing.T) {
	impls := dpipeImpls(t)
	for _, d := range impls {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			a := filepath.Join(dir, "A")
			got := runDpipe(t, d, dir, "sh", "-c", `cat >"$0"; echo eof >>"$0"`, a, "=", "sh", "-c", "echo hi")
			if got != "exit 0\n" || readFile(t, a) != "hi\neof\n" {
				t.Errorf("cmd2 ends: dpipe %q, A %q; want exit 0, A \"hi\\neof\\n\"", got, readFile(t, a))
			}

			b := filepath.Join(dir, "B")
			got = runDpipe(t, d, dir, "sh", "-c", `echo hi; exec >&-; sleep 0.2`, "=", "sh", "-c", `cat >"$0"; echo eof >>"$0"; exit 9`, b)
			if got != "exit 9\n" || readFile(t, b) != "hi\neof\n" {
				t.Errorf("cmd1 ends: dpipe %q, B %q; want exit 9, B \"hi\\neof\\n\"", got, readFile(t, b))
			}

			// cmd2 reads to EOF, so cmd1 has exited (and its stdin is closed) before the
			// write: a write error, not death by SIGPIPE (which would be 141).
			f := filepath.Join(dir, "F")
			got = runDpipe(t, d, dir, "true", "=", "sh", "-c", `cat >/dev/null; echo data | cat; echo "cat=$?" >"$0"`, f)
			if got != "exit 0\ncat: write error: Broken pipe\n" || readFile(t, f) != "cat=1\n" {
				t.Errorf("write to a closed side: dpipe %q, F %q; want a write error and cat=1", got, readFile(t, f))
			}
		})
	}
}

// TestDpipeSIGTERM: SIGTERM to dpipe removes its pid and pgrp files, ends the last
// command, and dpipe exits 0; the other commands see EOF and run their EOF code.
func TestDpipeSIGTERM(t *testing.T) {
	impls := dpipeImpls(t)
	for _, d := range impls {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			pidf, pgrpf, f := filepath.Join(dir, "pid"), filepath.Join(dir, "pgrp"), filepath.Join(dir, "F")
			p := startDpipe(t, d, dir, "-p", pidf, "-P", pgrpf,
				"sh", "-c", `cat; echo first-eof >"$0"`, f, "=", "sleep", "30")
			pid := p.cmd.Process.Pid
			waitFor(t, startTimeout, "the pid files", func() (bool, string) {
				a, b := readFile(t, pidf), readFile(t, pgrpf)
				return a == fmt.Sprintf("%d\n", pid) && b == fmt.Sprintf("-%d\n", pid), fmt.Sprintf("pid %q pgrp %q", a, b)
			})
			p.waitStarted(t, 4) // dpipe, sh, cat, sleep
			p.cmd.Process.Signal(syscall.SIGTERM)
			if got := p.wait(t, stopTimeout); got != "exit 0" {
				t.Errorf("dpipe after SIGTERM: %s, want exit 0", got)
			}
			for _, path := range []string{pidf, pgrpf} {
				if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s still there after SIGTERM: %v", filepath.Base(path), err)
				}
			}
			waitGroupEmpty(t, pid, stopTimeout)
			if got := readFile(t, f); got != "first-eof\n" {
				t.Errorf("cmd1 after EOF wrote %q, want %q", got, "first-eof\n")
			}
			if s := p.stderr(); s != "" {
				t.Errorf("stderr: %q", s)
			}
		})
	}
}

// TestDpipeSIGTERMEndsChain: a command that never reads does not see EOF. The C tool
// leaves it running after SIGTERM; ours SIGTERMs it after a grace second, so that
// killing dpipe ends the chain.
func TestDpipeSIGTERMEndsChain(t *testing.T) {
	oursOnly(t, "Debian's dpipe leaves commands that ignore EOF running")
	signalSleepChain(t, dpipeImpls(t)[0], syscall.SIGTERM, "exit 0", "exit 0")
}

// signalSleepChain starts `dpipe -p PIDFILE sleep 30 = sleep 31`, checks the pid file,
// sends sig and checks that dpipe ends as want (p.wait's words; wantText says it in the
// error), that its group empties and that the pid file goes: the SIGTERM and SIGINT tests
// differ only in the signal and the ending.
func signalSleepChain(t *testing.T, d dpipeImpl, sig syscall.Signal, want, wantText string) {
	t.Helper()
	dir := t.TempDir()
	pidf := filepath.Join(dir, "pid")
	p := startDpipe(t, d, dir, "-p", pidf, "sleep", "30", "=", "sleep", "31")
	pid := p.cmd.Process.Pid
	p.waitStarted(t, 3)
	if got := readFile(t, pidf); got != fmt.Sprintf("%d\n", pid) {
		t.Errorf("pid file: %q, want %d", got, pid)
	}
	p.cmd.Process.Signal(sig)
	if got := p.wait(t, stopTimeout); got != want {
		t.Errorf("dpipe after %s: %s, want %s", unix.SignalName(sig), got, wantText)
	}
	waitGroupEmpty(t, pid, stopTimeout)
	if _, err := os.Stat(pidf); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file still there: %v", err)
	}
}

// TestDpipeSIGINT: SIGINT removes the pid file, and dpipe passes it on to its process
// group and dies of it; the commands end.
func TestDpipeSIGINT(t *testing.T) {
	impls := dpipeImpls(t)
	for _, d := range impls {
		t.Run(d.name, func(t *testing.T) {
			signalSleepChain(t, d, syscall.SIGINT, "signal interrupt", "death by SIGINT")
		})
	}
}

// TestDpipeNoWrap: with -n the last command replaces dpipe (the pid file names it, its
// status is dpipe's), and a helper removes the pid files once it is gone.
func TestDpipeNoWrap(t *testing.T) {
	impls := dpipeImpls(t)
	for _, d := range impls {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			pidf, pgrpf, a := filepath.Join(dir, "pid"), filepath.Join(dir, "pgrp"), filepath.Join(dir, "A")
			p := startDpipe(t, d, dir, "-n", "-p", pidf, "-P", pgrpf,
				"sh", "-c", `cat >"$0"`, a, "=", "sh", "-c", "echo hi; sleep 0.5; exit 7")
			pid := p.cmd.Process.Pid
			waitFor(t, startTimeout, "the pid files", func() (bool, string) {
				x, y := readFile(t, pidf), readFile(t, pgrpf)
				return x == fmt.Sprintf("%d\n", pid) && y == fmt.Sprintf("-%d\n", pid), fmt.Sprintf("pid %q pgrp %q", x, y)
			})
			waitFor(t, startTimeout, "the last command in dpipe's place", func() (bool, string) {
				b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				return strings.HasPrefix(string(b), "sh\x00-c\x00echo hi"), fmt.Sprintf("%q", b)
			})
			if got := p.wait(t, stopTimeout); got != "exit 7" {
				t.Errorf("dpipe -n: %s, want the last command's exit 7", got)
			}
			waitFor(t, 5*time.Second, "the helper to remove the pid files", func() (bool, string) {
				x, y := readFile(t, pidf), readFile(t, pgrpf)
				return x == "<missing>" && y == "<missing>", fmt.Sprintf("pid %q pgrp %q", x, y)
			})
			waitGroupEmpty(t, pid, stopTimeout)
			if got := readFile(t, a); got != "hi\n" {
				t.Errorf("A: %q, want %q", got, "hi\n")
			}
		})
	}
}

// TestDpipeDaemon: -d returns at once with status 0; the chain runs in a new session from
// "/" (a relative pid file lands under /), and SIGTERM to the daemon ends it and removes
// the pid file.
func TestDpipeDaemon(t *testing.T) {
	impls := dpipeImpls(t)
	for _, d := range impls {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			rel := fmt.Sprintf("tmp/dpipe-itest-%s.pid", uniqueSuffix())
			pidf := "/" + rel
			t.Cleanup(func() { os.Remove(pidf) })
			f := filepath.Join(dir, "F")
			got := runDpipe(t, d, dir, "-d", "-p", rel, "sh", "-c", `pwd >"$0"; echo hidden >&2; exec cat`, f, "=", "sleep", "30")
			if got != "exit 0\n" {
				t.Errorf("dpipe -d: %q, want exit 0 and no message", got)
			}
			var daemon int
			waitFor(t, startTimeout, "the daemon's pid file "+pidf, func() (bool, string) {
				s := readFile(t, pidf)
				daemon, _ = strconv.Atoi(strings.TrimSpace(s))
				return daemon > 0 && readFile(t, f) == "/\n", fmt.Sprintf("pid file %q, F %q", s, readFile(t, f))
			})
			t.Cleanup(func() { killGroup(daemon) })
			var sid int
			for _, p := range liveProcs() {
				if p.pid == daemon {
					sid = p.sid
				}
			}
			if sid != daemon {
				t.Errorf("daemon %d is in session %d, want its own", daemon, sid)
			}
			syscall.Kill(daemon, syscall.SIGTERM)
			waitGroupEmpty(t, daemon, stopTimeout)
			if _, err := os.Stat(pidf); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pid file still there: %v", err)
			}
		})
	}
}
