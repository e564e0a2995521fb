package applets

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePlugArgs(t *testing.T) {
	tests := []struct {
		args    []string
		urls    []string
		command []string
		check   func(*plugArgs) bool
	}{
		{nil, nil, nil, nil},
		{[]string{"/tmp/sw"}, []string{"/tmp/sw"}, nil, nil},
		{[]string{"vde:///a", "/b"}, []string{"vde:///a", "/b"}, nil, nil},
		{[]string{"/a", "=", "ssh", "-p", "22", "host", "vde_plug"}, []string{"/a"}, []string{"ssh", "-p", "22", "host", "vde_plug"}, nil},
		{[]string{"=", "cat"}, nil, []string{"cat"}, nil},
		{[]string{"-p", "/run/p.pid", "-d", "/a", "/b"}, []string{"/a", "/b"}, nil, func(p *plugArgs) bool { return p.pidfile == "/run/p.pid" && p.daemon }},
		{[]string{"-g", "0", "-m", "660", "/a"}, []string{"/a"}, nil, func(p *plugArgs) bool { return p.opts[0].HasGroup && p.opts[0].Mode == 0660 }},
		{[]string{"-M", "600", "--port2", "3", "/a", "/b"}, []string{"/a", "/b"}, nil, func(p *plugArgs) bool { return p.opts[1].Mode == 0600 && p.opts[1].Port == 3 }},
		{[]string{"-D", "left", "/a"}, []string{"/a"}, nil, func(p *plugArgs) bool { return p.opts[0].Description == "left" }},
		{[]string{"-s", "/classic"}, []string{"/classic"}, nil, nil},
		{[]string{"-L", "/a"}, []string{"/a"}, nil, func(p *plugArgs) bool { return p.log && p.iplog }},
		{[]string{"--reconnect", "/a", "/b"}, []string{"/a", "/b"}, nil, func(p *plugArgs) bool {
			return p.reconnect && p.opts[0].Reconnect && p.opts[1].Reconnect
		}},
		{[]string{"-reconnect", "-s", "/a"}, []string{"/a"}, nil, func(p *plugArgs) bool { return p.opts[0].Reconnect }},
		{[]string{"/a", "=", "ssh", "--reconnect"}, []string{"/a"}, []string{"ssh", "--reconnect"}, func(p *plugArgs) bool { return !p.reconnect }},
	}
	for _, tt := range tests {
		p, err := parsePlugArgs("vde_plug", tt.args)
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if strings.Join(p.urls, "|") != strings.Join(tt.urls, "|") || strings.Join(p.command, "|") != strings.Join(tt.command, "|") {
			t.Errorf("%q: urls %q command %q", tt.args, p.urls, p.command)
		}
		if tt.check != nil && !tt.check(p) {
			t.Errorf("%q: options %+v", tt.args, p)
		}
	}
	for _, bad := range [][]string{{"-Z"}, {"--port", "0", "/a"}, {"/a", "/b", "/c"}, {"/a", "/b", "=", "cat"}, {"="}, {"-c", "bash"}, {"-h"}} {
		_, err := parsePlugArgs("vde_plug", bad)
		var pe *parseExit
		if !errors.As(err, &pe) || pe.Code != 255 {
			t.Errorf("%q: %v, want exit 255", bad, err)
		}
	}
	if _, err := parsePlugArgs("-bash", nil); err == nil || !strings.Contains(err.(*parseExit).Stderr, "not a login shell") {
		t.Errorf("login shell without -c: %v", err)
	}
	if p, err := parsePlugArgs("-bash", []string{"-c", "vde_plug"}); err != nil || !p.loginCmd {
		t.Errorf("login shell -c vde_plug: %v", err)
	}
}
