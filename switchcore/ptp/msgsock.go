// Package ptp is vdeplug4's point-to-point cables as URL schemes: ptp://PATH, two plugs
// joined by a pair of unix datagram sockets named PATH and PATH+ (libvdeplug_ptp(1)),
// and seqpacket://FD, a SOCK_SEQPACKET socket the plug inherited (libvdeplug_seqpacket).
// Neither knows a switch: whatever one end sends, the other receives.
package ptp

import (
	"errors"
	"sync"
	"syscall"

	"github.com/vde-go/vde/switchcore/wire"
)

// msgSocket is an Endpoint on a socket that keeps message boundaries (datagram or
// seqpacket), one frame a message, read and written in batches. Reading is the
// wire.Datagram's (SetEmpty says what a zero-length message means); writing repairs the
// socket when sendFailed can.
type msgSocket struct {
	*wire.Datagram

	wmu sync.Mutex
	wb  *wire.Batch

	// sendFailed decides about a batch the kernel refused with errno: true to send it
	// again (after repairing the socket), false to drop it.
	sendFailed func(errno syscall.Errno) bool
	// closed runs once, after the socket is closed.
	closed func()
	once   sync.Once
}

// newMsgSocket takes fd, a non-blocking socket; the msgSocket owns it.
func newMsgSocket(fd int, name string) (*msgSocket, error) {
	d, err := wire.NewDatagram(fd, name)
	if err != nil {
		return nil, err
	}
	return &msgSocket{Datagram: d, wb: wire.NewBatch(wire.BatchSize)}, nil
}

// WriteBatch implements wire.Endpoint. What the peer cannot take (its queue is full, or
// it is not there) is dropped, as the C plug drops it; only a closed socket is an error.
func (m *msgSocket) WriteBatch(frames [][]byte) (int, error) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	sent, retried := 0, false
	for sent < len(frames) {
		n, err := m.wb.Send(m.RawConn(), frames[sent:])
		sent += n
		if err == nil {
			break // all sent, or the rest would block: dropped
		}
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			return sent, err
		}
		if retried || m.sendFailed == nil || !m.sendFailed(errno) {
			sent++ // this frame is lost; go on with the next
			retried = false
			continue
		}
		retried = true
	}
	return len(frames), nil
}

// control runs f on the socket's descriptor.
func (m *msgSocket) control(f func(fd int) error) error {
	var ferr error
	if err := m.RawConn().Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// Close implements wire.Endpoint.
func (m *msgSocket) Close() error {
	err := m.Datagram.Close()
	m.once.Do(func() {
		if m.closed != nil {
			m.closed()
		}
	})
	return err
}
