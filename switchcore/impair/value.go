// Package impair is wirefilter's engine: it carries frames between two endpoints and
// loses, duplicates, delays, paces, corrupts and drops them as VDE2's wirefilter does,
// with its Markov chain of link states and its management console. It knows no command
// line: the wirefilter applet builds a Filter, and tests drive one in process.
package impair

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// Param names one of the link's parameters, in the order of the C tool's table.
type Param int

// The parameters. Each has a value per direction and per Markov node.
const (
	// Loss is the percentage of frames lost.
	Loss Param = iota
	// LostBurst is the mean length of a burst of lost frames (Gilbert model); 0 is off.
	LostBurst
	// Delay is the extra delay in milliseconds.
	Delay
	// Dup is the percentage of frames duplicated (each copy again with this chance).
	Dup
	// Band is the channel bandwidth in bytes/s: delivery is delayed to keep to it.
	Band
	// Speed is the interface speed in bytes/s: input waits for each frame's time.
	Speed
	// ChanBufSize is the most bytes the delay queue of a direction holds.
	ChanBufSize
	// Noise is the number of damaged bits per megabyte.
	Noise
	// MTU is the largest frame passed; longer ones are dropped.
	MTU
	// NumParams is the number of parameters.
	NumParams
)

// Dir is a direction: LR carries frames from the left endpoint to the right one.
type Dir int

// The two directions.
const (
	LR Dir = 0
	RL Dir = 1
)

// Alg is the distribution of a value's variation.
type Alg uint8

// The distributions: uniform in [value-plus, value+plus], or normal with 3 sigma = plus.
const (
	Uniform Alg = 0
	Normal  Alg = 1
)

// Value is one parameter in one direction: Value, varied by up to Plus with Alg.
type Value struct {
	// Value is the mean.
	Value float64
	// Plus is the variation (the half width of the uniform range, 3 sigma for normal).
	Plus float64
	// Alg is how the variation is drawn.
	Alg Alg
}

// Max is the largest value the parameter can take (Value+Plus), as C's max_wirevalue.
func (v Value) Max() float64 { return v.Value + v.Plus }

// Min is Value-Plus, as C's min_wirevalue.
func (v Value) Min() float64 { return v.Value - v.Plus }

// Setting is a parsed value: what to store and where.
type Setting struct {
	// Node is the Markov node ([n] suffix), 0 by default.
	Node int
	// LR and RL say which directions are set (both without a prefix).
	LR, RL bool
	// V is the value to store.
	V Value
}

// ErrNoValue reports a value with no number where the C tool would silently set nothing.
var ErrNoValue = errors.New("no number in value")

// ErrNode reports a Markov node ([n]) outside the chain; the C tool answers EINVAL.
var ErrNode = errors.New("no such markov node")

// ParseValue reads a value as VDE2's wirefilter does (read_wirevalue):
// [LR|RL]VALUE[+VAR][K|M|G][U|N][[node]]. Trailing blanks go; a final "[n]" picks the
// Markov node (nodes is how many there are); then a final U or N picks the distribution
// and the character before it (or the last one) a K, M or G multiplier (powers of two);
// the numbers are read by sscanf("%lf+%lf") from the start of the text, so anything
// after them is ignored, as C ignores it ("10K+5" is 10: the multiplier must be last).
// It returns ErrNode for a node outside the chain and ErrNoValue when no number was
// read, where C silently changed nothing.
func ParseValue(s string, nodes int) (Setting, error) {
	b := []byte(s)
	n := len(b) - 1
	for n > 0 && (b[n] == ' ' || b[n] == '\n' || b[n] == '\t') {
		b[n] = 0
		n--
	}
	var st Setting
	if n >= 0 && b[n] == ']' {
		// C: idstr=&s[n]; s[n--]=0; while (s[n]!='[' && n>1) idstr=&s[n--]; s[n--]=0;
		id := n
		b[n] = 0
		n--
		for n >= 0 && b[n] != '[' && n > 1 {
			id = n
			n--
		}
		if n >= 0 {
			b[n] = 0
		}
		n--
		if v, _, ok := scanDecimalInt(cstr(b[id:])); ok {
			st.Node = v
		}
		if st.Node < 0 || st.Node >= nodes {
			return st, ErrNode
		}
	}
	if n >= 0 {
		switch b[n] {
		case 'u', 'U':
			n--
		case 'n', 'N':
			st.V.Alg = Normal
			n--
		}
	}
	mult := 1.0
	if n >= 0 {
		switch b[n] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
	}
	text := cstr(b)
	if v, plus, ok := scanPair(text); ok {
		st.LR, st.RL = true, true
		st.V.Value, st.V.Plus = v*mult, plus*mult
		return st, nil
	}
	for _, p := range []string{"LR", "RL"} {
		if rest, found := strings.CutPrefix(text, p); found {
			if v, plus, ok := scanPair(rest); ok {
				st.LR, st.RL = p == "LR", p == "RL"
				st.V.Value, st.V.Plus = v*mult, plus*mult
				return st, nil
			}
		}
	}
	return st, ErrNoValue
}

// cstr is b up to its first NUL, as C sees a string.
func cstr(b []byte) string {
	if i := indexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// scanPair is sscanf(s, "%lf+%lf", &v, &plus) > 0: plus stays 0 when only v is read.
func scanPair(s string) (v, plus float64, ok bool) {
	v, rest, ok := ScanFloat(s)
	if !ok {
		return 0, 0, false
	}
	if strings.HasPrefix(rest, "+") {
		if p, _, ok := ScanFloat(rest[1:]); ok {
			plus = p
		}
	}
	return v, plus, true
}

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHexDigit(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// ScanFloat converts the longest prefix of s that glibc's sscanf("%lf") takes: leading
// blanks, a sign, then a decimal number with optional exponent, a hexadecimal one
// ("0x1.8p3"; "0x" needs a hex digit or a point after it), inf, infinity or nan (with
// an optional "(chars)"). An exponent letter with no digits after it is left unread
// ("1e+" is 1). It returns the value, the rest of s and whether anything was converted.
func ScanFloat(s string) (float64, string, bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	start := i
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	signed := func(v float64) float64 {
		if neg {
			return -v
		}
		return v
	}
	lower := strings.ToLower(s[i:min(len(s), i+8)])
	switch {
	case strings.HasPrefix(lower, "infinity"):
		return signed(math.Inf(1)), s[i+8:], true
	case strings.HasPrefix(lower, "inf"):
		return signed(math.Inf(1)), s[i+3:], true
	case strings.HasPrefix(lower, "nan"):
		i += 3
		if i < len(s) && s[i] == '(' {
			j := i + 1
			for j < len(s) && (isDigit(s[j]) || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] == '_') {
				j++
			}
			if j < len(s) && s[j] == ')' {
				i = j + 1
			}
		}
		return signed(math.NaN()), s[i:], true
	}
	if i+1 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') {
		j := i + 2
		if j >= len(s) || !(isHexDigit(s[j]) || s[j] == '.') {
			return 0, s, false
		}
		mant := j
		for j < len(s) && isHexDigit(s[j]) {
			j++
		}
		if j < len(s) && s[j] == '.' {
			j++
			for j < len(s) && isHexDigit(s[j]) {
				j++
			}
		}
		mantEnd := j
		digits := strings.Replace(s[mant:j], ".", "", 1)
		exp := ""
		if k := exponentEnd(s, j, 'p'); k > j {
			exp = s[j+1 : k]
			j = k
		}
		if digits == "" {
			return signed(0), s[j:], true
		}
		if exp == "" {
			exp = "0"
		}
		m := s[mant:mantEnd]
		if m[0] == '.' {
			m = "0" + m
		}
		v, _ := strconv.ParseFloat("0x"+m+"p"+exp, 64)
		return signed(v), s[j:], true
	}
	j := i
	nd := 0
	for j < len(s) && isDigit(s[j]) {
		j++
		nd++
	}
	if j < len(s) && s[j] == '.' {
		j++
		for j < len(s) && isDigit(s[j]) {
			j++
			nd++
		}
	}
	if nd == 0 {
		return 0, s, false
	}
	j = exponentEnd(s, j, 'e')
	v, err := strconv.ParseFloat(s[start:j], 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, s, false
	}
	return v, s[j:], true
}

// exponentEnd is where the exponent at s[j] ends: letter (either case), an optional
// sign and digits; j itself when no digit follows, so the letter is left unread.
func exponentEnd(s string, j int, letter byte) int {
	if j >= len(s) || s[j]|0x20 != letter {
		return j
	}
	k := j + 1
	if k < len(s) && (s[k] == '+' || s[k] == '-') {
		k++
	}
	if k >= len(s) || !isDigit(s[k]) {
		return j
	}
	for k < len(s) && isDigit(s[k]) {
		k++
	}
	return k
}

// scanDecimalInt is sscanf(s, "%d").
func scanDecimalInt(s string) (int, string, bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	j := i
	v := 0
	for j < len(s) && isDigit(s[j]) {
		if v < 1<<31 {
			v = v*10 + int(s[j]-'0')
		}
		j++
	}
	if j == i {
		return 0, s, false
	}
	if neg {
		v = -v
	}
	return int(int32(v)), s[j:], true
}

// FormatG is C's printf("%g"): six significant digits, trailing zeros removed, an
// exponent of at least two digits; inf and nan in C's spelling.
func FormatG(v float64) string {
	switch {
	case math.IsNaN(v):
		if math.Signbit(v) {
			return "-nan"
		}
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}
