package wire

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
)

// CommandStream runs argv with its stdin and stdout as a framed stream: what vde_plug's
// "= command" form and the cmd:// scheme carry frames over. Close ends the child.
type CommandStream struct {
	*Stream
	Cmd  *exec.Cmd
	once sync.Once
	err  error
}

// StartCommand starts argv[0] (looked up in PATH) with a stream on its stdio; its stderr
// is ours.
func StartCommand(argv []string) (*CommandStream, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("cmd: no command")
	}
	c := exec.Command(argv[0], argv[1:]...)
	c.Stderr = os.Stderr
	in, err := c.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("cmd %s: %w", argv[0], err)
	}
	cs := &CommandStream{Cmd: c}
	cs.Stream = NewStream(out, in, func() error {
		cs.once.Do(func() {
			in.Close() // the child sees EOF and may end by itself
			c.Process.Signal(syscall.SIGTERM)
			cs.err = c.Wait()
		})
		return cs.err
	})
	return cs, nil
}

// SplitCommand splits a cmd:// argument into words; quotes and backslashes group.
func SplitCommand(s string) []string {
	var words []string
	var b strings.Builder
	inWord := false
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0 && c == q:
			q = 0
		case q == 0 && (c == '\'' || c == '"'):
			q, inWord = c, true
		case c == '\\' && i+1 < len(s) && q != '\'':
			i++
			b.WriteByte(s[i])
			inWord = true
		case q == 0 && (c == ' ' || c == '\t'):
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, b.String())
	}
	return words
}

func init() {
	RegisterScheme("cmd", func(arg string, _ OpenOptions) (Endpoint, error) {
		return StartCommand(SplitCommand(arg))
	})
}
