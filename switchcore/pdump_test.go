package switchcore

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

// pcapRecords parses a pcap file: its header fields and its records' frames.
func pcapRecords(t *testing.T, data []byte) (snaplen, linktype uint32, frames [][]byte) {
	t.Helper()
	if len(data) < 24 || binary.LittleEndian.Uint32(data) != 0xa1b2c3d4 ||
		binary.LittleEndian.Uint16(data[4:]) != 2 || binary.LittleEndian.Uint16(data[6:]) != 4 {
		t.Fatalf("not a pcap 2.4 file: % x", data[:min(len(data), 24)])
	}
	snaplen, linktype = binary.LittleEndian.Uint32(data[16:]), binary.LittleEndian.Uint32(data[20:])
	for p := data[24:]; len(p) > 0; {
		if len(p) < 16 {
			t.Fatalf("truncated record header: % x", p)
		}
		incl, orig := binary.LittleEndian.Uint32(p[8:]), binary.LittleEndian.Uint32(p[12:])
		if incl != orig || int(incl) > len(p)-16 {
			t.Fatalf("record lengths %d/%d with %d bytes left", incl, orig, len(p)-16)
		}
		frames = append(frames, p[16:16+incl])
		p = p[16+incl:]
	}
	return
}

func TestPdumpCommandsAndFile(t *testing.T) {
	s := newTestSwitch(t, Config{})
	dir := t.TempDir()
	file := filepath.Join(dir, "x.cap")
	tests := []struct{ in, want string }{
		{"plugin/add pdump", "1000 Success\n"},
		{"pdump/filename", "0000 DATA END WITH '.'\ndumpfile=vde_dump.cap\n.\n1000 Success\n"},
		{"pdump/active 0", "0000 DATA END WITH '.'\n.\n1002 No such file or directory\n"},
		{"pdump/filename /nonexistent/a.cap", "0000 DATA END WITH '.'\nset_dumper() open(/nonexistent/a.cap): No such file or directory\n" +
			"ERROR: cannot dump to /nonexistent/a.cap\n.\n1022 Invalid argument\n"},
		{"pdump/active 1", "0000 DATA END WITH '.'\nset_dumper() open(/nonexistent/a.cap): No such file or directory\n" +
			"ERROR: cannot dump to /nonexistent/a.cap\n.\n1022 Invalid argument\n"},
		{"pdump/filename " + file, "0000 DATA END WITH '.'\ndumpfile=" + file + "\n.\n1000 Success\n"},
		{"pdump/buffered 0", "1000 Success\n"},
		{"pdump/active 1", "0000 DATA END WITH '.'\n.\n1000 Success\n"},
		{"pdump/active 1", "0000 DATA END WITH '.'\n.\n1017 File exists\n"},
	}
	for _, tt := range tests {
		if got := runCmd(t, s, tt.in); got != tt.want {
			t.Errorf("%q:\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0600 {
		t.Fatalf("dump file: %v %v", st, err)
	}
	a, b := dial(t, s, 1), dial(t, s, 2)
	f1 := frame(0xff, 1, "hello from a")
	a.WriteBatch([][]byte{f1})
	if got := recvFrame(t, b, time.Second); !bytes.Equal(got, f1) {
		t.Fatalf("b got %x", got)
	}
	f2 := frame(1, 2, "unicast reply from b")
	b.WriteBatch([][]byte{f2})
	if got := recvFrame(t, a, time.Second); !bytes.Equal(got, f2) {
		t.Fatalf("a got %x", got)
	}
	// Unbuffered: the records are in the file once the frames are delivered.
	var frames [][]byte
	waitFor(t, func() bool {
		data, _ := os.ReadFile(file)
		_, _, frames = pcapRecords(t, data)
		return len(frames) == 4
	})
	data, _ := os.ReadFile(file)
	snaplen, linktype, frames := pcapRecords(t, data)
	if snaplen != pcapSnaplen || linktype != 1 {
		t.Errorf("snaplen %d linktype %d", snaplen, linktype)
	}
	for i, want := range [][]byte{f1, f1, f2, f2} { // each in and out
		if !bytes.Equal(frames[i], want) {
			t.Errorf("record %d: %x, want %x", i, frames[i], want)
		}
	}
	// Stopped, nothing more is written; buffered, frames wait until stop or plugin/del.
	mustCmd(t, s, "pdump/active 0")
	a.WriteBatch([][]byte{frame(2, 1, "not dumped")})
	recvFrame(t, b, time.Second)
	mustCmd(t, s, "pdump/buffered 1")
	mustCmd(t, s, "pdump/active 1")
	a.WriteBatch([][]byte{frame(2, 1, "buffered")})
	recvFrame(t, b, time.Second)
	if _, _, fr := pcapRecords(t, mustRead(t, file)); len(fr) != 4 {
		t.Errorf("buffered: %d records on disk before the flush, want 4", len(fr))
	}
	mustCmd(t, s, "plugin/del pdump")
	if _, _, fr := pcapRecords(t, mustRead(t, file)); len(fr) != 6 || string(fr[5][14:]) != "buffered" {
		t.Errorf("after plugin/del: %d records, want 6 ending in the buffered frame", len(fr))
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// With pdump writing, a batch still allocates nothing.
func TestForwardWithPdumpAllocatesNothing(t *testing.T) {
	rig := newForwardRig(t, 64)
	startPdump(t, rig.s)
	rig.r.forward(rig.src, wire.BatchSize)
	if n := testing.AllocsPerRun(200, func() { rig.r.forward(rig.src, wire.BatchSize) }); n != 0 {
		t.Fatalf("forward with pdump allocates %.1f times per batch", n)
	}
}

func startPdump(tb testing.TB, s *Switch) {
	tb.Helper()
	for _, c := range []string{"plugin/add pdump", "pdump/filename " + filepath.Join(tb.TempDir(), "bench.cap"), "pdump/active 1"} {
		if got := runCmd(tb, s, c); !bytes.HasSuffix([]byte(got), []byte("1000 Success\n")) {
			tb.Fatalf("%s: %q", c, got)
		}
	}
}

func BenchmarkForwardUnicast64Pdump(b *testing.B) {
	rig := newForwardRig(b, 64)
	startPdump(b, rig.s)
	rig.r.forward(rig.src, wire.BatchSize)
	b.ReportAllocs()
	b.SetBytes(int64(64 * wire.BatchSize))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rig.r.forward(rig.src, wire.BatchSize)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*wire.BatchSize), "ns/frame")
}

// A mgmt user who is neither root nor the switch's user names files for pdump and iplog
// with their own rights (as load reads its script): a root switch does not create or
// truncate a file for them where they may not write, and what it creates is theirs.
func TestPluginFilesOpenAsSessionUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the switch takes the session user's identity")
	}
	s := newTestSwitch(t, Config{})
	dir := t.TempDir() // root's, 0700
	// One everybody may write in (t.TempDir's parent is root's, 0700).
	open, err := os.MkdirTemp("", "pdump-open-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(open) })
	os.Chmod(open, 0777)
	ss := s.newSession(nil, nil, nil)
	defer ss.end()
	ss.peer, ss.peerGID = 65534, 65534
	run := func(line string) string {
		var w bytes.Buffer
		s.runLine(ss, line, &w)
		return w.String()
	}
	mustCmd(t, s, "plugin/add pdump")
	mustCmd(t, s, "plugin/add iplog")
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("keep me"), 0600)
	if got, want := run("pdump/filename "+secret), "0000 DATA END WITH '.'\nset_dumper() open("+secret+"): Permission denied\n"+
		"ERROR: cannot dump to "+secret+"\n.\n1022 Invalid argument\n"; got != want {
		t.Errorf("pdump/filename in root's directory:\n got %q\nwant %q", got, want)
	}
	if got := run("iplog/logfile " + secret); got != "1002 No such file or directory\n" {
		t.Errorf("iplog/logfile in root's directory: %q", got)
	}
	if data, _ := os.ReadFile(secret); string(data) != "keep me" {
		t.Errorf("the file was changed: %q", data)
	}
	mine := filepath.Join(open, "mine.cap")
	if got := run("pdump/filename " + mine); !strings.HasSuffix(got, "1000 Success\n") {
		t.Fatalf("pdump/filename in an open directory: %q", got)
	}
	var st unix.Stat_t
	if err := unix.Stat(mine, &st); err != nil || st.Uid != 65534 {
		t.Errorf("the dump file belongs to uid %d (%v), want the session's user 65534", st.Uid, err)
	}
}
