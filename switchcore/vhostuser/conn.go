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
}

func newMsgReader(c *net.UnixConn) *msgReader {
	return &msgReader{c: c, oob: make([]byte, unix.CmsgSpace(4*maxFDs)), buf: make([]byte, maxPayload)}
}

// read returns the next message. Descriptors come with the header's first byte (the
// frontend sends each message with one sendmsg); any that arrive with a message that
// fails to decode are closed here, the others are the caller's.
//
// A read deadline (a hand-over pausing the device: Device.pause) ends only a wait for the
// next message, with os.ErrDeadlineExceeded; once a message has begun, read clears the
// deadline and reads the rest, which the frontend sent with it.
func (r *msgReader) read() (*message, error) {
	m := &message{}
	got := 0
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
		if err != nil && got+n > 0 && r.resumable(err) {
			got += n
			continue
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
		if err != nil && !r.resumable(err) {
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

// resumable says err is a pause's deadline met inside a message, and clears it so that
// the rest of the message is read.
func (r *msgReader) resumable(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	r.c.SetReadDeadline(time.Time{})
	return true
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
