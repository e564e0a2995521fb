package impair

// The delay queue of one direction: frames wait in a min-heap ordered by (when, seq),
// their bytes copied into fixed chunks that are reused, so a steady flow allocates
// nothing and the memory held is what the queue holds (plus one partly used chunk).

// chunkSize is the size of one arena chunk: seven jumbo frames or a thousand small ones.
const chunkSize = 64 << 10

type chunk struct {
	buf  []byte
	used int // bytes handed out from buf
	live int // frames in buf not yet released
}

// arena hands out frame buffers from chunks, in order; a chunk returns to the free list
// when its last frame is released.
type arena struct {
	cur    *chunk
	free   []*chunk
	chunks int // chunks allocated and not dropped
}

// alloc returns n bytes, or nil when that would take more than max chunks.
func (a *arena) alloc(n, max int) (*chunk, []byte) {
	if n > chunkSize {
		return nil, nil
	}
	if a.cur == nil || a.cur.used+n > chunkSize {
		old := a.cur
		a.cur = nil
		if old != nil && old.live == 0 {
			a.put(old, max)
		}
		if k := len(a.free); k > 0 {
			a.cur = a.free[k-1]
			a.free = a.free[:k-1]
		} else if a.chunks < max {
			a.cur = &chunk{buf: make([]byte, chunkSize)}
			a.chunks++
		} else {
			return nil, nil
		}
	}
	c := a.cur
	b := c.buf[c.used : c.used+n : c.used+n]
	c.used += n
	c.live++
	return c, b
}

// release gives back one frame of c.
func (a *arena) release(c *chunk, max int) {
	c.live--
	if c.live > 0 {
		return
	}
	if c == a.cur {
		c.used = 0
		return
	}
	a.put(c, max)
}

// put keeps an empty chunk for reuse, or drops it when the limit went down.
func (a *arena) put(c *chunk, max int) {
	c.used = 0
	if a.chunks > max {
		a.chunks--
		return
	}
	a.free = append(a.free, c)
}

// entry is one queued frame.
type entry struct {
	when int64 // due time, ns on the filter's clock
	seq  uint64
	c    *chunk
	b    []byte
}

func (e *entry) before(o *entry) bool {
	return e.when < o.when || e.when == o.when && e.seq < o.seq
}

// frameHeap is a binary min-heap of entries (no interface boxing, no allocation once
// grown).
type frameHeap []entry

func (h *frameHeap) push(e entry) {
	*h = append(*h, e)
	q := *h
	k := len(q) - 1
	for k > 0 {
		p := (k - 1) / 2
		if !q[k].before(&q[p]) {
			break
		}
		q[k], q[p] = q[p], q[k]
		k = p
	}
}

func (h *frameHeap) pop() entry {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = entry{}
	q = q[:last]
	k := 0
	for {
		l := 2*k + 1
		if l >= len(q) {
			break
		}
		m := l
		if r := l + 1; r < len(q) && q[r].before(&q[l]) {
			m = r
		}
		if !q[m].before(&q[k]) {
			break
		}
		q[k], q[m] = q[m], q[k]
		k = m
	}
	*h = q
	return top
}
