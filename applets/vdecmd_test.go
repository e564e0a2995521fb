package applets

import (
	"io"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestVdecmd(t *testing.T) {
	fs := startFakeMgmt(t, 0)
	for _, tt := range []struct {
		desc   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"data lines", []string{"-s", fs.Path, "port/print"}, 0,
			"Port 0001 untagged_vlan=0000 ACTIVE - Unnamed Allocatable\n" +
				" Current User: root Access Control: (User: NONE - Group: NONE)\n" +
				"  -- endpoint ID 0007 module unix prog   : peer-one\n", ""},
		{"words joined, options after them", []string{"port/print", "1", "--sock", fs.Path}, 0, "", ""},
		{"errno", []string{"-s" + fs.Path, "hash/find", "zz"}, 22, "", "vdecmd: hash/find zz: Invalid argument\n"},
		{"unknown command", []string{"-s", fs.Path, "-f", "/etc/vde2/vdecmd", "bogus"}, 38, "", "vdecmd: bogus: Function not implemented\n"},
		{"debug line after the answer", []string{"-s", fs.Path, "debug"}, 0, "", ""},
		{"logout", []string{"-s", fs.Path, "logout"}, 0, "", ""},
		{"shutdown", []string{"-s", fs.Path, "shutdown"}, 0, "", ""},
	} {
		err, out, errs := runApplet(t, VdecmdMain, "", tt.args...)
		if exitCodeOf(err) != tt.code || errs != tt.stderr || (tt.stdout != "" && out != tt.stdout) {
			t.Errorf("%s: vdecmd %q: exit %d (%v), stdout %q, stderr %q; want %d, %q, %q",
				tt.desc, tt.args, exitCodeOf(err), err, out, errs, tt.code, tt.stdout, tt.stderr)
		}
		if strings.ContainsRune(out, 0) {
			t.Errorf("%s: NUL in stdout %q", tt.desc, out)
		}
	}
	want := []string{"port/print", "port/print 1", "hash/find zz", "bogus", "debug", "logout", "shutdown"}
	if got := fs.Commands(); !reflect.DeepEqual(got, want) {
		t.Errorf("the switch got %q; want %q", got, want)
	}

	// -v shows the session on stderr.
	err, _, errs := runApplet(t, VdecmdMain, "", "-v", "-s", fs.Path, "port/print")
	if err != nil || !strings.HasPrefix(errs, testBanner+testPrompt+"port/print\n"+fakePortPrint) {
		t.Errorf("-v: %v, stderr %q", err, errs)
	}
}

func TestVdecmdErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nothing")
	err, _, errs := runApplet(t, VdecmdMain, "", "-s", missing, "port/print")
	if exitCodeOf(err) != 255 || errs != "vdecmd: connect "+missing+": No such file or directory\n" {
		t.Errorf("missing socket: %v, stderr %q", err, errs)
	}
	err, _, errs = runApplet(t, VdecmdMain, "", "-s", missing)
	if exitCodeOf(err) != 255 || !strings.HasPrefix(errs, "Usage: vdecmd OPTIONS command\n\t-s sockname  management socket path (default is /var/run/vdecmd)\n") {
		t.Errorf("no command: %v, stderr %q", err, errs)
	}
	err, _, errs = runApplet(t, VdecmdMain, "", "-x", "port/print")
	if exitCodeOf(err) != 255 || !strings.HasPrefix(errs, "vdecmd: unrecognized option '-x'\nUsage: vdecmd") {
		t.Errorf("-x: %v, stderr %q", err, errs)
	}
	err, _, errs = runApplet(t, VdecmdMain, "", "-s")
	if exitCodeOf(err) != 255 || !strings.HasPrefix(errs, "vdecmd: option requires an argument -- 's'\nUsage: vdecmd") {
		t.Errorf("-s: %v, stderr %q", err, errs)
	}

	// A stream socket that never greets us is not a management socket.
	silent := notMgmt(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	start := time.Now()
	err, _, errs = runApplet(t, VdecmdMain, "", "-s", silent, "port/print")
	if exitCodeOf(err) != 255 || !strings.Contains(errs, "no prompt in 5s (not a management socket?)") {
		t.Errorf("silent socket: %v, stderr %q", err, errs)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("silent socket: took %v", d)
	}
}
