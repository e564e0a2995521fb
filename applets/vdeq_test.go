package applets

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestVdeqRewrite(t *testing.T) {
	for _, tc := range []struct {
		desc string
		args []string
		// want: QEMU's arguments after the cards, and each card as "sock|port|device".
		wantArgs  []string
		wantCards []string
		wantMode  uint32
	}{
		{
			desc:      "the seed's line",
			args:      strings.Fields("-m 660 -net nic,vlan=1,macaddr=52:54:00:12:01:00 -net vde,vlan=1,sock=/var/run/vde2/tap0.ctl -boot c -hda Debian1.img"),
			wantArgs:  strings.Fields("-m 660 -boot c -hda Debian1.img"),
			wantCards: []string{"/var/run/vde2/tap0.ctl|0|e1000,mac=52:54:00:12:01:00"},
		},
		{
			desc:      "no vlan: both on vlan 0, model and port",
			args:      strings.Fields("-net nic,model=virtio-net-pci,macaddr=52:54:00:00:00:01 -net vde,sock=/tmp/sw,port=5"),
			wantCards: []string{"/tmp/sw|5|virtio-net-pci,mac=52:54:00:00:00:01"},
		},
		{
			desc: "two cards paired by vlan, in any order",
			args: strings.Fields("-net vde,vlan=2,sock=/b -net nic,vlan=1,macaddr=52:54:00:00:00:01 -net nic,vlan=2,macaddr=52:54:00:00:00:02 -net vde,vlan=1,sock=/a"),
			wantCards: []string{
				"/b|0|e1000,mac=52:54:00:00:00:02",
				"/a|0|e1000,mac=52:54:00:00:00:01",
			},
		},
		{
			desc:      "quoted sock, a vde without a nic gets the default model",
			args:      []string{"-net", `vde,sock="/tmp/my sw"`},
			wantCards: []string{"/tmp/my sw|0|e1000"},
		},
		{
			desc:      "other backends keep their nic, without vlan=",
			args:      strings.Fields("-net nic,vlan=0 -net user,vlan=0,hostfwd=tcp::2222-:22 -net nic,vlan=1 -net vde,vlan=1,sock=/s"),
			wantArgs:  strings.Fields("-net nic -net user,hostfwd=tcp::2222-:22"),
			wantCards: []string{"/s|0|e1000"},
		},
		{
			desc:      "old syntax: -sock paths and --mod",
			args:      strings.Fields("-sock /a,/b --mod 660 -m 128"),
			wantArgs:  strings.Fields("-m 128"),
			wantCards: []string{"/a|0|e1000", "/b|0|e1000"},
			wantMode:  0o660,
		},
		{
			desc:     "-netdev and -nic pass unchanged",
			args:     strings.Fields("-netdev vde,id=n0,sock=/s -device e1000,netdev=n0 -nic user"),
			wantArgs: strings.Fields("-netdev vde,id=n0,sock=/s -device e1000,netdev=n0 -nic user"),
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			p, err := parseVdeq("qemu-system-x86_64", tc.args, "e1000")
			if err != nil {
				t.Fatal(err)
			}
			if len(p.args) != 0 || len(tc.wantArgs) != 0 {
				if !reflect.DeepEqual(p.args, tc.wantArgs) {
					t.Errorf("args %q, want %q", p.args, tc.wantArgs)
				}
			}
			var cards []string
			for _, n := range p.nics {
				cards = append(cards, n.sock+"|"+strconv.Itoa(n.port)+"|"+n.device)
			}
			if !reflect.DeepEqual(cards, tc.wantCards) {
				t.Errorf("cards %q, want %q", cards, tc.wantCards)
			}
			if p.mode != tc.wantMode {
				t.Errorf("mode %o, want %o", p.mode, tc.wantMode)
			}
		})
	}
}

func TestVdeqRefuses(t *testing.T) {
	_, err := parseVdeq("qemu", strings.Fields("-net vde,sock=/s,frob=1"), "e1000")
	var unknown errVdeqUnknown
	if !errors.As(err, &unknown) || unknown.Error() != "WARNING: unknown parameter in argument vde,sock=/s,frob=1" {
		t.Errorf("unknown parameter: %v", err)
	}
	if _, err := parseVdeq("qemu", strings.Fields("-net vde,vlan=1,sock=/a -net vde,vlan=1,sock=/b"), "e1000"); err == nil {
		t.Error("two vde on one vlan accepted")
	}
	if _, err := parseVdeq("qemu", strings.Fields("-net nic,frob=1 -net vde,sock=/a"), "e1000"); err == nil {
		t.Error("unknown nic parameter accepted")
	}
}

func TestForNameVdeLinks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		applet  string
		prepend []string
	}{
		{"vdeqemu", "vdeq", []string{"qemu"}},
		{"vdekvm", "vdeq", []string{"kvm"}},
		{"vdeoqemu", "vdeq", []string{"qemu"}},
		{"vdeq", "vdeq", nil},
		{"vde_switch", "switch", nil}, // our applets win over the vde<NAME> rule
		{"vdeswitch", "switch", nil},
		{"vdeplug", "plug", nil},
	} {
		a, pre, ok := ForName(tc.name)
		if !ok || a.Name != tc.applet || !reflect.DeepEqual(pre, tc.prepend) {
			t.Errorf("ForName(%q) = %s %q %v, want %s %q", tc.name, a.Name, pre, ok, tc.applet, tc.prepend)
		}
	}
	for _, name := range []string{"vde", "vde.test", "vde-", "vde-foo", "vde1"} {
		if a, _, ok := ForName(name); ok {
			t.Errorf("ForName(%q) = %s, want no applet", name, a.Name)
		}
	}
}

func TestSplitOpts(t *testing.T) {
	got := splitOpts("a=1,,2,b=3")
	if !reflect.DeepEqual(got, []string{"a=1,2", "b=3"}) {
		t.Errorf("splitOpts = %q", got)
	}
}
