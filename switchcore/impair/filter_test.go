package impair

import (
	"encoding/binary"
	"io"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeEP is an in-memory endpoint: frames sent into in are read; frames written are kept
// with their arrival times.
type fakeEP struct {
	in     chan []byte
	closed chan struct{}
	once   sync.Once
	mu     sync.Mutex
	got    [][]byte
	at     []time.Time
}

func newFake() *fakeEP { return &fakeEP{in: make(chan []byte, 1<<16), closed: make(chan struct{})} }

func (e *fakeEP) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	select {
	case f := <-e.in:
		sizes[0] = copy(frames[0], f)
	case <-e.closed:
		return 0, io.EOF
	}
	n := 1
	for n < len(frames) {
		select {
		case f := <-e.in:
			sizes[n] = copy(frames[n], f)
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

func (e *fakeEP) WriteBatch(frames [][]byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	for _, f := range frames {
		e.got = append(e.got, append([]byte(nil), f...))
		e.at = append(e.at, now)
	}
	return len(frames), nil
}

func (e *fakeEP) Close() error { e.once.Do(func() { close(e.closed) }); return nil }

func (e *fakeEP) count() int { e.mu.Lock(); defer e.mu.Unlock(); return len(e.got) }

// frame is a 60-byte frame numbered i.
func frame(i int) []byte {
	b := make([]byte, 60)
	for k := 0; k < 12; k++ {
		b[k] = 0xff
	}
	binary.BigEndian.PutUint32(b[14:], uint32(i))
	return b
}

func seq(b []byte) int { return int(binary.BigEndian.Uint32(b[14:])) }

// run starts f between two fakes and returns them with a stop function.
func run(t *testing.T, f *Filter) (left, right *fakeEP) {
	left, right = newFake(), newFake()
	done := make(chan struct{})
	go func() { f.Run(left, right); close(done) }()
	t.Cleanup(func() { f.Close(); left.Close(); right.Close(); <-done })
	return left, right
}

// send sends n numbered frames in, paced so that the reader sees them one batch at a time.
func send(e *fakeEP, from, n int) {
	for i := from; i < from+n; i++ {
		e.in <- frame(i)
	}
}

func waitCount(t *testing.T, e *fakeEP, n int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if c := e.count(); c >= n {
			return c
		}
		time.Sleep(2 * time.Millisecond)
	}
	return e.count()
}

// settle waits until e has received nothing for a while.
func settle(e *fakeEP) int {
	last := -1
	for {
		time.Sleep(50 * time.Millisecond)
		c := e.count()
		if c == last {
			return c
		}
		last = c
	}
}

// bounds is a binomial count's range: mean ± 6 sigma (a false failure is a 1e-9 event).
func bounds(n int, p float64) (lo, hi int) {
	mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
	return int(mean - 6*sd), int(math.Ceil(mean + 6*sd))
}

func TestPassive(t *testing.T) {
	f := New(Config{Bidirectional: true})
	l, r := run(t, f)
	send(l, 0, 1000)
	send(r, 0, 10)
	if got := waitCount(t, r, 1000, 5*time.Second); got != 1000 {
		t.Fatalf("LR: %d of 1000", got)
	}
	if got := waitCount(t, l, 10, 5*time.Second); got != 10 {
		t.Fatalf("RL: %d of 10", got)
	}
	for i, b := range r.got {
		if seq(b) != i {
			t.Fatalf("frame %d is %d", i, seq(b))
		}
	}
}

func TestLossBounds(t *testing.T) {
	const n = 20000
	f := New(Config{Bidirectional: true})
	if err := f.Set(Loss, "LR30"); err != nil {
		t.Fatal(err)
	}
	l, r := run(t, f)
	send(l, 0, n)
	send(r, 0, 100)
	waitCount(t, l, 100, 5*time.Second)
	got := settle(r)
	lo, hi := bounds(n, 0.7)
	if got < lo || got > hi {
		t.Fatalf("30%% loss passed %d of %d, want %d..%d", got, n, lo, hi)
	}
	if c := l.count(); c != 100 {
		t.Fatalf("RL has no loss but passed %d of 100", c)
	}
	if s := f.Stats(LR); s.Lost+uint64(got) != n {
		t.Fatalf("stats: lost %d + passed %d != %d", s.Lost, got, n)
	}
}

func TestSeedRepeats(t *testing.T) {
	pattern := func(seed uint64) []int {
		f := New(Config{Bidirectional: true, Seed: seed, HasSeed: true})
		f.Set(Loss, "50")
		f.Set(Dup, "20")
		l, r := run(t, f)
		send(l, 0, 2000)
		settle(r)
		var out []int
		for _, b := range r.got {
			out = append(out, seq(b))
		}
		return out
	}
	a, b, c := pattern(42), pattern(42), pattern(43)
	if !equal(a, b) {
		t.Fatalf("seed 42 twice: %d and %d frames, different patterns", len(a), len(b))
	}
	if equal(a, c) {
		t.Fatal("seeds 42 and 43 gave the same pattern")
	}
	// The console's seed command restarts the sequence.
	f := New(Config{Bidirectional: true})
	f.Set(Loss, "50")
	f.Set(Dup, "20")
	s := f.NewSession(io.Discard)
	if rv := s.Exec("seed 42"); rv != 0 {
		t.Fatalf("seed 42: %d", rv)
	}
	l, r := run(t, f)
	send(l, 0, 2000)
	settle(r)
	var d []int
	for _, b := range r.got {
		d = append(d, seq(b))
	}
	if !equal(a, d) {
		t.Fatal("seed command: different pattern from --seed 42")
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDupBounds(t *testing.T) {
	const n = 10000
	f := New(Config{Bidirectional: true})
	f.Set(Dup, "25")
	l, r := run(t, f)
	send(l, 0, n)
	got := settle(r)
	// Copies per frame are geometric: mean 1/(1-p), variance p/(1-p)^2.
	p := 0.25
	mean := n / (1 - p)
	sd := math.Sqrt(n * p / ((1 - p) * (1 - p)))
	if float64(got) < mean-6*sd || float64(got) > mean+6*sd {
		t.Fatalf("25%% dup: %d frames out of %d, want %.0f±%.0f", got, n, mean, 6*sd)
	}
}

func TestDelayKeepsOrder(t *testing.T) {
	f := New(Config{Bidirectional: true})
	f.Set(Delay, "LR50+40")
	l, r := run(t, f)
	start := time.Now()
	send(l, 0, 200)
	if got := waitCount(t, r, 200, 5*time.Second); got != 200 {
		t.Fatalf("%d of 200", got)
	}
	for i, b := range r.got {
		if seq(b) != i {
			t.Fatalf("FIFO: frame %d is %d", i, seq(b))
		}
	}
	if d := r.at[0].Sub(start); d < 10*time.Millisecond {
		t.Fatalf("first frame after %v, want >= 10ms", d)
	}
	// Without FIFO, varied delays reorder.
	f2 := New(Config{Bidirectional: true, Seed: 1, HasSeed: true})
	f2.Set(Delay, "50+40")
	f2.SetFIFO(false)
	l2, r2 := run(t, f2)
	for i := 0; i < 200; i++ {
		send(l2, i, 1)
		time.Sleep(200 * time.Microsecond)
	}
	waitCount(t, r2, 200, 5*time.Second)
	inOrder := true
	for i, b := range r2.got {
		if seq(b) != i {
			inOrder = false
		}
	}
	if inOrder {
		t.Fatal("nofifo with 50+40 ms delays kept every frame in order")
	}
}

// TestPacing: bandwidth delays delivery, interface speed holds the input; either way
// n frames of 60 bytes at rate bytes/s take n*60/rate seconds.
func TestPacing(t *testing.T) {
	for _, c := range []struct {
		p     Param
		value string
		n     int
		want  time.Duration
	}{
		{Band, "60000", 300, 300 * time.Millisecond},
		{Speed, "LR6000", 30, 300 * time.Millisecond},
	} {
		f := New(Config{Bidirectional: true})
		f.Set(c.p, c.value)
		l, r := run(t, f)
		start := time.Now()
		send(l, 0, c.n)
		if got := waitCount(t, r, c.n, 5*time.Second); got != c.n {
			t.Fatalf("%s: %d of %d", c.value, got, c.n)
		}
		if el := r.at[c.n-1].Sub(start); el < c.want*93/100 || el > 5*c.want {
			t.Fatalf("%s: %d frames took %v, want %v", c.value, c.n, el, c.want)
		}
	}
}

func TestChanBufBoundsQueue(t *testing.T) {
	// 1000 B/s with a 6000-byte buffer: 100 frames of 60 bytes at once keep 100 (the
	// first leaves at once... at most 6000 bytes wait).
	f := New(Config{Bidirectional: true})
	f.Set(Band, "1000")
	f.Set(ChanBufSize, "6000")
	l, _ := run(t, f)
	send(l, 0, 1000)
	time.Sleep(200 * time.Millisecond)
	s := f.Stats(LR)
	if s.Queued > 6000 || s.Waiting > 100 {
		t.Fatalf("queue holds %d bytes in %d frames, want <= 6000", s.Queued, s.Waiting)
	}
	if s.BufDrops < 800 {
		t.Fatalf("dropped %d of 1000 for the buffer", s.BufDrops)
	}
}

func TestMTU(t *testing.T) {
	f := New(Config{Bidirectional: true})
	f.Set(MTU, "100")
	l, r := run(t, f)
	l.in <- make([]byte, 100)
	l.in <- make([]byte, 101)
	l.in <- make([]byte, 60)
	if got := settle(r); got != 2 {
		t.Fatalf("mtu 100 passed %d of (100, 101, 60)", got)
	}
}

func TestNoiseFlipsBits(t *testing.T) {
	f := New(Config{Bidirectional: true, Seed: 7, HasSeed: true})
	// 100000 bits/MB on 60-byte frames: about 5.7 bits per frame.
	f.Set(Noise, "100000")
	l, r := run(t, f)
	send(l, 0, 100)
	settle(r)
	changed := 0
	for _, b := range r.got {
		if !bytesEqual(b[:14], frame(0)[:14]) || !bytesEqual(b[18:], frame(0)[18:]) {
			changed++
		}
	}
	if changed < 80 {
		t.Fatalf("noise changed %d of 100 frames", changed)
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

func TestConsole(t *testing.T) {
	f := New(Config{Bidirectional: true})
	var out strings.Builder
	s := f.NewSession(&out)
	err := s.Serve(strings.NewReader("loss LR10.5+2N\nbogus\n\nshowinfo 1\nmarkov-numnodes 2\nsetedge 0,1,30\nshowedges\nlogout\nhelp\n"))
	if err != ErrLogout {
		t.Fatalf("Serve: %v", err)
	}
	want := "1000 Success\n" + Prompt +
		"1038 Function not implemented\n" + Prompt +
		Prompt +
		"0000 DATA END WITH '.'\n.\n1022 Invalid argument\n" + Prompt +
		"1000 Success\n" + Prompt +
		"1000 Success\n" + Prompt +
		"0000 DATA END WITH '.'\nEdge 0 ->0  \"\"->\"\" weigth 70\nEdge 0 ->1  \"\"->\"\" weigth 30\n.\n1000 Success\n" + Prompt +
		"1-01 Unknown error -1\n"
	got := out.String()
	// The chain steps at once from node 0; showedges shows the current node's edges.
	if f.Current() == 1 {
		want = strings.Replace(want, "Edge 0 ->0  \"\"->\"\" weigth 70\nEdge 0 ->1  \"\"->\"\" weigth 30\n", "Edge 1 ->1  \"\"->\"\" weigth 100\n", 1)
	}
	if got != want {
		t.Fatalf("console:\n%q\nwant\n%q", got, want)
	}
	if v := f.Get(0, Loss, LR); v != (Value{10.5, 2, Normal}) {
		t.Fatalf("loss LR = %+v", v)
	}
	f.Close()
}

// genEP makes frames into the reader's buffers and counts what is written: no memory of
// its own per frame, so the filter's allocations show.
type genEP struct {
	left   atomic.Int64
	wrote  atomic.Int64
	closed chan struct{}
}

func (g *genEP) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	if g.left.Add(-int64(len(frames))) < 0 {
		<-g.closed
		return 0, io.EOF
	}
	for i := range frames {
		sizes[i] = copy(frames[i], frame(0)[:0]) + 60
	}
	return len(frames), nil
}

func (g *genEP) WriteBatch(frames [][]byte) (int, error) {
	g.wrote.Add(int64(len(frames)))
	return len(frames), nil
}

func (g *genEP) Close() error { return nil }

// TestNoAllocPerFrame: with loss, duplication, noise, delay and bandwidth on, a steady
// flow allocates (almost) nothing per frame: buffers come from the reader's batch and
// the queue's reused chunks, the heap grows once.
func TestNoAllocPerFrame(t *testing.T) {
	const n = 200000
	f := New(Config{Bidirectional: false, Seed: 1, HasSeed: true})
	f.Set(Loss, "10")
	f.Set(Dup, "10")
	f.Set(Noise, "1000")
	f.Set(Delay, "1")
	f.Set(Band, "1G")
	src, dst := &genEP{closed: make(chan struct{})}, &genEP{closed: make(chan struct{})}
	src.left.Store(n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	go func() { f.Run(src, dst); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for dst.wrote.Load() < n*8/10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	runtime.ReadMemStats(&after)
	f.Close()
	close(src.closed)
	<-done
	if w := dst.wrote.Load(); w < n*8/10 {
		t.Fatalf("only %d of %d frames through", w, n)
	}
	if m := after.Mallocs - before.Mallocs; m > n/100 {
		t.Fatalf("%d allocations for %d frames", m, n)
	}
}

// FuzzConsoleExec: any console line runs or is refused without panicking, and the filter
// still carries frames afterwards.
func FuzzConsoleExec(f *testing.F) {
	for _, s := range []string{"loss LR10+5N", "markov-numnodes 3", "setedge 0,1,50", "markov-name 1,x",
		"showinfo 2", "showedges", "fifo", "seed 5", "delay 10[1]", "markov-time 0.0001", "capacity 1K", "mtu 20"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.HasPrefix(strings.TrimLeft(line, " \t\n"), "load") {
			return // reads files
		}
		flt := New(Config{Bidirectional: true, Seed: 1, HasSeed: true})
		defer flt.Close()
		s := flt.NewSession(io.Discard)
		s.Exec("markov-numnodes 2")
		s.Exec(line)
		for _, l := range strings.Split(line, "\n") {
			s.Exec(l)
		}
		s.Exec("showinfo")
		s.Exec("showedges")
		s.Exec("showcurrent")
	})
}

// TestHugeValues: delays and rates at the ends of float64 neither send at once nor wrap
// the clock.
func TestHugeValues(t *testing.T) {
	for _, c := range []struct {
		p Param
		v string
	}{{Delay, "1e300"}, {Delay, "inf"}, {Band, "1e-300"}, {Speed, "1e-300"}} {
		f := New(Config{Bidirectional: true})
		f.Set(c.p, c.v)
		l, r := run(t, f)
		send(l, 0, 3)
		if got := settle(r); got > 1 {
			t.Fatalf("%v %s: %d frames went through at once", c.p, c.v, got)
		}
	}
}

// syncBuf is a goroutine-safe output buffer.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestConsoleMarkovDebugAndLongLine(t *testing.T) {
	f := New(Config{Bidirectional: true})
	defer f.Close()
	out := &syncBuf{}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- f.NewSession(out).Serve(pr) }()
	io.WriteString(pw, strings.Repeat("x", 5000)+"\nmarkov-numnodes 2\nsetedge 0,1,100\nsetedge 1,0,100\nmarkov-time 10\nmarkov-debug 1\n")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "3800 Node 1 \"\" -> 0 \"\"\n") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := out.String()
	if !strings.HasPrefix(got, "1022 Invalid argument\n"+Prompt+"1000 Success\n") {
		t.Fatalf("a 5000-byte line: %q", got[:min(len(got), 100)])
	}
	if !strings.Contains(got, "3801 Node 0 \"\" -> 1 \"\"\n") || !strings.Contains(got, "3800 Node 1 \"\" -> 0 \"\"\n") {
		t.Fatalf("no markov-debug lines: %q", got)
	}
	pw.Close()
	if err := <-done; err != io.EOF {
		t.Fatalf("Serve: %v", err)
	}
}

// TestLostBurst: the Gilbert model loses the Loss share of frames in bursts whose mean
// length is LostBurst. Runs are correlated, so the bounds are wide (a plain Bernoulli
// loss has mean runs of 1.25 at 20%).
func TestLostBurst(t *testing.T) {
	const n = 20000
	f := New(Config{Bidirectional: true, Seed: 3, HasSeed: true})
	f.Set(Loss, "20")
	f.Set(LostBurst, "5")
	l, r := run(t, f)
	send(l, 0, n)
	settle(r)
	got := map[int]bool{}
	for _, b := range r.got {
		got[seq(b)] = true
	}
	lost, runs := 0, 0
	for i := 0; i < n; i++ {
		if !got[i] {
			lost++
			if i == 0 || got[i-1] {
				runs++
			}
		}
	}
	share, mean := float64(lost)/n, float64(lost)/float64(runs)
	if share < 0.15 || share > 0.25 || mean < 3.5 || mean > 7 {
		t.Fatalf("loss 20%% in bursts of 5: lost %.3f of frames in runs of %.2f", share, mean)
	}
}
