package applets

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// The C tools parse their command lines with glibc's getopt_long_only, and scripts in the
// wild rely on what it accepts: long options with one dash (-sock, -daemon), unique
// prefixes (--dae), a short option's argument glued to it (-s/tmp/sw, -n4), bundled short
// flags (-dx), options after operands (argument permutation), and a first-come order in
// which "-n 4 -h" prints "(default 4)". Go's flag package, under urfave/cli, has none of
// the prefix, glue, bundle or order rules. So the options are declared as urfave/cli
// flags (names, aliases, whether they take a value) and this scanner walks argv against
// them the way getopt_long_only does, yielding the options in command-line order.

// optEvent is one option from the command line, or one diagnostic, in argv order.
type optEvent struct {
	// Name is the primary name (first of Names()) of the flag that matched.
	Name string
	// Value is the option's argument; empty for flags that take none.
	Value string
	// Err, when not empty, is getopt's diagnostic for a bad option, in glibc's words
	// and without the "prog: " prefix; Name and Value are then empty.
	Err string
}

// getoptResult is a scanned command line.
type getoptResult struct {
	// Opts are the options and diagnostics in command-line order.
	Opts []optEvent
	// Operands are the non-option arguments, in order (getopt permutes them to the end).
	Operands []string
}

type optSpec struct {
	primary string
	hasArg  bool
	// optArg: the long form takes an optional "=value" (getopt's "::"), never the next
	// word; the short form takes none (slirpvde's -D / --dhcp[=ADDR]).
	optArg bool
}

// optionalArgFlag declares such an option.
type optionalArgFlag struct{ cli.BoolFlag }

func (optionalArgFlag) optionalArg() bool { return true }

type longName struct {
	name string
	spec *optSpec
}

// getoptTable is the option table of one applet, built from its urfave/cli flags: every
// name of one letter is a short option, every longer name a long option, in the order
// the flags declare them (the order of getopt's "ambiguous" list).
type getoptTable struct {
	long  []longName
	short map[byte]*optSpec
}

func newGetoptTable(flags []cli.Flag) *getoptTable {
	t := &getoptTable{short: map[byte]*optSpec{}}
	for _, f := range flags {
		names := f.Names()
		spec := &optSpec{primary: names[0]}
		if tv, ok := f.(interface{ TakesValue() bool }); ok {
			spec.hasArg = tv.TakesValue()
		}
		if oa, ok := f.(interface{ optionalArg() bool }); ok {
			spec.optArg = oa.optionalArg()
		}
		for _, n := range names {
			if len(n) == 1 {
				t.short[n[0]] = spec
			} else {
				t.long = append(t.long, longName{n, spec})
			}
		}
	}
	return t
}

// getoptLongOnly scans args (without argv[0]) like glibc's getopt_long_only.
func getoptLongOnly(flags []cli.Flag, args []string) getoptResult {
	t := newGetoptTable(flags)
	var r getoptResult
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			r.Operands = append(r.Operands, args[i+1:]...)
			return r
		case len(a) < 2 || a[0] != '-':
			r.Operands = append(r.Operands, a)
			continue
		case strings.HasPrefix(a, "--"):
			ev, next, found := t.longOption("--", a[2:], args, i)
			if !found {
				ev = optEvent{Err: fmt.Sprintf("unrecognized option '%s'", a)}
			}
			r.Opts = append(r.Opts, ev)
			i = next
			continue
		}
		body := a[1:]
		// A lone letter that is a short option is a short option; anything else
		// is tried as a long option first, and falls back to short options only
		// when no long option matches and its first letter is a short option.
		if len(body) > 1 || t.short[body[0]] == nil {
			ev, next, found := t.longOption("-", body, args, i)
			if found {
				r.Opts = append(r.Opts, ev)
				i = next
				continue
			}
			if t.short[body[0]] == nil {
				r.Opts = append(r.Opts, optEvent{Err: fmt.Sprintf("unrecognized option '%s'", a)})
				continue
			}
		}
		i = t.shortOptions(body, args, i, &r)
	}
	return r
}

// longOption matches body (the text after prefix, maybe with "=value") against the long
// names. found is false when nothing matched; next is the index of the last argument used.
func (t *getoptTable) longOption(prefix, body string, args []string, i int) (ev optEvent, next int, found bool) {
	name, value, hasValue := strings.Cut(body, "=")
	var match *longName
	var candidates []*longName
	for k := range t.long {
		l := &t.long[k]
		if l.name == name {
			match = l
			break
		}
		if strings.HasPrefix(l.name, name) {
			candidates = append(candidates, l)
		}
	}
	if match == nil {
		switch len(candidates) {
		case 0:
			return optEvent{}, i, false
		case 1:
			match = candidates[0]
		default:
			// getopt_long_only calls two prefix matches ambiguous even when both
			// name the same option (--mo: --mod, --mode).
			var b strings.Builder
			fmt.Fprintf(&b, "option '%s%s' is ambiguous; possibilities:", prefix, body)
			for _, c := range candidates {
				fmt.Fprintf(&b, " '%s%s'", prefix, c.name)
			}
			return optEvent{Err: b.String()}, i, true
		}
	}
	switch {
	case hasValue && match.spec.optArg:
		return optEvent{Name: match.spec.primary, Value: value}, i, true
	case hasValue && !match.spec.hasArg:
		return optEvent{Err: fmt.Sprintf("option '%s%s' doesn't allow an argument", prefix, match.name)}, i, true
	case hasValue:
		return optEvent{Name: match.spec.primary, Value: value}, i, true
	case !match.spec.hasArg:
		return optEvent{Name: match.spec.primary}, i, true
	case i+1 < len(args):
		return optEvent{Name: match.spec.primary, Value: args[i+1]}, i + 1, true
	default:
		return optEvent{Err: fmt.Sprintf("option '%s%s' requires an argument", prefix, match.name)}, i, true
	}
}

// shortOptions scans a bundle of short options (-dx, -n4, -s /tmp/sw) and returns the
// index of the last argument used.
func (t *getoptTable) shortOptions(body string, args []string, i int, r *getoptResult) int {
	for j := 0; j < len(body); j++ {
		c := body[j]
		spec := t.short[c]
		switch {
		case spec == nil:
			r.Opts = append(r.Opts, optEvent{Err: fmt.Sprintf("invalid option -- '%c'", c)})
		case !spec.hasArg:
			r.Opts = append(r.Opts, optEvent{Name: spec.primary})
		case j+1 < len(body):
			r.Opts = append(r.Opts, optEvent{Name: spec.primary, Value: body[j+1:]})
			return i
		case i+1 < len(args):
			r.Opts = append(r.Opts, optEvent{Name: spec.primary, Value: args[i+1]})
			return i + 1
		default:
			r.Opts = append(r.Opts, optEvent{Err: fmt.Sprintf("option requires an argument -- '%c'", c)})
			return i
		}
	}
	return i
}
