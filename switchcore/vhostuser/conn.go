package vhostuser

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// msgReader reads whole messages, with the descriptors that came with them, from a
// frontend's stream socket.
type msgReader struct {
	c   *net.UnixConn
	hdr [headerSize]byte
	oob []byte
	buf []byte
	// extended says the pause's deadline was met inside this message and pushed back
	// once (resume).
	extended bool
}

// resumeWait is how long a message that a pause's deadline met halfway gets to arrive
// whole: the frontend sent it with one sendmsg, so the rest is there or never comes.
const resumeWait = time.Second

// errStalledMessage is a frontend that sent part of a message and stopped: it breaks the
// protocol, and a pause does not wait for it.
var errStalledMessage = errors.New("the frontend sent part of a message and stopped")

func newMsgReader(c *net.UnixConn) *msgReader {
	return &msgReader{c: c, oob: make([]byte, unix.CmsgSpace(4*maxFDs)), buf: make([]byte, maxPayload)}
}

// read returns the next message. Descriptors come with the header's first byte (the
// frontend sends each message with one sendmsg); any that arrive with a message that
// fails to decode are closed here, the others are the caller's.
//
// A read deadline (a hand-over pausing the device: Server.Pause) ends only a wait for the
// next message, with os.ErrDeadlineExceeded; once a message has begun, read gives the
// rest, which the frontend sent with it, resumeWait more to arrive, and then fails with
// errStalledMessage (not a deadline: the device is broken, not paused).
func (r *msgReader) read() (*message, error) {
	m := &message{}
	got := 0
	r.extended = false
	for got < headerSize {
		n, oobn, _, _, err := r.c.ReadMsgUnix(r.hdr[got:], r.oob)
		if oobn > 0 {
			fds, perr := parseFDs(r.oob[:oobn])
			m.fds = append(m.fds, fds...)
			if perr != nil {
				closeFDs(m.fds)
				return nil, perr
			}
		}
		if err != nil && got+n > 0 {
			var retry bool
			if retry, err = r.resume(err); retry {
				got += n
				continue
			}
		}
		if err != nil {
			closeFDs(m.fds)
			if got == 0 && n == 0 {
				return nil, err
			}
			return nil, fmt.Errorf("header: %w", err)
		}
		if n == 0 {
			closeFDs(m.fds)
			if got == 0 {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("header: %w", io.ErrUnexpectedEOF)
		}
		got += n
	}
	h, err := decodeHeader(r.hdr[:])
	if err != nil {
		closeFDs(m.fds)
		return nil, err
	}
	m.Header = h
	p := r.buf[:h.Size]
	for k := 0; k < len(p); {
		n, err := r.c.Read(p[k:])
		k += n
		if err == nil {
			continue
		}
		if retry, rerr := r.resume(err); !retry {
			err = rerr
			closeFDs(m.fds)
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("%v: payload: %w", h.Request, err)
		}
	}
	if len(m.fds) > maxFDs {
		closeFDs(m.fds)
		return nil, fmt.Errorf("%v: %w: %d", h.Request, ErrFDCount, len(m.fds))
	}
	if err := decodePayload(m, p); err != nil {
		closeFDs(m.fds)
		return nil, err
	}
	return m, nil
}

// resume decides on err, met inside a message: a pause's deadline is pushed back once by
// resumeWait (retry); met again, the message stalled. Other errors stay as they are.
func (r *msgReader) resume(err error) (retry bool, out error) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false, err
	}
	if r.extended {
		return false, errStalledMessage
	}
	r.extended = true
	r.c.SetReadDeadline(time.Now().Add(resumeWait))
	return true, nil
}

func parseFDs(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control message: %w", err)
	}
	var fds []int
	for _, cm := range msgs {
		if f, err := unix.ParseUnixRights(&cm); err == nil {
			fds = append(fds, f...)
		}
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}
