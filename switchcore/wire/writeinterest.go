package wire

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The Go runtime registers every pollable descriptor with its epoll instance for both
// reading and writing, edge-triggered, and never changes that registration (it only adds
// and deletes). For a switch port that is costly: each frame the client reads frees the
// switch socket's send buffer, the kernel signals EPOLLOUT for it, and the runtime's
// poller thread wakes for an edge nobody waits for. A port's socket needs write interest
// only while its output queue waits for room, so WriteInterest takes EPOLLOUT out of the
// runtime's registration and puts it back for exactly those waits. In the round trip row
// of make bench this removed about a fifth of the switch's context switches.
//
// The registration's data word (the runtime's poll descriptor) is read back from
// /proc/self/fdinfo (proc(5)) rather than computed, so nothing here depends on the
// runtime's internals beyond the two facts above. When the registration cannot be found,
// WriteInterest does nothing and the socket keeps the runtime's default.

const (
	runtimeEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
	readEvents    = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET
)

// RuntimePoll finds the runtime's epoll instance once, for a process's many sockets.
type RuntimePoll struct {
	mu   sync.Mutex
	epfd int // 0: not looked for yet; -1: not found
}

// WriteInterest is the write half of one socket's registration with the runtime poller.
// One goroutine sends on the socket and arms and disarms it (Arm, Disarm); the socket's
// reader may requeue its readiness (Requeue) meanwhile.
type WriteInterest struct {
	epfd  int
	data  uint64     // the registration's data word, as the runtime set it
	mu    sync.Mutex // the writer arms and disarms while the reader requeues
	armed bool
}

// WriteInterest takes write interest out of rc's registration and returns the handle that
// puts it back while a send waits. It returns nil (a handle that does nothing) with the
// reason when the registration cannot be found or changed.
func (p *RuntimePoll) WriteInterest(rc syscall.RawConn) (*WriteInterest, error) {
	var w *WriteInterest
	var ferr error
	err := rc.Control(func(fd uintptr) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.epfd == 0 {
			p.epfd = findRuntimeEpoll(int(fd))
		}
		if p.epfd < 0 {
			ferr = fmt.Errorf("runtime poller: no epoll instance lists fd %d", fd)
			return
		}
		events, data, ok := registration(p.epfd, int(fd))
		if !ok || events != runtimeEvents {
			ferr = fmt.Errorf("runtime poller: fd %d is not registered as expected (events %#x)", fd, events)
			return
		}
		w = &WriteInterest{epfd: p.epfd, data: data, armed: true}
		if err := w.set(fd, false); err != nil {
			w, ferr = nil, err
		}
	})
	if err != nil {
		return nil, err
	}
	return w, ferr
}

// Arm asks the runtime poller to report writability of fd again. It is called from inside
// a RawConn write callback that found the socket full, so the socket stays open; if it is
// writable already, epoll reports it at once and the wait that follows returns. It
// reports false if the registration could not be changed: a wait would then never end.
func (w *WriteInterest) Arm(fd uintptr) bool {
	if w == nil {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.armed {
		return true
	}
	return w.set(fd, true) == nil
}

// Disarm takes write interest out again once the sender stops waiting for room.
func (w *WriteInterest) Disarm(rc syscall.RawConn) {
	if w == nil {
		return
	}
	rc.Control(func(fd uintptr) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.armed {
			w.set(fd, false)
		}
	})
}

// Requeue has epoll report fd's readiness again (EPOLL_CTL_MOD re-polls the socket and
// queues an event if it is readable), with the interest unchanged. A reader inside a
// RawConn.Read callback that still has data to read can then wait for the poller
// instead of reading on: the goroutine is parked until the runtime next polls, and every
// goroutine the poller woke meanwhile gets its turn. runtime.Gosched does not give them
// one: with one processor, a goroutine that always has work goes straight back to it,
// and the poller is polled only by the runtime's monitor, every 10 ms. It reports
// whether the event was queued.
func (w *WriteInterest) Requeue(fd uintptr) bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.set(fd, w.armed) == nil
}

func (w *WriteInterest) set(fd uintptr, write bool) error {
	ev := unix.EpollEvent{Events: readEvents}
	if write {
		ev.Events = runtimeEvents
	}
	// EpollEvent splits the data word into Fd and Pad; on little and big endian alike the
	// union is the 8 bytes after Events, which is where these two sit.
	*(*uint64)(unsafe.Pointer(&ev.Fd)) = w.data
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev); err != nil {
		return fmt.Errorf("runtime poller: epoll_ctl(MOD) fd %d: %w", fd, err)
	}
	w.armed = write
	return nil
}

// findRuntimeEpoll returns the epoll descriptor whose interest list has fd registered the
// way the runtime registers, or -1.
func findRuntimeEpoll(fd int) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || link != "anon_inode:[eventpoll]" {
			continue
		}
		if events, _, ok := registration(n, fd); ok && events == runtimeEvents {
			return n
		}
	}
	return -1
}

// registration reads fd's entry in the interest list of epoll instance epfd, from lines
// like "tfd:        7 events: 80002005 data:     7f1c2a3b4c5d  pos:0 ino:... sdev:...".
func registration(epfd, fd int) (events uint32, data uint64, ok bool) {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(epfd))
	if err != nil {
		return 0, 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 6 || string(f[0]) != "tfd:" || string(f[2]) != "events:" || string(f[4]) != "data:" {
			continue
		}
		if n, err := strconv.Atoi(string(f[1])); err != nil || n != fd {
			continue
		}
		ev, err1 := strconv.ParseUint(string(f[3]), 16, 32)
		d, err2 := strconv.ParseUint(string(f[5]), 16, 64)
		if err1 != nil || err2 != nil {
			return 0, 0, false
		}
		// epoll_ctl adds EPOLLERR and EPOLLHUP to every registration; they say nothing.
		return uint32(ev) &^ (unix.EPOLLERR | unix.EPOLLHUP), d, true
	}
	return 0, 0, false
}
