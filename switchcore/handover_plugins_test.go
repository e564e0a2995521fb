package switchcore

import (
	"bytes"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// ipv4Frame is an Ethernet frame from address src to dst carrying an IPv4 header from
// srcIP (what iplog watches) and payload.
func ipv4Frame(dst, src byte, srcIP [4]byte, payload string) []byte {
	f := frame(dst, src, "")
	ip := make([]byte, 20)
	ip[0] = 0x45
	copy(ip[12:16], srcIP[:])
	return append(append(f, ip...), payload...)
}

// sendIPv4 sends an IPv4 frame from x (address src, IP srcIP) to y (address dst) and
// checks that y gets it.
func sendIPv4(t *testing.T, x, y *wire.Conn, src, dst byte, srcIP [4]byte, payload string) {
	t.Helper()
	f := ipv4Frame(dst, src, srcIP, payload)
	if _, err := x.WriteBatch([][]byte{f}); err != nil {
		t.Fatal(err)
	}
	if got := recvFrame(t, y, 5*time.Second); !bytes.Equal(got, f) {
		t.Fatalf("%d -> %d %q: got %x", src, dst, payload, got)
	}
}

// waitFile waits (the test's own timeout is the bound) until path's content satisfies ok.
func waitFile(t *testing.T, path string, ok func([]byte) bool) []byte {
	t.Helper()
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if ok(b) {
			return b
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pluginViews are the console commands whose output a hand-over must not change.
var pluginViews = []string{"plugin/list", "help", "debug/list", "pdump/filename", "iplog/showinfo", "iplog/list", "iplog/iplist", "iplog/ipport 1"}

// TestHandoverPlugins: A with pdump, iplog and dump loaded and set up hands over to B: B
// shows every plugin command's output byte for byte as A did, goes on writing the same
// pcap (one header, the records before and after) and the same iplog file (the line A was
// told before it stopped is in it before B starts, the next one after it), which SIGHUP
// reopens by its path, knows the addresses A saw, and runs as many goroutines and
// descriptors as A did.
func TestHandoverPlugins(t *testing.T) {
	s, a, b, _ := handoverSetup(t)
	dir := t.TempDir()
	capFile, logFile := dir+"/cap.pcap", dir+"/ip.log"
	for _, cmd := range []string{"plugin/add pdump", "pdump/filename " + capFile, "pdump/active 1",
		"plugin/add iplog", "iplog/logfile " + logFile, "iplog/ipadd 10.0.0.0/8", "iplog/ipadd fd00::/64",
		"iplog/setgcint 30", "iplog/setexpire 600", "plugin/add dump", "dump/active 1"} {
		if out := runCmd(t, s, cmd); !strings.HasSuffix(out, "1000 Success\n") {
			t.Fatalf("%s: %q", cmd, out)
		}
	}
	sendIPv4(t, a, b, 1, 2, [4]byte{10, 1, 2, 3}, "before")
	before := map[string]string{}
	for _, v := range pluginViews {
		before[v] = runCmd(t, s, v)
	}
	if !strings.Contains(before["iplog/iplist"], "ipv4 10.1.2.3 port=1") {
		t.Fatalf("iplog/iplist on A: %q", before["iplog/iplist"])
	}
	fds, gor := openFDs(t), runtime.NumGoroutine()

	state, files, err := s.Handover()
	if err != nil {
		t.Fatal(err)
	}
	// Handover let iplog's logger finish: A's line is written before B exists.
	if log, _ := os.ReadFile(logFile); !bytes.Contains(log, []byte("ipv4 10.1.2.3 mac=02:00:00:00:00:01 port=1")) {
		t.Fatalf("the iplog file after Handover: %q", log)
	}
	b2 := restore(t, s, "B", state, files)
	for _, v := range pluginViews {
		if got := runCmd(t, b2, v); got != before[v] {
			t.Errorf("%s on B:\n%s\non A:\n%s", v, got, before[v])
		}
	}
	sendIPv4(t, a, b, 1, 2, [4]byte{10, 1, 2, 4}, "after")
	log := waitFile(t, logFile, func(b []byte) bool { return bytes.Contains(b, []byte("ipv4 10.1.2.4")) })
	if n := bytes.Count(log, []byte("\n")); n != 2 || !bytes.Contains(log, []byte("ipv4 10.1.2.3")) {
		t.Fatalf("the iplog file after the hand-over: %q", log)
	}
	// Each frame is recorded as it comes in and as it leaves: two records each.
	data := waitFile(t, capFile, func(b []byte) bool { return bytes.Count(b, []byte("after")) == 2 })
	_, _, frames := pcapRecords(t, data)
	if len(frames) != 4 || !bytes.HasSuffix(frames[0], []byte("before")) || !bytes.HasSuffix(frames[3], []byte("after")) {
		t.Fatalf("the capture after the hand-over: %d records: %q", len(frames), frames)
	}
	if got := runCmd(t, b2, "iplog/iplist"); !strings.Contains(got, "10.1.2.3") || !strings.Contains(got, "10.1.2.4") {
		t.Fatalf("iplog/iplist on B after a new address: %q", got)
	}
	// SIGHUP (after logrotate) reopens the file by the path and rights A had it by.
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	b2.Hangup()
	if log, err := os.ReadFile(logFile); err != nil || !bytes.HasSuffix(log, []byte("SIGHUP: opening file\n")) {
		t.Fatalf("the iplog file after SIGHUP on B: %q, %v", log, err)
	}
	if old, _ := os.ReadFile(logFile + ".1"); !bytes.HasSuffix(old, []byte("SIGHUP: closing file\n")) {
		t.Fatalf("the rotated iplog file after SIGHUP on B: %q", old)
	}
	if n := settle(gor); n > gor {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after the hand-over, %d before:\n%s", n, gor, buf[:runtime.Stack(buf, true)])
	}
	if n := openFDs(t); n > fds {
		t.Fatalf("%d descriptors open after the hand-over, %d before", n, fds)
	}
}

// TestHandoverPluginsResume: a hand-over with plugins that fails leaves them as they were:
// the capture goes on in the same file, iplog logs on.
func TestHandoverPluginsResume(t *testing.T) {
	s, a, b, _ := handoverSetup(t)
	dir := t.TempDir()
	capFile, logFile := dir+"/cap.pcap", dir+"/ip.log"
	for _, cmd := range []string{"plugin/add pdump", "pdump/filename " + capFile, "pdump/active 1",
		"plugin/add iplog", "iplog/logfile " + logFile, "iplog/ipadd 10.0.0.0/8"} {
		if out := runCmd(t, s, cmd); !strings.HasSuffix(out, "1000 Success\n") {
			t.Fatalf("%s: %q", cmd, out)
		}
	}
	_, files, err := s.Handover()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Close()
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	sendIPv4(t, a, b, 1, 2, [4]byte{10, 9, 9, 9}, "resumed")
	waitFile(t, logFile, func(b []byte) bool { return bytes.Contains(b, []byte("ipv4 10.9.9.9")) })
	data := waitFile(t, capFile, func(b []byte) bool { return bytes.Count(b, []byte("resumed")) == 2 })
	if _, _, frames := pcapRecords(t, data); len(frames) != 2 {
		t.Fatalf("the capture after resuming: %d records", len(frames))
	}
}
