package capture

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseArgs: the capture command's argument (any mgmt client's bytes) is read or
// refused with ErrArgs, never a panic, and what it reads writes back the same.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"", "3", "count=10 1 2", "ring=16 count=0 7", "ring=0", "count=x", "x=1", " 1\t2 ", "=", "99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseArgs(s)
		if err != nil {
			if !errors.Is(err, ErrArgs) {
				t.Fatalf("ParseArgs(%q) = %v, not an ErrArgs", s, err)
			}
			return
		}
		b, err := ParseArgs(a.String())
		if err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("ParseArgs(%q) = %+v, its String %q reads %+v, %v", s, a, a.String(), b, err)
		}
	})
}

func TestParseArgs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Args
		err  bool
	}{
		{"", Args{}, false},
		{"3", Args{Ports: []int{3}}, false},
		{"count=5 ring=8 1 2", Args{Count: 5, Slots: 8, Ports: []int{1, 2}}, false},
		{"ring=70000", Args{}, true},
		{"port=1", Args{}, true},
		{"-1", Args{}, true},
	} {
		got, err := ParseArgs(c.in)
		if (err != nil) != c.err || err == nil && !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseArgs(%q) = %+v, %v; want %+v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}

// FuzzParseIface: an interface name from Wireshark's command line is read or refused
// with ErrIface; what it reads names itself the same.
func FuzzParseIface(f *testing.F) {
	for _, s := range []string{"vde:/tmp/sw.mgmt", "vde:/tmp/sw.mgmt:3", "vde:", "vde::", "eth0", "vde:/a:b:12", "vde:x:99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		i, err := ParseIface(s)
		if err != nil {
			if !errors.Is(err, ErrIface) {
				t.Fatalf("ParseIface(%q) = %v, not an ErrIface", s, err)
			}
			return
		}
		if i.Value() != s {
			j, err := ParseIface(i.Value())
			if err != nil || j != i {
				t.Fatalf("ParseIface(%q) = %+v whose Value %q reads %+v, %v", s, i, i.Value(), j, err)
			}
		}
	})
}

func TestParseIface(t *testing.T) {
	for in, want := range map[string]Iface{
		"vde:/tmp/a.mgmt":    {Mgmt: "/tmp/a.mgmt", Port: -1},
		"vde:/tmp/a.mgmt:12": {Mgmt: "/tmp/a.mgmt", Port: 12},
		"vde:/tmp/a:b.mgmt":  {Mgmt: "/tmp/a:b.mgmt", Port: -1},
	} {
		if got, err := ParseIface(in); err != nil || got != want {
			t.Errorf("ParseIface(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := ParseIface("eth0"); !errors.Is(err, ErrIface) {
		t.Errorf("ParseIface(eth0) = %v, want ErrIface", err)
	}
}

// FuzzGreet: whatever a socket answers (a switch, or anything else) ends in success, a
// refusal or an error, never a panic; success leaves the reader after the status line.
func FuzzGreet(f *testing.F) {
	f.Add("VDE switch V.2.3.2\n(C) x\n\nvde$ 1000 Success\nPCAPNG")
	f.Add("VDE switch V.2.3.2\n\nvde$ 1022 Invalid argument\n\nvde$ ")
	f.Add("VDE switch\n\nvde$ capture: bad\n1022 Invalid argument\n")
	f.Add("\nvde$ 0000 DATA END WITH '.'\n1 x\n.\n1000 Success\n")
	f.Add("\nvde$ 1038 Function not implemented\n")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, in string) {
		r := bufio.NewReader(strings.NewReader(in))
		var data []string
		err := greetData(r, io.Discard, Command, &data)
		if err == nil {
			i := strings.Index(in, "\nvde$ ")
			if i < 0 {
				t.Fatalf("success without a prompt in %q", in)
			}
		}
		ParsePorts("/m", data)
	})
}

func TestGreet(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("VDE switch V.2.3.2\n(C)\n\nvde$ 1000 Success\nREST"))
	var sent strings.Builder
	if err := greet(r, &sent, "capture/pcapng 3"); err != nil {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "REST" || sent.String() != "capture/pcapng 3\n" {
		t.Errorf("sent %q, left %q", sent.String(), rest)
	}
	r = bufio.NewReader(strings.NewReader("\nvde$ capture: port 40: no such port\n1022 Invalid argument\n\nvde$ "))
	err := greet(r, io.Discard, "capture/pcapng 40")
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "Invalid argument: capture: port 40: no such port") {
		t.Errorf("refusal: %v", err)
	}
	var data []string
	r = bufio.NewReader(strings.NewReader("\nvde$ 0000 DATA END WITH '.'\n1 \n3 vm1, vm2\nzz\n.\n1000 Success\n"))
	if err := greetData(r, io.Discard, PortsCommand, &data); err != nil {
		t.Fatal(err)
	}
	got := ParsePorts("/m", data)
	want := []Iface{{Mgmt: "/m", Port: 1}, {Mgmt: "/m", Port: 3, Descr: "vm1, vm2"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ports %+v, want %+v", got, want)
	}
}
