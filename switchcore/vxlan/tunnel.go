package vxlan

import (
	"sync"
	"syscall"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// maxLearned bounds how many VTEPs an endpoint learns: a flood of datagrams from made-up
// sources cannot grow it further.
const maxLearned = 4096

// tunnel is what vxlan:// and vxvde:// share: the header, the MAC table, the flood
// targets, the sending half and the counters. The receiving half differs (sockets, whom to
// take, what a VTEP is) and lives in Cable and Segment.
type tunnel struct {
	name  string
	head  Header
	fdb   *fdb // nil: hashsize=0, everything floods
	flood []*vtep
	send  syscall.RawConn
	stats Stats

	// The reader's own.
	known *vteps
	rlog  dropLog

	wmu  sync.Mutex // the sender's state below
	tx   *txBatch
	wlog dropLog
}

func (t *tunnel) init(name string, vni uint32, hashsize int, expire time.Duration, flood []*vtep, send syscall.RawConn, logf func(string, ...any)) {
	t.name = name
	t.head = NewHeader(vni)
	t.fdb = newFDB(hashsize, int64(expire/time.Second))
	t.flood = flood
	t.send = send
	t.known = newVTEPs(maxLearned + len(flood))
	for _, v := range flood {
		v.peer = true
		t.known.add(v)
	}
	t.tx = newTxBatch(2*wire.BatchSize, &t.head)
	t.rlog = dropLog{logf: logf, stats: &t.stats, what: name}
	t.wlog = dropLog{logf: logf, stats: &t.stats, what: name}
}

// Stats are the endpoint's counters.
func (t *tunnel) Stats() *Stats { return &t.stats }

// take keeps datagram i of a batch as frame k (k <= i), learning its source MAC behind v.
func (t *tunnel) take(frames [][]byte, sizes []int, i, k, size int, v *vtep, now int64) {
	f := frames[i]
	if t.fdb != nil && isUnicast(f[6:12]) {
		t.fdb.learn(f[6:12], v, now)
	}
	if k != i {
		frames[k], frames[i] = frames[i], frames[k]
	}
	sizes[k] = size
}

// WriteBatch implements wire.Endpoint; it may be called from several goroutines. A frame
// to a MAC learned behind a VTEP goes there; any other goes to every flood target.
func (t *tunnel) WriteBatch(frames [][]byte) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	now := time.Now()
	sec := now.Unix()
	for _, f := range frames {
		if len(f) < wire.MinFrame {
			continue
		}
		var v *vtep
		if t.fdb != nil && isUnicast(f[0:6]) {
			v = t.fdb.lookup(f[0:6], sec)
		}
		if v != nil {
			if err := t.queue(v, f, nil); err != nil {
				return 0, err
			}
			continue
		}
		for _, v := range t.flood {
			if err := t.queue(v, f, nil); err != nil {
				return 0, err
			}
		}
	}
	err := t.flushLocked()
	t.wlog.report(now)
	if err != nil {
		return 0, err
	}
	return len(frames), nil
}

func (t *tunnel) queue(v *vtep, f []byte, head *Header) error {
	if t.tx.full() {
		if err := t.flushLocked(); err != nil {
			return err
		}
	}
	t.tx.add(v, f, head)
	return nil
}

func (t *tunnel) flushLocked() error {
	sent := t.tx.cnt
	err := t.tx.flush(t.send, t.sendFailed)
	t.stats.Out.Add(uint64(sent))
	return err
}

func (t *tunnel) sendFailed(v *vtep, errno syscall.Errno) {
	t.stats.Out.Add(^uint64(0)) // not sent after all
	t.wlog.note(DropSend, v.addr, errno)
}

// dropKind maps a Check error to its counter.
func dropKind(err error) Drop {
	switch err {
	case ErrShort:
		return DropShort
	case ErrFlags:
		return DropFlags
	default:
		return DropVNI
	}
}
