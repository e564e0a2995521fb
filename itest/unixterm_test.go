package itest

// The management clients against real switches, ours and Debian's: vdecmd's data lines
// and exit status, unixterm as a relay on a pipe and on a terminal (the screen Debian's
// unixterm shows), and vdeterm's console on a terminal, driven through tmux.

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// runTool runs name with args and stdin to completion (30 s limit) and returns its
// stdout, stderr and exit status.
func runTool(t testing.TB, stdin string, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%s %q: %v", name, args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %q: killed after 30 s; stdout %q stderr %q", name, args, out.String(), errb.String())
	}
	return out.String(), errb.String(), code
}

// bothSwitches runs f against our switch and Debian's.
func bothSwitches(t *testing.T, f func(t *testing.T, which string)) {
	for _, which := range []string{implOurs, implDebian} {
		t.Run(which, func(t *testing.T) { f(t, which) })
	}
}

func TestUnixtermVdecmd(t *testing.T) {
	bothSwitches(t, func(t *testing.T, which string) {
		sw := startSwitch(t, which)
		dialPeer(t, sw, 1, wire.DialOptions{})
		dialPeer(t, sw, 2, wire.DialOptions{})
		vdecmd := appletPath(t, "vdecmd")

		out, errs, code := runTool(t, "", vdecmd, "-s", sw.Mgmt, "port/print")
		if code != 0 || errs != "" || !strings.Contains(out, ": itest-peer-1\n") || !strings.Contains(out, ": itest-peer-2\n") {
			t.Errorf("vdecmd port/print: exit %d, stdout %q, stderr %q; want 0 and both endpoints", code, out, errs)
		}
		if strings.ContainsRune(out, 0) || strings.Contains(out, "0000 DATA") || strings.Contains(out, "1000 Success") ||
			!strings.HasPrefix(out, "Port 0001 ") || strings.HasSuffix(out, ".\n") {
			t.Errorf("vdecmd port/print: stdout %q: want only the data lines", out)
		}
		// The same as the data lines of a session of our own.
		if want := strings.Join(sw.MustCmd(t, "port/print"), "\n") + "\n"; out != want {
			t.Errorf("vdecmd port/print: stdout %q; the session's data lines are %q", out, want)
		}

		// A failing command: its errno (ENXIO for a VLAN that does not exist).
		out, errs, code = runTool(t, "", vdecmd, "-s", sw.Mgmt, "vlan/print", "77")
		if code != 6 || out != "" || errs != "vdecmd: vlan/print 77: No such device or address\n" {
			t.Errorf("vdecmd vlan/print 77: exit %d, stdout %q, stderr %q; want 6", code, out, errs)
		}
		_, _, code = runTool(t, "", appletPath(t, "unixcmd"), "--sock="+sw.Mgmt, "bogus/cmd")
		if code != 38 {
			t.Errorf("unixcmd bogus/cmd: exit %d; want 38 (ENOSYS)", code)
		}
		// A path that is no management socket (the control socket: it never greets).
		_, errs, code = runTool(t, "", vdecmd, "-s", filepath.Join(sw.Dir, "ctl"), "port/print")
		if code != 255 || !strings.Contains(errs, "not a management socket") {
			t.Errorf("vdecmd on the control socket: exit %d, stderr %q; want 255", code, errs)
		}
	})
}

// On a pipe, unixterm prints everything, "9999 END OF SESSION" included (Debian's loses
// it, and at stdin's EOF everything not yet answered).
func TestUnixtermPipe(t *testing.T) {
	bothSwitches(t, func(t *testing.T, which string) {
		sw := startSwitch(t, which)
		dialPeer(t, sw, 1, wire.DialOptions{})
		unixterm := appletPath(t, "unixterm")

		// All lines at once: unixterm sends one per prompt (Debian's switch would take
		// several lines in one read for one command).
		out, errs, code := runTool(t, "port/print\nhash/find zz\nlogout\n", unixterm, sw.Mgmt)
		if code != 0 || errs != "" {
			t.Fatalf("unixterm: exit %d, stderr %q", code, errs)
		}
		if !strings.HasPrefix(out, "VDE switch V.2.3.2") || !strings.HasSuffix(out, "\nvde$ 9999 END OF SESSION") {
			t.Errorf("unixterm: stdout %q: want the banner first and the end of session last", out)
		}
		for _, want := range []string{"0000 DATA END WITH '.'\nPort 0001 ", ": itest-peer-1\n.\n1000 Success\n\nvde$ ",
			"0000 DATA END WITH '.'\n.\n1022 Invalid argument\n\nvde$ "} {
			if !strings.Contains(out, want) {
				t.Errorf("unixterm: stdout %q does not contain %q", out, want)
			}
		}

		// EOF without logout: the last answer is printed, then unixterm hangs up.
		out, _, code = runTool(t, "port/print\n", unixterm, sw.Mgmt)
		if code != 0 || !strings.HasSuffix(out, ": itest-peer-1\n.\n1000 Success\n\nvde$ ") {
			t.Errorf("unixterm at EOF: exit %d, stdout %q", code, out)
		}

		_, errs, code = runTool(t, "", unixterm, filepath.Join(sw.Tmp, "nothing"))
		if code != 255 || !strings.Contains(errs, "No such file or directory") {
			t.Errorf("unixterm on a missing socket: exit %d, stderr %q", code, errs)
		}
	})
}

// tmuxSession is a terminal that tmux emulates, on a private tmux server.
type tmuxSession struct {
	sock, name string
}

func (s *tmuxSession) tmux(args ...string) (string, error) {
	return tryRun("tmux", append([]string{"-S", s.sock}, args...)...)
}

// startTmux runs shell command cmd in a new detached session of width x height on a
// tmux server of its own; the server is killed by PID at cleanup.
func startTmux(t *testing.T, cmd string) *tmuxSession {
	t.Helper()
	requireTools(t, "tmux")
	s := &tmuxSession{sock: filepath.Join(testDir(t), "tmux.sock"), name: "vdeit-" + uniqueSuffix()}
	if out, err := s.tmux("-f", "/dev/null", "new-session", "-d", "-s", s.name, "-x", "200", "-y", "50", cmd); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	pidText, err := s.tmux("display-message", "-p", "-t", s.name, "#{pid}")
	if err != nil {
		t.Fatalf("tmux display-message: %v\n%s", err, pidText)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(pidText))
	if err != nil {
		t.Fatalf("tmux server pid %q: %v", pidText, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tmux screen at the end:\n%s", s.capture())
		}
		s.tmux("kill-server")
		syscall.Kill(pid, syscall.SIGKILL) // if kill-server did not end it
	})
	return s
}

func (s *tmuxSession) keys(t *testing.T, keys ...string) {
	t.Helper()
	if out, err := s.tmux(append([]string{"send-keys", "-t", s.name}, keys...)...); err != nil {
		t.Fatalf("tmux send-keys %q: %v\n%s", keys, err, out)
	}
}

// capture is the screen and its scrollback, trailing blanks trimmed.
func (s *tmuxSession) capture() string {
	out, _ := s.tmux("capture-pane", "-p", "-S", "-", "-t", s.name)
	return strings.TrimRight(out, "\n")
}

// waitScreen waits until cond holds for the screen.
func (s *tmuxSession) waitScreen(t *testing.T, what string, cond func(screen string) bool) string {
	t.Helper()
	var screen string
	waitFor(t, startTimeout, what, func() (bool, string) {
		screen = s.capture()
		return cond(screen), screen
	})
	return screen
}

// lastLine is the screen's last non-empty line.
func lastLine(screen string) string {
	lines := strings.Split(strings.TrimRight(screen, "\n "), "\n")
	return strings.TrimRight(lines[len(lines)-1], " ")
}

// vdeterm's console on a terminal: the banner, a vde[SOCKET]: prompt, help without the
// framing, Tab completion, the endpoints in port/print (a wire peer and a QEMU guest
// started by vdeq), logout.
func TestUnixtermConsole(t *testing.T) {
	bothSwitches(t, func(t *testing.T, which string) {
		sw := startSwitch(t, which)
		dialPeer(t, sw, 1, wire.DialOptions{})
		daemonQEMU(t, sw)
		const guest = ": vdeqemu user=root pid=" // vdeq's pid, QEMU's before -daemonize
		bin := appletPath(t, "vdeterm")
		s := startTmux(t, fmt.Sprintf("%s %s; echo EXIT=$?; sleep 600", bin, sw.Mgmt))
		prompt := "vde[" + sw.Mgmt + "]:"

		s.waitScreen(t, "the banner and the prompt", func(sc string) bool {
			return strings.HasPrefix(sc, "VDE switch V.2.3.2") && strings.Contains(sc, "\n(C) ") && lastLine(sc) == prompt
		})

		s.keys(t, "help", "Enter")
		screen := s.waitScreen(t, "help's output", func(sc string) bool {
			return strings.Contains(sc, "\nSuccess\n") && lastLine(sc) == prompt
		})
		for _, want := range []string{prompt + " help\n", "COMMAND PATH", "\nport/print ", "\nvlan/print ", "\nSuccess\n"} {
			if !strings.Contains(screen, want) {
				t.Errorf("help: screen does not show %q:\n%s", want, screen)
			}
		}
		for _, framing := range []string{"0000 DATA", "1000 Success", "\n.\n", "vde$"} {
			if strings.Contains(screen, framing) {
				t.Errorf("help: screen shows the framing %q:\n%s", framing, screen)
			}
		}

		s.keys(t, "port/pr", "Tab")
		s.waitScreen(t, "port/pr to complete to port/print", func(sc string) bool {
			return lastLine(sc) == prompt+" port/print"
		})
		s.keys(t, "Enter")
		screen = s.waitScreen(t, "port/print's output", func(sc string) bool {
			return strings.Count(sc, "\nSuccess\n") == 2 && lastLine(sc) == prompt
		})
		_, after, _ := strings.Cut(screen, prompt+" port/print\n")
		for _, want := range []string{"Port 0001 ", ": itest-peer-1\n", "Port 0002 ", guest} {
			if !strings.Contains(after, want) {
				t.Errorf("port/print: screen does not show %q:\n%s", want, screen)
			}
		}

		s.keys(t, "vlan/print 77", "Enter")
		s.waitScreen(t, "the error as text", func(sc string) bool {
			return strings.HasSuffix(sc, prompt+" vlan/print 77\nNo such device or address\n"+prompt)
		})

		// History: Up brings back the last command.
		s.keys(t, "Up")
		s.waitScreen(t, "Up to show the last command", func(sc string) bool {
			return lastLine(sc) == prompt+" vlan/print 77"
		})
		s.keys(t, "C-u", "logout", "Enter")
		s.waitScreen(t, "vdeterm to exit 0", func(sc string) bool {
			return strings.Contains(sc, "\nEXIT=0")
		})
		// The switch has let the session go: a new one works.
		if got := sw.MustCmd(t, "port/print"); len(got) == 0 {
			t.Errorf("port/print after logout: no data")
		}
	})
}

// debianUnixterm is Debian's unixterm: a plain relay between the terminal and the socket.
const debianUnixterm = "/usr/bin/unixterm"

// unixtermKeys is what TestUnixtermScreen types, a line at a time: a command with a data
// block, one that fails inside its data block, one the switch does not know, an empty
// line, and Up, which a relay sends as the escape sequence the terminal echoes as ^[[A.
var unixtermKeys = [][]string{
	{"help", "Enter"},
	{"port/print", "Enter"},
	{"vlan/print 77", "Enter"},
	{"bogus", "Enter"},
	{"Enter"},
	{"Up", "Enter"},
}

// TestUnixtermScreen: on a terminal, our unixterm shows what Debian's shows, against the
// same switch with the same clients: the banner, the switch's "vde$ " prompt, what the
// terminal echoes and the protocol text as the switch sends it ("0000 DATA END WITH '.'",
// the data lines, ".", "1000 Success"); logout ends both with status 0. The only mask is
// the switch's last words, "9999 END OF SESSION": Debian's unixterm exits when it sees
// the hang-up and shows them only when it happens to read before.
func TestUnixtermScreen(t *testing.T) {
	requireTools(t, debianUnixterm)
	bothSwitches(t, func(t *testing.T, which string) {
		sw := startSwitch(t, which)
		dialPeer(t, sw, 1, wire.DialOptions{})
		dialPeer(t, sw, 2, wire.DialOptions{Port: 5})
		debian := unixtermScreen(t, debianUnixterm, sw.Mgmt)
		ours := unixtermScreen(t, appletPath(t, "unixterm"), sw.Mgmt)
		if debian != ours {
			t.Errorf("the screens differ:\nDebian's unixterm:\n%s\nours:\n%s\n%s", debian, ours, firstDiff(debian, ours))
		}
		for _, want := range []string{"VDE switch V.", "\n\nvde$ help\n0000 DATA END WITH '.'\nCOMMAND PATH ",
			"\nvde$ port/print\n0000 DATA END WITH '.'\nPort 0001 ", ": itest-peer-2\n.\n1000 Success\n\nvde$ vlan/print 77\n",
			"\n.\n1006 No such device or address\n", "\nvde$ bogus\n1038 Function not implemented\n\nvde$\n\nvde$ ^[[A\n",
			"\nvde$ logout\nEXIT=0"} {
			if !strings.Contains(ours, want) {
				t.Errorf("our unixterm's screen does not show %q:\n%s", want, ours)
			}
		}
	})
}

// unixtermScreen runs unixterm (bin) on sock in a tmux terminal, types unixtermKeys, each
// after the switch's next prompt, then logout, and returns the screen with its scrollback
// once unixterm has exited, less any "9999 END OF SESSION".
func unixtermScreen(t *testing.T, bin, sock string) string {
	t.Helper()
	s := startTmux(t, fmt.Sprintf("%s %s; echo EXIT=$?; sleep 600", bin, sock))
	// capture trims the blank after "vde$": a prompt is a line "vde$" at the bottom.
	prompted := func(n int) func(string) bool {
		return func(sc string) bool { return strings.Count(sc, "\nvde$") == n && lastLine(sc) == "vde$" }
	}
	s.waitScreen(t, bin+": the banner and the prompt", prompted(1))
	for i, keys := range unixtermKeys {
		s.keys(t, keys...)
		s.waitScreen(t, fmt.Sprintf("%s: the prompt after %q", bin, keys), prompted(i+2))
	}
	s.keys(t, "logout", "Enter")
	screen := s.waitScreen(t, bin+" to exit", func(sc string) bool { return strings.Contains(sc, "EXIT=") })
	return strings.ReplaceAll(screen, "9999 END OF SESSION", "")
}
