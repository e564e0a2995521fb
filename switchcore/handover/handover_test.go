package handover

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sample is a small state with every part filled: two ports with one endpoint each, a
// mgmt socket, VLANs and MAC entries.
func sample() *State {
	st := &State{
		Options:     Options{NumPorts: 32, MAC: "00:ff:01:02:03:04", Priority: 0x8000, LoopGuard: true, HashSize: 128, CtlDir: "/run/vde.ctl", SockMode: 0600, DirMode: 02700, Group: -1, MgmtPath: "/run/vde.mgmt", MgmtMode: 0600, MgmtGroup: -1},
		UptimeNanos: int64(90 * time.Second),
		Files:       []string{"ctl", "mgmt", "1.ctl", "1.data", "3.ctl", "3.data"},
		CtlFile:     0,
		MgmtFile:    1,
		VLANs:       []uint16{0, 10},
		Ports: []Port{
			{Num: 1, Untagged: 0, Allocatable: true, User: -1, Group: -1, CurUser: 1000, Counters: Counters{InPkts: 5, InBytes: 300},
				Endpoints: []Endpoint{{ID: 7, Module: "unix prog", Descr: "qemu", DataPath: "/run/vde.ctl/001.9", UID: 1000, CtlFile: 2, DataFile: 3}}},
			{Num: 2, Untagged: 4095, Tagged: []uint16{10}, User: 1000, Group: -1, CurUser: -1},
			{Num: 3, Untagged: 10, Allocatable: true, User: -1, Group: -1, CurUser: 0,
				Endpoints: []Endpoint{{ID: 8, Module: "unix prog", DataPath: "/run/vde.ctl/003.11", UID: 0, CtlFile: 4, DataFile: 5}}},
		},
		MACTable: MACTable{Limit: 65536, MinPersist: 3, ExpireSecs: 100, GCInterval: 2},
	}
	st.MACs = AppendMAC(st.MACs, MACEntry{MAC: [6]byte{2, 0, 0, 0, 0, 1}, VLAN: 0, Port: 1, Age: 4, Home: 1})
	st.MACs = AppendMAC(st.MACs, MACEntry{MAC: [6]byte{2, 0, 0, 0, 0, 3}, VLAN: 10, Port: 3, Age: 0, Home: 3})
	return st
}

// sampleTAP is sample with a TAP device's endpoint on port 4 (vde_switch -t).
func sampleTAP() *State {
	st := sample()
	st.Files = append(st.Files, "4.tap")
	st.Ports = append(st.Ports, Port{Num: 4, Untagged: 0, Allocatable: true, User: -1, Group: -1, CurUser: -1,
		Endpoints: []Endpoint{{ID: 5, Module: "tuntap", Descr: "tap0", UID: -1, CtlFile: -1, DataFile: 6, TAP: &TAP{Name: "tap0", VnetHdr: true}}}})
	return st
}

// samplePlugins is sample with pdump (writing a capture), iplog (logging to a file, with
// two ranges and two addresses seen) and dump loaded.
func samplePlugins() *State {
	st := sample()
	st.Files = append(st.Files, "plugin pdump file cap.pcap", "plugin iplog log file /var/log/ip.log")
	st.Plugins = []Plugin{
		{Name: "pdump", Pdump: &Pdump{Filename: "cap.pcap", Active: true, File: 6}},
		{Name: "iplog", Iplog: &Iplog{LogTo: "file", LogPath: "/var/log/ip.log", LogFile: 7, LogUID: -1, LogGID: -1,
			Ranges: []string{"10.0.0.0/8", "fd00::/64"}, GCInterval: 30, GCExpire: 600, Seq: 9,
			Entries: []IPEntry{{Addr: netip.MustParseAddr("10.1.2.3"), Port: 1, MAC: "02:00:00:00:00:01", Age: 5, Seq: 8},
				{Addr: netip.MustParseAddr("::ffff:10.1.2.4"), VLAN: 10, Port: 3, MAC: "02:00:00:00:00:03", Seq: 9}}}},
		{Name: "dump", Dump: &Dump{Active: true}},
	}
	return st
}

func TestRoundTrip(t *testing.T) {
	t.Run("datagram clients", func(t *testing.T) { testRoundTrip(t, sample()) })
	t.Run("with a TAP", func(t *testing.T) { testRoundTrip(t, sampleTAP()) })
	t.Run("with plugins", func(t *testing.T) { testRoundTrip(t, samplePlugins()) })
}

func TestDecodeRefusesBadPlugins(t *testing.T) {
	good, err := Encode(samplePlugins())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc     string
		old, new string
		text     string
	}{
		{desc: "unknown plugin", old: `"name":"dump","dump"`, new: `"name":"fstp","dump"`, text: `plugin fstp: not a plugin this binary has`},
		{desc: "another plugin's settings", old: `"name":"dump","dump"`, new: `"name":"pdump","dump"`, text: `plugin "pdump" loaded twice`},
		{desc: "no settings", old: `,"dump":{"active":true}`, new: ``, text: "0 kinds of settings"},
		{desc: "unknown settings", old: `"dump":{"active":true}`, new: `"dump":{"active":true,"color":1}`, text: "color"},
		{desc: "pdump without a name", old: `"filename":"cap.pcap"`, new: `"filename":""`, text: "no file name"},
		{desc: "pdump active without a file", old: `"file":6`, new: `"file":-1`, text: "active without a file"},
		{desc: "pdump file twice", old: `"file":6`, new: `"file":7`, text: "used twice"},
		{desc: "iplog file out of range", old: `"log_file":7`, new: `"log_file":8`, text: "out of range"},
		{desc: "iplog to nowhere", old: `"log_to":"file"`, new: `"log_to":"printer"`, text: "not off, syslog or file"},
		{desc: "iplog syslog with a file", old: `"log_to":"file"`, new: `"log_to":"syslog"`, text: "with a file"},
		{desc: "iplog range not masked", old: `"10.0.0.0/8"`, new: `"10.0.0.1/8"`, text: "not a network prefix"},
		{desc: "iplog range garbage", old: `"10.0.0.0/8"`, new: `"ten"`, text: "not a network prefix"},
		{desc: "iplog entry without address", old: `"addr":"10.1.2.3"`, new: `"addr":""`, text: "not an IP address"},
		{desc: "iplog entry MAC", old: `"mac":"02:00:00:00:00:01"`, new: `"mac":"02:00"`, text: "not an Ethernet address"},
		{desc: "iplog entry port", old: `"port":1,"mac"`, new: `"port":32,"mac"`, text: "out of range"},
		{desc: "iplog entry newer than the counter", old: `"seq":9,"entries"`, new: `"seq":7,"entries"`, text: "out of range"},
	} {
		t.Run(tc.desc, func(t *testing.T) { checkRefused(t, editBlob(t, good, tc.old, tc.new), ErrInvalid, tc.text) })
	}
	// Without the active flag, a pdump may have no file (none open yet).
	st := samplePlugins()
	st.Files = st.Files[:6]
	st.Plugins[0].Pdump.Active, st.Plugins[0].Pdump.File = false, -1
	st.Plugins[1].Iplog.LogTo, st.Plugins[1].Iplog.LogPath, st.Plugins[1].Iplog.LogFile = "off", "", -1
	testRoundTrip(t, st)
}

func testRoundTrip(t *testing.T, st *State) {
	b, err := Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("decoded state differs:\n got %+v\nwant %+v", got, st)
	}
	es, err := got.MACEntries()
	if err != nil || len(es) != 2 || es[1] != (MACEntry{MAC: [6]byte{2, 0, 0, 0, 0, 3}, VLAN: 10, Port: 3, Home: 3}) {
		t.Fatalf("MAC entries %+v, %v", es, err)
	}
}

// reseal rewrites the header's length and checksum after a test changed the payload, so
// that the decoder's later checks are reached.
func reseal(b []byte) []byte {
	binary.BigEndian.PutUint32(b[12:], uint32(len(b)-HeaderSize))
	binary.BigEndian.PutUint32(b[16:], crc32.Checksum(b[HeaderSize:], castagnoli))
	return b
}

func withPayload(t *testing.T, edit func(string) string) []byte {
	b, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	p := edit(string(b[HeaderSize:]))
	return reseal(append(b[:HeaderSize:HeaderSize], p...))
}

func TestDecodeRefuses(t *testing.T) {
	good, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		desc string
		blob []byte
		want error
		text string
	}{
		{desc: "empty", blob: nil, want: ErrDamaged},
		{desc: "not a state", blob: []byte("#!/bin/sh\necho hello world, this is long enough\n"), want: ErrMagic},
		{desc: "future version", blob: mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], Version+1); return b }), want: ErrVersion, text: "version 2 (this binary reads version 1)"},
		{desc: "truncated", blob: good[:len(good)-1], want: ErrDamaged, text: "payload bytes"},
		{desc: "trailing bytes", blob: append(append([]byte(nil), good...), 0), want: ErrDamaged},
		{desc: "huge length", blob: mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[12:], 0xffffffff); return b }), want: ErrTooLarge},
		{desc: "flipped bit", blob: mod(func(b []byte) []byte { b[len(b)-5] ^= 1; return b }), want: ErrDamaged, text: "checksum"},
		{desc: "reserved bytes", blob: mod(func(b []byte) []byte { b[23] = 1; return b }), want: ErrDamaged},
		{desc: "unknown field", blob: withPayload(t, func(p string) string { return strings.Replace(p, `{"options":{`, `{"future":1,"options":{`, 1) }), want: ErrInvalid, text: "future"},
		{desc: "descriptor out of range", blob: withPayload(t, func(p string) string { return strings.Replace(p, `"data_file":5`, `"data_file":6`, 1) }), want: ErrInvalid, text: "out of range"},
		{desc: "descriptor twice", blob: withPayload(t, func(p string) string { return strings.Replace(p, `"data_file":5`, `"data_file":3`, 1) }), want: ErrInvalid, text: "used twice"},
		{desc: "port out of range", blob: withPayload(t, func(p string) string { return strings.Replace(p, `"num":3`, `"num":32`, 1) }), want: ErrInvalid},
		{desc: "required unknown section", blob: withPayload(t, func(p string) string {
			return strings.TrimSuffix(p, "}") + `,"sections":[{"name":"stp-v9","version":1,"required":true,"data":{}}]}`
		}), want: ErrVersion, text: `"stp-v9"`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			checkRefused(t, tc.blob, tc.want, tc.text)
		})
	}
}

func checkRefused(t *testing.T, blob []byte, want error, text string) {
	t.Helper()
	_, err := Decode(blob)
	if !errors.Is(err, want) || !strings.Contains(fmt.Sprint(err), text) {
		t.Fatalf("Decode: %v, want %v containing %q", err, want, text)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error is not one line: %q", err)
	}
}

// editBlob is good with the first old in its payload replaced by new, resealed.
func editBlob(t *testing.T, good []byte, old, new string) []byte {
	t.Helper()
	p := strings.Replace(string(good[HeaderSize:]), old, new, 1)
	if p == string(good[HeaderSize:]) {
		t.Fatalf("%q not in the payload", old)
	}
	return reseal(append(good[:HeaderSize:HeaderSize], p...))
}

func TestDecodeRefusesBadTAP(t *testing.T) {
	good, err := Encode(sampleTAP())
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) []byte { return editBlob(t, good, old, new) }
	for _, tc := range []struct {
		desc     string
		old, new string
		text     string
	}{
		{desc: "control connection", old: `"ctl_file":-1`, new: `"ctl_file":2`, text: "a TAP with a control connection"},
		{desc: "no name", old: `"name":"tap0"`, new: `"name":""`, text: "not an interface name"},
		{desc: "long name", old: `"name":"tap0"`, new: `"name":"tap0123456789abcd"`, text: "not an interface name"},
		{desc: "slash", old: `"name":"tap0"`, new: `"name":"../x"`, text: "not an interface name"},
		{desc: "descriptor out of range", old: `"data_file":6`, new: `"data_file":7`, text: "out of range"},
		{desc: "descriptor twice", old: `"data_file":6`, new: `"data_file":5`, text: "used twice"},
	} {
		t.Run(tc.desc, func(t *testing.T) { checkRefused(t, edit(tc.old, tc.new), ErrInvalid, tc.text) })
	}
}

// TestDecodesStateBeforeTAPs: the blob checked in as a fuzz seed was written before TAPs
// could be handed over; it still decodes, with no TAP.
func TestDecodesStateBeforeTAPs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzDecode", "sample"))
	if err != nil {
		t.Fatal(err)
	}
	lit := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[1])
	q, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lit, "[]byte("), ")"))
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	st, err := Decode([]byte(q))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st, sample()) {
		t.Fatalf("decoded %+v, want %+v", st, sample())
	}
}

func TestOptionalUnknownSectionIsSkipped(t *testing.T) {
	st := sample()
	st.Sections = []Section{{Name: "plugins", Version: 3, Data: []byte(`{"pdump":"x"}`)}}
	b, err := Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(b); err != nil {
		t.Fatalf("an optional section this version does not know: %v", err)
	}
}

// bigState is a switch at its largest usual size: 256 ports with an endpoint each and a
// full MAC table of 64k entries.
func bigState() *State {
	st := &State{Options: Options{NumPorts: 257, CtlDir: "/run/vde.ctl", Group: -1, MgmtGroup: -1}, Files: []string{"ctl"}, MgmtFile: -1, VLANs: []uint16{0}}
	for n := 1; n <= 256; n++ {
		i := len(st.Files)
		st.Files = append(st.Files, fmt.Sprintf("%d.ctl", n), fmt.Sprintf("%d.data", n))
		st.Ports = append(st.Ports, Port{Num: n, Allocatable: true, User: -1, Group: -1, CurUser: 1000,
			Counters:  Counters{InPkts: 123456789, InBytes: 123456789000, OutPkts: 987654321, OutBytes: 987654321000},
			Endpoints: []Endpoint{{ID: 10 + 2*n, Module: "unix prog", Descr: "qemu guest", DataPath: fmt.Sprintf("/run/vde.ctl/%03d.%d", n, 11+2*n), UID: 1000, CtlFile: i, DataFile: i + 1}}})
	}
	for i := 0; i < 65536; i++ {
		st.MACs = AppendMAC(st.MACs, MACEntry{MAC: [6]byte{2, 0, 0, 0, byte(i >> 8), byte(i)}, Port: 1 + i%256, Age: int64(i % 100), Home: 1 + i%256})
	}
	return st
}

func BenchmarkEncodeBig(b *testing.B) {
	st := bigState()
	var n int
	for b.Loop() {
		blob, err := Encode(st)
		if err != nil {
			b.Fatal(err)
		}
		n = len(blob)
	}
	b.ReportMetric(float64(n), "bytes")
}

func BenchmarkDecodeBig(b *testing.B) {
	blob, err := Encode(bigState())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Decode(blob); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(blob)), "bytes")
}

func FuzzDecode(f *testing.F) {
	if b, err := Encode(sample()); err == nil {
		f.Add(b)
	}
	if b, err := Encode(sampleTAP()); err == nil {
		f.Add(b)
	}
	if b, err := Encode(samplePlugins()); err == nil {
		f.Add(b)
	}
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := Decode(b)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		// What decodes must encode to something that decodes to the same state.
		b2, err := Encode(st)
		if err != nil {
			t.Fatalf("a decoded state does not encode: %v", err)
		}
		st2, err := Decode(b2)
		if err != nil || !reflect.DeepEqual(st, st2) {
			t.Fatalf("re-encoded state differs: %v", err)
		}
	})
}

// TestWriteFuzzSeeds keeps the checked-in seed corpus in step with the format: run with
// VDE_WRITE_SEEDS=1 after a change of the format.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("VDE_WRITE_SEEDS") == "" {
		t.Skip("VDE_WRITE_SEEDS not set")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	os.MkdirAll(dir, 0755)
	good, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	future := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(future[8:], Version+1)
	withTAP, err := Encode(sampleTAP())
	if err != nil {
		t.Fatal(err)
	}
	withPlugins, err := Encode(samplePlugins())
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"sample": good, "tap": withTAP, "plugins": withPlugins, "future": future, "truncated": good[:HeaderSize+10], "magic": []byte(Magic)} {
		if err := os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0644); err != nil {
			t.Fatal(err)
		}
	}
}
