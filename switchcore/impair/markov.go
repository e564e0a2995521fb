package impair

import (
	"fmt"
	"time"
)

// The Markov chain: nodes are link states, each with its own parameters; every
// markov-time ms a random step follows the current node's edges (weights in percent,
// the loopback taking what the others leave). Node 0 is where the chain starts.

// MaxNodes bounds the chain (its edge table has MaxNodes² weights); VDE2 has no bound
// and fails on a table it cannot allocate.
const MaxNodes = 1024

// NumNodes is the number of Markov nodes.
func (f *Filter) NumNodes() int { return len(f.st.Load().nodes) }

// Current is the current Markov node.
func (f *Filter) Current() int { return int(f.cur.Load()) }

// Resize sets the number of nodes: new nodes have every parameter zero and only their
// loopback edge; the weight of edges to removed nodes goes to the loopback; if the
// current node goes, node 0 is current. Then the chain restarts with a step.
func (f *Filter) Resize(n int) error {
	if n <= 0 || n > MaxNodes {
		return errInval
	}
	err := f.edit(func(st *state) error {
		old := len(st.nodes)
		if n == old {
			return nil
		}
		nodes := make([]Node, n)
		copy(nodes, st.nodes)
		adj := make([]float64, n*n)
		for i := 0; i < n; i++ {
			adj[i*n+i] = 100
			for j := 1; j < n; j++ {
				nj := (i + j) % n
				if i < old && nj < old {
					adj[i*n+nj] = st.adj[i*old+nj]
					adj[i*n+i] -= adj[i*n+nj]
				}
			}
		}
		st.nodes, st.adj = nodes, adj
		if int(f.cur.Load()) >= n {
			f.cur.Store(0)
		}
		return nil
	})
	if err != nil {
		return err
	}
	f.markovStart()
	return nil
}

// SetNode makes node n current.
func (f *Filter) SetNode(n int) error {
	if n < 0 || n >= f.NumNodes() {
		return errInval
	}
	f.cur.Store(int32(n))
	return nil
}

// SetName names node n (an empty name removes it).
func (f *Filter) SetName(n int, name string) error {
	return f.edit(func(st *state) error {
		if n < 0 || n >= len(st.nodes) {
			return errInval
		}
		st.nodes[n].Name = name
		return nil
	})
}

// SetMarkovTime sets the period of the chain's steps in ms and restarts it.
func (f *Filter) SetMarkovTime(ms float64) error {
	if !(ms > 0) {
		return errInval
	}
	f.edit(func(st *state) error { st.markovTime = ms; return nil })
	f.markovStart()
	return nil
}

// SetEdge sets the weight of the edge x->y; x's loopback takes the rest of 100.
func (f *Filter) SetEdge(x, y int, w float64) error {
	return f.edit(func(st *state) error {
		n := len(st.nodes)
		if x < 0 || x >= n || y < 0 || y >= n {
			return errInval
		}
		st.adj[x*n+y] = w
		st.adj[x*n+x] = 100
		for j := 1; j < n; j++ {
			st.adj[x*n+x] -= st.adj[x*n+(x+j)%n]
		}
		return nil
	})
}

// step moves the chain one step from the current node and reports a change to the
// sessions that asked for markov-debug.
func (f *Filter) step() {
	st := f.st.Load()
	n := len(st.nodes)
	i := int(f.cur.Load())
	if i >= n {
		i = 0
	}
	f.markovMu.Lock()
	num := f.markovRng.Float64() * 100
	f.markovMu.Unlock()
	k := i
	for j := 0; j < n; j++ {
		k = (i + j) % n
		v := st.adj[i*n+k]
		if num <= v {
			break
		}
		num -= v
	}
	f.cur.Store(int32(k))
	if i != k {
		line := fmt.Sprintf("%04d Node %d \"%s\" -> %d \"%s\"", 3800+k, i, st.nodes[i].Name, k, st.nodes[k].Name)
		// The chain never waits for a slow session: lines queue for the debug writer,
		// and are dropped when it is far behind.
		select {
		case f.debugLines <- line:
		default:
		}
	}
}

// debugWriter sends the chain's debug lines to the sessions that asked for them.
func (f *Filter) debugWriter() {
	for {
		select {
		case line := <-f.debugLines:
			f.debugMu.Lock()
			var to []*Session
			for s, lvl := range f.debug {
				if lvl > 0 {
					to = append(to, s)
				}
			}
			f.debugMu.Unlock()
			for _, s := range to {
				s.printf("%s", line)
			}
		case <-f.done:
			return
		}
	}
}

// markovStart restarts the chain's clock: with more than one node, a step now and one
// every markov-time ms.
func (f *Filter) markovStart() {
	f.markovMu.Lock()
	defer f.markovMu.Unlock()
	if f.markovStop != nil {
		close(f.markovStop)
		f.markovStop = nil
	}
	select {
	case <-f.done:
		return
	default:
	}
	st := f.st.Load()
	if len(st.nodes) <= 1 {
		return
	}
	stop := make(chan struct{})
	f.markovStop = stop
	period := time.Duration(st.markovTime * float64(time.Millisecond))
	go func() {
		f.step()
		t := time.NewTicker(max(period, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-t.C:
				f.step()
			case <-stop:
				return
			}
		}
	}()
}
