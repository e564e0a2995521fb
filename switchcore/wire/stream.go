package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// MaxStreamFrame is the largest frame vdeplug4 puts on a byte stream (VDE_ETHBUFSIZE + 2).
const MaxStreamFrame = 9236

// ErrStreamLength reports a length field no VDE peer would send: the stream is out of step
// and cannot be resynchronised.
var ErrStreamLength = errors.New("stream framing error: frame length out of range")

// StreamDecoder splits a byte stream into frames, each a 2-byte big-endian length and the
// frame. Unlike the C decoder it keeps a partial header across reads, so no split of the
// input loses a frame.
type StreamDecoder struct {
	r    io.Reader
	buf  []byte
	head int // start of unparsed data in buf
	tail int // end of data in buf
}

// NewStreamDecoder reads frames from r.
func NewStreamDecoder(r io.Reader) *StreamDecoder {
	return &StreamDecoder{r: r, buf: make([]byte, 4*(MaxStreamFrame+2))}
}

// Next returns the next frame, valid until the following call. Zero-length frames are
// skipped, as the C tools do. It returns io.EOF at a clean end of the stream,
// io.ErrUnexpectedEOF when the stream ends inside a frame and ErrStreamLength for an
// impossible length.
func (d *StreamDecoder) Next() ([]byte, error) {
	for {
		if avail := d.tail - d.head; avail >= 2 {
			n := int(binary.BigEndian.Uint16(d.buf[d.head:]))
			if n > MaxStreamFrame {
				return nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrStreamLength, n, MaxStreamFrame)
			}
			if avail >= 2+n {
				f := d.buf[d.head+2 : d.head+2+n]
				d.head += 2 + n
				if n == 0 {
					continue
				}
				return f, nil
			}
		}
		if err := d.fill(); err != nil {
			if errors.Is(err, io.EOF) && d.tail != d.head {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// Buffered reports whether a complete or partial frame is already buffered.
func (d *StreamDecoder) Buffered() int { return d.tail - d.head }

// fill reads more input, first moving a partial frame to the front of the buffer.
func (d *StreamDecoder) fill() error {
	if d.head > 0 {
		d.tail = copy(d.buf, d.buf[d.head:d.tail])
		d.head = 0
	}
	n, err := d.r.Read(d.buf[d.tail:])
	d.tail += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// AppendStreamFrame appends f with its 2-byte length header to dst.
func AppendStreamFrame(dst, f []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(f)))
	return append(dst, f...)
}

// Stream is an Endpoint over a byte stream (stdin/stdout, a pipe to a child, ssh).
type Stream struct {
	dec    *StreamDecoder
	w      io.Writer
	closer func() error

	wmu  sync.Mutex
	wbuf []byte
}

// NewStream frames frames over r and w; close (may be nil) runs on Close.
func NewStream(r io.Reader, w io.Writer, close func() error) *Stream {
	return &Stream{dec: NewStreamDecoder(r), w: w, closer: close, wbuf: make([]byte, 0, 64*1024)}
}

// ReadBatch implements Endpoint: it blocks for one frame, then takes whatever further
// complete frames are already buffered, without reading again.
func (s *Stream) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	n := 0
	for n < len(frames) {
		if n > 0 && !s.completeBuffered() {
			break
		}
		f, err := s.dec.Next()
		if err != nil {
			if n > 0 {
				break
			}
			return 0, err
		}
		if len(f) > len(frames[n]) {
			continue // larger than the caller can take: dropped, like any oversized frame
		}
		sizes[n] = copy(frames[n], f)
		n++
	}
	return n, nil
}

func (s *Stream) completeBuffered() bool {
	d := s.dec
	if d.tail-d.head < 2 {
		return false
	}
	return d.tail-d.head >= 2+int(binary.BigEndian.Uint16(d.buf[d.head:]))
}

// WriteBatch implements Endpoint: all frames go out in one write, each header with its
// frame, so C readers (which parse per read) see whole frames. Frames too long for the
// 16-bit length or the C peers are dropped.
func (s *Stream) WriteBatch(frames [][]byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	b := s.wbuf[:0]
	for _, f := range frames {
		if len(f) <= MaxStreamFrame {
			b = AppendStreamFrame(b, f)
		}
	}
	s.wbuf = b[:0]
	if _, err := s.w.Write(b); err != nil {
		return 0, err
	}
	return len(frames), nil
}

// Close runs the close function given to NewStream.
func (s *Stream) Close() error {
	if s.closer != nil {
		return s.closer()
	}
	return nil
}
