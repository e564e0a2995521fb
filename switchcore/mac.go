package switchcore

import (
	"sort"
	"sync"
	"sync/atomic"
)

// macKey packs a MAC address and a VLAN the way the C switch does (MAC bytes in memory
// order, VLAN in bits 48..63), so hash/print can show the same bucket numbers.
type macKey uint64

func makeKey(mac []byte, vlan uint16) macKey {
	return macKey(uint64(mac[0]) | uint64(mac[1])<<8 | uint64(mac[2])<<16 | uint64(mac[3])<<24 |
		uint64(mac[4])<<32 | uint64(mac[5])<<40 | uint64(vlan)<<48)
}

func (k macKey) mac() (m [6]byte) {
	for i := range m {
		m[i] = byte(k >> (8 * i))
	}
	return m
}

func (k macKey) vlan() uint16 { return uint16(k >> 48) }

// hash is the C switch's 64-bit finalizer; bucket = hash & (size-1).
func (k macKey) hash() uint64 {
	x := uint64(k)
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	return x
}

// macEntry is immutable but for lastSeen: a move to another port replaces the entry, so a
// reader always sees a key and a port that belong together.
type macEntry struct {
	key      macKey
	port     int
	lastSeen atomic.Int64
	// home is the port the address was first learned on, kept across moves and flushes
	// (macTable.homes): the loop guard blames an address seen on two ports at once on the
	// one that is not its home (loopguard.go), so a client that spoofs another port's
	// address blames itself.
	home int32
}

// homeRec remembers where an address was first learned, beyond its entry: a port that
// joins a VLAN flushes the VLAN's entries, and a spoofer that connects and sends its
// victim's address at once must not become its home. It is forgotten when the home port
// goes inactive, or when the address has had no entry for an expiry time.
type homeRec struct {
	port int32
	at   int64 // switch seconds when an entry of the address was last created
}

// macSlots is one open-addressing table generation. Readers probe it without locks; the
// writer stores into empty slots in place and publishes a new generation for deletions.
type macSlots struct {
	slots []atomic.Pointer[macEntry]
	mask  uint64
}

// macTable maps (MAC, VLAN) to a port. Lookups and refreshes of known entries take no lock;
// inserting a new address, moving one and expiring take mu (rare compared with frames).
//
// The table holds at most limit entries (hash/setmax), so that a MAC flood cannot grow the
// switch without bound. A frame whose new source finds the table full is still forwarded,
// but its source is not learned and full counts it; that refusal takes no lock, so a flood
// of new addresses into a full table costs each frame two atomic loads and one add. A limit
// set below the current count removes nothing: the table learns nothing new until expiry
// or flushes bring it below the limit.
type macTable struct {
	tab atomic.Pointer[macSlots]

	mu      sync.Mutex
	count   atomic.Int64       // entries; changed under mu, read without it
	limit   atomic.Int64       // most entries the table holds
	full    atomic.Uint64      // frames whose new source was not learned because the table was full
	minPers atomic.Int64       // seconds an entry stays on its port before it may move
	homes   map[macKey]homeRec // guarded by mu; at most limit records
}

func newMACTable(limit int) *macTable {
	t := &macTable{homes: map[macKey]homeRec{}}
	t.limit.Store(int64(limit))
	t.tab.Store(newSlots(256))
	t.minPers.Store(3)
	return t
}

// setLimit changes the most entries the table holds. Entries beyond a lowered limit stay
// until they expire or are flushed.
func (t *macTable) setLimit(n int) { t.limit.Store(int64(n)) }

// isFull reports whether a new address would be refused now.
func (t *macTable) isFull() bool { return t.count.Load() >= t.limit.Load() }

func newSlots(n int) *macSlots {
	return &macSlots{slots: make([]atomic.Pointer[macEntry], n), mask: uint64(n - 1)}
}

func (s *macSlots) find(k macKey) (*macEntry, uint64) {
	for i := k.hash() & s.mask; ; i = (i + 1) & s.mask {
		e := s.slots[i].Load()
		if e == nil || e.key == k {
			return e, i
		}
	}
}

// lookup returns the port of (mac, vlan), or -1.
func (t *macTable) lookup(k macKey) int {
	e, _ := t.tab.Load().find(k)
	if e == nil {
		return -1
	}
	return e.port
}

// learnResult tells the caller what to log or announce.
type learnResult int

const (
	learnKnown learnResult = iota
	learnNew
	learnMoved
	learnRefused // moved too soon (min persistence)
	learnFlap    // moved too soon, and the entry was refreshed on its port within the last second: live on two ports at once (a loop, or a spoofer)
	learnFull    // a new source, not learned because the table is full (the caller counts it)
)

// learn records that k was seen on port at time now (seconds). It returns what happened
// and, for a move, the previous port.
func (t *macTable) learn(k macKey, port int, now int64) (learnResult, int) {
	e, _ := t.tab.Load().find(k)
	if e != nil && e.port == port {
		if e.lastSeen.Load() != now {
			e.lastSeen.Store(now)
		}
		return learnKnown, port
	}
	if e != nil && now-e.lastSeen.Load() <= t.minPers.Load() {
		if now-e.lastSeen.Load() <= flapLive {
			return learnFlap, e.port
		}
		return learnRefused, e.port
	}
	if e == nil && t.isFull() {
		// No lock, no shared write: under a flood of new sources every frame comes here,
		// and the reader adds its count to full once a batch.
		return learnFull, -1
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tab := t.tab.Load()
	cur, i := tab.find(k)
	ne := &macEntry{key: k, port: port}
	ne.lastSeen.Store(now)
	if cur != nil {
		if cur.port == port {
			return learnKnown, port
		}
		ne.home = cur.home
		tab.slots[i].Store(ne)
		return learnMoved, cur.port
	}
	if t.isFull() {
		return learnFull, -1
	}
	if (t.count.Load()+1)*2 > int64(len(tab.slots)) {
		tab = t.rebuildLocked(len(tab.slots)*2, nil)
		_, i = tab.find(k)
	}
	ne.home = t.homeLocked(k, port, now)
	tab.slots[i].Store(ne)
	t.count.Add(1)
	return learnNew, -1
}

// rebuildLocked publishes a new generation of at least n slots (more if the entries keep
// accepts, all when keep is nil, need them) holding those entries. Readers of the old
// generation finish undisturbed.
func (t *macTable) rebuildLocked(n int, keep func(*macEntry) bool) *macSlots {
	old := t.tab.Load()
	var kept []*macEntry
	for i := range old.slots {
		if e := old.slots[i].Load(); e != nil && (keep == nil || keep(e)) {
			kept = append(kept, e)
		}
	}
	for n < 256 || len(kept)*2 > n {
		n *= 2
	}
	ns := newSlots(n)
	for _, e := range kept {
		_, j := ns.find(e.key)
		ns.slots[j].Store(e)
	}
	t.count.Store(int64(len(kept)))
	t.tab.Store(ns)
	return ns
}

// remove deletes the entries drop accepts and returns them.
func (t *macTable) remove(drop func(*macEntry) bool) []*macEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gone []*macEntry
	old := t.tab.Load()
	for i := range old.slots {
		if e := old.slots[i].Load(); e != nil && drop(e) {
			gone = append(gone, e)
		}
	}
	if len(gone) > 0 {
		dropped := make(map[*macEntry]bool, len(gone))
		for _, e := range gone {
			dropped[e] = true
		}
		// Shrink what a flood grew once its entries are gone (rebuildLocked grows it
		// back if the entries left need more room).
		n, left := len(old.slots), int(t.count.Load())-len(gone)
		for n > 256 && left*8 < n {
			n /= 2
		}
		t.rebuildLocked(n, func(e *macEntry) bool { return !dropped[e] })
	}
	return gone
}

func (t *macTable) flushVLAN(vlan uint16) []*macEntry {
	return t.remove(func(e *macEntry) bool { return e.key.vlan() == vlan })
}

func (t *macTable) flushPort(port int) []*macEntry {
	return t.remove(func(e *macEntry) bool { return e.port == port })
}

func (t *macTable) flushAll() []*macEntry {
	return t.remove(func(*macEntry) bool { return true })
}

// expire removes entries not seen for more than expire seconds, and the homes of
// addresses that have had no entry for as long.
func (t *macTable) expire(now, expire int64) []*macEntry {
	gone := t.remove(func(e *macEntry) bool { return e.lastSeen.Load()+expire < now })
	t.mu.Lock()
	defer t.mu.Unlock()
	tab := t.tab.Load()
	for k, h := range t.homes {
		if h.at+expire < now {
			if e, _ := tab.find(k); e == nil {
				delete(t.homes, k)
			}
		}
	}
	return gone
}

// homeLocked returns the home of k, a new entry on port: the remembered one, or port,
// which it remembers while there is room.
func (t *macTable) homeLocked(k macKey, port int, now int64) int32 {
	if h, ok := t.homes[k]; ok {
		h.at = now
		t.homes[k] = h
		return h.port
	}
	if int64(len(t.homes)) < t.limit.Load() {
		t.homes[k] = homeRec{port: int32(port), at: now}
	}
	return int32(port)
}

// forgetHomes forgets the homes on port, which went inactive: whoever sends those
// addresses next is their new home.
func (t *macTable) forgetHomes(port int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, h := range t.homes {
		if int(h.port) == port {
			delete(t.homes, k)
		}
	}
}

// snapshot lists the entries ordered by the bucket the C switch would print them in.
func (t *macTable) snapshot(buckets int) []*macEntry {
	tab := t.tab.Load()
	var all []*macEntry
	for i := range tab.slots {
		if e := tab.slots[i].Load(); e != nil {
			all = append(all, e)
		}
	}
	mask := uint64(buckets - 1)
	sort.Slice(all, func(i, j int) bool {
		bi, bj := all[i].key.hash()&mask, all[j].key.hash()&mask
		if bi != bj {
			return bi < bj
		}
		return all[i].key < all[j].key
	})
	return all
}

func (t *macTable) len() int { return int(t.count.Load()) }

// home returns the port k was first learned on, or -1 when the table does not hold it.
func (t *macTable) home(k macKey) int {
	e, _ := t.tab.Load().find(k)
	if e == nil {
		return -1
	}
	return int(e.home)
}
