package netnode

import (
	"errors"
	"strings"
	"testing"
)

func TestParseArg(t *testing.T) {
	def := Options{Mode: 0600, DirMode: 02700, Group: -1, HashSize: 256, Expire: 120}
	with := func(f func(*Options)) Options {
		o := def
		f(&o)
		return o
	}
	for _, tc := range []struct {
		desc, in string
		want     Options
	}{
		{"empty: the default node", "", def},
		{"a path alone", "/tmp/x", with(func(o *Options) { o.Path = "/tmp/x" })},
		{"empty brackets", "/tmp/x[]", with(func(o *Options) { o.Path = "/tmp/x" })},
		{"mode sets the directory's too", "/tmp/x[mode=0666]", with(func(o *Options) { o.Path, o.Mode, o.DirMode = "/tmp/x", 0666, 02777 })},
		{"mode loses its execute bits", "/x[mode=0777]", with(func(o *Options) { o.Path, o.Mode, o.DirMode = "/x", 0666, 02777 })},
		{"group-only mode", "/x[mode=0060]", with(func(o *Options) { o.Path, o.Mode, o.DirMode = "/x", 0060, 02070 })},
		{"dirmode alone", "/x[dirmode=0750]", with(func(o *Options) { o.Path, o.DirMode, o.DirModeSet = "/x", 0750, true })},
		{"dirmode wins over mode's", "/x[mode=0666/dirmode=0700]", with(func(o *Options) { o.Path, o.Mode, o.DirMode, o.DirModeSet = "/x", 0666, 0700, true })},
		{"keys by prefix: m, d, g, hashsi, e", "/x[m=0640/d=0710/g=0/hashsi=64/e=30]", with(func(o *Options) {
			o.Path, o.Mode, o.DirMode, o.DirModeSet, o.Group, o.HashSize, o.Expire = "/x", 0640, 0710, true, 0, 64, 30
		})},
		{"h is hashsize, hashse hashseed", "/x[h=8/hashse=9]", with(func(o *Options) { o.Path, o.HashSize, o.HashSeed = "/x", 8, 9 })},
		{"a group by name", "/x[grp=root]", with(func(o *Options) { o.Path, o.Group = "/x", 0 })},
		{"a group by number", "/x[grp=65534]", with(func(o *Options) { o.Path, o.Group = "/x", 65534 })},
		{"empty parameters are skipped", "/x[/=3//mode=0660/]", with(func(o *Options) { o.Path, o.Mode, o.DirMode = "/x", 0660, 02770 })},
		{"quotes and escapes in the path", `'/tmp/a b'%5bc\[d[mode=0644]`, with(func(o *Options) { o.Path, o.Mode, o.DirMode = "/tmp/a b[c[d", 0644, 02755 })},
		{"a quoted slash in a value", `/x[grp='65534'/expiretime="5"]`, with(func(o *Options) { o.Path, o.Group, o.Expire = "/x", 65534, 5 })},
		{"no closing bracket", "/x[hashsize=16", with(func(o *Options) { o.Path, o.HashSize = "/x", 16 })},
		{"text after the bracket is dropped", "/x[hashsize=16]junk", with(func(o *Options) { o.Path, o.HashSize = "/x", 16 })},
		{"a relative path", "rel/dir[expiretime=0]", with(func(o *Options) { o.Path, o.Expire = "rel/dir", 0 })},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := ParseArg(tc.in)
			if err != nil {
				t.Fatalf("ParseArg(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseArg(%q) =\n %+v, want\n %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseArgErrors(t *testing.T) {
	for _, tc := range []struct{ desc, in, want string }{
		{"an unknown key", "/x[vlan=3]", "unknown key: vlan"},
		{"a bare word", "/x[foo]", "unknown key: foo"},
		{"a mode that is not octal", "/x[mode=0668]", "mode=0668: not an octal mode"},
		{"a mode beyond 07777", "/x[mode=017777]", "not an octal mode"},
		{"an empty mode", "/x[mode]", "mode=: not an octal mode"},
		{"a dirmode that is not octal", "/x[dirmode=rwx]", "dirmode=rwx: not an octal mode"},
		{"a group that does not exist", "/x[grp=no-such-group-here]", "grp=no-such-group-here"},
		{"a size that is not a number", "/x[hashsize=big]", "hashsize=big: not a number"},
		{"a negative expiry", "/x[expiretime=-1]", "expiretime=-1: not a number"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := ParseArg(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseArg(%q) = %v, want an error with %q", tc.in, err, tc.want)
			}
			if strings.HasPrefix(tc.want, "unknown key") && !errors.Is(err, ErrUnknownKey) {
				t.Errorf("ParseArg(%q) = %v, not ErrUnknownKey", tc.in, err)
			}
		})
	}
}

func TestDefaultDir(t *testing.T) {
	o, err := ParseArg("[hashsize=8]")
	if err != nil {
		t.Fatal(err)
	}
	if d := o.Dir(); !strings.HasPrefix(d, "/tmp/vdenode_") || len(d) == len("/tmp/vdenode_") {
		t.Errorf("Dir() of an empty path = %q, want /tmp/vdenode_USER", d)
	}
}

// FuzzParseArg: any argument parses or fails cleanly, and what parses is in range.
func FuzzParseArg(f *testing.F) {
	for _, s := range []string{"", "/tmp/x[mode=0666/hashsize=1024]", `'a'"b"\c%41[d=1/g=0/e=5]`, "/x[", "/x]]", "[[/]]", "x[h=1/hashse=2/=3]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseArg(s)
		if err != nil {
			return
		}
		if o.Mode&0111 != 0 || o.Mode > 07777 || o.DirMode > 07777 || o.HashSize < 0 || o.Expire < 0 || o.Group < -1 {
			t.Fatalf("ParseArg(%q) = %+v: out of range", s, o)
		}
		if !o.DirModeSet && o.DirMode != dirModeFor(o.Mode) && o.DirMode != DefaultDirMode {
			t.Fatalf("ParseArg(%q) = %+v: dirmode does not follow mode", s, o)
		}
	})
}
