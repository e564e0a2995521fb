package applets

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// lineEditor edits one line on a terminal in raw mode: it turns the bytes the terminal
// sends into a line, and tells the terminal what to show. It does no I/O itself, so tests
// feed it bytes and read back the buffer, the cursor and the output.
//
// Keys: printable text inserts at the cursor; Left/Right, ^B/^F move; Home/End, ^A/^E
// jump; Alt-B/Alt-F, Ctrl-Left/Right move by words; Backspace (DEL or ^H) and Delete (or
// ^D on a non-empty line) remove a character; ^U removes up to the cursor, ^K from it,
// ^W the word before it; Up/Down, ^P/^N walk the history; Tab completes; ^C drops the
// line; ^L clears the screen; Enter submits; ^D on an empty line is end of input.
//
// The line is shown on a single row: when it does not fit the terminal's width, the view
// scrolls sideways so that the cursor stays visible.
type lineEditor struct {
	// Prompt is shown before the line.
	Prompt string
	// Cols is the terminal's width; 0 means 80.
	Cols int
	// Complete, when not nil, gives the completions of a command word.
	Complete func(word string) []string
	// HistoryMax caps the history; 0 means 100.
	HistoryMax int

	buf     []rune
	pos     int
	history []string
	// hpos is the history entry shown while walking it; len(history) is the new line,
	// kept in edited meanwhile.
	hpos   int
	edited []rune
	// tabs counts the Tabs in a row that completed nothing.
	tabs    int
	pending []byte // an unfinished escape or UTF-8 sequence
	lastCR  bool   // the last key was CR: an LF right after it is the same Enter
	out     []byte
}

// editAction is what a Feed ended with.
type editAction int

const (
	editNone editAction = iota // all the bytes were used, the line is still being edited
	editLine                   // Enter: the line is complete
	editEOF                    // ^D on an empty line
)

func (e *lineEditor) cols() int {
	if e.Cols <= 0 {
		return 80
	}
	return e.Cols
}

// Start begins a new line: it shows the prompt with an empty buffer.
func (e *lineEditor) Start() {
	e.buf, e.pos, e.tabs = e.buf[:0], 0, 0
	e.hpos, e.edited = len(e.history), nil
	e.refresh()
}

// Line is the text being edited; Cursor is the cursor's index in it, in runes.
func (e *lineEditor) Line() string { return string(e.buf) }
func (e *lineEditor) Cursor() int  { return e.pos }

// Output returns what the terminal has to show since the last call, and forgets it.
func (e *lineEditor) Output() []byte {
	out := e.out
	e.out = nil
	return out
}

// Hide clears the line from the screen (to print something above it); Show redraws it.
func (e *lineEditor) Hide() { e.out = append(e.out, "\r\x1b[K"...) }
func (e *lineEditor) Show() { e.refresh() }

// AddHistory appends line to the history, unless it is empty or repeats the last entry.
func (e *lineEditor) AddHistory(line string) {
	if strings.TrimSpace(line) == "" || (len(e.history) > 0 && e.history[len(e.history)-1] == line) {
		return
	}
	max := e.HistoryMax
	if max <= 0 {
		max = 100
	}
	e.history = append(e.history, line)
	if len(e.history) > max {
		e.history = slices.Delete(e.history, 0, len(e.history)-max)
	}
	e.hpos = len(e.history)
}

// Feed processes the keys in b until the line is complete. It returns how many bytes it
// used (the rest belongs to the next line) and what ended the feed; for editLine, line
// is the text, already added to the history.
func (e *lineEditor) Feed(b []byte) (n int, act editAction, line string) {
	for n < len(b) {
		c := b[n]
		n++
		if len(e.pending) > 0 {
			e.pending = append(e.pending, c)
			e.pendingKey() // done, or waiting for more bytes
			continue
		}
		wasCR := e.lastCR
		e.lastCR = false
		if c != '\t' {
			e.tabs = 0
		}
		switch c {
		case '\r', '\n':
			if c == '\n' && wasCR {
				continue
			}
			e.lastCR = c == '\r'
			line = string(e.buf)
			e.pos = len(e.buf)
			e.refresh()
			e.out = append(e.out, "\r\n"...)
			e.AddHistory(line)
			e.buf, e.pos = e.buf[:0], 0
			return n, editLine, line
		case 0x01: // ^A
			e.move(0)
		case 0x02: // ^B
			e.move(e.pos - 1)
		case 0x03: // ^C
			e.pos = len(e.buf)
			e.refresh()
			e.out = append(e.out, "^C\r\n"...)
			e.Start()
		case 0x04: // ^D
			if len(e.buf) == 0 {
				return n, editEOF, ""
			}
			e.deleteRange(e.pos, e.pos+1)
		case 0x05: // ^E
			e.move(len(e.buf))
		case 0x06: // ^F
			e.move(e.pos + 1)
		case 0x08, 0x7f: // ^H, Backspace
			e.deleteRange(e.pos-1, e.pos)
		case '\t':
			e.complete()
		case 0x0b: // ^K
			e.deleteRange(e.pos, len(e.buf))
		case 0x0c: // ^L
			e.out = append(e.out, "\x1b[H\x1b[2J"...)
			e.refresh()
		case 0x0e: // ^N
			e.historyStep(+1)
		case 0x10: // ^P
			e.historyStep(-1)
		case 0x15: // ^U
			e.deleteRange(0, e.pos)
		case 0x17: // ^W
			e.deleteRange(e.wordLeft(), e.pos)
		case 0x1b:
			e.pending = append(e.pending, c)
		default:
			if c < 0x20 {
				continue // other control keys do nothing
			}
			if c >= utf8.RuneSelf {
				e.pending = append(e.pending, c)
				e.pendingKey()
				continue
			}
			e.insert([]rune{rune(c)})
		}
	}
	return n, editNone, ""
}

// pendingKey acts on the sequence in e.pending, an escape sequence or a UTF-8 character,
// once it is complete (then it empties e.pending); an unfinished one waits for more bytes.
func (e *lineEditor) pendingKey() {
	p := e.pending
	if p[0] != 0x1b {
		if !utf8.FullRune(p) {
			return
		}
		r, size := utf8.DecodeRune(p)
		e.pending = e.pending[:0]
		if r == utf8.RuneError && size <= 1 {
			return // not UTF-8: dropped
		}
		e.insert([]rune{r})
		return
	}
	if len(p) < 2 {
		return
	}
	switch p[1] {
	case '[':
		// CSI: parameters 0x30-0x3f, intermediates 0x20-0x2f, one final 0x40-0x7e.
		last := p[len(p)-1]
		if len(p) == 2 || last < 0x40 || last > 0x7e {
			if len(p) > 16 {
				e.pending = e.pending[:0] // garbage: give up on it
			}
			return
		}
		e.csi(string(p[2:len(p)-1]), last)
	case 'O':
		if len(p) < 3 {
			return
		}
		e.csi("", p[2])
	case 'b', 'B':
		e.move(e.wordLeft())
	case 'f', 'F':
		e.move(e.wordRight())
	case 0x7f, 0x08: // Alt-Backspace
		e.deleteRange(e.wordLeft(), e.pos)
	case 'd':
		e.deleteRange(e.pos, e.wordRight())
	}
	e.pending = e.pending[:0]
}

// csi handles ESC [ params final (and ESC O final, with no params).
func (e *lineEditor) csi(params string, final byte) {
	mod := ""
	if _, m, ok := strings.Cut(params, ";"); ok {
		mod = m
	}
	word := mod == "5" || mod == "3" // Ctrl or Alt with an arrow
	switch final {
	case 'A':
		e.historyStep(-1)
	case 'B':
		e.historyStep(+1)
	case 'C':
		if word {
			e.move(e.wordRight())
		} else {
			e.move(e.pos + 1)
		}
	case 'D':
		if word {
			e.move(e.wordLeft())
		} else {
			e.move(e.pos - 1)
		}
	case 'H':
		e.move(0)
	case 'F':
		e.move(len(e.buf))
	case '~':
		switch params {
		case "1", "7":
			e.move(0)
		case "4", "8":
			e.move(len(e.buf))
		case "3":
			e.deleteRange(e.pos, e.pos+1)
		}
	}
}

func (e *lineEditor) move(pos int) {
	pos = max(0, min(pos, len(e.buf)))
	if pos == e.pos {
		return
	}
	e.pos = pos
	e.refresh()
}

func (e *lineEditor) insert(r []rune) {
	atEnd := e.pos == len(e.buf)
	e.buf = slices.Insert(e.buf, e.pos, r...)
	e.pos += len(r)
	if atEnd && utf8.RuneCountInString(e.Prompt)+len(e.buf) < e.cols() {
		// The common case, typing at the end of a line that fits: just echo.
		e.out = append(e.out, string(r)...)
		return
	}
	e.refresh()
}

// deleteRange removes buf[from:to] (clamped) and leaves the cursor at from.
func (e *lineEditor) deleteRange(from, to int) {
	from = max(0, from)
	to = min(to, len(e.buf))
	if from >= to {
		return
	}
	e.buf = slices.Delete(e.buf, from, to)
	e.pos = from
	e.refresh()
}

// wordLeft is where the word before the cursor starts (blanks before it included).
func (e *lineEditor) wordLeft() int {
	i := e.pos
	for i > 0 && e.buf[i-1] == ' ' {
		i--
	}
	for i > 0 && e.buf[i-1] != ' ' {
		i--
	}
	return i
}

// wordRight is where the word at or after the cursor ends.
func (e *lineEditor) wordRight() int {
	i := e.pos
	for i < len(e.buf) && e.buf[i] == ' ' {
		i++
	}
	for i < len(e.buf) && e.buf[i] != ' ' {
		i++
	}
	return i
}

func (e *lineEditor) historyStep(d int) {
	h := e.hpos + d
	if h < 0 || h > len(e.history) {
		return
	}
	if e.hpos == len(e.history) {
		e.edited = slices.Clone(e.buf)
	}
	e.hpos = h
	if h == len(e.history) {
		e.buf = slices.Clone(e.edited)
	} else {
		e.buf = []rune(e.history[h])
	}
	e.pos = len(e.buf)
	e.refresh()
}

// complete completes the word before the cursor: the first word of the line, or the
// second one after "help". A unique completion gets a blank after it (unless it is a menu,
// ending in "/"); several extend the word to their common prefix, and a second Tab that
// adds nothing lists them.
func (e *lineEditor) complete() {
	if e.Complete == nil {
		e.out = append(e.out, '\a')
		return
	}
	start := e.pos
	for start > 0 && e.buf[start-1] != ' ' {
		start--
	}
	before := strings.Fields(string(e.buf[:start]))
	if !(len(before) == 0 || (len(before) == 1 && before[0] == "help")) {
		e.out = append(e.out, '\a')
		return
	}
	word := string(e.buf[start:e.pos])
	cands := e.Complete(word)
	sort.Strings(cands)
	cands = slices.Compact(cands)
	if len(cands) == 0 {
		e.out = append(e.out, '\a')
		return
	}
	common := cands[0]
	for _, c := range cands[1:] {
		for !strings.HasPrefix(c, common) {
			_, size := utf8.DecodeLastRuneInString(common)
			common = common[:len(common)-size]
		}
	}
	add := []rune(strings.TrimPrefix(common, word))
	if !strings.HasPrefix(common, word) {
		add = nil
	}
	if len(cands) == 1 && !strings.HasSuffix(common, "/") && (e.pos == len(e.buf) || e.buf[e.pos] != ' ') {
		add = append(add, ' ')
	}
	if len(add) > 0 {
		e.tabs = 0
		e.insert(add)
		return
	}
	e.tabs++
	if e.tabs < 2 || len(cands) < 2 {
		e.out = append(e.out, '\a')
		return
	}
	e.tabs = 0
	e.out = append(e.out, "\r\n"...)
	e.out = append(e.out, columns(cands, e.cols())...)
	e.refresh()
}

// columns lays words out in columns across width, sorted down the columns as ls does;
// every row ends in "\r\n".
func columns(words []string, width int) string {
	w := 0
	for _, s := range words {
		w = max(w, utf8.RuneCountInString(s))
	}
	w += 2
	ncol := max(1, width/w)
	nrow := (len(words) + ncol - 1) / ncol
	var b strings.Builder
	for r := 0; r < nrow; r++ {
		for c := 0; c < ncol; c++ {
			i := c*nrow + r
			if i >= len(words) {
				break
			}
			last := c == ncol-1 || (c+1)*nrow+r >= len(words)
			if last {
				b.WriteString(words[i])
			} else {
				fmt.Fprintf(&b, "%-*s", w, words[i])
			}
		}
		b.WriteString("\r\n")
	}
	return b.String()
}

// refresh redraws the prompt and the line, and puts the cursor in its place. A line
// wider than the terminal scrolls: the view starts late enough to show the cursor.
func (e *lineEditor) refresh() {
	plen := utf8.RuneCountInString(e.Prompt)
	cols := e.cols()
	start, pos := 0, e.pos
	for plen+pos >= cols && pos > 0 {
		start++
		pos--
	}
	end := len(e.buf)
	for plen+(end-start) > cols && end > start {
		end--
	}
	e.out = append(e.out, '\r')
	e.out = append(e.out, e.Prompt...)
	e.out = append(e.out, string(e.buf[start:end])...)
	e.out = append(e.out, "\x1b[K\r"...)
	if col := plen + pos; col > 0 {
		e.out = fmt.Appendf(e.out, "\x1b[%dC", col)
	}
}
