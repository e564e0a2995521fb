package applets

import (
	"fmt"
	"strings"
	"testing"
)

// feedAll feeds keys and returns the line when Enter ends it ("" and editNone otherwise).
func feedAll(e *lineEditor, keys string) (editAction, string) {
	b := []byte(keys)
	for len(b) > 0 {
		n, act, line := e.Feed(b)
		b = b[n:]
		if act != editNone {
			return act, line
		}
	}
	return editNone, ""
}

func newTestEditor() *lineEditor {
	e := &lineEditor{Prompt: "vde[s]: ", Cols: 80}
	e.Start()
	e.Output()
	return e
}

func TestLineEditorKeys(t *testing.T) {
	for _, tt := range []struct {
		desc, keys string
		line       string
		pos        int
	}{
		{"typing", "port/print", "port/print", 10},
		{"left then insert", "ac\x1b[Db", "abc", 2},
		{"^B ^F", "abc\x02\x02\x06X", "abXc", 3},
		{"home end", "bc\x1b[Ha\x1b[Fd", "abcd", 4},
		{"^A ^E", "bc\x01a\x05d", "abcd", 4},
		{"ESC O H / ESC O F", "bc\x1bOHa\x1bOFd", "abcd", 4},
		{"ESC [1~ / ESC [4~", "bc\x1b[1~a\x1b[4~d", "abcd", 4},
		{"backspace DEL", "abc\x7f", "ab", 2},
		{"backspace ^H", "abc\x08\x08", "a", 1},
		{"backspace at start", "abc\x01\x7f", "abc", 0},
		{"delete key", "abc\x01\x1b[3~", "bc", 0},
		{"delete at end", "abc\x1b[3~", "abc", 3},
		{"^D deletes on a non-empty line", "abc\x01\x04", "bc", 0},
		{"^U kills to start", "port/print 3\x1b[D\x15", "3", 0},
		{"^K kills to end", "port/print 3\x01\x06\x06\x0b", "po", 2},
		{"^W kills a word", "port/print 3 \x17", "port/print ", 11},
		{"^W twice", "port/print 3\x17\x17", "", 0},
		{"alt-b alt-f", "ab cd\x1bbX\x1bfY", "ab XcdY", 7},
		{"ctrl-left ctrl-right", "ab cd\x1b[1;5DX\x1b[1;5CY", "ab XcdY", 7},
		{"right at end", "ab\x1b[C", "ab", 2},
		{"unknown CSI ignored", "a\x1b[200~b", "ab", 2},
		{"other control keys ignored", "a\x07\x1ab", "ab", 2},
		{"UTF-8", "h\xc3\xa9\xe2\x82\xacx\x1b[D\x7f", "héx", 2},
		{"invalid UTF-8 dropped", "a\xffb", "ab", 2},
		{"^C clears", "abc\x03de", "de", 2},
	} {
		e := newTestEditor()
		if act, _ := feedAll(e, tt.keys); act != editNone {
			t.Errorf("%s: ended with %v", tt.desc, act)
		}
		if e.Line() != tt.line || e.Cursor() != tt.pos {
			t.Errorf("%s: %q -> line %q cursor %d; want %q cursor %d", tt.desc, tt.keys, e.Line(), e.Cursor(), tt.line, tt.pos)
		}
	}
}

// Escape and UTF-8 sequences split across reads still work.
func TestLineEditorSplitSequences(t *testing.T) {
	e := newTestEditor()
	for _, b := range []string{"ac", "\x1b", "[", "D", "b", "\xc3", "\xa9"} {
		if n, act, _ := e.Feed([]byte(b)); n != len(b) || act != editNone {
			t.Fatalf("Feed(%q) = %d, %v", b, n, act)
		}
	}
	if e.Line() != "abéc" || e.Cursor() != 3 {
		t.Errorf("line %q cursor %d; want \"abéc\" 3", e.Line(), e.Cursor())
	}
}

func TestLineEditorEnter(t *testing.T) {
	e := newTestEditor()
	keys := []byte("port/print\r\nhelp\n")
	n, act, line := e.Feed(keys)
	if act != editLine || line != "port/print" || n != len("port/print\r") {
		t.Fatalf("Feed = %d, %v, %q", n, act, line)
	}
	if out := string(e.Output()); !strings.HasSuffix(out, "\r\n") {
		t.Errorf("Enter output %q does not end the line", out)
	}
	e.Start()
	// The LF of CR LF is the same Enter, not an empty line.
	n2, act, line := e.Feed(keys[n:])
	if act != editLine || line != "help" || n+n2 != len(keys) {
		t.Fatalf("second Feed = %d, %v, %q", n2, act, line)
	}
	e.Start()
	if _, act, line := e.Feed([]byte("\r")); act != editLine || line != "" {
		t.Errorf("empty Enter = %v, %q", act, line)
	}
}

func TestLineEditorEOF(t *testing.T) {
	e := newTestEditor()
	if n, act, _ := e.Feed([]byte("\x04rest")); act != editEOF || n != 1 {
		t.Errorf("^D on an empty line = %d, %v; want 1, editEOF", n, act)
	}
}

func TestLineEditorHistory(t *testing.T) {
	e := newTestEditor()
	for _, l := range []string{"one", "two", "two", "", "three"} {
		e.Start()
		if act, line := feedAll(e, l+"\r"); act != editLine || line != l {
			t.Fatalf("%q: %v %q", l, act, line)
		}
	}
	e.Start()
	up, down := "\x1b[A", "\x1b[B"
	steps := []struct{ keys, want string }{
		{"new", "new"},
		{up, "three"},
		{up, "two"}, // the repeated "two" and the empty line are not kept
		{up, "one"},
		{up, "one"}, // the oldest stays
		{down, "two"},
		{"X", "twoX"}, // editing an entry
		{down, "three"},
		{down, "new"}, // back to the line being typed
		{down, "new"},
		{"\x10\x10", "two"}, // ^P
		{"\x0e", "three"},   // ^N
	}
	for _, s := range steps {
		feedAll(e, s.keys)
		if e.Line() != s.want || e.Cursor() != len([]rune(s.want)) {
			t.Errorf("after %q: line %q cursor %d; want %q at its end", s.keys, e.Line(), e.Cursor(), s.want)
		}
	}
	e2 := &lineEditor{HistoryMax: 2}
	for _, l := range []string{"a", "b", "c"} {
		e2.AddHistory(l)
	}
	if strings.Join(e2.history, ",") != "b,c" {
		t.Errorf("history capped at 2: %q", e2.history)
	}
}

var testCommands = []string{"help", "logout", "shutdown", "showinfo", "port/", "port/showinfo",
	"port/sethub", "port/setvlan", "port/print", "port/allprint", "hash/", "hash/print"}

func completer(cmds []string) func(string) []string {
	return func(w string) []string {
		var out []string
		for _, c := range cmds {
			if strings.HasPrefix(c, w) {
				out = append(out, c)
			}
		}
		return out
	}
}

func TestLineEditorComplete(t *testing.T) {
	for _, tt := range []struct {
		desc, keys, line string
		bell, list       bool
	}{
		{"unique", "port/pr\t", "port/print ", false, false},
		{"unique menu gets no blank", "ha\t", "hash/", false, false},
		{"common prefix", "port/se\t", "port/set", false, false},
		{"menu and its commands", "por\t", "port/", false, false},
		{"ambiguous rings", "s\t", "sh", false, false},
		{"ambiguous rings on the 2nd", "sh\t", "sh", true, false},
		{"second tab lists", "sh\t\t", "sh", true, true},
		{"no match", "zz\t", "zz", true, false},
		{"complete word already", "help\t", "help ", false, false},
		{"after help", "help port/al\t", "help port/allprint ", false, false},
		{"not a second word of another command", "port/print po\t", "port/print po", true, false},
		{"in the middle", "port/pr 3\x1b[D\x1b[D\t", "port/print 3", false, false},
	} {
		e := newTestEditor()
		e.Complete = completer(testCommands)
		feedAll(e, tt.keys)
		out := string(e.Output())
		if e.Line() != tt.line {
			t.Errorf("%s: %q -> %q; want %q", tt.desc, tt.keys, e.Line(), tt.line)
		}
		if got := strings.Contains(out, "\a"); got != tt.bell {
			t.Errorf("%s: bell %v; want %v (output %q)", tt.desc, got, tt.bell, out)
		}
		if got := strings.Contains(out, "shutdown"); got != tt.list {
			t.Errorf("%s: listed %v; want %v (output %q)", tt.desc, got, tt.list, out)
		}
	}
	e := newTestEditor()
	e.Complete = completer(testCommands)
	feedAll(e, "port/s\t\t")
	out := string(e.Output())
	want := "\r\nport/sethub    port/setvlan   port/showinfo\r\n\rvde[s]: port/s\x1b[K\r\x1b[14C"
	if !strings.HasSuffix(out, want) {
		t.Errorf("listing: output %q; want it to end with %q", out, want)
	}
}

func TestColumns(t *testing.T) {
	got := columns([]string{"a", "bb", "ccc", "dd", "e"}, 12)
	// width 5 per column, 2 columns, 3 rows, sorted down the columns
	want := "a    dd\r\nbb   e\r\nccc\r\n"
	if got != want {
		t.Errorf("columns = %q; want %q", got, want)
	}
	if got := columns([]string{"averyveryverylongword", "b"}, 10); got != "averyveryverylongword\r\nb\r\n" {
		t.Errorf("too wide: %q", got)
	}
}

// The terminal output, byte for byte: typing at the end echoes, edits redraw the row.
func TestLineEditorOutput(t *testing.T) {
	e := &lineEditor{Prompt: "vde[s]: ", Cols: 80}
	e.Start()
	if out := string(e.Output()); out != "\rvde[s]: \x1b[K\r\x1b[8C" {
		t.Errorf("Start: %q", out)
	}
	e.Feed([]byte("ab"))
	if out := string(e.Output()); out != "ab" {
		t.Errorf("typing: %q", out)
	}
	e.Feed([]byte("\x1b[D"))
	if out := string(e.Output()); out != "\rvde[s]: ab\x1b[K\r\x1b[9C" {
		t.Errorf("left: %q", out)
	}
	e.Feed([]byte("X"))
	if out := string(e.Output()); out != "\rvde[s]: aXb\x1b[K\r\x1b[10C" {
		t.Errorf("insert: %q", out)
	}
	e.Hide()
	if out := string(e.Output()); out != "\r\x1b[K" {
		t.Errorf("Hide: %q", out)
	}
	e.Feed([]byte("\x0c"))
	if out := string(e.Output()); out != "\x1b[H\x1b[2J\rvde[s]: aXb\x1b[K\r\x1b[10C" {
		t.Errorf("^L: %q", out)
	}
	e.Feed([]byte("\x03"))
	if out := string(e.Output()); out != "\rvde[s]: aXb\x1b[K\r\x1b[11C^C\r\n\rvde[s]: \x1b[K\r\x1b[8C" {
		t.Errorf("^C: %q", out)
	}
}

// A line wider than the terminal scrolls sideways so that the cursor stays on screen.
func TestLineEditorScroll(t *testing.T) {
	e := &lineEditor{Prompt: "> ", Cols: 10}
	e.Start()
	e.Feed([]byte("abcdefghij"))
	out := string(e.Output())
	want := "\r> defghij\x1b[K\r\x1b[9C"
	if !strings.HasSuffix(out, want) {
		t.Errorf("scrolled: %q; want suffix %q", out, want)
	}
	e.Feed([]byte("\x01"))
	if out := string(e.Output()); out != "\r> abcdefgh\x1b[K\r\x1b[2C" {
		t.Errorf("home: %q", out)
	}
}

// editRun feeds keys to a fresh editor, pieces of at most split bytes at a time, and
// records what happened: every completed line or end of input, then the line being
// edited, the cursor and everything shown. It checks the cursor after every feed.
func editRun(t *testing.T, keys []byte, split, cols int) string {
	e := &lineEditor{Prompt: "vde$ ", Cols: cols, HistoryMax: 3,
		Complete: func(w string) []string {
			var out []string
			for _, c := range []string{"help", "port/print", "port/setvlan", "vlan/create", "vlan/print", "hash/print"} {
				if strings.HasPrefix(c, w) {
					out = append(out, c)
				}
			}
			return out
		}}
	e.Start()
	var log strings.Builder
	for b := keys; len(b) > 0; {
		k := min(split, len(b))
		n, act, line := e.Feed(b[:k])
		if n < 1 || n > k {
			t.Fatalf("Feed of %d bytes used %d", k, n)
		}
		if e.Cursor() < 0 || e.Cursor() > len([]rune(e.Line())) {
			t.Fatalf("cursor %d in %q", e.Cursor(), e.Line())
		}
		b = b[n:]
		switch act {
		case editLine:
			fmt.Fprintf(&log, "line %q\n", line)
		case editEOF:
			log.WriteString("EOF\n")
			e.Start()
		}
	}
	for _, r := range e.Line() {
		if r < 0x20 || r == 0x7f {
			t.Fatalf("control character %q in the line %q", r, e.Line())
		}
	}
	fmt.Fprintf(&log, "editing %q at %d\nshown %q\n", e.Line(), e.Cursor(), e.Output())
	return log.String()
}

// FuzzLineEditor types arbitrary bytes at vdeterm's line editor: the cursor stays in the
// line, the line holds no control characters, and how the bytes are cut into reads (an
// escape sequence or a UTF-8 character split between two) changes nothing: the same
// lines, the same line being edited and the same output.
func FuzzLineEditor(f *testing.F) {
	for _, s := range []string{
		"port/print\r\n", "abc\x1b[D\x1b[DX\r", "p\t\t\x1b[1;5Cx\x7f\x17\r", "\x1b[A\x1b[B\x10\x0e\x15\x0b",
		"h\xc3\xa9llo \xe2\x82\xac\x1bb\x1bf\x1bd\r", "\x1bOH\x1bOF\x1b[3~\x1b[1~\x1b[4~", "\x04", "x\x03\x0c\r\n",
	} {
		f.Add([]byte(s), uint8(1), uint8(20))
	}
	f.Fuzz(func(t *testing.T, keys []byte, split, cols uint8) {
		whole := editRun(t, keys, len(keys)+1, int(cols))
		if cut := editRun(t, keys, int(split%8)+1, int(cols)); cut != whole {
			t.Fatalf("keys %q in reads of %d:\n%s\nat once:\n%s", keys, split%8+1, cut, whole)
		}
	})
}
