package impair

import (
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// DefaultQueueLimit bounds a direction's delay queue when no channel buffer size (-c) is
// set; VDE2's queue has no bound at all.
const DefaultQueueLimit = 64 << 20

// Node is one state of the Markov chain: a name and every parameter in both directions.
type Node struct {
	// Name is the node's name (markov-name), empty for none.
	Name string
	// P holds the parameters, indexed by Param and Dir.
	P [NumParams][2]Value
}

// passive reports whether the node leaves every frame alone in direction d.
func (n *Node) passive(d Dir) bool {
	for p := Param(0); p < NumParams; p++ {
		if n.P[p][d] != (Value{}) {
			return false
		}
	}
	return true
}

// state is an immutable snapshot of the configuration; changes replace it whole.
type state struct {
	nodes []Node
	// adj[i*n+j] is the weight (percent) of the edge i->j; adj[i*n+i] is 100 minus the
	// weights of i's other edges.
	adj        []float64
	markovTime float64 // ms
	nofifo     bool
	passive    [2][]bool // per direction, per node
}

// Config is what a Filter is built with.
type Config struct {
	// Bidirectional is false for a filter that only carries left to right (a plain
	// pipe: stdin to stdout); showinfo then prints one column.
	Bidirectional bool
	// Seed, when HasSeed, makes the random choices reproducible.
	Seed    uint64
	HasSeed bool
	// QueueLimit bounds each direction's delay queue in bytes when no channel buffer
	// size is set; 0 means DefaultQueueLimit.
	QueueLimit int
	// Blink, when not nil, is told of every frame sent (the --blink socket).
	Blink func(d Dir, size int)
}

// Stats counts one direction's frames.
type Stats struct {
	// In is frames read from the source.
	In uint64
	// Out is frames written to the destination (copies included).
	Out uint64
	// Lost is frames lost to Loss (and bursts), MTUDrops to MTU, BufDrops to a full
	// channel buffer, Dups the extra copies made.
	Lost, MTUDrops, BufDrops, Dups uint64
	// Queued is the bytes waiting in the delay queue, Waiting the frames.
	Queued, Waiting int
}

// Filter is a wirefilter: two directions with their queues, the shared configuration,
// and the Markov chain.
type Filter struct {
	cfg   Config
	mu    sync.Mutex // serialises configuration changes
	st    atomic.Pointer[state]
	cur   atomic.Int32 // current Markov node
	seed  atomic.Uint64
	gen   atomic.Uint64 // bumped by Reseed
	epoch time.Time
	dirs  [2]*direction

	markovMu   sync.Mutex
	markovStop chan struct{}
	markovRng  *rand.Rand
	debugMu    sync.Mutex
	debug      map[*Session]int
	debugLines chan string
	info       Info
	closeOnce  sync.Once
	done       chan struct{}
}

// New makes a filter with one Markov node and every parameter zero.
func New(cfg Config) *Filter {
	if cfg.QueueLimit <= 0 {
		cfg.QueueLimit = DefaultQueueLimit
	}
	f := &Filter{cfg: cfg, epoch: time.Now(), debug: map[*Session]int{}, debugLines: make(chan string, 256), done: make(chan struct{})}
	seed := cfg.Seed
	if !cfg.HasSeed {
		seed = rand.Uint64()
	}
	f.seed.Store(seed)
	f.markovRng = rand.New(rand.NewPCG(seed, 3))
	st := &state{nodes: make([]Node, 1), adj: []float64{100}, markovTime: 100}
	f.publish(st)
	for d := range f.dirs {
		f.dirs[d] = newDirection(f, Dir(d))
	}
	go f.debugWriter()
	return f
}

func (f *Filter) now() int64 { return int64(time.Since(f.epoch)) }

// publish computes the derived fields of st and makes it current.
func (f *Filter) publish(st *state) {
	for d := 0; d < 2; d++ {
		st.passive[d] = make([]bool, len(st.nodes))
		for i := range st.nodes {
			st.passive[d][i] = st.nodes[i].passive(Dir(d))
		}
	}
	f.st.Store(st)
}

// edit changes a copy of the configuration under the lock and publishes it.
func (f *Filter) edit(fn func(st *state) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.st.Load()
	st := &state{
		nodes:      append([]Node(nil), old.nodes...),
		adj:        append([]float64(nil), old.adj...),
		markovTime: old.markovTime,
		nofifo:     old.nofifo,
	}
	if err := fn(st); err != nil {
		return err
	}
	f.publish(st)
	return nil
}

// Set parses a value with ParseValue and stores it.
func (f *Filter) Set(p Param, s string) error {
	st, err := ParseValue(s, len(f.st.Load().nodes))
	if err != nil {
		return err
	}
	return f.Store(p, st)
}

// Store stores a parsed value.
func (f *Filter) Store(p Param, s Setting) error {
	return f.edit(func(st *state) error {
		if s.Node < 0 || s.Node >= len(st.nodes) {
			return ErrNode
		}
		n := &st.nodes[s.Node]
		if s.LR {
			n.P[p][LR] = s.V
		}
		if s.RL {
			n.P[p][RL] = s.V
		}
		return nil
	})
}

// Get returns a parameter of a node in a direction.
func (f *Filter) Get(node int, p Param, d Dir) Value {
	return f.st.Load().nodes[node].P[p][d]
}

// SetFIFO sets whether frames keep their order (-N turns it off).
func (f *Filter) SetFIFO(fifo bool) {
	f.edit(func(st *state) error { st.nofifo = !fifo; return nil })
}

// Seed is the seed of the random choices.
func (f *Filter) Seed() uint64 { return f.seed.Load() }

// Reseed restarts the random choices from seed: from the next frame on, each direction
// draws the same sequence as a filter started with this seed.
func (f *Filter) Reseed(seed uint64) {
	f.seed.Store(seed)
	f.gen.Add(1)
	f.markovMu.Lock()
	f.markovRng = rand.New(rand.NewPCG(seed, 3))
	f.markovMu.Unlock()
}

// Stats returns the counters of direction d.
func (f *Filter) Stats(d Dir) Stats {
	dd := f.dirs[d]
	dd.mu.Lock()
	s := Stats{Queued: dd.queued, Waiting: len(dd.q)}
	dd.mu.Unlock()
	s.In = dd.in.Load()
	s.Out = dd.out.Load()
	s.Lost = dd.lost.Load()
	s.MTUDrops = dd.mtuDrops.Load()
	s.BufDrops = dd.bufDrops.Load()
	s.Dups = dd.dups.Load()
	return s
}

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("impair: filter closed")

// Run carries frames from left to right (LR) and, when the filter is bidirectional,
// from right to left (RL), until a read or write fails or Close is called. It returns
// the first error (ErrClosed after Close). left and right are not closed.
func (f *Filter) Run(left, right wire.Endpoint) error {
	errc := make(chan error, 4)
	f.dirs[LR].start(left, right, errc)
	if f.cfg.Bidirectional {
		f.dirs[RL].start(right, left, errc)
	}
	select {
	case err := <-errc:
		f.Close()
		return err
	case <-f.done:
		return ErrClosed
	}
}

// Close stops the directions' goroutines (readers end when their endpoints are closed).
func (f *Filter) Close() {
	f.closeOnce.Do(func() {
		close(f.done)
		f.markovMu.Lock()
		if f.markovStop != nil {
			close(f.markovStop)
			f.markovStop = nil
		}
		f.markovMu.Unlock()
	})
}

// compute draws a value: Value, varied by Plus (uniform, or normal with sigma Plus/3).
func compute(v *Value, r *rand.Rand) float64 {
	if v.Plus == 0 {
		return v.Value
	}
	switch v.Alg {
	case Normal:
		return v.Value + v.Plus*r.NormFloat64()/3
	default:
		return v.Value + v.Plus*(r.Float64()*2-1)
	}
}

// direction is one way through the filter.
type direction struct {
	f   *Filter
	d   Dir
	rng *rand.Rand
	gen uint64
	bad bool // Gilbert model: in a burst of losses

	nextBand, nextSpeed int64
	speedTimer          *time.Timer // the reader's wait for the interface speed
	maxWhen             int64
	seq                 uint64

	mu     sync.Mutex // guards q, queued, arena
	q      frameHeap
	queued int
	arena  arena
	// maxChunks bounds the arena: the queue's limit in chunks, plus two.
	maxChunks int
	wake      chan struct{}

	wmu sync.Mutex // serialises writes to dst between reader and pacer
	dst wire.Endpoint

	in, out, lost, mtuDrops, bufDrops, dups atomic.Uint64
}

func newDirection(f *Filter, d Dir) *direction {
	dd := &direction{f: f, d: d, wake: make(chan struct{}, 1)}
	dd.reseed()
	return dd
}

func (dd *direction) reseed() {
	dd.gen = dd.f.gen.Load()
	dd.rng = rand.New(rand.NewPCG(dd.f.seed.Load(), uint64(dd.d)+1))
	dd.bad = false
}

func (dd *direction) start(src, dst wire.Endpoint, errc chan<- error) {
	dd.dst = dst
	go func() { errc <- dd.read(src) }()
	go func() { errc <- dd.pace() }()
}

// scratchFrames is how many noised copies one batch may make before it is flushed.
const scratchFrames = 2 * wire.BatchSize

// read is the direction's reader: it reads batches, sends frames that need no waiting at
// once and queues the rest for the pacer.
func (dd *direction) read(src wire.Endpoint) error {
	bufs := make([][]byte, wire.BatchSize)
	for i := range bufs {
		bufs[i] = make([]byte, wire.MaxFrame+1)
	}
	scratch := make([][]byte, scratchFrames)
	for i := range scratch {
		scratch[i] = make([]byte, wire.MaxFrame+1)
	}
	sizes := make([]int, wire.BatchSize)
	b := &batch{dd: dd, out: make([][]byte, 0, scratchFrames+wire.BatchSize), scratch: scratch}
	for {
		n, err := src.ReadBatch(bufs, sizes)
		if err != nil {
			return err
		}
		select {
		case <-dd.f.done:
			return ErrClosed
		default:
		}
		dd.in.Add(uint64(n))
		st := dd.f.st.Load()
		node := int(dd.f.cur.Load())
		if node >= len(st.nodes) {
			node = 0
		}
		if st.passive[dd.d][node] && dd.idle() {
			b.out = b.out[:0]
			for i := 0; i < n; i++ {
				if sizes[i] >= wire.MinFrame && sizes[i] <= wire.MaxFrame {
					b.out = append(b.out, bufs[i][:sizes[i]])
				}
			}
			if err := b.flush(); err != nil {
				return err
			}
			continue
		}
		if g := dd.f.gen.Load(); g != dd.gen {
			dd.reseed()
		}
		for i := 0; i < n; i++ {
			if sizes[i] < wire.MinFrame || sizes[i] > wire.MaxFrame {
				continue
			}
			if err := b.handle(st, bufs[i][:sizes[i]]); err != nil {
				return err
			}
			// A node change or a console command takes effect on the next frame.
			st = dd.f.st.Load()
		}
		if err := b.flush(); err != nil {
			return err
		}
	}
}

// idle reports whether nothing waits in the queue.
func (dd *direction) idle() bool {
	dd.mu.Lock()
	defer dd.mu.Unlock()
	return len(dd.q) == 0
}

// batch collects the frames of one read that go out at once.
type batch struct {
	dd      *direction
	out     [][]byte
	scratch [][]byte
	used    int // scratch buffers taken
}

// flush sends the frames collected; then every scratch buffer is free again (the
// noised copies that were queued instead have been copied into the queue).
func (b *batch) flush() error {
	b.used = 0
	if len(b.out) == 0 {
		return nil
	}
	err := b.dd.write(b.out)
	b.out = b.out[:0]
	return err
}

func (dd *direction) write(frames [][]byte) error {
	dd.wmu.Lock()
	_, err := dd.dst.WriteBatch(frames)
	dd.wmu.Unlock()
	dd.out.Add(uint64(len(frames)))
	if blink := dd.f.cfg.Blink; blink != nil {
		for _, fr := range frames {
			blink(dd.d, len(fr))
		}
	}
	return err
}

// handle runs one frame through the link model, in the C tool's order: MTU, loss,
// duplication, then per copy channel buffer, speed, bandwidth and delay.
func (b *batch) handle(st *state, frame []byte) error {
	dd := b.dd
	d := dd.d
	node := int(dd.f.cur.Load())
	if node >= len(st.nodes) {
		node = 0
	}
	p := &st.nodes[node].P
	r := dd.rng
	size := len(frame)

	if mtu := p[MTU][d].Min(); mtu > 0 && float64(size) > mtu {
		dd.mtuDrops.Add(1)
		return nil
	}
	if p[Loss][d].Min() >= 100 {
		dd.lost.Add(1)
		return nil
	}
	if p[LostBurst][d].Max() > 0 {
		loss := compute(&p[Loss][d], r) / 100
		burst := compute(&p[LostBurst][d], r)
		alpha := loss / (burst * (1 - loss))
		beta := 1 / burst
		if !dd.bad {
			if r.Float64() < alpha {
				dd.bad = true
			}
		} else if r.Float64() < beta {
			dd.bad = false
		}
		if dd.bad {
			dd.lost.Add(1)
			return nil
		}
	} else {
		dd.bad = false
		if p[Loss][d].Max() > 0 {
			if r.Float64() < compute(&p[Loss][d], r)/100 {
				dd.lost.Add(1)
				return nil
			}
		}
	}
	times := 1
	if p[Dup][d].Max() > 0 {
		dup := compute(&p[Dup][d], r) / 100
		for times < 1<<16 && r.Float64() < dup {
			times++
		}
		dd.dups.Add(uint64(times - 1))
	}
	for ; times > 0; times-- {
		limit := float64(dd.f.cfg.QueueLimit)
		if p[ChanBufSize][d].Max() > 0 {
			limit = compute(&p[ChanBufSize][d], r)
			dd.mu.Lock()
			full := float64(dd.queued+size) > limit
			dd.mu.Unlock()
			if full {
				dd.bufDrops.Add(uint64(times))
				return nil
			}
		}
		now := dd.f.now()
		var wait int64 // ns the frame waits for speed or bandwidth
		if p[Speed][d].Max() > 0 {
			speed := compute(&p[Speed][d], r)
			if !(speed > 0) {
				dd.bufDrops.Add(uint64(times))
				return nil
			}
			comm := nanos(float64(size) * 1e9 / speed)
			wait = comm
			dd.nextSpeed = later(max(dd.nextSpeed, now), comm)
		}
		if p[Band][d].Max() > 0 {
			band := compute(&p[Band][d], r)
			if !(band > 0) {
				dd.bufDrops.Add(uint64(times))
				return nil
			}
			comm := nanos(float64(size) * 1e9 / band)
			if now > dd.nextBand {
				dd.nextBand = now
				wait = comm
			} else {
				wait = later(dd.nextBand-now, comm)
			}
			dd.nextBand = later(dd.nextBand, comm)
		}
		var delay int64
		if wait > 0 || p[Delay][d].Max() > 0 {
			ms := compute(&p[Delay][d], r)
			delay = wait
			if ms >= 0 {
				delay += nanos(ms * 1e6)
			}
		}
		out := frame
		if p[Noise][d].Max() > 0 {
			out = b.noise(frame, compute(&p[Noise][d], r))
		}
		if delay <= 0 && dd.idle() {
			if len(b.out) == cap(b.out) {
				if err := b.flush(); err != nil {
					return err
				}
			}
			b.out = append(b.out, out)
		} else if !dd.enqueue(st, later(now, delay), out, limit) {
			dd.bufDrops.Add(1)
		}
	}
	// Speed holds the input back for the frame's transmission time.
	if p[Speed][d].Max() > 0 {
		if w := dd.nextSpeed - dd.f.now(); w > 0 {
			if err := b.flush(); err != nil {
				return err
			}
			if dd.speedTimer == nil {
				dd.speedTimer = time.NewTimer(time.Duration(w))
			} else {
				dd.speedTimer.Reset(time.Duration(w))
			}
			select {
			case <-dd.speedTimer.C:
			case <-dd.f.done:
				return ErrClosed
			}
		}
	}
	return nil
}

// maxWait bounds one frame's delay or transmission time (a year): values beyond it (up
// to inf) mean "never soon", and the clock's sums cannot overflow.
const maxWait = int64(365 * 24 * time.Hour)

// farFuture is where the clock saturates: two times before it add without overflow.
const farFuture = int64(1) << 61

// later is t+d (both at least 0), at most farFuture.
func later(t, d int64) int64 { return min(t+d, farFuture) }

// nanos converts a wait in ns to an int64, NaN as 0 and at most maxWait.
func nanos(ns float64) int64 {
	switch {
	case !(ns > 0):
		return 0
	case ns >= float64(maxWait):
		return maxWait
	}
	return int64(ns)
}

// noise flips bits of a copy of frame: a number of them drawn as C does (each further
// bit with chance size*8*noise/8M), at random places.
func (b *batch) noise(frame []byte, noise float64) []byte {
	r := b.dd.rng
	nobit := 0
	for nobit < len(frame)*8 && r.Float64()*8*(1<<20) < float64(len(frame))*8*noise {
		nobit++
	}
	if nobit == 0 {
		return frame
	}
	if b.used == len(b.scratch) {
		// Every scratch buffer is in b.out: send them first.
		if err := b.flush(); err != nil {
			return frame
		}
	}
	c := b.scratch[b.used][:len(frame)]
	b.used++
	copy(c, frame)
	for ; nobit > 0; nobit-- {
		bit := r.IntN(len(c) * 8)
		c[bit>>3] ^= 1 << (bit & 7)
	}
	return c
}

// enqueue copies frame into the queue, due at when. With FIFO order, a frame never
// leaves before one queued earlier. It returns false when the queue has no room.
func (dd *direction) enqueue(st *state, when int64, frame []byte, limit float64) bool {
	dd.mu.Lock()
	defer dd.mu.Unlock()
	if float64(dd.queued+len(frame)) > limit {
		return false
	}
	dd.maxChunks = int(math.Min(limit, 1<<40))/chunkSize + 2
	c, buf := dd.arena.alloc(len(frame), dd.maxChunks)
	if c == nil {
		return false
	}
	copy(buf, frame)
	if !st.nofifo {
		if when < dd.maxWhen {
			when = dd.maxWhen
		}
		dd.maxWhen = when
	}
	dd.seq++
	head := len(dd.q) == 0 || when < dd.q[0].when
	dd.q.push(entry{when: when, seq: dd.seq, c: c, b: buf})
	dd.queued += len(frame)
	if head {
		select {
		case dd.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// pace is the direction's pacer: it sleeps until the first queued frame is due and sends
// every frame that is due then, in one batch.
func (dd *direction) pace() error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	out := make([][]byte, 0, wire.BatchSize)
	sent := make([]entry, 0, wire.BatchSize)
	for {
		dd.mu.Lock()
		if len(dd.q) == 0 {
			dd.mu.Unlock()
			select {
			case <-dd.wake:
			case <-dd.f.done:
				return ErrClosed
			}
			continue
		}
		now := dd.f.now()
		if w := dd.q[0].when - now; w > 0 {
			dd.mu.Unlock()
			timer.Reset(time.Duration(w))
			select {
			case <-timer.C:
			case <-dd.wake:
				timer.Stop()
			case <-dd.f.done:
				return ErrClosed
			}
			continue
		}
		out, sent = out[:0], sent[:0]
		for len(dd.q) > 0 && dd.q[0].when <= now && len(out) < cap(out) {
			e := dd.q.pop()
			sent = append(sent, e)
			out = append(out, e.b)
		}
		dd.mu.Unlock()
		err := dd.write(out)
		dd.mu.Lock()
		for i := range sent {
			dd.queued -= len(sent[i].b)
			dd.arena.release(sent[i].c, dd.maxChunks)
			sent[i] = entry{}
		}
		dd.mu.Unlock()
		if err != nil {
			return err
		}
	}
}
