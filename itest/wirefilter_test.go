package itest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// wirefilter: frames counted between in-process peers on two switches joined by
// `wirefilter -v A:B`, each impairment set through the management socket (so a change
// takes effect at once) and measured against bounds computed from the frame counts;
// the console compared byte for byte with Debian's; memory under a flood.

const wfPrompt = "\nVDEwf$ "

// wirefilterBin is the wirefilter of an implementation.
func wirefilterBin(t testing.TB, which string) string {
	t.Helper()
	if which == implDebian {
		requireTools(t, "/usr/bin/wirefilter")
		return "/usr/bin/wirefilter"
	}
	return appletPath(t, "wirefilter")
}

// wfLink is a wirefilter between two switches, with its management socket.
type wfLink struct {
	A, B *Switch
	Proc *Proc
	Mgmt string
}

// startWirefilter runs which's wirefilter -v A:B -M <tmp>/wf args... and waits until both
// switches list its vde_crosscable ports.
func startWirefilter(t testing.TB, which string, a, b *Switch, args ...string) *wfLink {
	t.Helper()
	mgmt := filepath.Join(testDir(t), "wf")
	argv := append([]string{"-v", a.Dir + ":" + b.Dir, "-M", mgmt}, args...)
	p := startProc(t, wirefilterBin(t, which), argv...)
	p.Name = "wirefilter(" + which + ")"
	for _, sw := range []*Switch{a, b} {
		sw.WaitCmd(t, "port/allprint", "vde_crosscable")
	}
	waitFor(t, startTimeout, "wirefilter's mgmt socket", func() (bool, string) {
		err := probeSocket(mgmt)
		return err == nil, fmt.Sprint(err)
	})
	return &wfLink{A: a, B: b, Proc: p, Mgmt: mgmt}
}

// wfSession is a client of a wirefilter's management socket.
type wfSession struct {
	c      *net.UnixConn
	buf    []byte
	Banner string
}

func dialWF(t testing.TB, path string) *wfSession {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("wirefilter mgmt %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	s := &wfSession{c: c}
	s.Banner = s.until(t, wfPrompt)
	return s
}

// until reads up to and including the first occurrence of end (or EOF).
func (s *wfSession) until(t testing.TB, end string) string {
	t.Helper()
	deadline := time.Now().Add(mgmtTimeout)
	for {
		if i := bytes.Index(s.buf, []byte(end)); i >= 0 {
			out := string(s.buf[:i+len(end)])
			s.buf = s.buf[i+len(end):]
			return out
		}
		s.c.SetReadDeadline(deadline)
		var b [4096]byte
		n, err := s.c.Read(b[:])
		s.buf = append(s.buf, b[:n]...)
		if err != nil {
			out := string(s.buf)
			s.buf = nil
			if time.Now().After(deadline) {
				t.Fatalf("wirefilter mgmt: no %q within %v (got %q)", end, mgmtTimeout, out)
			}
			return out
		}
	}
}

// Do sends one command and returns everything up to the next prompt (or EOF). Debian's
// wirefilter takes each read as one command, so a client must wait for each answer.
func (s *wfSession) Do(t testing.TB, cmd string) string {
	t.Helper()
	if _, err := s.c.Write([]byte(cmd + "\n")); err != nil {
		t.Fatalf("wirefilter mgmt %q: %v", cmd, err)
	}
	return s.until(t, wfPrompt)
}

// Must runs commands that must succeed.
func (s *wfSession) Must(t testing.TB, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if out := s.Do(t, c); !strings.Contains(out, "1000 Success") {
			t.Fatalf("wirefilter %q: %q", c, out)
		}
	}
}

// wfFrame is a numbered test frame of size bytes from src to dst.
func wfFrame(dst, src net.HardwareAddr, n, size int) []byte {
	f := ethFrame(dst, src, "wirefilter-test")
	f = binary.BigEndian.AppendUint32(f, uint32(n))
	for len(f) < size {
		f = append(f, 0)
	}
	return f
}

func wfSeq(f []byte) (int, bool) {
	i := bytes.Index(f, []byte("wirefilter-test"))
	if i < 0 || len(f) < i+19 {
		return 0, false
	}
	return int(binary.BigEndian.Uint32(f[i+15:])), true
}

// wfRig is the counting rig: peer 1 on A sends to peer 2 on B through the wirefilter.
type wfRig struct {
	*wfLink
	src, dst *peer
	s        *wfSession
}

func newWFRig(t *testing.T, args ...string) *wfRig {
	a, b := startSwitch(t, implOurs), startSwitch(t, implOurs)
	l := startWirefilter(t, implOurs, a, b, args...)
	r := &wfRig{wfLink: l, src: dialPeer(t, a, 1, wire.DialOptions{}), dst: dialPeer(t, b, 2, wire.DialOptions{})}
	r.s = dialWF(t, l.Mgmt)
	// Both switches learn both MACs: a broadcast each way (again while the link loses it).
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for _, p := range [][2]*peer{{r.dst, r.src}, {r.src, r.dst}} {
		tag := "hello-from-" + p[0].Name
		for i := 0; ; i++ {
			p[0].send(t, ethFrame(bcast, p[0].MAC, tag))
			if _, ok := p[1].tryRecv(tag, 200*time.Millisecond); ok {
				break
			}
			if i == 50 {
				t.Fatalf("%s: no %q through the wirefilter", p[1].Name, tag)
			}
		}
	}
	return r
}

// burst sends frames first..first+n-1 of size bytes, paced so that no switch queue
// overflows (every frame the wirefilter does not drop arrives), and returns the sequence
// numbers received, in arrival order, with their arrival times, after the link has been
// quiet for a while.
func (r *wfRig) burst(t *testing.T, first, n, size int, gap time.Duration) (seqs []int, at []time.Time, sent []time.Time) {
	t.Helper()
	done, allSent := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		quiet := time.NewTimer(30 * time.Second)
		sending := allSent
		for {
			select {
			case f, ok := <-r.dst.rx:
				if !ok {
					return
				}
				if s, ok := wfSeq(f); ok {
					seqs = append(seqs, s)
					at = append(at, time.Now())
				}
				if sending == nil {
					quiet.Reset(quietPeriod)
				}
			case <-sending:
				sending = nil
				quiet.Reset(quietPeriod)
			case <-quiet.C:
				return
			}
		}
	}()
	for i := 0; i < n; i++ {
		sent = append(sent, time.Now())
		r.src.send(t, wfFrame(r.dst.MAC, r.src.MAC, first+i, size))
		if gap > 0 {
			time.Sleep(gap)
		}
	}
	close(allSent)
	<-done
	return seqs, at, sent
}

// sixSigma is the range mean ± 6 standard deviations (a false failure is a 1e-9 event).
func sixSigma(mean, sd float64) (lo, hi float64) { return mean - 6*sd, mean + 6*sd }

func TestWirefilterImpairments(t *testing.T) {
	requireRoot(t)
	r := newWFRig(t)
	const gap = 40 * time.Microsecond

	t.Run("loss", func(t *testing.T) {
		const n, p = 3000, 0.2
		r.s.Must(t, "loss LR20")
		defer r.s.Must(t, "loss 0")
		seqs, _, _ := r.burst(t, 0, n, 100, gap)
		lo, hi := sixSigma(n*(1-p), math.Sqrt(n*p*(1-p)))
		if got := float64(len(seqs)); got < lo || got > hi {
			t.Fatalf("loss 20%%: %d of %d frames arrived, want %.0f..%.0f", len(seqs), n, lo, hi)
		}
		t.Logf("loss 20%%: %d of %d arrived (bounds %.0f..%.0f)", len(seqs), n, lo, hi)
	})

	t.Run("dup", func(t *testing.T) {
		const n, p = 3000, 0.2
		r.s.Must(t, "dup LR20")
		defer r.s.Must(t, "dup 0")
		seqs, _, _ := r.burst(t, 10000, n, 100, gap)
		distinct := map[int]bool{}
		for _, s := range seqs {
			distinct[s] = true
		}
		// Dup never loses a frame; a switch's queue might (rarely), so the bounds are
		// computed from the frames that arrived at all. Copies per frame are geometric:
		// mean 1/(1-p), variance p/(1-p)^2.
		d := float64(len(distinct))
		if d < 0.98*n {
			t.Fatalf("dup 20%%: only %d distinct frames of %d arrived", len(distinct), n)
		}
		lo, hi := sixSigma(d/(1-p), math.Sqrt(d*p)/(1-p))
		if got := float64(len(seqs)); got < lo || got > hi {
			t.Fatalf("dup 20%%: %d frames for %d distinct, want %.0f..%.0f", len(seqs), len(distinct), lo, hi)
		}
	})

	t.Run("delay", func(t *testing.T) {
		const n = 30
		r.s.Must(t, "delay LR100")
		defer r.s.Must(t, "delay 0")
		seqs, at, sent := r.burst(t, 20000, n, 100, 10*time.Millisecond)
		if len(seqs) != n {
			t.Fatalf("delay: %d of %d frames arrived", len(seqs), n)
		}
		var lat []time.Duration
		for i, s := range seqs {
			if s-20000 != i {
				t.Fatalf("delay: frame %d arrived %dth (FIFO order)", s-20000, i)
			}
			lat = append(lat, at[i].Sub(sent[i]))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		if lat[0] < 99*time.Millisecond || lat[n/2] > 300*time.Millisecond {
			t.Fatalf("delay 100 ms: latency min %v, median %v", lat[0], lat[n/2])
		}
		t.Logf("delay 100 ms: latency min %v, median %v, max %v", lat[0], lat[n/2], lat[n-1])
	})

	t.Run("bandwidth", func(t *testing.T) {
		// 100 frames of 1000 bytes at 200000 B/s: the last leaves 99 frame times (5 ms
		// each) after the first, however fast they came in.
		const n, size, band = 100, 1000, 200000
		r.s.Must(t, fmt.Sprintf("bandwidth LR%d", band))
		defer r.s.Must(t, "bandwidth 0")
		seqs, at, _ := r.burst(t, 30000, n, size, 0)
		if len(seqs) != n {
			t.Fatalf("bandwidth: %d of %d frames arrived (nothing bounds the buffer)", len(seqs), n)
		}
		want := time.Duration(float64((n-1)*size) / band * float64(time.Second))
		if el := at[n-1].Sub(at[0]); el < want*95/100 || el > want*2 {
			t.Fatalf("bandwidth %d B/s: %d frames of %d bytes spread over %v, want %v", band, n, size, el, want)
		} else {
			t.Logf("bandwidth %d B/s: %d frames of %d bytes over %v (%v expected)", band, n, size, el, want)
		}
	})

	t.Run("seed", func(t *testing.T) {
		const n = 600
		r.s.Must(t, "loss LR50", "dup LR10")
		defer r.s.Must(t, "loss 0", "dup 0")
		var patterns [3][]int
		for i, seed := range []string{"seed 7", "seed 7", "seed 8"} {
			r.s.Must(t, seed)
			seqs, _, _ := r.burst(t, 40000, n, 100, gap)
			patterns[i] = seqs
		}
		if fmt.Sprint(patterns[0]) != fmt.Sprint(patterns[1]) {
			t.Fatalf("seed 7 twice: %d and %d frames in different patterns", len(patterns[0]), len(patterns[1]))
		}
		if fmt.Sprint(patterns[0]) == fmt.Sprint(patterns[2]) {
			t.Fatal("seeds 7 and 8 gave the same pattern")
		}
	})
}

// TestWirefilterSeedOption: --seed N on the command line gives the pattern the console's
// "seed N" gives.
func TestWirefilterSeedOption(t *testing.T) {
	requireRoot(t)
	const n = 400
	var patterns [2]string
	for i := range patterns {
		// The loss is set after the rig's first frames, which a passive link
		// carries without drawing a random number.
		var r *wfRig
		if i == 0 {
			r = newWFRig(t, "--seed", "99")
		} else {
			r = newWFRig(t)
			r.s.Must(t, "seed 99")
		}
		r.s.Must(t, "loss LR40")
		seqs, _, _ := r.burst(t, 0, n, 100, 40*time.Microsecond)
		patterns[i] = fmt.Sprint(seqs)
	}
	if patterns[0] != patterns[1] {
		t.Fatal("--seed 99 and the console's seed 99 gave different drop patterns")
	}
}

// TestWirefilterTapHosts: ping between TAP hosts through a wirefilter with 40 ms of delay
// each way takes at least 80 ms, and TCP crosses a lossy link.
func TestWirefilterTapHosts(t *testing.T) {
	requireRoot(t)
	a, b := startSwitch(t, implOurs), startSwitch(t, implOurs)
	blinkPath := filepath.Join(testDir(t), "blink")
	blink, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: blinkPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer blink.Close()
	l := startWirefilter(t, implOurs, a, b, "-d", "40", "--blink", blinkPath, "--blinkid", "wf1")
	h1, h2 := plugTap(t, a, 0, "10.77.0.1/24"), plugTap(t, b, 0, "10.77.0.2/24")
	waitPing(t, h1.NS, h2.Addr)
	// --blink: a datagram "ID DIR SIZE" per frame sent, SIZE with C's 2-byte header.
	blink.SetReadDeadline(time.Now().Add(recvTimeout))
	var bb [128]byte
	if n, err := blink.Read(bb[:]); err != nil || !regexp.MustCompile(`^wf1 (LR|RL) \d+\n$`).Match(bb[:n]) {
		t.Fatalf("blink datagram %q, %v", bb[:n], err)
	}
	out := run(t, "ip", "netns", "exec", h1.NS, "ping", "-n", "-c", "5", "-i", "0.2", h2.Addr)
	m := regexp.MustCompile(`= ([\d.]+)/([\d.]+)/([\d.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping output: %s", out)
	}
	if min, _ := strconv.ParseFloat(m[1], 64); min < 80 {
		t.Fatalf("ping through 40 ms each way: min rtt %v ms\n%s", min, out)
	}
	s := dialWF(t, l.Mgmt)
	s.Must(t, "delay 0", "loss 3")
	src := filepath.Join(testDir(t), "src")
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	os.WriteFile(src, data, 0o644)
	dst := filepath.Join(testDir(t), "dst")
	transferTCP(t, h1, h2, src, dst)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatalf("TCP over 3%% loss: %d of %d bytes, or different", len(got), len(data))
	}
}

// wfConsoleScript is run on Debian's wirefilter and ours; every answer must match.
var wfConsoleScript = []string{
	"help", "showinfo", "markov-time 1000000",
	"loss LR10.5+2N", "delay 100+50", "bandwidth 1M", "band RL3K", "mtu 1500", "chanbufsize 100K",
	"capacity LR1G", "dup RL5", "noise 10", "lostburst 3", "speed 2M+1MU", "fifo 0", "showinfo",
	"showinfo 1", "showinfo -1", "markov-numnodes 3", "markov-name 1,good", "markov-name 2, bad",
	"markov-name 7,x", "setedge 0,1,30", "setedge 1,2,50.5", "setedge 1,9,1", "showedges 0",
	"showedges 1", "showedges", "showedges 5", "markov-setnode 1", "showcurrent", "markov-setnode 4",
	"delay 10[2]", "loss 1[3]", "showinfo 2", "showinfo", "markov-numnodes 2", "showedges 1",
	"showinfo 1", "markov-numnodes 0", "markov-time 0", "bogus", "", "# a comment", "   ",
	"load /nonexistent/rc", "load RCFILE", "fifo 1", "fifo", "helpme", "lossy 3", "loss x",
	"markov-debug 1", "markov-debug 0", "showinfo",
}

// wfConsoleDiffers are the answers where ours differs from Debian's on purpose (README):
// a value with no number sets nothing, which Debian calls a success.
var wfConsoleDiffers = map[string][2]string{
	"lossy 3": {"1000 Success\n" + wfPrompt, "1022 Invalid argument\n" + wfPrompt},
	"loss x":  {"1000 Success\n" + wfPrompt, "1022 Invalid argument\n" + wfPrompt},
}

// TestWirefilterConsoleAsDebian runs the same commands on Debian's wirefilter and ours,
// each between two Debian switches, and compares the answers byte for byte (numbers
// masked: queue sizes may differ by a frame a switch sent meanwhile). Ours lists its
// seed command in help, one line more.
func TestWirefilterConsoleAsDebian(t *testing.T) {
	requireRoot(t)
	rc := filepath.Join(testDir(t), "rc")
	os.WriteFile(rc, []byte("loss 12\n\n# comment\nbogus\nshowcurrent\ndelay LR7\n"), 0o644)
	transcript := func(which string) []string {
		a, b := startSwitch(t, implDebian), startSwitch(t, implDebian)
		l := startWirefilter(t, which, a, b)
		s := dialWF(t, l.Mgmt)
		if !strings.HasPrefix(s.Banner, "\nVDE wirefilter V.2.3.2") {
			t.Errorf("%s banner %q", which, s.Banner)
		}
		var out []string
		for _, c := range wfConsoleScript {
			if c == "load RCFILE" {
				// The loaded lines are echoed after prompts: read to load's own status.
				s.c.Write([]byte("load " + rc + "\n"))
				out = append(out, s.until(t, "1000 Success\n.\n1000 Success\n"+wfPrompt))
				continue
			}
			ans := s.Do(t, c)
			if which == implOurs {
				ans = strings.Replace(ans, "seed [n]           set (or show) the seed of the random choices\n", "", 1)
			}
			out = append(out, ans)
		}
		// logout answers and closes.
		s.c.Write([]byte("logout\n"))
		out = append(out, s.until(t, "\x00never"))
		return out
	}
	digits := regexp.MustCompile(`\d+`)
	deb, our := transcript(implDebian), transcript(implOurs)
	if dir := os.Getenv("VDE_ITEST_WF_TRANSCRIPTS"); dir != "" {
		os.WriteFile(filepath.Join(dir, "debian.txt"), []byte(strings.Join(deb, "\n=====\n")), 0o644)
		os.WriteFile(filepath.Join(dir, "ours.txt"), []byte(strings.Join(our, "\n=====\n")), 0o644)
	}
	for i := range deb {
		cmd := "logout"
		if i < len(wfConsoleScript) {
			cmd = wfConsoleScript[i]
		}
		d, o := deb[i], our[i]
		if want, ok := wfConsoleDiffers[cmd]; ok {
			if d != want[0] || o != want[1] {
				t.Errorf("%q: Debian %q, ours %q; want %q and %q", cmd, d, o, want[0], want[1])
			}
			continue
		}
		if cmd != "showinfo" && !strings.HasPrefix(cmd, "showinfo ") {
			// Only showinfo has counters; everything else must match exactly.
			if d != o {
				t.Errorf("%q:\nDebian %q\nours   %q", cmd, d, o)
			}
			continue
		}
		if digits.ReplaceAllString(d, "N") != digits.ReplaceAllString(o, "N") {
			t.Errorf("%q (numbers masked):\nDebian %q\nours   %q", cmd, d, o)
		}
	}
}

// TestWirefilterBadOptions: usage errors as Debian's (ours has one usage line more).
func TestWirefilterBadOptions(t *testing.T) {
	requireTools(t, "/usr/bin/wirefilter")
	for _, args := range [][]string{{"-v", "nocolon"}, {"-x"}, {"--loss"}, {"-h"}, {"extra"}} {
		var outs [2]string
		var codes [2]int
		for i, which := range []string{implDebian, implOurs} {
			p := startProc(t, wirefilterBin(t, which), args...)
			p.Stdin.Close()
			p.Wait(stopTimeout)
			outs[i] = strings.Replace(p.Stdout.String()+p.Stderr.String(), "\t--seed seed (the random choices repeat for a seed)\n", "", 1)
			// C's getopt names the program as it was run.
			outs[i] = strings.ReplaceAll(outs[i], wirefilterBin(t, which)+": ", "wirefilter: ")
			codes[i] = p.ExitCode()
		}
		if outs[0] != outs[1] || codes[0] != codes[1] {
			t.Errorf("%q: Debian exit %d %q\nours exit %d %q", args, codes[0], outs[0], codes[1], outs[1])
		}
	}
}

// TestWirefilterFloodMemory: a flood through a 20000 B/s link with a 100 KB channel
// buffer keeps the queue within the buffer, and the process's memory does not follow the
// flood (50 MB sent).
func TestWirefilterFloodMemory(t *testing.T) {
	requireRoot(t)
	r := newWFRig(t, "-b", "20000", "-c", "100000")
	rss := func() int {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.Proc.PID()))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
		v, _ := strconv.Atoi(string(m[1]))
		return v
	}
	before := rss()
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = wfFrame(r.dst.MAC, r.src.MAC, i, 1000)
	}
	queue := regexp.MustCompile(`Current Delay Queue size:\s+L->R (\d+)`)
	maxQueue, peak := 0, before
	deadline := time.Now().Add(20 * time.Second)
	for sent := 0; sent < 50000 && time.Now().Before(deadline); {
		n, err := r.src.Conn.WriteBatch(frames)
		if err != nil {
			t.Fatal(err)
		}
		sent += n
		if sent%3200 < 32 {
			if m := queue.FindStringSubmatch(r.s.Do(t, "showinfo")); m != nil {
				q, _ := strconv.Atoi(m[1])
				maxQueue = max(maxQueue, q)
			}
			peak = max(peak, rss())
		}
	}
	peak = max(peak, rss())
	if maxQueue > 100000 {
		t.Fatalf("delay queue held %d bytes with a 100000-byte channel buffer", maxQueue)
	}
	if peak-before > 16<<10 {
		t.Fatalf("RSS grew from %d kB to %d kB under a 50 MB flood", before, peak)
	}
	t.Logf("flood: queue at most %d bytes, RSS %d -> %d kB", maxQueue, before, peak)
}

// TestWirefilterStream: our wirefilter in the middle of Debian's
// `dpipe vde_plug A = wirefilter = vde_plug B` carries frames both ways (stdin/stdout
// one way, dpipe's ALTERNATE_STDIN/ALTERNATE_STDOUT the other), delayed.
func TestWirefilterStream(t *testing.T) {
	requireRoot(t)
	requireTools(t, "/usr/bin/dpipe", "/usr/bin/vde_plug")
	a, b := startSwitch(t, implOurs), startSwitch(t, implOurs)
	startProc(t, "/usr/bin/dpipe", "/usr/bin/vde_plug", a.Dir, "=", wirefilterBin(t, implOurs), "-d", "30", "=", "/usr/bin/vde_plug", b.Dir)
	for _, sw := range []*Switch{a, b} {
		sw.WaitCmd(t, "port/allprint", "vdeplug:")
	}
	p1, p2 := dialPeer(t, a, 1, wire.DialOptions{}), dialPeer(t, b, 2, wire.DialOptions{})
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for _, p := range [][2]*peer{{p1, p2}, {p2, p1}} {
		tag := "stream-from-" + p[0].Name
		start := time.Now()
		p[0].send(t, ethFrame(bcast, p[0].MAC, tag))
		p[1].recv(t, tag)
		if d := time.Since(start); d < 29*time.Millisecond {
			t.Errorf("%s: through -d 30 in %v", tag, d)
		}
	}
}

// TestWirefilterStdinConsole: the console on stdin answers as Debian's (no banner, the
// prompt after each answer, logout's "1-01 Unknown error -1" ends the program with
// status 0, as EOF on stdin does), and --mgmtmode sets the socket's mode as Debian's.
func TestWirefilterStdinConsole(t *testing.T) {
	requireRoot(t)
	outs := map[string]string{}
	for _, which := range []string{implDebian, implOurs} {
		a, b := startSwitch(t, implDebian), startSwitch(t, implDebian)
		l := startWirefilter(t, which, a, b, "--mgmtmode", "0640", "-l", "RL5")
		if mode, _ := fileMode(t, l.Mgmt); mode != 0o640 {
			t.Errorf("%s: --mgmtmode 0640 made the socket %#o", which, mode)
		}
		var out string
		for _, c := range []string{"showinfo", "bogus", "logout"} {
			// Debian's takes each read as one command: wait for each answer.
			before := len(l.Proc.Stdout.String())
			l.Proc.Stdin.Write([]byte(c + "\n"))
			want := wfPrompt
			if c == "logout" {
				want = "Unknown error -1\n"
			}
			waitFor(t, mgmtTimeout, which+" console answer to "+c, func() (bool, string) {
				s := l.Proc.Stdout.String()
				return len(s) > before && strings.HasSuffix(s, want), s
			})
			out = l.Proc.Stdout.String()
		}
		if err := l.Proc.Wait(stopTimeout); err != nil || l.Proc.ExitCode() != 0 {
			t.Errorf("%s: after logout on stdin: %v, status %d", which, err, l.Proc.ExitCode())
		}
		outs[which] = out
		// EOF on stdin ends it too.
		l2 := startWirefilter(t, which, a, b)
		l2.Proc.Stdin.Close()
		if err := l2.Proc.Wait(stopTimeout); err != nil || l2.Proc.ExitCode() != 0 {
			t.Errorf("%s: after EOF on stdin: %v, status %d", which, err, l2.Proc.ExitCode())
		}
	}
	if outs[implDebian] != outs[implOurs] {
		t.Errorf("stdin console:\nDebian %q\nours   %q", outs[implDebian], outs[implOurs])
	}
}

// TestWirefilterValuesAsDebian sets loss to tricky and random values on Debian's
// wirefilter and ours and compares what showinfo shows; where ours refuses a value with
// no number (1022), Debian's must have answered 1000 Success and changed nothing.
func TestWirefilterValuesAsDebian(t *testing.T) {
	requireRoot(t)
	values := []string{"10", "LR10+5KN", "RL1e3", "100+50K", "10]", "[2]", "0x1.8p3", "nan(x)", " 5 ",
		"5+-2U", "1e", "]", "10[0]", "10[1]", "0x", "inf", "-3", "2g", "5k N", "LR 5", "10 +5", ".5+.5M"}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789.+-eExXpPLRKMGUNun[] "
	for i := 0; i < 150; i++ {
		b := make([]byte, 1+rng.IntN(8))
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		values = append(values, string(b))
	}
	lossLine := regexp.MustCompile(`(?m)^Loss .*$`)
	shown := func(which string) (answers, lines []string) {
		a, b := startSwitch(t, implDebian), startSwitch(t, implDebian)
		s := dialWF(t, startWirefilter(t, which, a, b).Mgmt)
		for _, v := range values {
			s.Must(t, "loss 7+1N")
			answers = append(answers, s.Do(t, "loss "+v))
			lines = append(lines, lossLine.FindString(s.Do(t, "showinfo")))
		}
		return answers, lines
	}
	da, dl := shown(implDebian)
	oa, ol := shown(implOurs)
	const unchanged = "Loss   L->R 7+1N   R->L 7+1N"
	refused, set := 0, 0
	for i, v := range values {
		if ol[i] != unchanged {
			set++
		}
		switch {
		case ol[i] == "":
			t.Errorf("loss %q: no Loss line in showinfo", v)
		case oa[i] == "1022 Invalid argument\n"+wfPrompt && strings.HasPrefix(da[i], "1000 Success") && dl[i] == unchanged && ol[i] == unchanged:
			refused++
		case oa[i] != da[i] || ol[i] != dl[i]:
			t.Errorf("loss %q: Debian %q %q, ours %q %q", v, da[i], dl[i], oa[i], ol[i])
		}
	}
	t.Logf("%d values: %d set loss as Debian's did, %d refused where Debian's set nothing", len(values), set, refused)
}
