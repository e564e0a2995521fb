package applets

import (
	"errors"
	"reflect"
	"slices"
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
			desc:      "escaped commas stay escaped",
			args:      []string{"-net", "nic,vlan=2,model=a,,b", "-net", "user,vlan=2,smb=/x,,y", "-net", "nic,vlan=1,macaddr=m,,1", "-net", "vde,vlan=1"},
			wantArgs:  []string{"-net", "nic,model=a,,b", "-net", "user,smb=/x,,y"},
			wantCards: []string{"|0|e1000,mac=m,,1"},
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
	for _, nic := range []string{"nic,model", "nic,model="} {
		if _, err := parseVdeq("qemu", []string{"-net", nic, "-net", "vde"}, "e1000"); err == nil {
			t.Errorf("-net %s: a card with no model accepted", nic)
		}
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

// netPairs splits QEMU arguments as parseVdeq reads them: the values of "-net X" pairs
// and every other argument, in order.
func netPairs(args []string) (nets, plain []string) {
	for i := 0; i < len(args); i++ {
		if args[i] == "-net" && i+1 < len(args) {
			nets = append(nets, args[i+1])
			i++
			continue
		}
		plain = append(plain, args[i])
	}
	return nets, plain
}

// FuzzVdeqArgs rewrites NUL-separated QEMU command lines as vdeq does. Nothing may panic
// and the input stays as it was; an accepted line keeps every argument that is not a
// -net pair, in order; it has one card per -net vde (and per -sock path), and its -net
// pairs are the input's minus the vde and the nics paired with them, none with a vlan=;
// every card's -device is a model and known properties in QEMU's comma syntax; and the
// rewritten line is a fixed point (rewriting it again changes nothing).
func FuzzVdeqArgs(f *testing.F) {
	for _, s := range []string{
		"-m\x00660\x00-net\x00nic,vlan=1,macaddr=52:54:00:12:01:00\x00-net\x00vde,vlan=1,sock=/var/run/vde2/tap0.ctl\x00-boot\x00c",
		"-sock\x00/a,/b\x00--mod\x00660\x00-m\x00128",
		"-net\x00nic,model=virtio-net-pci,,x,vlan=2\x00-net\x00vde,vlan=2,port=3,mode=600,group=g",
		"-net\x00user,vlan=0,hostfwd=tcp::2222-:22,,x\x00-net\x00nic,vlan=0,,,",
		"-net\x00vde,sock=\"/tmp/my sw\"\x00-net",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\x00")
		orig := slices.Clone(args)
		p, err := parseVdeq("qemu-system-x86_64", args, "e1000")
		if !slices.Equal(args, orig) {
			t.Fatalf("input modified: %q -> %q", orig, args)
		}
		if err != nil {
			return
		}
		// The wrapper's own options, as parseVdeq takes them.
		rest, socks := args, 0
		if len(rest) >= 2 && (rest[0] == "-sock" || rest[0] == "-vdesock" || rest[0] == "-unix") {
			socks = len(strings.Split(rest[1], ","))
			rest = rest[2:]
		}
		if len(rest) >= 2 && rest[0] == "--mod" {
			rest = rest[2:]
		}
		inNets, inPlain := netPairs(rest)
		outNets, outPlain := netPairs(p.args)
		if !slices.Equal(inPlain, outPlain) {
			t.Fatalf("parseVdeq(%q): other arguments %q, want %q", args, outPlain, inPlain)
		}
		vdes, paired := 0, 0
		for _, v := range inNets {
			if kind, _, _ := strings.Cut(v, ","); kind == "vde" {
				vdes++
			}
		}
		for _, n := range p.nics {
			if n.hasNIC {
				paired++
			}
			dev := splitOpts(n.device)
			if len(dev) == 0 || dev[0] == "" {
				t.Fatalf("parseVdeq(%q): card device %q has no model", args, n.device)
			}
			for _, kv := range dev[1:] {
				if k, _, _ := strings.Cut(kv, "="); k != "mac" && k != "addr" && k != "vectors" {
					t.Fatalf("parseVdeq(%q): card device %q: property %q", args, n.device, kv)
				}
			}
		}
		if len(p.nics) != vdes+socks {
			t.Fatalf("parseVdeq(%q): %d cards for %d -net vde and %d socks", args, len(p.nics), vdes, socks)
		}
		if len(outNets) != len(inNets)-vdes-paired {
			t.Fatalf("parseVdeq(%q): -net %q left of %q (%d vde, %d nics paired)", args, outNets, inNets, vdes, paired)
		}
		for _, v := range outNets {
			kind, opts, _ := strings.Cut(v, ",")
			if kind == "vde" {
				t.Fatalf("parseVdeq(%q): -net %q left", args, v)
			}
			for _, kv := range splitOpts(opts) {
				if strings.HasPrefix(kv, "vlan=") {
					t.Fatalf("parseVdeq(%q): -net %q keeps its vlan", args, v)
				}
			}
		}
		if len(p.args) > 0 && slices.Contains([]string{"-sock", "-vdesock", "-unix", "--mod"}, p.args[0]) {
			return // the rewritten line would start with what looks like the wrapper's options
		}
		again, err := parseVdeq("qemu-system-x86_64", p.args, "e1000")
		if err != nil || len(again.nics) != 0 || !slices.Equal(again.args, p.args) {
			t.Fatalf("parseVdeq(%q) = %q, rewritten again: %v, %v", args, p.args, again, err)
		}
	})
}

// FuzzSplitOpts: joinOpts undoes splitOpts and splitOpts undoes joinOpts.
func FuzzSplitOpts(f *testing.F) {
	for _, s := range []string{"a=1,,2,b=3", ",,", ",", "", "x,,,y,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		opts := splitOpts(s)
		if got := joinOpts(opts); got != s {
			t.Fatalf("joinOpts(splitOpts(%q)) = %q (%q)", s, got, opts)
		}
		list := strings.Split(s, "\x00")
		if len(list) == 1 && list[0] == "" {
			return // splitOpts("") is no options, not one empty one
		}
		// Ambiguous in QEMU's syntax too: "0" then "," is "0,,," as is "0," then "", and
		// "a", "", "b" is "a,,b", that is "a,b".
		for i, o := range list {
			if i > 0 && strings.HasPrefix(o, ",") || i < len(list)-1 && o == "" {
				return
			}
		}
		if back := splitOpts(joinOpts(list)); !slices.Equal(back, list) {
			t.Fatalf("splitOpts(joinOpts(%q)) = %q", list, back)
		}
	})
}
