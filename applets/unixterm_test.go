package applets

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// On a pipe, unixterm prints all the switch says, the final "9999 END OF SESSION"
// included, and sends one line per prompt even to a slow switch.
func TestUnixtermPipe(t *testing.T) {
	fs := startFakeMgmt(t, 50*time.Millisecond)
	err, out, errs := runApplet(t, UnixtermMain, "port/print\nhelp\n\nbogus\nlogout\n", fs.Path)
	if err != nil || errs != "" {
		t.Fatalf("unixterm: %v, stderr %q", err, errs)
	}
	want := testBanner + testPrompt + fakePortPrint + testPrompt + fakeHelp + testPrompt + testPrompt +
		"1038 Function not implemented\n" + testPrompt + "9999 END OF SESSION"
	if out != want {
		t.Errorf("stdout:\n%q\nwant\n%q", out, want)
	}
	if got, want := fs.Commands(), []string{"port/print", "help", "", "bogus", "logout"}; !reflect.DeepEqual(got, want) {
		t.Errorf("the switch got %q; want %q", got, want)
	}
}

// At the end of stdin, unixterm waits for the last answer, then hangs up; a last line
// without a newline is sent with one.
func TestUnixtermPipeEOF(t *testing.T) {
	fs := startFakeMgmt(t, 0)
	err, out, _ := runApplet(t, UnixtermMain, "showinfo\nport/print 1", fs.Path)
	if err != nil {
		t.Fatal(err)
	}
	want := testBanner + testPrompt + "1038 Function not implemented\n" + testPrompt + fakePortPrint + testPrompt
	if out != want {
		t.Errorf("stdout:\n%q\nwant\n%q", out, want)
	}
	if got, want := fs.Commands(), []string{"showinfo", "port/print 1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("the switch got %q; want %q", got, want)
	}

	// Nothing on stdin: the banner, and goodbye.
	err, out, _ = runApplet(t, UnixtermMain, "", fs.Path)
	if err != nil || out != testBanner+testPrompt {
		t.Errorf("empty stdin: %v, stdout %q", err, out)
	}
}

func TestUnixtermErrors(t *testing.T) {
	for _, tt := range []struct {
		prog, usage string
		main        MainFunc
	}{{"unixterm", unixtermUsage, UnixtermMain}, {"vdeterm", vdetermUsage, VdetermMain}} {
		missing := filepath.Join(t.TempDir(), "nothing")
		err, _, errs := runApplet(t, tt.main, "", missing)
		if exitCodeOf(err) != 255 || errs != tt.prog+": Socket connecting error: "+missing+": No such file or directory\n" {
			t.Errorf("%s on a missing socket: %v, stderr %q", tt.prog, err, errs)
		}
		err, _, errs = runApplet(t, tt.main, "")
		if exitCodeOf(err) != 255 || errs != tt.usage {
			t.Errorf("%s without a socket: %v, stderr %q", tt.prog, err, errs)
		}
		err, _, errs = runApplet(t, tt.main, "", "-x", "s")
		if exitCodeOf(err) != 255 || !strings.HasPrefix(errs, tt.prog+": unrecognized option '-x'\nUsage: "+tt.prog) {
			t.Errorf("%s -x: %v, stderr %q", tt.prog, err, errs)
		}
		err, out, _ := runApplet(t, tt.main, "", "--help")
		if err != nil || out != tt.usage {
			t.Errorf("%s --help: %v, stdout %q", tt.prog, err, out)
		}
	}
}

// On a terminal the relay does not show the switch's last words: Debian's unixterm exits
// when the switch hangs up, before it reads them.
func TestRelayEndOfSession(t *testing.T) {
	for _, showEnd := range []bool{true, false} {
		fs := startFakeMgmt(t, 0)
		conn, err := dialMgmt(fs.Path)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := mgmtRelay(context.Background(), conn, strings.NewReader("bogus\nlogout\n"), &out, showEnd); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		want := testBanner + testPrompt + "1038 Function not implemented\n" + testPrompt
		if showEnd {
			want += "9999 END OF SESSION"
		}
		if out.String() != want {
			t.Errorf("showEnd %v: %q, want %q", showEnd, out.String(), want)
		}
	}
}

// openPty opens a pseudo-terminal pair in its initial mode (canonical, echo, ONLCR).
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// On a terminal, unixterm is the relay Debian's is: the terminal echoes what is typed,
// the switch's prompt and protocol text are shown as they come, and logout ends it
// without "9999 END OF SESSION". vdeterm on a terminal is the console.
func TestUnixtermOnTerminal(t *testing.T) {
	for _, tt := range []struct {
		name string
		main MainFunc
		keys []string
		want string
	}{
		{"unixterm", UnixtermMain, []string{"port/print\n", "\n", "hash/find zz\n", "logout\n"},
			testBanner + testPrompt + "port/print\n" + fakePortPrint + testPrompt + "\n" + testPrompt +
				"hash/find zz\n0000 DATA END WITH '.'\n.\n1022 Invalid argument\n" + testPrompt + "logout\n"},
		{"vdeterm", VdetermMain, []string{"port/print\r", "logout\r"},
			testBanner + "\nvde[SOCK]: port/print\n" +
				"Port 0001 untagged_vlan=0000 ACTIVE - Unnamed Allocatable\n" +
				" Current User: root Access Control: (User: NONE - Group: NONE)\n" +
				"  -- endpoint ID 0007 module unix prog   : peer-one\n" +
				"Success\nvde[SOCK]: logout\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := startFakeMgmt(t, 0)
			master, slave := openPty(t)
			var out lockedBuffer
			go io.Copy(&out, master)
			done := make(chan error, 1)
			go func() {
				done <- tt.main(context.Background(), []string{fs.Path}, Stdio{In: slave, Out: slave, Err: slave})
			}()
			prompt := map[string]string{"unixterm": "vde$ ", "vdeterm": "vde[" + fs.Path + "]: "}[tt.name]
			for i, k := range tt.keys {
				waitOutput(t, &out, func(s string) bool { return strings.Count(s, prompt) > i })
				master.WriteString(k)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%s did not end; output %q", tt.name, out.String())
			}
			time.Sleep(50 * time.Millisecond) // the last bytes through the pty
			raw := strings.ReplaceAll(out.String(), fs.Path, "SOCK")
			got, want := screen(raw), screen(strings.ReplaceAll(tt.want, "\n", "\r\n"))
			if got != want {
				t.Errorf("screen:\n%s\nwant\n%s\nraw %q", got, want, raw)
			}
			// The relay adds nothing: what the terminal got is the switch's text and the echo.
			if tt.name == "unixterm" && raw != strings.ReplaceAll(tt.want, "\n", "\r\n") {
				t.Errorf("raw %q\nwant %q", raw, strings.ReplaceAll(tt.want, "\n", "\r\n"))
			}
		})
	}
}

// waitOutput waits until cond holds for what the terminal showed.
func waitOutput(t *testing.T, out *lockedBuffer, cond func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out; output %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
