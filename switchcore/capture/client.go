package capture

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// The stream travels over the switch's management socket: the client waits for the
// prompt, sends "capture/pcapng ARGS", and reads lines up to the status line. After
// "1000 Success" the switch writes no prompt: everything that follows is pcapng, until
// the switch ends it (COUNT frames, or the client's half-close asks for the end, after
// which the switch writes the interface statistics and hangs up). Any other status is a
// refusal, followed by the prompt as for every command.

// dialWait bounds the wait for the banner and the answer: a socket that does not answer
// is not a switch's management socket.
const dialWait = 10 * time.Second

// Stream is a capture stream from a switch: Read gives pcapng.
type Stream struct {
	conn *net.UnixConn
	r    *bufio.Reader
}

// Read reads the pcapng stream.
func (s *Stream) Read(b []byte) (int, error) { return s.r.Read(b) }

// End asks the switch to end the stream: it writes what it holds and the statistics,
// then hangs up, so that reading on to EOF gets a complete capture.
func (s *Stream) End() error { return s.conn.CloseWrite() }

// Close hangs up at once.
func (s *Stream) Close() error { return s.conn.Close() }

// Dial asks the switch whose management socket is mgmt for a capture stream.
func Dial(mgmt string, args Args) (*Stream, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: mgmt, Net: "unix"})
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(dialWait))
	r := bufio.NewReader(c)
	if err := greet(r, c, Command+" "+args.String()); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", mgmt, err)
	}
	c.SetDeadline(time.Time{})
	return &Stream{conn: c, r: r}, nil
}

// ErrRefused is wrapped by the error for a switch that answered the capture command
// with anything but success.
var ErrRefused = errors.New("capture refused")

// prompt ends the banner and every answer (console protocol).
const prompt = "vde$ "

// greet reads the banner up to the prompt, sends cmd and reads its answer up to the
// status line, leaving r at the first byte after it.
func greet(r *bufio.Reader, w io.Writer, cmd string) error {
	return greetData(r, w, cmd, nil)
}

// greetData is greet that also keeps the answer's data lines in *data, if data is not nil.
func greetData(r *bufio.Reader, w io.Writer, cmd string, data *[]string) error {
	var line []byte
	for !bytes.HasSuffix(line, []byte("\n"+prompt)) {
		b, err := r.ReadByte()
		if err != nil {
			return fmt.Errorf("no prompt (not a management socket?): %w", err)
		}
		if line = append(line, b); len(line) > 4096 {
			line = line[len(line)-len(prompt)-1:] // a long banner: keep what the prompt may end
		}
	}
	if _, err := io.WriteString(w, cmd+"\n"); err != nil {
		return err
	}
	var msgs []string // the answer's lines, for a refusal's message
	inData := false
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("the switch hung up before answering: %w", err)
		}
		l = strings.TrimRight(l, "\r\n")
		code, text, ok := statusLine(l)
		switch {
		case l == "0000 DATA END WITH '.'":
			inData = true
			continue
		case inData && l == ".":
			inData = false
			continue
		case inData && data != nil:
			*data = append(*data, l)
			continue
		case !ok || inData:
			if l != "" && len(msgs) < 16 {
				msgs = append(msgs, l)
			}
			continue
		case code == 1000:
			return nil
		case code == 1038: // ENOSYS: the switch has no such command
			return fmt.Errorf("%w: %s (a switch without %s: not vde's?)", ErrRefused, text, Command)
		}
		if len(msgs) > 0 {
			text += ": " + strings.Join(msgs, "; ")
		}
		return fmt.Errorf("%w: %s", ErrRefused, text)
	}
}

// statusLine splits "1022 Invalid argument": a status is 1000 to 1999.
func statusLine(l string) (code int, text string, ok bool) {
	if len(l) < 4 || l[0] != '1' || len(l) > 4 && l[4] != ' ' {
		return 0, "", false
	}
	for _, c := range l[:4] {
		if c < '0' || c > '9' {
			return 0, "", false
		}
		code = code*10 + int(c-'0')
	}
	if len(l) > 4 {
		text = l[5:]
	}
	return code, text, true
}
