package applets

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/vde-go/vde/switchcore/capture"
)

func TestCaptureArgs(t *testing.T) {
	for _, c := range []struct {
		argv []string
		want captureOpts
		err  string
	}{
		{[]string{"/tmp/m"}, captureOpts{mgmt: "/tmp/m"}, ""},
		{[]string{"-w", "f.pcapng", "-c", "10", "/tmp/m", "3", "4"},
			captureOpts{file: "f.pcapng", mgmt: "/tmp/m", args: capture.Args{Count: 10, Ports: []int{3, 4}}}, ""},
		{[]string{"/tmp/m", "--ring", "16", "-c5"}, captureOpts{mgmt: "/tmp/m", args: capture.Args{Count: 5, Slots: 16}}, ""},
		{[]string{"--extcap-interfaces", "--extcap-version=4.0"}, captureOpts{interfaces: true}, ""},
		{[]string{"--extcap-interface", "vde:/run/vde2/a.mgmt:7", "--extcap-dlts"},
			captureOpts{iface: "vde:/run/vde2/a.mgmt:7", mgmt: "/run/vde2/a.mgmt", dlts: true, args: capture.Args{Ports: []int{7}}}, ""},
		{[]string{"--capture", "--extcap-interface", "vde:/m", "--fifo", "/tmp/f"},
			captureOpts{iface: "vde:/m", mgmt: "/m", doCap: true, fifo: "/tmp/f"}, ""},
		{[]string{}, captureOpts{}, "no management socket"},
		{[]string{"/tmp/m", "x"}, captureOpts{}, `port "x"`},
		{[]string{"-c", "0", "/tmp/m"}, captureOpts{}, "not a positive number"},
		{[]string{"--capture", "--extcap-interface", "vde:/m"}, captureOpts{}, "needs --fifo"},
		{[]string{"--extcap-interface", "eth0", "--extcap-dlts"}, captureOpts{}, "not a VDE interface"},
		{[]string{"--bogus", "/tmp/m"}, captureOpts{}, "unrecognized option '--bogus'"},
	} {
		got, _, err := parseCaptureArgs(c.argv)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.argv, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %+v, %v; want %+v", c.argv, got, err, c.want)
		}
	}
}

// FuzzCaptureArgs: any command line (Wireshark's or a user's) is read or refused with a
// message, never a panic.
func FuzzCaptureArgs(f *testing.F) {
	f.Add("-w\x00f\x00-c\x0010\x00/tmp/m\x003")
	f.Add("--extcap-interface\x00vde:/m:1\x00--capture\x00--fifo\x00/f")
	f.Add("--extcap-interfaces\x00--extcap-version=4.0")
	f.Add("--ring=0\x00/m")
	f.Fuzz(func(t *testing.T, s string) {
		o, help, err := parseCaptureArgs(strings.Split(s, "\x00"))
		if err == nil && !help && !o.interfaces && o.mgmt == "" {
			t.Fatalf("%q: accepted without a management socket: %+v", s, o)
		}
	})
}

// The extcap's answers to Wireshark's questions about an interface.
func TestCaptureExtcapAnswers(t *testing.T) {
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"--extcap-interface", "vde:/m:1", "--extcap-dlts"}, "dlt {number=1}{name=EN10MB}{display=Ethernet}\n"},
		{[]string{"--extcap-interface", "vde:/m", "--extcap-config"}, "arg {number=0}{call=--ring}{display=Ring (frames)}"},
	} {
		var out, errb bytes.Buffer
		if err := CaptureMain(context.Background(), c.argv, Stdio{Out: &out, Err: &errb}); err != nil || !strings.HasPrefix(out.String(), c.want) {
			t.Errorf("%q: %q, %v (%s); want %q", c.argv, out.String(), err, errb.String(), c.want)
		}
	}
	var out, errb bytes.Buffer
	err := CaptureMain(context.Background(), []string{"/nonexistent/mgmt"}, Stdio{Out: &out, Err: &errb})
	if ee, ok := err.(*ExitError); !ok || ee.Code != 1 || !strings.Contains(errb.String(), "/nonexistent/mgmt") {
		t.Errorf("a missing socket: %v, %q; want exit 1 naming it", err, errb.String())
	}
}
