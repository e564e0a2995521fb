package itest

// Load from one hostile client (issue 8): a MAC flood must leave the MAC table bounded and
// known unicast forwarded; a broadcast storm must leave a ping between two other ports
// and the console working. The figures go to the log in lines starting "RELIABILITY:".

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// Functional bounds from the issue, not speed assertions.
const (
	floodMACs        = 100000
	defaultMACLimit  = 65536
	maxPingLoss      = 10.0            // percent, between two ports during a storm
	consoleLiveness  = 5 * time.Second // a console answer during a storm
	stormPings       = 100
	stormPingSpacing = "0.05" // ping -i, seconds
)

// hashInfo reads hash/showinfo's "Name N" lines into a map (our three extra lines too).
func hashInfo(t testing.TB, sw *Switch) map[string]int64 {
	t.Helper()
	info := map[string]int64{}
	for _, l := range sw.MustCmd(t, "hash/showinfo") {
		l = strings.TrimSuffix(l, " secs")
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		if n, err := strconv.ParseInt(l[i+1:], 10, 64); err == nil {
			info[l[:i]] = n
		}
	}
	return info
}

// rssKiB is the resident set size of a process, from /proc/PID/status.
func rssKiB(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmRSS:\s+([0-9]+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("/proc/%d/status has no VmRSS", pid)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// randomMAC is a random unicast, locally administered MAC, none of the peers'
// 02:00:00:00:00:xx.
func randomMAC() net.HardwareAddr {
	for {
		mac := make(net.HardwareAddr, 6)
		v := rand.Uint64()
		for i := range mac {
			mac[i] = byte(v >> (8 * i))
		}
		mac[0] = mac[0]&^1 | 2
		if mac[1] != 0 || mac[2] != 0 || mac[3] != 0 || mac[4] != 0 {
			return mac
		}
	}
}

// floodFrames makes n frames from distinct random source MACs to dst, or to a random
// unicast MAC each (unknown to the switch, so flooded) when dst is nil.
func floodFrames(n int, dst net.HardwareAddr) [][]byte {
	seen := map[string]bool{}
	frames := make([][]byte, 0, n)
	for len(frames) < n {
		src := randomMAC()
		if seen[string(src)] {
			continue
		}
		seen[string(src)] = true
		to := dst
		if to == nil {
			to = randomMAC()
		}
		frames = append(frames, ethFrame(to, src, floodPayload))
	}
	return frames
}

const floodPayload = "flood"

// dialFloodedPeer is dialPeer for a port that a flood reaches: its reader throws the
// flood's frames away at once, so that they cannot crowd the test's own frames out of
// the peer's receive channel (where a full channel drops, which would be the test's loss,
// not the switch's).
func dialFloodedPeer(t testing.TB, sw *Switch, n int) *peer {
	t.Helper()
	c, err := wire.Dial(sw.Dir, wire.DialOptions{Port: n, Description: fmt.Sprintf("itest-peer-%d", n), RawDescription: true})
	if err != nil {
		t.Fatalf("peer %d: %v", n, err)
	}
	t.Cleanup(func() { c.Close() })
	p := &peer{Name: fmt.Sprintf("peer%d", n), Conn: c, MAC: peerMAC(n), rx: make(chan []byte, 1024)}
	go func() {
		frames := make([][]byte, 64)
		for i := range frames {
			frames[i] = make([]byte, wire.MaxFrame)
		}
		sizes := make([]int, len(frames))
		defer close(p.rx)
		for {
			k, err := c.ReadBatch(frames, sizes)
			if err != nil {
				return
			}
			for i := 0; i < k; i++ {
				f := frames[i][:sizes[i]]
				if string(f[14:]) == floodPayload {
					continue
				}
				select {
				case p.rx <- bytes.Clone(f):
				default:
				}
			}
		}
	}()
	return p
}

// pingPong sends a numbered unicast frame from a to b and b's answer back, and fails the
// test if either does not arrive.
func pingPong(t testing.TB, a, b *peer, tag string) {
	t.Helper()
	a.send(t, ethFrame(b.MAC, a.MAC, tag+"-req"))
	b.recv(t, tag+"-req")
	b.send(t, ethFrame(a.MAC, b.MAC, tag+"-rep"))
	a.recv(t, tag+"-rep")
}

// TestFloodMACTable: one port sends frames from 100,000 random source MACs; the table stops
// at its default limit of 65,536 and counts every frame whose source it did not learn, the
// switch's memory stays bounded, and unicast between two other ports arrives in full during
// and after the flood. hash/setmax then lets the table grow. The flood's frames go either
// to the flooder's own first MAC (the switch learns from them and sends them nowhere: the
// table alone) or, as macof does, to random MACs (unknown, so flooded to the two other
// ports as well: the table and their output queues).
func TestFloodMACTable(t *testing.T) {
	oursOnly(t, "the MAC table bound and hash/setmax are ours (Debian's table grows without limit)")
	for _, dst := range []string{"own", "random"} {
		t.Run("dst="+dst, func(t *testing.T) { testFloodMACTable(t, dst == "random") })
	}
}

func testFloodMACTable(t *testing.T, randomDst bool) {
	sw := startSwitch(t, impl)
	flooder := dialPeer(t, sw, 1, wire.DialOptions{Port: 1})
	a := dialFloodedPeer(t, sw, 2)
	b := dialFloodedPeer(t, sw, 3)
	for _, p := range []*peer{flooder, a, b} {
		p.send(t, ethFrame(broadcast, p.MAC, "hello-"+p.Name))
	}
	waitFor(t, startTimeout, "the three peers learned", func() (bool, string) {
		info := hashInfo(t, sw)
		return info["Entries"] == 3, fmt.Sprint(info)
	})
	if info := hashInfo(t, sw); info["Max entries"] != defaultMACLimit || info["Not learned (table full)"] != 0 {
		t.Fatalf("hash/showinfo before the flood: %v", info)
	}
	pingPong(t, a, b, "before")
	pid := sw.Proc.PID()
	rssBefore := rssKiB(t, pid)

	dst, dstText := flooder.MAC, "the flooder's own MAC"
	if randomDst {
		dst, dstText = nil, "random MACs (flooded)"
	}
	frames := floodFrames(floodMACs, dst)
	var sent atomic.Int64
	floodErr := make(chan error, 1)
	go func() {
		for i := 0; i < len(frames); i += 64 {
			n, err := flooder.Conn.WriteBatch(frames[i:min(i+64, len(frames))])
			sent.Add(int64(n))
			if err != nil {
				floodErr <- err
				return
			}
		}
		floodErr <- nil
	}()
	var during, rssPeak int64
	var err error
	for done := false; !done; {
		select {
		case err = <-floodErr:
			done = true
		default:
			pingPong(t, a, b, fmt.Sprintf("during-%d", during))
			during++
			if during%50 == 0 {
				rssPeak = max(rssPeak, rssKiB(t, pid))
			}
		}
	}
	if err != nil {
		t.Fatalf("flood: sent %d frames: %v", sent.Load(), err)
	}
	// Every frame reached the switch (sends wait for room); wait until it has read them.
	wantRefused := int64(floodMACs - (defaultMACLimit - 3))
	var info map[string]int64
	waitFor(t, 30*time.Second, "the switch to read the flood", func() (bool, string) {
		info = hashInfo(t, sw)
		return info["Not learned (table full)"] >= wantRefused, fmt.Sprint(info)
	})
	for i := 0; i < 200; i++ {
		pingPong(t, a, b, fmt.Sprintf("after-%d", i))
	}
	rssAfter := rssKiB(t, pid)
	rssPeak = max(rssPeak, rssAfter)
	info = hashInfo(t, sw)
	t.Logf("RELIABILITY: MAC flood: %d frames from distinct random source MACs to %s; table %d entries (max %d), %d frames not learned (table full); unicast A<->B delivered in full: %d round trips during the flood, 200 after; switch RSS %d KiB before, %d KiB peak, %d KiB after",
		sent.Load(), dstText, info["Entries"], info["Max entries"], info["Not learned (table full)"], during, rssBefore, rssPeak, rssAfter)
	if info["Entries"] != defaultMACLimit || info["Not learned (table full)"] != wantRefused {
		t.Errorf("after the flood: %d entries, %d not learned; want %d, %d", info["Entries"], info["Not learned (table full)"], defaultMACLimit, wantRefused)
	}
	// Bounded memory: the table is a few MiB, the output queues 1 MiB a port; the bound is
	// generous, and a leak per frame (100,000 frames) would pass it only if it were under
	// 650 bytes a frame.
	if grown := rssPeak - rssBefore; grown > memScale*64<<10 {
		t.Errorf("switch RSS grew by %d KiB during the flood (before %d KiB, peak %d KiB)", grown, rssBefore, rssPeak)
	}
	for _, hp := range []string{"02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"} {
		if raw := sw.Cmd(t, "hash/find "+hp); !strings.Contains(raw, "1000 Success") {
			t.Errorf("hash/find %s after the flood: %q", hp, raw)
		}
	}

	// The console sets the limit: bad arguments are refused C-style, a higher limit lets
	// the table learn again.
	for _, bad := range []string{"hash/setmax 0", "hash/setmax -1", "hash/setmax x"} {
		if raw := sw.Cmd(t, bad); raw != "1022 Invalid argument\n"+prompt {
			t.Errorf("%q: %q, want 1022 Invalid argument", bad, raw)
		}
	}
	sw.MustCmd(t, fmt.Sprintf("hash/setmax %d", defaultMACLimit+10))
	more := floodFrames(20, flooder.MAC)
	flooder.send(t, more...)
	waitFor(t, startTimeout, "ten more entries", func() (bool, string) {
		info = hashInfo(t, sw)
		return info["Entries"] == defaultMACLimit+10 && info["Not learned (table full)"] == wantRefused+10, fmt.Sprint(info)
	})
}

// TestFloodBroadcastStorm: one port sends broadcasts as fast as it can while two TAP hosts
// in their own namespaces (Debian's vde_plug tap://) ping each other through the switch:
// the ping loses under 10% and the console answers within 5 s throughout.
func TestFloodBroadcastStorm(t *testing.T) {
	requireTools(t, "ping")
	sw := startSwitch(t, impl)
	// The stormer connects first: a port joining VLAN 0 flushes VLAN 0's MAC entries.
	storm := dialPeer(t, sw, 1, wire.DialOptions{})
	h1 := plugTap(t, sw, 0, "10.213.77.1/24")
	h2 := plugTap(t, sw, 0, "10.213.77.2/24")
	waitPing(t, h1.NS, h2.Addr)

	// The storm: 64-byte broadcasts, 64 a batch, until stopped.
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = ethFrame(broadcast, storm.MAC, fmt.Sprintf("storm%051d", i))
	}
	var stormSent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := storm.Conn.WriteBatch(batch)
			stormSent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	stopStorm := func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(stopStorm)
	stormStart := time.Now()
	time.Sleep(500 * time.Millisecond) // the storm is on before the pings start

	ping := startProc(t, "ip", "netns", "exec", h1.NS, "ping", "-n", "-q", "-c", fmt.Sprint(stormPings),
		"-i", stormPingSpacing, "-W", "1", h2.Addr)
	ping.Name = "ping(storm)"

	// The console, meanwhile: a new session, then a command every 100 ms on it.
	var lat []time.Duration
	t0 := time.Now()
	m := dialMgmt(t, sw.Mgmt)
	dialLat := time.Since(t0)
	for !ping.Exited() {
		t0 = time.Now()
		raw := m.Do(t, "port/print")
		d := time.Since(t0)
		lat = append(lat, d)
		if !strings.Contains(raw, "1000 Success") {
			t.Errorf("port/print during the storm: %q", truncate(raw, 200))
		}
		time.Sleep(100 * time.Millisecond)
	}
	stormFor := time.Since(stormStart)
	counters := sw.MustCmd(t, "port/print")
	stopStorm()
	if err := ping.Wait(time.Second); err != nil && ping.ExitCode() != 1 {
		t.Fatalf("ping: %v\n%s%s", err, ping.Stdout.String(), ping.Stderr.String())
	}
	out := ping.Stdout.String()
	lossM := regexp.MustCompile(`([0-9]+) packets transmitted, ([0-9]+) received.*?([0-9.]+)% packet loss`).FindStringSubmatch(out)
	if lossM == nil {
		t.Fatalf("ping output without a summary:\n%s", out)
	}
	loss, _ := strconv.ParseFloat(lossM[3], 64)
	rtt := "none"
	if m := regexp.MustCompile(`rtt min/avg/max/mdev = ([0-9./]+) ms`).FindStringSubmatch(out); m != nil {
		rtt = m[1] + " ms"
	}
	var maxLat, sum time.Duration
	for _, d := range lat {
		maxLat = max(maxLat, d)
		sum += d
	}
	avgLat := time.Duration(0)
	if len(lat) > 0 {
		avgLat = sum / time.Duration(len(lat))
	}
	t.Logf("RELIABILITY: broadcast storm: %d frames in %.1f s from one port (%.0f frames/s); ping between two other ports (TAP hosts via vde_plug): %s/%s received, %.1f%% loss, rtt min/avg/max/mdev %s; console: new session %v, port/print max %v avg %v over %d commands",
		stormSent.Load(), stormFor.Seconds(), float64(stormSent.Load())/stormFor.Seconds(), lossM[2], lossM[1], loss, rtt,
		dialLat.Round(time.Millisecond), maxLat.Round(time.Millisecond), avgLat.Round(time.Millisecond), len(lat))
	t.Logf("port/print at the end of the storm:\n%s", strings.Join(counters, "\n"))
	if loss >= maxPingLoss {
		t.Errorf("ping lost %.1f%% during the storm, want under %.0f%%:\n%s", loss, maxPingLoss, out)
	}
	if maxLat >= consoleLiveness || dialLat >= consoleLiveness {
		t.Errorf("console answered in up to %v (session in %v) during the storm, want under %v", maxLat, dialLat, consoleLiveness)
	}
	if len(lat) == 0 {
		t.Error("no console command ran during the storm")
	}
}
