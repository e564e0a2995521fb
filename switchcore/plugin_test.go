package switchcore

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const pluginListHead = "0000 DATA END WITH '.'\nNAME                   HELP\n------------           ----\n"

// The plugin commands answer as Debian's switch does (observed): which names load, the
// codes of the others, the list in load order, del by name prefix.
func TestPluginAddListDel(t *testing.T) {
	s := newTestSwitch(t, Config{})
	t.Setenv("HOME", t.TempDir())
	tests := []struct{ in, want string }{
		{"plugin/list", pluginListHead + ".\n1002 No such file or directory\n"},
		{"plugin/add pdump.so", "1002 No such file or directory\n"}, // no directory: Debian tries <dir>pdump.so
		{"plugin/add", "1022 Invalid argument\n"},                   // dlopen("") is the program
		{"plugin/add pdump ", "1002 No such file or directory\n"},
		{"plugin/add PDUMP", "1002 No such file or directory\n"},
		{"plugin/add /etc/passwd", "1002 No such file or directory\n"},
		{"plugin/add libc.so.6", "1022 Invalid argument\n"},
		{"plugin/add /usr/lib/vde2/plugins/dump.so.so", "1002 No such file or directory\n"},
		{"plugin/add pdump", "1000 Success\n"},
		{"plugin/add pdump", "1017 File exists\n"},
		{"plugin/add /usr/lib/vde2/plugins/pdump.so", "1017 File exists\n"},
		{"plugin/add /usr/lib/vde2/plugins/iplog", "1000 Success\n"},
		{"plugin/add /pdump.so", "1017 File exists\n"}, // "<dir>" + "/pdump.so"
		{"plugin/add dump", "1000 Success\n"},
		{"plugin/list", pluginListHead + "pdump                  dump packets to file, in pcap format\n" +
			"iplog                  log ip/port/user assignment\ndump                   dump packets\n.\n1000 Success\n"},
		{"plugin/list ip", pluginListHead + "iplog                  log ip/port/user assignment\n.\n1000 Success\n"},
		{"plugin/list x", pluginListHead + ".\n1002 No such file or directory\n"},
		{"plugin/del dump.so", "1002 No such file or directory\n"},
		{"plugin/del pd", "1000 Success\n"},
		{"pdump/active 1", "1038 Function not implemented\n"},
		{"plugin/del", "1000 Success\n"}, // the first: iplog
		{"plugin/list", pluginListHead + "dump                   dump packets\n.\n1000 Success\n"},
		{"plugin/del dump", "1000 Success\n"},
		{"plugin/del dump", "1002 No such file or directory\n"},
	}
	for _, tt := range tests {
		if got := runCmd(t, s, tt.in); got != tt.want {
			t.Errorf("%q:\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// A plugin's commands and debug categories are listed after the switch's own, in load
// order, only while it is loaded; a debug subscription ends with its plugin.
func TestPluginHelpAndDebugCategories(t *testing.T) {
	s := newTestSwitch(t, Config{})
	mustCmd(t, s, "plugin/add dump")
	mustCmd(t, s, "plugin/add pdump")
	help := runCmd(t, s, "help")
	want := "vlan/allprint      [N]             print the list of defined vlan (including inactive port)\n" +
		"dump               ============    DUMP Packets\n" +
		"dump/active        0/1             start dumping data\n" +
		"pdump              ============    DUMP Packets to file\n" +
		"pdump/active       0/1             start dumping data\n" +
		"pdump/filename     <file>          set/show output filename (default: vde_dump.cap)\n" +
		"pdump/buffered     0/1             set buffered/unbuffered dump\n.\n1000 Success\n"
	if !strings.HasSuffix(help, want) {
		t.Errorf("help ends\n%s\nwant it to end\n%s", help[max(0, len(help)-len(want)-100):], want)
	}
	dl := runCmd(t, s, "debug/list")
	if !strings.HasSuffix(dl, "port/ep/-              032 OFF    closed endpoint\n"+
		"dump/packetin          101 OFF    dump incoming packet\n"+
		"dump/packetout         102 OFF    dump outgoing packet\n"+
		"pdump/packetin         101 OFF    dump incoming packet to file\n"+
		"pdump/packetout        102 OFF    dump outgoing packet to file\n.\n1000 Success\n") {
		t.Errorf("debug/list:\n%s", dl)
	}
	ss := s.newSession(nil, nil, nil)
	defer ss.end()
	run := func(line string) string {
		var buf bytes.Buffer
		s.runLine(ss, line, &buf)
		return buf.String()
	}
	if got := run("debug/add dump/"); got != "1000 Success\n" {
		t.Fatalf("debug/add dump/: %q", got)
	}
	if s.debugSubs.Load() != 1 {
		t.Fatalf("debugSubs %d after debug/add", s.debugSubs.Load())
	}
	mustCmd(t, s, "plugin/del dump")
	if s.debugSubs.Load() != 0 || len(ss.subs) != 0 {
		t.Errorf("after plugin/del: debugSubs %d, session subscriptions %v", s.debugSubs.Load(), ss.subs)
	}
	if got := run("debug/add dump/"); got != "1022 Invalid argument\n" {
		t.Errorf("debug/add dump/ after plugin/del: %q", got)
	}
	if got := runCmd(t, s, "help dump"); got != "0000 DATA END WITH '.'\nCOMMAND PATH       SYNTAX          HELP\n------------       --------------  ------------\n.\n1000 Success\n" {
		t.Errorf("help dump after plugin/del: %q", got)
	}
}

// Debian's plugin files load as what they are; a copy elsewhere too (by its name); a
// shared object without vde_plugin_data is EINVAL.
func TestPluginFiles(t *testing.T) {
	dir := t.TempDir()
	home := t.TempDir()
	if def, err := resolvePlugin("pdump", home); err != nil || def != pdumpPlugin {
		t.Errorf("pdump: %v %v", def, err)
	}
	if def, err := resolvePlugin("/usr/lib/x86_64-linux-gnu/vde2/plugins/iplog.so", home); err != nil || def != iplogPlugin {
		t.Errorf("multiarch iplog.so: %v %v", def, err)
	}
	if _, err := resolvePlugin(filepath.Join(dir, "pdump.so"), home); err == nil {
		t.Errorf("a missing file outside the plugin directories loaded")
	}
	if real := "/usr/lib/vde2/plugins/dump.so"; fileExists(real) {
		data, _ := os.ReadFile(real)
		os.MkdirAll(filepath.Join(home, ".vde2", "plugins"), 0755)
		os.WriteFile(filepath.Join(home, ".vde2", "plugins", "dump.so"), data, 0644)
		if def, err := resolvePlugin("dump.so", home); err != nil || def != dumpPlugin {
			t.Errorf("dump.so in ~/.vde2/plugins: %v %v", def, err)
		}
		os.WriteFile(filepath.Join(dir, "other.so"), data, 0644)
		if _, err := resolvePlugin(filepath.Join(dir, "other"), home); err != errForeignPlugin {
			t.Errorf("a plugin we do not have: %v", err)
		}
	}
	if libc := "/lib/x86_64-linux-gnu/libc.so.6"; fileExists(libc) {
		if _, err := resolvePlugin(libc, home); err == nil || err == errForeignPlugin {
			t.Errorf("libc: %v", err)
		}
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
