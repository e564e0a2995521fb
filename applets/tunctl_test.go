package applets

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// fakeIDs stands for /etc/passwd and /etc/group in the parser's tests.
func fakeIDs(known map[string]int) func(string) (int, error) {
	return func(name string) (int, error) {
		if id, ok := known[name]; ok {
			return id, nil
		}
		return 0, errors.New("unknown")
	}
}

var (
	fakeUsers  = fakeIDs(map[string]int{"nobody": 65534, "root": 0, "123": 7})
	fakeGroups = fakeIDs(map[string]int{"nogroup": 65534, "kvm": 104})
)

func TestTunctlArgs(t *testing.T) {
	def := func(edit func(o *tunctlOptions)) *tunctlOptions {
		o := &tunctlOptions{Clone: "/dev/net/tun", Owner: noID, Group: noID}
		if edit != nil {
			edit(o)
		}
		return o
	}
	tests := []struct {
		desc string
		args []string
		want *tunctlOptions
	}{
		{"nothing: the kernel names a TAP", nil, def(nil)},
		{"-t", []string{"-t", "kt0"}, def(func(o *tunctlOptions) { o.Name = "kt0" })},
		{"-t glued", []string{"-tkt0"}, def(func(o *tunctlOptions) { o.Name = "kt0" })},
		{"a tun name makes a TUN", []string{"-t", "tun7"}, def(func(o *tunctlOptions) { o.Name, o.TUN = "tun7", true })},
		{"-n", []string{"-n", "-t", "kt0"}, def(func(o *tunctlOptions) { o.Name, o.TUN = "kt0", true })},
		{"-n after -t", []string{"-t", "kt0", "-n"}, def(func(o *tunctlOptions) { o.Name, o.TUN = "kt0", true })},
		{"-u name", []string{"-u", "nobody"}, def(func(o *tunctlOptions) { o.Owner = 65534 })},
		{"-u number", []string{"-u", "1000"}, def(func(o *tunctlOptions) { o.Owner = 1000 })},
		{"-u hex", []string{"-u", "0x10"}, def(func(o *tunctlOptions) { o.Owner = 16 })},
		{"-u octal with blanks", []string{"-u", " 010"}, def(func(o *tunctlOptions) { o.Owner = 8 })},
		{"-u name before number", []string{"-u", "123"}, def(func(o *tunctlOptions) { o.Owner = 7 })},
		{"-u empty is 0", []string{"-u", ""}, def(func(o *tunctlOptions) { o.Owner = 0 })},
		{"-u -1 is unset", []string{"-u", "-1"}, def(nil)},
		{"-u 2^32-1 is unset", []string{"-u", "4294967295"}, def(nil)},
		{"-u cut to 32 bits", []string{"-u", "99999999999"}, def(func(o *tunctlOptions) { o.Owner = 1215752191 })},
		{"-g name", []string{"-g", "kvm"}, def(func(o *tunctlOptions) { o.Group = 104 })},
		{"-g number", []string{"-g", "50"}, def(func(o *tunctlOptions) { o.Group = 50 })},
		{"-d", []string{"-d", "kt0"}, def(func(o *tunctlOptions) { o.Delete, o.Name = true, "kt0" })},
		{"-d then -t: the last name", []string{"-d", "a", "-t", "b"}, def(func(o *tunctlOptions) { o.Delete, o.Name = true, "b" })},
		{"-d tun", []string{"-d", "tun3"}, def(func(o *tunctlOptions) { o.Delete, o.Name, o.TUN = true, "tun3", true })},
		{"-f", []string{"-f", "/dev/misc/net/tun"}, def(func(o *tunctlOptions) { o.Clone = "/dev/misc/net/tun" })},
		{"bundle", []string{"-bnu0"}, def(func(o *tunctlOptions) { o.Brief, o.TUN, o.Owner = true, true, 0 })},
		{"-- then nothing", []string{"-b", "--"}, def(func(o *tunctlOptions) { o.Brief = true })},
		{"a lone - value", []string{"-t", "-"}, def(func(o *tunctlOptions) { o.Name = "-" })},
	}
	for _, tt := range tests {
		got, err := parseTunctlArgs(tt.args, fakeUsers, fakeGroups)
		if err != nil {
			t.Errorf("%s: %q: %v", tt.desc, tt.args, err)
			continue
		}
		if fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", *tt.want) {
			t.Errorf("%s: %q:\n got %+v\nwant %+v", tt.desc, tt.args, *got, *tt.want)
		}
	}
}

func TestTunctlArgsErrors(t *testing.T) {
	tests := []struct {
		desc string
		args []string
		msg  string // what comes before the usage
	}{
		{"-h is not an option", []string{"-h"}, "vde_tunctl: invalid option -- 'h'\n"},
		{"--help neither", []string{"--help"}, "vde_tunctl: invalid option -- '-'\n"},
		{"-i prints the usage alone", []string{"-i", "-t", "x"}, ""},
		{"missing value", []string{"-t"}, "vde_tunctl: option requires an argument -- 't'\n"},
		{"an operand", []string{"-t", "kt0", "extra"}, ""},
		{"an operand after --", []string{"--", "-t"}, ""},
		{"a lone -", []string{"-"}, ""},
		{"bad user", []string{"-u", "baduser"}, "'baduser' is neither a username nor a numeric uid.\n"},
		{"0x is not a number for strtol", []string{"-u", "0x"}, "'0x' is neither a username nor a numeric uid.\n"},
		{"trailing text", []string{"-u", "12abc"}, "'12abc' is neither a username nor a numeric uid.\n"},
		{"bad group", []string{"-g", "badgrp"}, "'badgrp' is neither a groupname nor a numeric group.\n"},
		{"the first error wins", []string{"-u", "baduser", "-x"}, "'baduser' is neither a username nor a numeric uid.\n"},
		{"an option error before a bad value", []string{"-x", "-u", "baduser"}, "vde_tunctl: invalid option -- 'x'\n"},
	}
	for _, tt := range tests {
		_, err := parseTunctlArgs(tt.args, fakeUsers, fakeGroups)
		var pe *parseExit
		if !errors.As(err, &pe) {
			t.Errorf("%s: %q: err %v, want a usage exit", tt.desc, tt.args, err)
			continue
		}
		if pe.Code != 1 || pe.Stdout != "" || pe.Stderr != tt.msg+tunctlUsage {
			t.Errorf("%s: %q: exit %d, stdout %q, stderr %q; want 1 and %q + usage", tt.desc, tt.args, pe.Code, pe.Stdout, pe.Stderr, tt.msg)
		}
	}
}

func TestTunctlID(t *testing.T) {
	tests := []struct {
		in string
		v  uint32
		ok bool
	}{
		{"", 0, true},
		{"12", 12, true},
		{"-12", 1<<32 - 12, true},
		{"+7x", 0, false},
		{"0x1f", 31, true},
		{"-0X1F", 1<<32 - 31, true},
		{"0x", 0, false},
		{"+0x", 0, false},
		{"0xg", 0, false},
		{"017", 15, true},
		{"09", 0, false},
		{"  \t5", 5, true},
		{" ", 0, false},
		{"abc", 0, false},
		{"-", 0, false},
		{"99999999999999999999", math.MaxUint32, true}, // LONG_MAX's low 32 bits
		{"nobody", 65534, true},
	}
	for _, tt := range tests {
		v, ok := tunctlID(tt.in, fakeUsers)
		if ok != tt.ok || ok && v != tt.v {
			t.Errorf("tunctlID(%q) = %d, %v; want %d, %v", tt.in, v, ok, tt.v, tt.ok)
		}
	}
}

// plainDecimal is a number strtol and strconv read alike.
var plainDecimal = regexp.MustCompile(`^(0|-?[1-9][0-9]*)$`)

// FuzzTunctlArgs: any command line parses to options or to the usage, without a panic;
// a decimal -u reads as strconv reads it (cut to 32 bits).
func FuzzTunctlArgs(f *testing.F) {
	for _, s := range []string{"-u nobody -t kt0", "-bnu0", "-d tun0", "-u 0x10 -g 7", "-t", "-- -x", "-u 99999999999", "-u -1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		o, err := parseTunctlArgs(args, fakeUsers, fakeGroups)
		if err != nil {
			var pe *parseExit
			if !errors.As(err, &pe) || pe.Code != 1 || !strings.HasSuffix(pe.Stderr, tunctlUsage) {
				t.Fatalf("%q: %v", args, err)
			}
			return
		}
		if strings.HasPrefix(o.Name, "tun") && !o.TUN {
			t.Fatalf("%q: name %q but not a TUN", args, o.Name)
		}
		if len(args) == 2 && args[0] == "-u" {
			_, isName := fakeUsers(args[1])
			if n, err := strconv.ParseInt(args[1], 10, 64); err == nil && isName != nil && plainDecimal.MatchString(args[1]) {
				if o.Owner != uint32(n) {
					t.Fatalf("-u %s: owner %d, want %d", args[1], o.Owner, uint32(n))
				}
			}
		}
	})
}
