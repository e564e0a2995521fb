package switchcore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Console protocol bytes (shared/spec/vde_switch.md §5).
const (
	prompt     = "\nvde$ "
	dataHeader = "0000 DATA END WITH '.'\n"
	dataEnd    = ".\n"
	endSession = "9999 END OF SESSION"
	// maxLine bounds one console line; longer input is answered with EINVAL and skipped.
	maxLine = 4096
)

// ErrShutdown is returned by Console when the session ran "shutdown".
var ErrShutdown = errors.New("shutdown from mgmt command")

// Banner is what a management session sees first.
func (s *Switch) Banner() string {
	return fmt.Sprintf("VDE switch V.%s\n(C) vde-go authors 2026 - Apache-2.0, compatible with VDE2 by Virtual Square\n", s.cfg.Version)
}

// session is one management conversation: a mgmt socket client, the stdin console, or an
// rc file. Output goes through one writer goroutine so that debug events from the frame
// path never wait for a slow reader.
type session struct {
	s      *Switch
	out    chan chunk
	closed chan struct{}
	conn   net.Conn // mgmt client, closed on switch shutdown
	subs   map[*debugCat]bool
	// console marks the stdin console, which ignores logout.
	console bool
	// peer and peerGID are the uid and gid of a mgmt socket client (SO_PEERCRED), -1 for
	// the console and rc files.
	peer, peerGID int
	once          sync.Once
	buf           bytes.Buffer
	// handoff, set by a command (capture/pcapng), takes the mgmt connection over once
	// the command's answer is written: no prompt follows, and the console ends.
	handoff func(conn net.Conn, in io.Reader)
	rest    io.Reader // what handoff reads the connection through
	// upgrading is set while the session's upgrade command runs (handover.go).
	upgrading atomic.Bool
	// bye is set once goodbye queued the session's last words; said is closed once they
	// are written (or could not be).
	bye  atomic.Bool
	said chan struct{}
}

type chunk struct {
	b      []byte
	prompt bool
	last   bool // the session's last words (goodbye)
}

func (s *Switch) newSession(out, promptW io.Writer, conn net.Conn) *session {
	ss := &session{s: s, out: make(chan chunk, 256), closed: make(chan struct{}), said: make(chan struct{}), conn: conn, subs: map[*debugCat]bool{}, peer: -1, peerGID: -1}
	go func() {
		defer close(ss.closed)
		dead := false
		for c := range ss.out {
			if c.last {
				if !dead {
					out.Write(c.b)
				}
				dead = true // nothing after the last words
				close(ss.said)
				continue
			}
			if dead {
				continue
			}
			w := out
			if c.prompt {
				w = promptW
			}
			if w == nil {
				continue
			}
			if _, err := w.Write(c.b); err != nil && !c.prompt {
				dead = true
			}
		}
	}()
	s.sessMu.Lock()
	s.sessions[ss] = struct{}{}
	s.sessMu.Unlock()
	return ss
}

func (ss *session) end() {
	ss.s.sessMu.Lock()
	delete(ss.s.sessions, ss)
	if len(ss.subs) > 0 {
		ss.s.debugSubs.Add(-1)
	}
	ss.subs = map[*debugCat]bool{}
	ss.s.sessMu.Unlock()
	ss.once.Do(func() { close(ss.out) })
	<-ss.closed
}

// goodbye queues text as the session's last words: nothing written after them reaches
// the client. ss.said is closed once they are written.
func (ss *session) goodbye(text string) {
	if ss.bye.Swap(true) {
		return
	}
	ss.out <- chunk{b: []byte(text), last: true}
}

func (ss *session) closeConn() {
	if ss.conn != nil {
		ss.conn.Close()
	}
}

// subscribed is called with sessMu held.
func (ss *session) subscribed(c *debugCat) bool { return ss.subs[c] }

// async queues a debug line, dropping it if the session is far behind.
func (ss *session) async(line []byte) {
	select {
	case ss.out <- chunk{b: line}:
	default:
	}
}

func (ss *session) write(b []byte, isPrompt bool) {
	ss.out <- chunk{b: append([]byte(nil), b...), prompt: isPrompt}
}

// Console runs one console session reading commands from in and writing responses to out;
// promptW (may be nil) receives the prompts. It returns io.EOF at the end of in and ErrShutdown
// after shutdown; logout is ignored there, as in the C switch.
func (s *Switch) Console(in io.Reader, out io.Writer, promptW io.Writer) error {
	ss := s.newSession(out, promptW, nil)
	ss.console = true
	defer ss.end()
	return ss.run(in)
}

func (s *Switch) acceptMgmt() {
	s.acceptLoop(s.mgmtLn, s.cfg.MgmtPath, true, func(c *net.UnixConn) { s.serveMgmt(c) })
}

func (s *Switch) serveMgmt(c net.Conn) {
	defer c.Close()
	ss := s.newSession(c, c, c)
	if uc, ok := c.(*net.UnixConn); ok {
		if uid, gid, err := peerCred(uc); err == nil {
			ss.peer, ss.peerGID = uid, gid
		} else {
			ss.peer = int(^uint32(0) >> 1) // unknown: nobody may shut the switch down
		}
	}
	ss.write([]byte(s.Banner()+prompt), false)
	err := ss.run(c)
	ss.end()
	if ss.handoff != nil {
		ss.handoff(c, ss.rest)
		return
	}
	if errors.Is(err, ErrShutdown) {
		s.requestShutdown()
	}
}

// run reads lines until EOF, logout or shutdown.
func (ss *session) run(in io.Reader) error {
	br := bufio.NewReaderSize(in, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			ss.s.logf("mgmt: console line longer than %d bytes ignored", maxLine)
			ss.write([]byte(statusLine(unix.EINVAL)+prompt), false)
			if err != nil {
				return io.EOF
			}
			continue
		}
		if len(line) > 0 {
			if done, rerr := ss.exec(string(line), true); done {
				return rerr
			}
			if ss.handoff != nil {
				ss.rest = br
				return nil
			}
		}
		if err != nil {
			return io.EOF
		}
	}
}

// exec runs one input line and writes its response block and, when interactive, the
// prompt. done reports the end of the session (logout or shutdown).
func (ss *session) exec(line string, interactive bool) (done bool, err error) {
	ss.buf.Reset()
	done, err = ss.s.runLine(ss, line, &ss.buf)
	if interactive && !done {
		ss.write(ss.buf.Bytes(), false)
		if ss.handoff == nil {
			ss.write([]byte(prompt), true)
		}
		return false, nil
	}
	ss.write(ss.buf.Bytes(), false)
	return done, err
}

// runLine parses and runs one command line, writing its whole response block to w.
func (s *Switch) runLine(ss *session, line string, w *bytes.Buffer) (done bool, err error) {
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	cmdline := strings.TrimLeft(line, " \t")
	if cmdline == "" || cmdline[0] == '#' {
		return false, nil
	}
	if s.ho.paused.Load() && !strings.HasPrefix(cmdline, "logout") {
		// The state is being handed over: a change now would be lost with this image, and
		// a shutdown would take the sockets from under the next one. The command may be
		// given again once the new image serves (or this one resumed).
		w.WriteString(statusLine(unix.EBUSY))
		return false, nil
	}
	switch {
	case strings.HasPrefix(cmdline, "logout"):
		if ss.console {
			return false, nil // the stdin console cannot be logged out of (as in C)
		}
		w.WriteString(endSession)
		return true, nil
	case strings.HasPrefix(cmdline, "shutdown"):
		// Anyone who may open the mgmt socket may configure the switch, but only root and
		// the switch's own user may stop it (the C switch lets any of them).
		if ss.peer > 0 && ss.peer != os.Geteuid() {
			s.logf("mgmt: shutdown from uid %d refused (only uid 0 or %d)", ss.peer, os.Geteuid())
			w.WriteString(statusLine(unix.EPERM))
			return false, nil
		}
		w.WriteString(endSession)
		return true, ErrShutdown
	}
	cmd := s.lookupCommand(cmdline)
	if cmd == nil {
		w.WriteString(statusLine(unix.ENOSYS))
		return false, nil
	}
	arg := strings.TrimLeft(cmdline[len(cmd.path):], " \t")
	if cmd.withFile {
		w.WriteString(dataHeader)
	}
	var out bytes.Buffer
	cerr := cmd.run(&cmdCtx{s: s, ss: ss, arg: arg, w: &out})
	w.Write(out.Bytes())
	if cmd.withFile {
		w.WriteString(dataEnd)
	}
	w.WriteString(statusLine(cerr))
	return false, nil
}

func statusLine(err error) string {
	if err == nil {
		return "1000 Success\n"
	}
	var en unix.Errno
	if !errors.As(err, &en) {
		en = unix.EINVAL
	}
	return fmt.Sprintf("1%03d %s\n", int(en), strerror(en))
}

// RunRC runs a file of management commands at start-up; output is discarded and failing
// lines do not stop the file, as in the C switch.
func (s *Switch) RunRC(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("rc file %s: %w", path, err)
	}
	defer f.Close()
	ss := s.newSession(nil, nil, nil)
	defer ss.end()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, maxLine), maxLine)
	for sc.Scan() {
		var w bytes.Buffer
		if done, err := s.runLine(ss, sc.Text(), &w); done {
			if errors.Is(err, ErrShutdown) {
				s.requestShutdown()
			}
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("rc file %s: %w", path, err)
	}
	return nil
}
