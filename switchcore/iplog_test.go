package switchcore

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func noResolve(string) (netip.Addr, error) { return netip.Addr{}, errBadAddress }

// The ranges iplog/ipadd takes, and how iplog/list prints them (as Debian's, observed).
func TestParseIPRange(t *testing.T) {
	resolve := func(h string) (netip.Addr, error) {
		if h == "localhost" {
			return netip.MustParseAddr("127.0.0.1"), nil
		}
		return netip.Addr{}, errBadAddress
	}
	tests := []struct{ in, want string }{
		{"10.0.0.1/8", "10.0.0.0/8"},
		{"192.168.1.1", "192.168.1.1/32"},
		{"10.1.2.3/33", "10.1.2.3/32"},
		{"10.1.2.3/-1", "0.0.0.0/0"},
		{"10.1.2.3/abc", "0.0.0.0/0"},
		{"10.1.2.3/20", "10.1.0.0/20"},
		{"10.1", "10.0.0.1/32"},
		{"0x0a.010.0.1", "10.8.0.1/32"},
		{"167772161", "10.0.0.1/32"},
		{"localhost", "127.0.0.1/32"},
		{"fd00::1/64", "fd00::/64"},
		{"::1", "::1/128"},
		{"::ffff:1.2.3.4/96", "::ffff:0.0.0.0/96"},
		{"fe80::1%eth0/10", "fe80::/10"},
		{"", "error"},
		{"/8", "error"},
		{"10.0.0.1/8/9", "error"},
		{"256.1.1.1", "error"},
		{"1.2.3.4.5", "error"},
		{"1.2.3.4 ", "error"},
		{"08.1.1.1", "error"},
		{"1.0x", "error"},
		{"junk", "error"},
		{"1:2:3", "error"},
	}
	for _, tt := range tests {
		r, err := parseIPRange(tt.in, resolve)
		got := "error"
		if err == nil {
			got = r.String()
		}
		if got != tt.want {
			t.Errorf("%q: got %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestIplogCommands(t *testing.T) {
	s := newTestSwitch(t, Config{})
	dir := t.TempDir()
	log := filepath.Join(dir, "ip.log")
	showinfo := func(where string) string {
		return "0000 DATA END WITH '.'\niplog: ip/port/user logging plugin\n" + where + "\nGC interval 10 secs\nGC expire 360 secs\n.\n1000 Success\n"
	}
	tests := []struct{ in, want string }{
		{"plugin/add iplog", "1000 Success\n"},
		{"iplog/showinfo", showinfo("log disabled")},
		{"iplog/logfile /nonexistent/x", "1002 No such file or directory\n"},
		{"iplog/logfile -", "1000 Success\n"},
		{"iplog/showinfo", showinfo("log on syslog")},
		{"iplog/logfile", "1000 Success\n"},
		{"iplog/logfile", "1000 Success\n"}, // C frees the name twice here and dies
		{"iplog/logfile " + log, "1000 Success\n"},
		{"iplog/showinfo", showinfo("log on file " + log)},
		{"iplog/list", "0000 DATA END WITH '.'\n.\n1000 Success\n"},
		{"iplog/ipadd 10.0.0.1/8", "1000 Success\n"},
		{"iplog/ipadd 10.0.0.0/8", "1017 File exists\n"},
		{"iplog/ipadd fd00::1/64", "1000 Success\n"},
		{"iplog/ipadd 192.168.1.1", "1000 Success\n"},
		{"iplog/ipadd", "1022 Invalid argument\n"},
		{"iplog/list", "0000 DATA END WITH '.'\n  ipv4: 10.0.0.0/8\n  ipv4: 192.168.1.1/32\n  ipv6: fd00::/64\n.\n1000 Success\n"},
		{"iplog/ipdel 10.0.0.0/8", "1000 Success\n"},
		{"iplog/ipdel 10.0.0.0/8", "1002 No such file or directory\n"},
		{"iplog/ipdel 1.2.3.4.5", "1022 Invalid argument\n"},
		{"iplog/ipadd 10.0.0.0/8", "1000 Success\n"},
		{"iplog/setgcint 5", "1000 Success\n"},
		{"iplog/setexpire 30", "1000 Success\n"},
		{"iplog/showinfo", strings.Replace(strings.Replace(showinfo("log on file "+log), "interval 10 secs", "interval 5 secs", 1), "expire 360", "expire 30", 1)},
		{"iplog/setgcint 10", "1000 Success\n"},
		{"iplog/setexpire 360", "1000 Success\n"},
		{"iplog/iplist", "0000 DATA END WITH '.'\n.\n1000 Success\n"},
		{"iplog/ipuser", "0000 DATA END WITH '.'\n.\n1022 Invalid argument\n"},
		{"iplog/ipuser no-such-user-here", "0000 DATA END WITH '.'\n.\n1022 Invalid argument\n"},
		{"iplog/ipsearch 1.2.3.4.5", "0000 DATA END WITH '.'\n.\n1022 Invalid argument\n"},
	}
	for _, tt := range tests {
		if got := runCmd(t, s, tt.in); got != tt.want {
			t.Errorf("%q:\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
	if st, err := os.Stat(log); err != nil || st.Mode().Perm() != 0600 {
		t.Fatalf("log file: %v %v", st, err)
	}

	// Frames from 10.1.2.3 on port 1: one line, once; the same address on port 2: another.
	a, b := dial(t, s, 1), dial(t, s, 2)
	ipv4 := func(src [4]byte, mac byte) []byte {
		f := frame(0xff, mac, "")
		hdr := make([]byte, 20)
		hdr[0] = 0x45
		copy(hdr[12:16], src[:])
		return append(f, hdr...)
	}
	ipv6 := func(src [16]byte, mac byte) []byte {
		f := frame(0xff, mac, "")
		f[12], f[13] = 0x86, 0xdd
		hdr := make([]byte, 40)
		hdr[0] = 0x60
		copy(hdr[8:24], src[:])
		return append(f, hdr...)
	}
	a.WriteBatch([][]byte{ipv4([4]byte{10, 1, 2, 3}, 1), ipv4([4]byte{10, 1, 2, 3}, 1), ipv4([4]byte{11, 1, 2, 3}, 1)})
	for range 3 { // all of them, before the address shows up on port 2
		recvFrame(t, b, time.Second)
	}
	fd := netip.MustParseAddr("fd00::5").As16()
	tagged := ipv4([4]byte{10, 1, 2, 4}, 2)
	tagged = append(tagged[:12], append([]byte{0x81, 0x00, 0x00, 0x05}, tagged[12:]...)...)
	b.WriteBatch([][]byte{ipv4([4]byte{10, 1, 2, 3}, 2), ipv6(fd, 2), tagged})
	recvFrame(t, a, time.Second)
	line := regexp.MustCompile(`^[A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9] `)
	var lines []string
	for i := 0; ; i++ {
		data, _ := os.ReadFile(log)
		lines = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(lines) == 4 {
			break
		}
		if i == 100 {
			t.Fatalf("log lines:\n%s", strings.Join(lines, "\n"))
		}
		time.Sleep(30 * time.Millisecond)
	}
	me := pwName(os.Geteuid())
	want := []string{
		"ipv4 10.1.2.3 mac=02:00:00:00:00:01 port=1 vlan=0 user=" + me + ` "test user=`,
		"ipv4 10.1.2.3 mac=02:00:00:00:00:02 port=2 vlan=0 user=" + me + ` "test user=`,
		"ipv6 fd00::5 mac=02:00:00:00:00:02 port=2 vlan=0 user=" + me + ` "test user=`,
		"ipv4 10.1.2.4 mac=02:00:00:00:00:02 port=2 vlan=5 user=" + me + ` "test user=`, // the tag's VLAN, though port 2 is not on it
	}
	for i, l := range lines {
		if !line.MatchString(l) || !strings.HasPrefix(l[16:], want[i]) {
			t.Errorf("log line %d: %q, want the time and %q", i, l, want[i])
		}
	}
	if got := runCmd(t, s, "iplog/iplist"); got != "0000 DATA END WITH '.'\nipv4 10.1.2.3 port=2 user="+me+"\nipv4 10.1.2.4 port=2 user="+me+"\nipv6 fd00::5 port=2 user="+me+"\n.\n1000 Success\n" {
		t.Errorf("iplog/iplist: %q", got)
	}
	if got := runCmd(t, s, "iplog/ipsearch fd00::5"); got != "0000 DATA END WITH '.'\nipv6 fd00::5 port=2 user="+me+"\n.\n1000 Success\n" {
		t.Errorf("iplog/ipsearch: %q", got)
	}
	if got := runCmd(t, s, "iplog/ipport 1"); got != "0000 DATA END WITH '.'\n.\n1000 Success\n" {
		t.Errorf("iplog/ipport 1: %q", got)
	}
	if got := runCmd(t, s, "iplog/ipuser "+me); !strings.Contains(got, "ipv6 fd00::5 port=2") {
		t.Errorf("iplog/ipuser: %q", got)
	}
	// SIGHUP reopens the file (logrotate moved it), saying so at both ends.
	os.Rename(log, log+".1")
	s.Hangup()
	if old, now := string(mustRead(t, log+".1")), string(mustRead(t, log)); !strings.HasSuffix(old, " SIGHUP: closing file\n") ||
		!line.MatchString(now) || now[16:] != "SIGHUP: opening file\n" {
		t.Errorf("after SIGHUP: old file ends %q, new one holds %q", old[max(0, len(old)-40):], now)
	}
	// The port's addresses go with its last endpoint.
	b.Close()
	waitFor(t, func() bool { return runCmd(t, s, "iplog/ipport 2") == "0000 DATA END WITH '.'\n.\n1000 Success\n" })
}

// iplog's frame parser reads only what a frame holds.
func FuzzIplogFrame(f *testing.F) {
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 1, 2, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0, 5, 0x86, 0xdd, 0x60})
	s := &Switch{start: time.Now()}
	ip := &iplogState{s: s, table: map[ipKey]*ipEntry{}, notices: make(chan ipNotice, 1)}
	all := []ipRange{{n: 4}, {n: 16}}
	ip.ranges.Store(&all)
	f.Fuzz(func(t *testing.T, frame []byte) {
		ip.frame(1, frame)
		select {
		case <-ip.notices:
		default:
		}
	})
}

// Whatever iplog/ipadd is given, parsing ends, and what it accepts lists as a range that
// parses back to itself.
func FuzzParseIPRange(f *testing.F) {
	for _, s := range []string{"10.0.0.1/8", "fd00::1/64", "0x7f.1", "1.2.3.4/33", "::ffff:1.2.3.4", "fe80::1%eth0/10", "/", "1..2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseIPRange(s, noResolve)
		if err != nil {
			return
		}
		if r.n != 4 && r.n != 16 {
			t.Fatalf("%q: length %d", s, r.n)
		}
		back, err := parseIPRange(r.String(), noResolve)
		if err != nil || back != r {
			t.Fatalf("%q lists as %q, which parses to %v (%v)", s, r.String(), back, err)
		}
	})
}
