package itest

// vde capture: a running switch's frames as pcapng, read back by Debian's tshark; a slow
// reader that loses frames (counted) while the switch forwards on; Wireshark's extcap
// entry points, and tshark capturing through them from Wireshark's extcap folder inside
// a private mount namespace (an overlay: nothing is installed on the system).

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/vde-go/vde/switchcore/capture"
)

// captureLAN is our switch with two TAP hosts in namespaces, 10.96.0.1 and .2, which
// have pinged each other (ARP is done).
type captureLAN struct {
	sw     *Switch
	a, b   *tapHost
	pa, pb int // their ports
	vde    string
}

func newCaptureLAN(t *testing.T) *captureLAN {
	t.Helper()
	oursOnly(t, "Debian's switch has no live capture")
	requireTools(t, "tshark", "ping")
	l := &captureLAN{sw: startSwitch(t, impl)}
	l.vde = filepath.Join(filepath.Dir(switchBin(t, impl)), "vde")
	l.a = plugTap(t, l.sw, 1, "10.96.0.1/24")
	l.b = plugTap(t, l.sw, 2, "10.96.0.2/24")
	l.pa, l.pb = 1, 2
	waitPing(t, l.a.NS, "10.96.0.2")
	return l
}

// tsharkFields reads a capture with tshark: one line of tab-separated fields a frame.
func tsharkFields(t *testing.T, file string, filter string, fields ...string) [][]string {
	t.Helper()
	args := []string{"-n", "-r", file, "-T", "fields"}
	if filter != "" {
		args = append(args, "-Y", filter)
	}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command("tshark", args...).Output() // stdout: no warning about root
	if err != nil {
		t.Fatalf("tshark %v: %v\n%s", args, err, out)
	}
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			rows = append(rows, strings.Split(l, "\t"))
		}
	}
	return rows
}

// waitCaptureStarted waits until a capture file has its header: the switch has joined
// the capture to its frame path before it writes it.
func waitCaptureStarted(t *testing.T, file string, p *Proc) {
	t.Helper()
	waitFor(t, startTimeout, "the capture's header in "+file, func() (bool, string) {
		if p.Exited() {
			p.log(t)
			t.Fatalf("vde capture exited: %v", p.waitErr)
		}
		st, err := os.Stat(file)
		return err == nil && st.Size() >= 28, fmt.Sprint(st, err)
	})
}

// TestCaptureFilePing: `vde capture -w FILE -c N MGMT` records a ping between two TAP
// hosts, each frame coming in on the sender's port and leaving by the receiver's, one
// pcapng interface per port, as tshark reads it.
func TestCaptureFilePing(t *testing.T) {
	l := newCaptureLAN(t)
	file := filepath.Join(testDir(t), "ping.pcapng")
	// n frames of 8 pings' 32 (4 a ping: request and reply, each in and out); ARP and
	// IPv6 frames may come between them.
	const n = 16
	p := startProc(t, l.vde, "capture", "-w", file, "-c", strconv.Itoa(n), l.sw.Mgmt, "1", "2")
	waitCaptureStarted(t, file, p)
	nsRun(t, l.a.NS, "ping", "-n", "-c", "8", "-i", "0.2", "-W", "5", "10.96.0.2")
	if err := p.Wait(startTimeout); err != nil || p.ExitCode() != 0 {
		p.log(t)
		t.Fatalf("vde capture -c %d: %v, exit %d", n, err, p.ExitCode())
	}
	if rows := tsharkFields(t, file, "", "frame.number"); len(rows) != n {
		t.Fatalf("tshark reads %d frames, want %d:\n%v", len(rows), n, rows)
	}
	// An echo request (type 8) comes in on port 1 (direction 1: inbound) and leaves by
	// port 2 (2: outbound); the reply the other way.
	valid := map[string]int{
		"port1 1 10.96.0.1 10.96.0.2 8": 0, "port2 2 10.96.0.1 10.96.0.2 8": 0,
		"port2 1 10.96.0.2 10.96.0.1 0": 0, "port1 2 10.96.0.2 10.96.0.1 0": 0,
	}
	rows := tsharkFields(t, file, "icmp", "frame.interface_name", "frame.packet_flags_direction", "ip.src", "ip.dst", "icmp.type")
	for _, r := range rows {
		if len(r) == 5 {
			if d, err := strconv.ParseUint(r[1], 0, 32); err == nil {
				r[1] = strconv.FormatUint(d, 10) // tshark shows 0x00000001
			}
		}
		k := strings.Join(r, " ")
		if _, ok := valid[k]; !ok {
			t.Errorf("an ICMP frame %q: not a ping's request or reply where it should be", k)
			continue
		}
		valid[k]++
	}
	// Besides the pings, a frame may be ARP or the new TAP hosts' IPv6 chatter (router
	// solicitations, MLD reports, duplicate address detection), which comes when it will.
	if other := tsharkFields(t, file, "not icmp and not arp and not ipv6", "frame.number", "frame.protocols"); len(other) > 0 {
		t.Errorf("%d frames neither ping, ARP nor IPv6: %v", len(other), other)
	}
	for k, c := range valid {
		if c < 2 {
			t.Errorf("%q: %d frames, want 2 or more: %v", k, c, valid)
		}
	}
	// The two interfaces, with the timestamp resolution tshark sees (ns).
	info := run(t, "tshark", "-r", file, "-q", "-z", "io,phs")
	if !strings.Contains(info, "icmp") {
		t.Errorf("tshark -z io,phs shows no icmp:\n%s", info)
	}
	ifaces := tsharkFields(t, file, "frame.number == 1", "frame.interface_description")
	if len(ifaces) != 1 || !strings.Contains(ifaces[0][0], "VDE switch "+l.sw.Mgmt+" port") {
		t.Errorf("interface description %v, want the switch and port", ifaces)
	}
}

// TestCaptureStdoutToTshark: `vde capture -c N MGMT | tshark -r -` reads the stream as it
// comes; and SIGINT ends a capture to a file cleanly (tshark reads it to the end).
func TestCaptureStdoutToTshark(t *testing.T) {
	l := newCaptureLAN(t)
	pinger := startProc(t, "ip", "netns", "exec", l.a.NS, "ping", "-n", "-i", "0.1", "10.96.0.2")
	pinger.Name = "ping"
	// 16 frames: 4 a ping (request and reply, each in and out), and the new TAP hosts'
	// IPv6 chatter (router solicitations, MLD reports) when it comes.
	out, err := exec.Command("sh", "-c", fmt.Sprintf("%s capture -c 16 %s | tshark -n -r - -T fields -e frame.protocols -e ip.src -e ip.dst",
		l.vde, l.sw.Mgmt)).CombinedOutput()
	if err != nil {
		t.Fatalf("vde capture | tshark -r -: %v\n%s", err, out)
	}
	if c := strings.Count(string(out), ":icmp:data\t10.96.0.1\t10.96.0.2"); c < 3 {
		t.Errorf("tshark -r - shows %d echo requests in 16 frames, want 3 or more:\n%s", c, out)
	}

	file := filepath.Join(testDir(t), "sigint.pcapng")
	p := startProc(t, l.vde, "capture", "-w", file, l.sw.Mgmt)
	waitCaptureStarted(t, file, p)
	// 4000 bytes are some 25 frames of the ping's 40 a second: more than the hosts' IPv6
	// chatter, which comes in bursts of a few.
	waitFor(t, startTimeout, "frames in "+file, func() (bool, string) {
		st, err := os.Stat(file)
		return err == nil && st.Size() > 4000, fmt.Sprint(st, err)
	})
	p.Cmd.Process.Signal(syscall.SIGINT)
	if err := p.Wait(startTimeout); err != nil || p.ExitCode() != 0 {
		p.log(t)
		t.Fatalf("vde capture after SIGINT: %v, exit %d", err, p.ExitCode())
	}
	// tshark fails on a file cut short; the interface statistics close it.
	rows := tsharkFields(t, file, "icmp", "frame.interface_name")
	if len(rows) < 4 {
		t.Errorf("%d ICMP frames after SIGINT, want some", len(rows))
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(mustReadFile(t, file)), pcapgo.NgReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, _, err = r.ReadPacketData(); err == nil; _, _, err = r.ReadPacketData() {
	}
	if err != io.EOF {
		t.Errorf("reading %s: %v, want EOF after the last block", file, err)
	}
	// The switch is not left with the capture: port/print still answers, no capture
	// remains on its frame path (the next capture starts afresh).
	l.sw.MustCmd(t, "port/print")
}

// TestCaptureSlowReader: a client that stops reading loses frames, counted in the
// pcapng (the packet after the loss and the interface statistics), and the switch
// forwards on meanwhile.
func TestCaptureSlowReader(t *testing.T) {
	l := newCaptureLAN(t)
	st, err := capture.Dial(l.sw.Mgmt, capture.Args{Slots: 8, Ports: []int{1}})
	if err != nil {
		t.Fatalf("capture.Dial %s: %v", l.sw.Mgmt, err)
	}
	defer st.Close()
	// Read nothing: far more than the socket buffers and the ring hold goes by.
	nsRun(t, l.a.NS, "ping", "-n", "-q", "-f", "-c", "2000", "-s", "1000", "-W", "2", "10.96.0.2")
	nsRun(t, l.a.NS, "ping", "-n", "-c", "3", "-W", "5", "10.96.0.2") // the switch forwards: ping exits 0
	// Then read again: the frames that come now follow a loss, which their packet
	// blocks count.
	type result struct {
		b   []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(st)
		got <- result{b, err}
	}()
	nsRun(t, l.a.NS, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "5", "10.96.0.2")
	st.End()
	res := <-got
	b, err := res.b, res.err
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	file := filepath.Join(testDir(t), "slow.pcapng")
	os.WriteFile(file, b, 0644)
	var isbDrops, isbRecv uint64
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{
		StatisticsCallback: func(_ int, s pcapgo.NgInterfaceStatistics) { isbDrops, isbRecv = s.PacketsDropped, s.PacketsReceived },
	})
	if err != nil {
		t.Fatal(err)
	}
	frames := 0
	for _, _, err = r.ReadPacketData(); err == nil; _, _, err = r.ReadPacketData() {
		frames++
	}
	if isbDrops == 0 || isbRecv != uint64(frames)+isbDrops {
		t.Errorf("interface statistics: %d received, %d dropped; %d frames in the stream", isbRecv, isbDrops, frames)
	}
	var epbDrops uint64
	for _, row := range tsharkFields(t, file, "frame.drop_count", "frame.drop_count") {
		n, _ := strconv.ParseUint(row[0], 10, 64)
		epbDrops += n
	}
	if epbDrops == 0 || epbDrops > isbDrops {
		t.Errorf("tshark's frame.drop_count adds up to %d, want more than 0 and at most %d", epbDrops, isbDrops)
	}
	t.Logf("%d frames written, %d dropped (%d reported in packet blocks)", frames, isbDrops, epbDrops)
}

// TestCaptureExtcap: the extcap entry points answer as Wireshark expects; with the
// extcap installed (make install-extcap) into Wireshark's system folder, which an overlay
// in a private mount namespace makes writable, tshark -D lists the switch and its ports
// and tshark -i captures a port through it.
func TestCaptureExtcap(t *testing.T) {
	l := newCaptureLAN(t)
	requireTools(t, "unshare", "make")
	env := append(os.Environ(), "VDE_CAPTURE_MGMT="+l.sw.Mgmt)
	ext := func(args ...string) string {
		cmd := exec.Command(l.vde, append([]string{"capture"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("vde capture %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	ifaces := ext("--extcap-interfaces", "--extcap-version=4.0")
	for _, want := range []string{
		"extcap {version=1.0}",
		"interface {value=vde:" + l.sw.Mgmt + "}{display=VDE switch " + l.sw.Mgmt + ", all ports}\n",
		"interface {value=vde:" + l.sw.Mgmt + ":1}{display=VDE switch " + l.sw.Mgmt + " port 1",
		"interface {value=vde:" + l.sw.Mgmt + ":2}",
	} {
		if !strings.Contains(ifaces, want) {
			t.Errorf("--extcap-interfaces lacks %q:\n%s", want, ifaces)
		}
	}
	if out := ext("--extcap-interface", "vde:"+l.sw.Mgmt+":1", "--extcap-dlts"); out != "dlt {number=1}{name=EN10MB}{display=Ethernet}\n" {
		t.Errorf("--extcap-dlts: %q", out)
	}
	if out := ext("--extcap-interface", "vde:"+l.sw.Mgmt, "--extcap-config"); !strings.HasPrefix(out, "arg {number=0}{call=--ring}") {
		t.Errorf("--extcap-config: %q", out)
	}
	// --capture into a FIFO, as Wireshark calls it: stopped with SIGTERM.
	dir := testDir(t)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0600); err != nil {
		t.Fatal(err)
	}
	pinger := startProc(t, "ip", "netns", "exec", l.a.NS, "ping", "-n", "-i", "0.1", "10.96.0.2")
	pinger.Name = "ping"
	p := startProc(t, l.vde, "capture", "--capture", "--extcap-interface", "vde:"+l.sw.Mgmt+":2", "--fifo", fifo, "--ring", "64")
	f, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.NgReaderOptions{})
	if err != nil {
		t.Fatalf("pcapng from the extcap's fifo: %v", err)
	}
	for i := 0; i < 4; i++ {
		if _, _, err := r.ReadPacketData(); err != nil {
			t.Fatalf("frame %d from the fifo: %v", i, err)
		}
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	for _, _, err = r.ReadPacketData(); err == nil; _, _, err = r.ReadPacketData() {
	}
	if err != io.EOF {
		t.Errorf("the fifo after SIGTERM: %v, want EOF after whole blocks", err)
	}
	if err := p.Wait(startTimeout); err != nil || p.ExitCode() != 0 {
		p.log(t)
		t.Errorf("extcap --capture after SIGTERM: %v, exit %d", err, p.ExitCode())
	}

	// tshark through Wireshark's extcap folder.
	extDir := wiresharkExtcapDir(t)
	root, _ := filepath.Abs("..")
	capFile := filepath.Join(dir, "tshark.pcapng")
	script := fmt.Sprintf(`set -e
mkdir -p %[1]s/upper %[1]s/work
mount -t overlay overlay -o lowerdir=%[2]s,upperdir=%[1]s/upper,workdir=%[1]s/work %[2]s
make -s -C %[3]s install-extcap EXTCAP_VDE=%[4]s >/dev/null
echo "== -D"
tshark -D 2>/dev/null
echo "== -i"
timeout 60 tshark -n -i vde:%[5]s:1 -c 6 -w %[6]s 2>&1
`, dir, extDir, root, l.vde, l.sw.Mgmt, capFile)
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tshark through the extcap: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "vde:"+l.sw.Mgmt+":1 (VDE switch "+l.sw.Mgmt+" port 1") {
		t.Errorf("tshark -D does not list port 1 of the switch:\n%s", out)
	}
	rows := tsharkFields(t, capFile, "", "frame.interface_name", "ip.src")
	if len(rows) != 6 {
		t.Errorf("tshark -i vde:...:1 -c 6 wrote %d frames:\n%s\n%v", len(rows), out, rows)
	}
	for _, r := range rows {
		if r[0] != "port1" {
			t.Errorf("a frame of %s in a capture of port 1: %v", r[0], rows)
			break
		}
	}
	if _, err := os.Stat(filepath.Join(extDir, "vde-capture")); err == nil {
		t.Errorf("%s/vde-capture exists outside the test's mount namespace", extDir)
	}
}

// wiresharkExtcapDir is the folder where this system's Wireshark looks for extcaps.
func wiresharkExtcapDir(t *testing.T) string {
	t.Helper()
	m, _ := filepath.Glob("/usr/lib/*/wireshark/extcap")
	if len(m) == 0 {
		t.Skip("no Wireshark extcap folder (Debian: tshark installs /usr/lib/<triplet>/wireshark/extcap)")
	}
	return m[0]
}
