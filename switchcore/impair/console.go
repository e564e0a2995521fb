package impair

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// The management console of VDE2's wirefilter: one command per line, matched when the
// line starts with a command's name (the first in table order wins: "bandwidth" before
// "band"); responses are "1000 Success" or "1EEE strerror", data between
// "0000 DATA END WITH '.'" and "."; every output line is cut to 127 bytes as C's
// printoutc cuts it; the prompt follows each answer.

// maxLine bounds a console line; longer ones are answered with EINVAL.
const maxLine = 4096

// Prompt is what follows each answer.
const Prompt = "\nVDEwf$ "

// Errors that end a session.
var (
	// ErrLogout ends a session that ran logout.
	ErrLogout = errors.New("logout")
	// ErrShutdown ends the program (shutdown).
	ErrShutdown = errors.New("shutdown")
)

var errInval = syscall.EINVAL

// Info is what showinfo says beyond the parameters.
type Info struct {
	// BlinkPath and BlinkID are shown when BlinkPath is set.
	BlinkPath, BlinkID string
}

// SetInfo sets what showinfo shows about the blink socket.
func (f *Filter) SetInfo(i Info) { f.info = i }

// Session is one management conversation: a mgmt socket client, the stdin console, or
// an rc file (no writer: answers go nowhere and failures to Logf).
type Session struct {
	f  *Filter
	mu sync.Mutex
	w  io.Writer
	// Logf, for a session without writer, reports each failed command as C's rc file
	// reading does ("rc command error: CMD strerror").
	Logf func(format string, args ...any)
}

// NewSession starts a session that writes to w (nil for an rc file).
func (f *Filter) NewSession(w io.Writer) *Session {
	return &Session{f: f, w: w}
}

// Close ends the session's markov-debug subscription.
func (s *Session) Close() {
	s.f.debugMu.Lock()
	delete(s.f.debug, s)
	s.f.debugMu.Unlock()
}

func (s *Session) write(str string) {
	if s.w == nil {
		return
	}
	s.mu.Lock()
	io.WriteString(s.w, str)
	s.mu.Unlock()
}

// printf is C's printoutc: at most 127 bytes, then a newline.
func (s *Session) printf(format string, args ...any) {
	if s.w == nil {
		return
	}
	line := fmt.Sprintf(format, args...)
	if len(line) > 127 {
		line = line[:127]
	}
	s.write(line + "\n")
}

// Serve reads command lines from r until it ends (io.EOF), logout (ErrLogout) or
// shutdown (ErrShutdown), answering each with its output and the prompt.
func (s *Session) Serve(r io.Reader) error {
	defer s.Close()
	br := bufio.NewReaderSize(r, maxLine)
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than any command: refused whole, not run in pieces.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			s.printf("1%03d %s", int(syscall.EINVAL), Strerror(int(syscall.EINVAL)))
			s.write(Prompt)
			b = nil
		}
		if line := string(b); line != "" {
			rv := s.Exec(line)
			switch rv {
			case -1:
				return ErrLogout
			case -2:
				return ErrShutdown
			}
			s.write(Prompt)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.EOF
			}
			return err
		}
	}
}

type command struct {
	tag      string
	fn       func(s *Session, arg string) int
	withFile bool
}

var commands []command

func init() {
	set := func(p Param) func(*Session, string) int {
		return func(s *Session, arg string) int { return errnoOf(s.f.Set(p, arg)) }
	}
	commands = []command{
		{"help", (*Session).help, true},
		{"showinfo", (*Session).showinfo, true},
		{"load", (*Session).load, true},
		{"delay", set(Delay), false},
		{"loss", set(Loss), false},
		{"lostburst", set(LostBurst), false},
		{"dup", set(Dup), false},
		{"bandwidth", set(Band), false},
		{"band", set(Band), false},
		{"speed", set(Speed), false},
		{"chanbufsize", set(ChanBufSize), false},
		{"capacity", set(ChanBufSize), false},
		{"noise", set(Noise), false},
		{"mtu", set(MTU), false},
		{"fifo", func(s *Session, arg string) int { s.f.SetFIFO(cAtoi(arg) != 0); return 0 }, false},
		{"markov-numnodes", func(s *Session, arg string) int { return errnoOf(s.f.Resize(cAtoi(arg))) }, false},
		{"markov-setnode", func(s *Session, arg string) int { return errnoOf(s.f.SetNode(cAtoi(arg))) }, false},
		{"markov-name", (*Session).markovName, false},
		{"markov-time", (*Session).markovTime, false},
		{"setedge", (*Session).setEdge, false},
		{"showedges", (*Session).showEdges, true},
		{"showcurrent", (*Session).showCurrent, true},
		{"markov-debug", (*Session).markovDebug, false},
		{"logout", func(*Session, string) int { return -1 }, false},
		{"shutdown", func(*Session, string) int { return -2 }, false},
		{"seed", (*Session).seed, false},
	}
}

// errnoOf maps the engine's errors to the errno C answers with.
func errnoOf(err error) int {
	var en syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &en):
		return int(en)
	}
	return int(syscall.EINVAL)
}

// Strerror is C's strerror for the console's answers.
func Strerror(rv int) string {
	if rv < 0 {
		return "Unknown error " + strconv.Itoa(rv)
	}
	m := syscall.Errno(rv).Error()
	if m == "" || strings.HasPrefix(m, "errno ") {
		return "Unknown error " + strconv.Itoa(rv)
	}
	return strings.ToUpper(m[:1]) + m[1:]
}

// Exec runs one command line as C's handle_cmd does and returns its status: 0, an
// errno, ENOSYS for an empty line, a comment or an unknown command (only the last is
// answered), -1 for logout and -2 for shutdown (which answers nothing).
func (s *Session) Exec(line string) int {
	in := strings.TrimLeft(line, " \t\n")
	in = delnl(in)
	if in == "" || in[0] == '#' {
		return int(syscall.ENOSYS)
	}
	rv := int(syscall.ENOSYS)
	for _, c := range commands {
		if !strings.HasPrefix(in, c.tag) {
			continue
		}
		arg := strings.TrimLeft(in[len(c.tag):], " \t")
		if c.withFile {
			s.printf("0000 DATA END WITH '.'")
		}
		rv = c.fn(s, arg)
		if rv == -2 {
			return rv
		}
		if c.withFile {
			s.printf(".")
		}
		break
	}
	switch {
	case s.w != nil && rv == 0:
		s.printf("1000 Success")
	case s.w != nil:
		s.printf("1%03d %s", rv, Strerror(rv))
	case rv != 0 && s.Logf != nil:
		s.Logf("rc command error: %s %s", line, Strerror(rv))
	}
	return rv
}

// delnl removes trailing newlines, blanks and tabs, but never the first character.
func delnl(s string) string {
	n := len(s)
	for n > 1 && (s[n-1] == '\n' || s[n-1] == ' ' || s[n-1] == '\t') {
		n--
	}
	return s[:n]
}

// cAtoi is C's atoi.
func cAtoi(s string) int {
	v, _, _ := scanDecimalInt(s)
	return v
}

func (s *Session) help(string) int {
	for _, l := range helpLines {
		s.printf("%s", l)
	}
	return 0
}

var helpLines = []string{
	"COMMAND      HELP",
	"------------ ------------",
	"help         print a summary of mgmt commands",
	"load         load a configuration file",
	"showinfo     show status and parameter values",
	"loss         set loss percentage",
	"lostburst    mean length of lost packet bursts",
	"delay        set delay ms",
	"dup          set dup packet percentage",
	"bandwidth    set channel bandwidth bytes/sec",
	"speed        set interface speed bytes/sec",
	"noise        set noise factor bits/Mbyte",
	"mtu          set channel MTU (bytes)",
	"chanbufsize  set channel buffer size (bytes)",
	"fifo         set channel fifoness",
	"shutdown     shut the channel down",
	"logout       log out from this mgmt session",
	"markov-numnodes n  markov mode: set number of states",
	"markov-setnode n   markov mode: set current state",
	"markov-name n,name markov mode: set state's name",
	"markov-time ms     markov mode: transition period",
	"setedge n1,n2,w    markov mode: set edge weight",
	"showinfo n         markov mode: show parameter values",
	"showedges n        markov mode: show edge weights",
	"showcurrent        markov mode: show current state",
	"markov-debug n     markov mode: set debug level",
	SeedHelp,
}

// SeedHelp is the help line of our seed command, which VDE2 does not have.
const SeedHelp = "seed [n]           set (or show) the seed of the random choices"

// node reads showinfo's and showedges' optional node argument.
func (s *Session) node(arg string) (int, bool) {
	n := int(s.f.cur.Load())
	if arg != "" {
		n = cAtoi(arg)
	}
	return n, n >= 0 && n < s.f.NumNodes()
}

func (s *Session) showinfo(arg string) int {
	node, ok := s.node(arg)
	if !ok {
		return int(syscall.EINVAL)
	}
	f := s.f
	st := f.st.Load()
	nd := &st.nodes[node]
	if f.cfg.Bidirectional {
		s.printf("WireFilter: bidirectional")
	} else {
		s.printf("WireFilter: monodirectional")
	}
	if len(st.nodes) > 1 {
		s.printf("Node %d \"%s\" (0,..,%d) Markov-time %s", node, nd.Name, len(st.nodes)-1, FormatG(st.markovTime))
	}
	v := func(p Param, d Dir) string {
		x := nd.P[p][d]
		return FormatG(x.Value) + "+" + FormatG(x.Plus) + string("UN"[x.Alg&1])
	}
	rows := []struct {
		label string
		p     Param
	}{{"Loss  ", Loss}, {"Lburst", LostBurst}, {"Delay ", Delay}, {"Dup   ", Dup}, {"Bandw ", Band}, {"Speed ", Speed}, {"Noise ", Noise}}
	lr, rl := f.Stats(LR), f.Stats(RL)
	if f.cfg.Bidirectional {
		for _, r := range rows {
			s.printf("%s L->R %s   R->L %s", r.label, v(r.p, LR), v(r.p, RL))
		}
		s.printf("MTU    L->R %s     R->L %s   ", FormatG(nd.P[MTU][LR].Min()), FormatG(nd.P[MTU][RL].Min()))
		s.printf("Cap.   L->R %s   R->L %s", v(ChanBufSize, LR), v(ChanBufSize, RL))
		s.printf("Current Delay Queue size:   L->R %d      R->L %d   ", lr.Queued, rl.Queued)
	} else {
		for _, r := range rows {
			s.printf("%s %s", r.label, v(r.p, LR))
		}
		s.printf("MTU    %s", FormatG(nd.P[MTU][LR].Min()))
		s.printf("Cap.   %s", v(ChanBufSize, LR))
		s.printf("Current Delay Queue size:   %d", lr.Queued)
	}
	if st.nofifo {
		s.printf("Fifoness FALSE")
	} else {
		s.printf("Fifoness TRUE")
	}
	s.printf("Waiting packets in delay queues %d", lr.Waiting+rl.Waiting)
	if f.info.BlinkPath != "" {
		s.printf("Blink socket: %s", f.info.BlinkPath)
		s.printf("Blink id:     %s", f.info.BlinkID)
	}
	return 0
}

func (s *Session) showEdges(arg string) int {
	node, ok := s.node(arg)
	if !ok {
		return int(syscall.EINVAL)
	}
	st := s.f.st.Load()
	n := len(st.nodes)
	for j := 0; j < n; j++ {
		if w := st.adj[node*n+j]; w != 0 {
			// "weigth" (sic): Debian's 2.3.2 spells it so.
			s.printf("Edge %-2d->%-2d \"%s\"->\"%s\" weigth %s", node, j, st.nodes[node].Name, st.nodes[j].Name, FormatG(w))
		}
	}
	return 0
}

func (s *Session) showCurrent(string) int {
	st := s.f.st.Load()
	cur := int(s.f.cur.Load())
	s.printf("Current Markov Node %d \"%s\" (0,..,%d)", cur, st.nodes[cur].Name, len(st.nodes)-1)
	return 0
}

func (s *Session) markovName(arg string) int {
	a := strings.TrimLeft(arg, " \t")
	n := cAtoi(a)
	if n < 0 || n >= s.f.NumNodes() {
		return int(syscall.EINVAL)
	}
	a = strings.TrimLeft(a, "0123456789")
	a = strings.TrimLeft(a, " \t")
	a = strings.TrimPrefix(a, ",")
	a = strings.TrimSuffix(a, "\n")
	return errnoOf(s.f.SetName(n, a))
}

func (s *Session) markovTime(arg string) int {
	v, _, ok := ScanFloat(arg)
	if !ok {
		return int(syscall.EINVAL)
	}
	return errnoOf(s.f.SetMarkovTime(v))
}

func (s *Session) setEdge(arg string) int {
	x, rest, ok1 := scanDecimalInt(arg)
	rest, ok2 := strings.CutPrefix(rest, ",")
	y, rest, ok3 := scanDecimalInt(rest)
	rest, ok4 := strings.CutPrefix(rest, ",")
	w, _, ok5 := ScanFloat(rest)
	if !(ok1 && ok2 && ok3 && ok4 && ok5) {
		return int(syscall.EINVAL)
	}
	return errnoOf(s.f.SetEdge(x, y, w))
}

func (s *Session) markovDebug(arg string) int {
	n := cAtoi(arg)
	if s.w == nil || n < 0 {
		return int(syscall.EINVAL)
	}
	s.f.debugMu.Lock()
	s.f.debug[s] = n
	s.f.debugMu.Unlock()
	return 0
}

// seed is ours: "seed N" restarts the random choices from N, "seed" shows the seed.
func (s *Session) seed(arg string) int {
	if arg == "" {
		s.printf("Seed %d", s.f.Seed())
		return 0
	}
	v, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		return int(syscall.EINVAL)
	}
	s.f.Reseed(v)
	return 0
}

// load runs the commands of a file, each echoed after a prompt as C's runscript does.
func (s *Session) load(path string) int {
	return s.RunScript(path)
}

// RunScript runs the commands of the file at path (an rc file, or the load command),
// read as C's fgets reads them: lines of at most 127 bytes.
func (s *Session) RunScript(path string) int {
	fh, err := os.Open(path)
	if err != nil {
		return errnoOf(err)
	}
	defer fh.Close()
	br := bufio.NewReader(fh)
	for {
		line, err := fgets(br, 128)
		if line == "" && err != nil {
			return 0
		}
		line = delnl(line)
		s.printf("%s (%s) %s", Prompt, path, line)
		if rv := s.Exec(line); rv == -2 {
			return rv
		}
	}
}

// fgets reads up to size-1 bytes, stopping after a newline.
func fgets(br *bufio.Reader, size int) (string, error) {
	var b []byte
	for len(b) < size-1 {
		c, err := br.ReadByte()
		if err != nil {
			return string(b), err
		}
		b = append(b, c)
		if c == '\n' {
			break
		}
	}
	return string(b), nil
}
