package switchcore

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// helpOutput is Debian's help, from shared/spec/vde_switch.md §6.
const helpOutput = `0000 DATA END WITH '.'
COMMAND PATH       SYNTAX          HELP
------------       --------------  ------------
ds                 ============    DATA SOCKET MENU
ds/showinfo                        show ds info
help               [arg]           Help (limited to arg when specified)
logout                             logout from this mgmt terminal
shutdown                           shutdown of the switch
upgrade            [path]          exec path (default: this binary) in place, keeping every client
showinfo                           show switch version and info
load               path            load a configuration script
debug              ============    DEBUG MENU
debug/list                         list debug categories
debug/add          dbgpath         enable debug info for a given category
debug/del          dbgpath         disable debug info for a given category
plugin             ============    PLUGINS MENU
plugin/list                        list plugins
plugin/add         library         load a plugin
plugin/del         name            unload a plugin
hash               ============    HASH TABLE MENU
hash/showinfo                      show hash info
hash/setsize       N               change hash size
hash/setgcint      N               change garbage collector interval
hash/setexpire     N               change hash entries expire time
hash/setminper     N               minimum persistence time
hash/print                         print the hash table
hash/find          MAC [VLAN]      MAC lookup
fstp               ============    FAST SPANNING TREE MENU
fstp/showinfo                      show fstp info
fstp/setfstp       0/1             Fast spanning tree protocol 1=ON 0=OFF
fstp/setedge       VLAN PORT 1/0   Define an edge port for a vlan 1=Y 0=N
fstp/bonus         VLAN PORT COST  set the port bonus for a vlan
fstp/print         [N]             print fst data for the defined vlan
port               ============    PORT STATUS MENU
port/showinfo                      show port info
port/setnumports   N               set the number of ports
port/sethub        0/1             1=HUB 0=switch
port/setvlan       N VLAN          set port VLAN (untagged)
port/createauto                    create a port with an automatically allocated id (inactive|notallocatable)
port/create        N               create the port N (inactive|notallocatable)
port/remove        N               remove the port N
port/allocatable   N 0/1           Is the port allocatable as unnamed? 1=Y 0=N
port/setuser       N user          access control: set user
port/setgroup      N user          access control: set group
port/epclose       N ID            remove the endpoint port N/id ID
port/resetcounter  [N]             reset the port (N) counters
port/print         [N]             print the port/endpoint table
port/allprint      [N]             print the port/endpoint table (including inactive port)
vlan               ============    VLAN MANAGEMENT MENU
vlan/create        N               create the VLAN with tag N
vlan/remove        N               remove the VLAN with tag N
vlan/addport       N PORT          add port to the vlan N (tagged)
vlan/delport       N PORT          add port to the vlan N (tagged)
vlan/print         [N]             print the list of defined vlan
vlan/allprint      [N]             print the list of defined vlan (including inactive port)
.
1000 Success
`

// ourHelpOutput is Debian's help plus our commands hash/setmax, port/drops and the capture
// menu (capture.go).
var ourHelpOutput = strings.NewReplacer(
	"fstp/print         [N]             print fst data for the defined vlan\n",
	"fstp/print         [N]             print fst data for the defined vlan\n"+
		"loopguard          ============    LOOP GUARD MENU\n"+
		"loopguard/print                    print the loop guard state and the ports it blocked\n"+
		"loopguard/setrate  N               flapping frames/s that block a port\n"+
		"loopguard/set      0/1             loop guard (without FSTP) 1=ON 0=OFF\n"+
		"loopguard/unblock  N               lift the loop guard's block of port N\n",
	"hash/setminper     N               minimum persistence time\n",
	"hash/setminper     N               minimum persistence time\n"+
		"hash/setmax        N               maximum number of hash entries\n",
	"port/allprint      [N]             print the port/endpoint table (including inactive port)\n",
	"port/allprint      [N]             print the port/endpoint table (including inactive port)\n"+
		"port/drops         [N]             print the dropped and bad frame counters\n"+
		"capture            ============    LIVE CAPTURE\n"+
		"capture/pcapng     [count=N] [ring=N] [port...] stream the ports' frames (all if none) as pcapng on this session, which ends it\n"+
		"capture/ports                      list the ports in use and their descriptions\n").Replace(helpOutput)

// hashShowinfo is hash/showinfo's answer on a new switch: the C switch's four lines and
// our three.
const hashShowinfo = "0000 DATA END WITH '.'\nHash size 128\nGC interval 2 secs\nGC expire 100 secs\nMin persistence 3 secs\n" +
	"Max entries 65536\nEntries 0\nNot learned (table full) 0\n.\n1000 Success\n"

func TestConsoleResponses(t *testing.T) {
	s := newTestSwitch(t, Config{})
	tests := []struct{ in, want string }{
		{"help", ourHelpOutput},
		{"help port/set", "0000 DATA END WITH '.'\nCOMMAND PATH       SYNTAX          HELP\n------------       --------------  ------------\n" +
			"port/setnumports   N               set the number of ports\nport/sethub        0/1             1=HUB 0=switch\n" +
			"port/setvlan       N VLAN          set port VLAN (untagged)\nport/setuser       N user          access control: set user\n" +
			"port/setgroup      N user          access control: set group\n.\n1000 Success\n"},
		{"port/showinfo", "0000 DATA END WITH '.'\nNumports=32\nHUB=false\ncounters=true\n.\n1000 Success\n"},
		{"bogus", "1038 Function not implemented\n"},
		{"port", "1038 Function not implemented\n"},
		{"", ""},
		{"   # a comment", ""},
		{"hash/find zz", "0000 DATA END WITH '.'\n.\n1022 Invalid argument\n"},
		{"hash/find 00:11:22:33:44:55", "0000 DATA END WITH '.'\n.\n1019 No such device\n"},
		{"vlan/create 0", "1022 Invalid argument\n"},
		{"vlan/create 4094", "1022 Invalid argument\n"},
		{"vlan/create 10", "1000 Success\n"},
		{"vlan/create 10", "1017 File exists\n"},
		{"port/setvlan 5 10", "1006 No such device or address\n"},
		{"port/create 5", "1000 Success\n"},
		{"port/create 5", "1017 File exists\n"},
		{"port/create 32", "1022 Invalid argument\n"},
		{"port/setvlan 5 11", "1006 No such device or address\n"},
		{"port/setvlan 5 10", "1000 Success\n"},
		{"port/print 5", "0000 DATA END WITH '.'\n.\n1006 No such device or address\n"},
		{"port/allprint 5", "0000 DATA END WITH '.'\nPort 0005 untagged_vlan=0010 INACTIVE - NOT Unnamed Allocatable\n" +
			" Current User: NONE Access Control: (User: NONE - Group: NONE)\n" +
			" IN:  pkts          0          bytes                    0\n" +
			" OUT: pkts          0          bytes                    0\n.\n1000 Success\n"},
		{"port/drops 5", "0000 DATA END WITH '.'\n.\n1006 No such device or address\n"},
		{"port/drops 32", "0000 DATA END WITH '.'\n.\n1022 Invalid argument\n"},
		{"vlan/allprint 0", "0000 DATA END WITH '.'\n.\n1022 Invalid argument\n"},
		{"vlan/allprint 10", "0000 DATA END WITH '.'\nVLAN 0010\n -- Port 0005 tagged=0 active=0 status=Learning\n.\n1000 Success\n"},
		{"vlan/print", "0000 DATA END WITH '.'\nVLAN 0000\nVLAN 0010\n.\n1000 Success\n"},
		{"vlan/remove 10", "1098 Address already in use\n"},
		{"port/createauto", "0000 DATA END WITH '.'\nPort 0001\n.\n1000 Success\n"},
		{"port/resetcounter 99", "1022 Invalid argument\n"},
		{"port/epclose 1", "1022 Invalid argument\n"},
		{"port/epclose 1 99", "1006 No such device or address\n"},
		{"hash/setsize 0", "1022 Invalid argument\n"},
		{"hash/showinfo", hashShowinfo},
		{"hash/setsize 100", "1000 Success\n"},
		{"hash/showinfoXYZ", hashShowinfo},
		{"hash/setmax 0", "1022 Invalid argument\n"},
		{"hash/setmax -3", "1022 Invalid argument\n"},
		{"hash/setmax", "1022 Invalid argument\n"},
		{"hash/setmax many", "1022 Invalid argument\n"},
		{"hash/setmax 1000", "1000 Success\n"},
		{"help hash/setm", "0000 DATA END WITH '.'\nCOMMAND PATH       SYNTAX          HELP\n------------       --------------  ------------\n" +
			"hash/setminper     N               minimum persistence time\nhash/setmax        N               maximum number of hash entries\n.\n1000 Success\n"},
		{"hash/showinfo", strings.Replace(hashShowinfo, "Max entries 65536", "Max entries 1000", 1)},
		{"plugin/list", "0000 DATA END WITH '.'\nNAME                   HELP\n------------           ----\n.\n1002 No such file or directory\n"},
		{"plugin/add foo", "1002 No such file or directory\n"},
		{"debug/del zz", "1022 Invalid argument\n"},
		{"fstp/setfstp 0", "0000 DATA END WITH '.'\n.\n1000 Success\n"},
		{"fstp/setfstp 1", "0000 DATA END WITH '.'\n.\n1000 Success\n"},
		{"fstp/setfstp 0", "0000 DATA END WITH '.'\n.\n1000 Success\n"},
		{"port/setuser 5 nobody\r", "1000 Success\n"},
		{"port/setuser 5 no-such-user-here", "1022 Invalid argument\n"},
		{"load /nonexistent/rc", "1002 No such file or directory\n"},
	}
	for _, tt := range tests {
		if got := runCmd(t, s, tt.in); got != tt.want {
			t.Errorf("%q:\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// port/drops shows the counters port/print leaves out (to stay byte-identical to the C
// switch's), for the ports port/print lists: a frame too short to forward is bad on the
// port that sent it.
func TestPortDrops(t *testing.T) {
	s := newTestSwitch(t, Config{})
	a, _ := dial(t, s, 1), dial(t, s, 2)
	a.WriteBatch([][]byte{frame(0xff, 1, "x")[:13], frame(0xff, 1, "x")[:10]})
	want := "0000 DATA END WITH '.'\nPort 0001 drops 0 bad 2\nPort 0002 drops 0 bad 0\n.\n1000 Success\n"
	waitFor(t, func() bool { return runCmd(t, s, "port/drops") == want })
	if got, want := runCmd(t, s, "port/drops 1"), "0000 DATA END WITH '.'\nPort 0001 drops 0 bad 2\n.\n1000 Success\n"; got != want {
		t.Errorf("port/drops 1: got %q, want %q", got, want)
	}
	if got := runCmd(t, s, "port/print"); strings.Contains(got, "drop") || strings.Contains(got, "DROP") {
		t.Errorf("port/print shows the drop counters:\n%s", got)
	}
	runCmd(t, s, "port/resetcounter 1")
	if got := runCmd(t, s, "port/drops 1"); !strings.Contains(got, "Port 0001 drops 0 bad 0\n") {
		t.Errorf("port/drops 1 after port/resetcounter 1: %q", got)
	}
}

func TestLoadEchoesScript(t *testing.T) {
	s := newTestSwitch(t, Config{})
	rc := filepath.Join(t.TempDir(), "script.rc")
	os.WriteFile(rc, []byte("# comment line\nvlan/create 20\nport/create 12\nport/setvlan 12 20\nbogus\n"), 0644)
	want := "vde[" + rc + "]: # comment line\n" +
		"vde[" + rc + "]: vlan/create 20\n1000 Success\n" +
		"vde[" + rc + "]: port/create 12\n1000 Success\n" +
		"vde[" + rc + "]: port/setvlan 12 20\n1000 Success\n" +
		"vde[" + rc + "]: bogus\n1038 Function not implemented\n" +
		"1000 Success\n"
	if got := runCmd(t, s, "load "+rc); got != want {
		t.Fatalf("load:\n got %q\nwant %q", got, want)
	}
}

// A mgmt session: banner, prompt after every response, 9999 without newline on logout.
func TestMgmtSessionFraming(t *testing.T) {
	mgmt := filepath.Join(t.TempDir(), "mgmt")
	s := newTestSwitch(t, Config{MgmtPath: mgmt, Version: "9.9"})
	c, err := net.Dial("unix", mgmt)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("port/showinfo\nbogus\nlogout\n"))
	all, _ := io.ReadAll(c)
	want := s.Banner() + "\nvde$ " +
		"0000 DATA END WITH '.'\nNumports=32\nHUB=false\ncounters=true\n.\n1000 Success\n\nvde$ " +
		"1038 Function not implemented\n\nvde$ " +
		"9999 END OF SESSION"
	if string(all) != want {
		t.Fatalf("session:\n got %q\nwant %q", all, want)
	}
	if !strings.HasPrefix(s.Banner(), "VDE switch V.9.9\n") {
		t.Fatalf("banner %q", s.Banner())
	}
}

func TestDebugEvents(t *testing.T) {
	mgmt := filepath.Join(t.TempDir(), "mgmt")
	s := newTestSwitch(t, Config{MgmtPath: mgmt})
	br := debugSession(t, mgmt, "port")
	dial(t, s, 2)
	var got []string
	for len(got) < 3 {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		l = strings.TrimPrefix(l, "vde$ ") // events follow the prompt on its line
		if strings.HasPrefix(l, "3") {
			got = append(got, strings.TrimSpace(l))
		}
	}
	if got[0] != "3021 port/+ 02" || !strings.HasPrefix(got[1], "3031 port/ep/+ Port 02 FD ") ||
		!strings.Contains(got[2], `port/descr Port 02 FD `) {
		t.Fatalf("events: %q", got)
	}
}

func FuzzConsoleLine(f *testing.F) {
	for _, seed := range []string{"help", "port/setvlan 1 10", "vlan/create 4093", "hash/find 1:2:3:4:5:6 7",
		"port/setuser 1 ANY", "load /dev/null", "debug/add", "port/epclose 1 2", "\r\n", "port/print -1",
		"hash/setmax 1"} {
		f.Add(seed)
	}
	s := newTestSwitch(f, Config{})
	f.Fuzz(func(t *testing.T, line string) {
		if strings.HasPrefix(strings.TrimLeft(line, " \t"), "load") {
			return // would read arbitrary files
		}
		out := runCmd(t, s, line)
		if out == "" {
			return
		}
		// Every response ends in exactly one status line.
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		last := lines[len(lines)-1]
		if len(last) < 5 || (last[0] != '1' && !strings.HasPrefix(last, "9999")) {
			t.Fatalf("%q: bad status line %q in %q", line, last, out)
		}
	})
}
