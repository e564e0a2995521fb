package applets

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func runIfupHook(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	old := ifupHookEnv
	ifupHookEnv = func(k string) string { return env[k] }
	defer func() { ifupHookEnv = old }()
	var out, errb bytes.Buffer
	err := IfupHookMain(context.Background(), args, Stdio{Out: &out, Err: &errb})
	var ee *ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.Code
	default:
		t.Fatalf("IfupHookMain: %v", err)
	}
	return code, out.String(), errb.String()
}

func TestIfupHookIgnores(t *testing.T) {
	for _, env := range []map[string]string{
		{},
		{"IFACE": "--all", "ADDRFAM": "meta", "METHOD": "none", "MODE": "start", "PHASE": "pre-up"},
		{"IFACE": "eth0", "METHOD": "dhcp", "MODE": "start", "PHASE": "pre-up"},
		{"IFACE": "tap0", "METHOD": "static", "MODE": "start", "PHASE": "post-up", "IF_VDE2_SWITCH": "-"},
	} {
		if code, out, errs := runIfupHook(t, env); code != 0 || out != "" || errs != "" {
			t.Errorf("env %v: exit %d, stdout %q, stderr %q; want 0 and silence", env, code, out, errs)
		}
	}
}

func TestIfupHookUsage(t *testing.T) {
	if code, out, _ := runIfupHook(t, nil, "-h"); code != 0 || !strings.HasPrefix(out, "Usage: vde ifup-hook\n") {
		t.Errorf("-h: exit %d, stdout %q", code, out)
	}
	if code, _, errs := runIfupHook(t, nil, "extra"); code != 2 || !strings.HasPrefix(errs, "Usage: vde ifup-hook\n") {
		t.Errorf("extra argument: exit %d, stderr %q; want 2 and the usage", code, errs)
	}
}

func TestIfupHookBadIface(t *testing.T) {
	env := map[string]string{"IFACE": "a/b", "METHOD": "manual", "MODE": "start", "PHASE": "pre-up", "IF_VDE2_SWITCH": "-"}
	code, _, errs := runIfupHook(t, env)
	if code != 1 || !strings.Contains(errs, "vde ifup-hook: a/b: IFACE \"a/b\": not a valid interface name") {
		t.Errorf("exit %d, stderr %q; want 1 and the reason", code, errs)
	}
}
