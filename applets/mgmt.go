package applets

import (
	"bytes"
	"context"
	"net"
	"strings"
	"time"
)

// The management clients (shared/spec/plug-dpipe-unixterm-vdeq.md §3) speak the switch's
// console protocol (vde_switch.md §5): a banner ending in the prompt "\nvde$ ", then for
// every command an optional data block ("0000 DATA END WITH '.'", lines, "."), a status
// line "1000 Success" or "1ERRNO text", and the prompt again; "9999 END OF SESSION"
// (no newline) before the switch hangs up; "3xxx ..." debug lines at any time.

const (
	mgmtDataHeader = "0000 DATA END WITH '.'"
	mgmtEndSession = "9999 END OF SESSION"
	// mgmtBannerWait bounds the wait for the banner: a socket that does not greet us
	// (a switch's control socket given by mistake) is not a management socket.
	mgmtBannerWait = 5 * time.Second
	// mgmtPaceWait bounds how long the relay holds a line back for the prompt.
	mgmtPaceWait = 5 * time.Second
)

// mgmtKind says what a piece of a management session is.
type mgmtKind uint8

const (
	mgmtBanner mgmtKind = iota // a line before the first prompt
	mgmtPrompt                 // the prompt: Text is "vde$ " (its leading blank line is dropped)
	mgmtData                   // a line of a data block (header and "." are dropped)
	mgmtStatus                 // "1xxx text": Code and Text ("Success")
	mgmtDebug                  // "3xxx text", at any time: Code and Text
	mgmtEnd                    // "9999 ...": the switch ends the session
	mgmtText                   // any other line
)

// mgmtEvent is one piece of a management session.
type mgmtEvent struct {
	Kind mgmtKind
	// Code is the number of a status, debug or end line.
	Code int
	// Text is the line without its code and newline.
	Text string
}

// mgmtParser splits what a switch sends into events. Feed it the bytes as they come, in
// any pieces, and Close it at EOF.
type mgmtParser struct {
	// Prompt is the prompt once the banner has ended ("vde$ "): whatever the line
	// before the first "$ " was.
	Prompt  string
	partial []byte
	inData  bool
	// blank holds an empty line outside a data block: the prompt's own "\n" when the
	// prompt follows, else a line of its own.
	blank bool
}

// Feed parses b and returns the events it completes.
func (p *mgmtParser) Feed(b []byte) []mgmtEvent {
	var evs []mgmtEvent
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.partial = append(p.partial, b...)
			evs = p.partialLine(evs)
			break
		}
		p.partial = append(p.partial, b[:i]...)
		b = b[i+1:]
		line := string(bytes.TrimSuffix(p.partial, []byte("\r")))
		p.partial = p.partial[:0]
		evs = p.line(evs, line)
	}
	return evs
}

// Close ends the stream: an unfinished line ("9999 END OF SESSION" has no newline) and a
// held blank line become events.
func (p *mgmtParser) Close() []mgmtEvent {
	var evs []mgmtEvent
	if len(p.partial) > 0 {
		line := string(p.partial)
		p.partial = nil
		evs = p.line(evs, line)
	}
	if p.blank && !p.inData {
		p.blank = false
		evs = append(evs, mgmtEvent{Kind: p.textKind()})
	}
	return evs
}

func (p *mgmtParser) textKind() mgmtKind {
	if p.Prompt == "" {
		return mgmtBanner
	}
	return mgmtText
}

// partialLine checks the unfinished line for the prompt and the end of session, which
// come without a newline.
func (p *mgmtParser) partialLine(evs []mgmtEvent) []mgmtEvent {
	if p.inData {
		return evs
	}
	s := string(p.partial)
	switch {
	case s == mgmtEndSession:
		p.partial = p.partial[:0]
		return p.line(evs, s)
	case p.Prompt == "" && strings.HasSuffix(s, "$ "), p.Prompt != "" && s == p.Prompt:
		p.partial = p.partial[:0]
		p.Prompt = s
		p.blank = false
		return append(evs, mgmtEvent{Kind: mgmtPrompt, Text: s})
	}
	return evs
}

func (p *mgmtParser) line(evs []mgmtEvent, line string) []mgmtEvent {
	if p.inData {
		if line == "." {
			p.inData = false
			return evs
		}
		return append(evs, mgmtEvent{Kind: mgmtData, Text: line})
	}
	prompt := p.Prompt
	if prompt == "" {
		if i := strings.Index(line, "$ "); i >= 0 {
			prompt = line[:i+2]
		}
	}
	if prompt != "" && strings.HasPrefix(line, prompt) {
		// The prompt and the next line came in one read.
		p.Prompt, p.blank = prompt, false
		evs = append(evs, mgmtEvent{Kind: mgmtPrompt, Text: prompt})
		if line = line[len(prompt):]; line == "" {
			return evs
		}
	}
	if p.blank {
		p.blank = false
		evs = append(evs, mgmtEvent{Kind: p.textKind()})
	}
	if line == "" {
		p.blank = true
		return evs
	}
	if line == mgmtDataHeader {
		p.inData = true
		return evs
	}
	if code, text, ok := mgmtCode(line); ok {
		switch {
		case code >= 1000 && code < 2000:
			return append(evs, mgmtEvent{Kind: mgmtStatus, Code: code, Text: text})
		case code >= 3000 && code < 4000:
			return append(evs, mgmtEvent{Kind: mgmtDebug, Code: code, Text: text})
		case code == 9999:
			return append(evs, mgmtEvent{Kind: mgmtEnd, Code: code, Text: text})
		}
	}
	return append(evs, mgmtEvent{Kind: p.textKind(), Text: line})
}

// mgmtCode splits "1022 Invalid argument" into 1022 and "Invalid argument".
func mgmtCode(line string) (code int, text string, ok bool) {
	if len(line) < 4 || (len(line) > 4 && line[4] != ' ') {
		return 0, "", false
	}
	for i := 0; i < 4; i++ {
		if line[i] < '0' || line[i] > '9' {
			return 0, "", false
		}
		code = code*10 + int(line[i]-'0')
	}
	if len(line) > 4 {
		text = line[5:]
	}
	return code, text, true
}

// mgmtReader reads a management connection in a goroutine, so that the clients can wait
// for it, the keyboard and signals at once. chunks is closed at EOF or on an error; the
// goroutine also ends when ctx is done.
type mgmtReader struct {
	chunks chan []byte
}

func newMgmtReader(ctx context.Context, c net.Conn) *mgmtReader {
	r := &mgmtReader{chunks: make(chan []byte, 16)}
	go func() {
		defer close(r.chunks)
		for {
			buf := make([]byte, 4096)
			n, err := c.Read(buf)
			if n > 0 {
				select {
				case r.chunks <- buf[:n]:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// dialMgmt connects to a management socket.
func dialMgmt(path string) (net.Conn, error) {
	return net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
}
