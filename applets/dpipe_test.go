package applets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestParseDpipeOptions(t *testing.T) {
	tests := []struct {
		desc string
		args []string
		want dpipeOptions
	}{
		{desc: "nothing", args: nil, want: dpipeOptions{Words: []string{}}},
		{desc: "no options", args: []string{"a", "=", "b"},
			want: dpipeOptions{Words: []string{"a", "=", "b"}}},
		{desc: "short options with separate and glued values",
			args: []string{"-p", "f", "-Pg", "-d", "-n", "a", "=", "b"},
			want: dpipeOptions{PidFile: "f", PgrpFile: "g", Daemon: true, NoWrap: true, Words: []string{"a", "=", "b"}}},
		{desc: "bundled flags", args: []string{"-dnpf", "a"},
			want: dpipeOptions{PidFile: "f", Daemon: true, NoWrap: true, Words: []string{"a"}}},
		{desc: "long options, = value and unique prefix",
			args: []string{"--pidfile=f", "--pgrp", "g", "--dae", "--nowrapp", "a"},
			want: dpipeOptions{PidFile: "f", PgrpFile: "g", Daemon: true, NoWrap: true, Words: []string{"a"}}},
		{desc: "-N is -n without cleanup", args: []string{"-N", "a"},
			want: dpipeOptions{NoWrap: true, NoClean: true, Words: []string{"a"}}},
		{desc: "--nowrapnoclean", args: []string{"--nowrapnoclean", "a"},
			want: dpipeOptions{NoWrap: true, NoClean: true, Words: []string{"a"}}},
		{desc: "the last -p wins", args: []string{"-p", "x", "-p", "y", "a"},
			want: dpipeOptions{PidFile: "y", Words: []string{"a"}}},
		{desc: "options stop at cmd1", args: []string{"a", "-p", "f", "=", "b"},
			want: dpipeOptions{Words: []string{"a", "-p", "f", "=", "b"}}},
		{desc: "-- ends the options", args: []string{"-d", "--", "-x", "=", "y"},
			want: dpipeOptions{Daemon: true, Words: []string{"-x", "=", "y"}}},
		{desc: "a lone - is cmd1", args: []string{"-", "=", "a"},
			want: dpipeOptions{Words: []string{"-", "=", "a"}}},
		{desc: "a separator is cmd1's place", args: []string{"=", "a"},
			want: dpipeOptions{Words: []string{"=", "a"}}},
		{desc: "unknown short option is a warning", args: []string{"-x", "a", "=", "b"},
			want: dpipeOptions{Diags: []string{"invalid option -- 'x'"}, Words: []string{"a", "=", "b"}}},
		{desc: "unknown long option", args: []string{"--bogus", "a"},
			want: dpipeOptions{Diags: []string{"unrecognized option '--bogus'"}, Words: []string{"a"}}},
		{desc: "single-dash long option is a short bundle", args: []string{"-pidfile", "a"},
			want: dpipeOptions{PidFile: "idfile", Words: []string{"a"}}},
		{desc: "ambiguous prefix", args: []string{"--n", "a"},
			want: dpipeOptions{Diags: []string{"option '--n' is ambiguous; possibilities: '--nowrapproc' '--nowrapnoclean'"}, Words: []string{"a"}}},
		{desc: "ambiguous prefix takes no value", args: []string{"--p", "x", "a"},
			want: dpipeOptions{Diags: []string{"option '--p' is ambiguous; possibilities: '--pidfile' '--pgrpfile'"}, Words: []string{"x", "a"}}},
		{desc: "missing value", args: []string{"-p"},
			want: dpipeOptions{Diags: []string{"option requires an argument -- 'p'"}, Words: []string{}}},
		{desc: "missing long value", args: []string{"--pgrpfile"},
			want: dpipeOptions{Diags: []string{"option '--pgrpfile' requires an argument"}, Words: []string{}}},
		{desc: "value on a flag", args: []string{"--daemon=1", "a"},
			want: dpipeOptions{Diags: []string{"option '--daemon' doesn't allow an argument"}, Words: []string{"a"}}},
		{desc: "help stops the scan", args: []string{"-x", "-h", "-y", "a"},
			want: dpipeOptions{Help: true, Diags: []string{"invalid option -- 'x'"}, Words: []string{"a"}}},
		{desc: "help in a bundle", args: []string{"-dh"},
			want: dpipeOptions{Daemon: true, Help: true, Words: []string{}}},
		{desc: "--h is --help", args: []string{"--h"},
			want: dpipeOptions{Help: true, Words: []string{}}},
		{desc: "the value of -p may look like an option", args: []string{"-p", "-d", "a"},
			want: dpipeOptions{PidFile: "-d", Words: []string{"a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got := parseDpipeOptions(tt.args)
			if got.Words == nil {
				got.Words = []string{}
			}
			if tt.want.Words == nil {
				tt.want.Words = []string{}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseDpipeOptions(%q)\n got %+v\nwant %+v", tt.args, got, tt.want)
			}
		})
	}
}

// chain is a compact spelling of a split chain for the tables: commands separated by
// "|", words by spaces, a prefix "R:" for flowRight and "L:" for flowLeft, and two
// single quotes for an empty word.
func chain(s string) []dpipeCommand {
	var out []dpipeCommand
	for _, part := range strings.Split(s, "|") {
		c := dpipeCommand{Flow: flowBoth}
		switch {
		case strings.HasPrefix(part, "R:"):
			c.Flow, part = flowRight, part[2:]
		case strings.HasPrefix(part, "L:"):
			c.Flow, part = flowLeft, part[2:]
		}
		c.Argv = strings.Split(part, " ")
		for i, w := range c.Argv {
			if w == "''" {
				c.Argv[i] = ""
			}
		}
		out = append(out, c)
	}
	return out
}

func TestSplitDpipeChain(t *testing.T) {
	tests := []struct {
		desc  string
		words []string
		want  string // chain(want); "" for the usage text
	}{
		{"two commands", []string{"a", "=", "b"}, "a|b"},
		{"arguments", []string{"a", "-x", "1", "=", "b", "y"}, "a -x 1|b y"},
		{"three commands", []string{"a", "=", "b", "=", "c"}, "a|b|c"},
		{"four commands", []string{"a", "=", "b", "=", "c", "=", "d"}, "a|b|c|d"},
		{"== is a separator", []string{"a", "==", "b"}, "a|b"},
		{"any word starting with = is a separator", []string{"a", "=x", "b"}, "a|b"},
		{"left to right segment", []string{"a", "=}", "b", "}=", "c"}, "a|R:b|c"},
		{"right to left segment", []string{"a", "={", "b", "{=", "c"}, "a|L:b|c"},
		{"brackets with trailing text", []string{"a", "=}x", "b", "}=yy", "c"}, "a|R:b|c"},
		{"segment of two commands", []string{"a", "=}", "b", "=", "c", "}=", "d"}, "a|R:b|R:c|d"},
		{"}=} closes and reopens", []string{"a", "=}", "b", "}=}", "c", "}=", "d"}, "a|R:b|R:c|d"},
		{"}={ turns around", []string{"a", "=}", "b", "}={", "c", "{=", "d"}, "a|R:b|L:c|d"},
		{"a closing bracket of the other kind is an argument",
			[]string{"a", "=}", "b", "{=", "c", "}=", "d"}, "a|R:b {= c|d"},
		{"a closing bracket without an opening one is an argument",
			[]string{"a", "=", "b", "}=", "c"}, "a|b }= c"},
		{"{= at the end is the last command's argument", []string{"a", "=}", "b", "}=", "c", "{="}, "a|R:b|c {="},
		{"}= as cmd1", []string{"}=", "a", "=", "b"}, "}= a|b"},
		{"empty words inside commands", []string{"a", "", "x", "=", "", "b"}, "a '' x|'' b"},
		{"an empty last command", []string{"a", "=", ""}, "a|''"},
		{"an empty word in a segment before }=", []string{"a", "=}", "b", "", "}=", "c"}, "a|R:b ''|c"},

		{"nothing", nil, ""},
		{"one word", []string{"a"}, ""},
		{"no separator", []string{"a", "b", "c"}, ""},
		{"separator only", []string{"="}, ""},
		{"trailing separator", []string{"a", "="}, ""},
		{"leading separator", []string{"=", "a"}, ""},
		{"leading separator, long chain", []string{"=", "a", "=", "b"}, ""},
		{"empty middle command", []string{"a", "=", "=", "b"}, ""},
		{"trailing separator after three", []string{"a", "=", "b", "="}, ""},
		{"trailing separator after arguments", []string{"a", "=", "b", "c", "="}, ""},
		{"unclosed =}", []string{"a", "=}", "b"}, ""},
		{"unclosed ={", []string{"a", "={", "b", "=", "c"}, ""},
		{"{= alone is not a separator", []string{"a", "{=", "b"}, ""},
		// C reads one byte past an empty word into the next argv word.
		{"empty word before =", []string{"echo", "", "=", "cat"}, ""},
		{"empty word before = at the start", []string{"", "=", "true"}, ""},
		{"empty word before = later", []string{"a", "=", "b", "", "=", "c"}, ""},
		{"empty word before =}", []string{"a", "", "=}", "b", "}=", "c"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			in := slices.Clone(tt.words)
			got, err := splitDpipeChain(tt.words)
			if !slices.Equal(in, tt.words) {
				t.Errorf("splitDpipeChain modified its input: %q -> %q", in, tt.words)
			}
			if tt.want == "" {
				if !errors.Is(err, errDpipeUsage) {
					t.Errorf("splitDpipeChain(%q) = %v, %v; want the usage error", tt.words, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("splitDpipeChain(%q): %v", tt.words, err)
			}
			if want := chain(tt.want); !reflect.DeepEqual(got, want) {
				t.Errorf("splitDpipeChain(%q)\n got %v\nwant %v", tt.words, got, want)
			}
		})
	}
}

func TestDpipeByte(t *testing.T) {
	argv := []string{"ab", "", "=}", "x"}
	tests := []struct {
		i, k int
		want byte
	}{
		{0, 0, 'a'}, {0, 1, 'b'}, {0, 2, 0}, {0, 3, 0}, // "ab\0" then "" is "\0"
		{1, 0, 0}, {1, 1, '='}, {1, 2, '}'},
		{2, 1, '}'}, {2, 2, 0}, {2, 3, 'x'},
		{3, 0, 'x'}, {3, 1, 0}, {3, 2, 0}, // past the last word: 0
		{4, 0, 0},
	}
	for _, tt := range tests {
		if got := dpipeByte(argv, tt.i, tt.k); got != tt.want {
			t.Errorf("dpipeByte(%q, %d, %d) = %q, want %q", argv, tt.i, tt.k, got, tt.want)
		}
	}
}

// dpipeFlows lists, for every pipe of a wiring, "writer>reader": which command's
// descriptor writes it and which reads it (names "0", "1.alt", ...).
func dpipeFlows(fds []dpipeFDs) []string {
	name := map[int]string{}
	for k, f := range fds {
		for _, e := range []struct {
			end int
			n   string
		}{{f.Stdin, fmt.Sprint(k)}, {f.Stdout, fmt.Sprint(k)}, {f.AltIn, fmt.Sprintf("%d.alt", k)}, {f.AltOut, fmt.Sprintf("%d.alt", k)}} {
			if e.end >= 0 {
				name[e.end] = e.n
			}
		}
	}
	var flows []string
	for end := 0; ; end += 2 {
		r, okr := name[end]
		w, okw := name[end+1]
		if !okr && !okw {
			break
		}
		flows = append(flows, w+">"+r)
	}
	slices.Sort(flows)
	return flows
}

func TestPlanDpipeWiring(t *testing.T) {
	tests := []struct {
		desc  string
		chain string
		fds   []dpipeFDs // nil: only the flows are checked
		flows []string
	}{
		{"two commands", "a|b",
			[]dpipeFDs{{Stdin: 0, Stdout: 3, AltIn: -1, AltOut: -1}, {Stdin: 2, Stdout: 1, AltIn: -1, AltOut: -1}},
			[]string{"0>1", "1>0"}},
		{"three commands: the middle one talks to the right on its alternate fds", "a|b|c",
			[]dpipeFDs{{0, 3, -1, -1}, {2, 1, 4, 7}, {6, 5, -1, -1}},
			[]string{"0>1", "1.alt>2", "1>0", "2>1.alt"}},
		{"four commands", "a|b|c|d", nil,
			[]string{"0>1", "1.alt>2", "1>0", "2.alt>3", "2>1.alt", "3>2.alt"}},
		{"left to right segment is the cycle a>b>c>a", "a|R:b|c", nil,
			[]string{"0>1", "1>2", "2>0"}},
		{"right to left segment is the cycle a>c>b>a", "a|L:b|c", nil,
			[]string{"0>2", "1>0", "2>1"}},
		{"segment of two", "a|R:b|R:c|d", nil,
			[]string{"0>1", "1>2", "2>3", "3>0"}},
		{"a bidirectional middle command before a segment", "a|b|R:c|d", nil,
			[]string{"0>1", "1.alt>2", "1>0", "2>3", "3>1.alt"}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			fds, n := planDpipeWiring(chain(tt.chain))
			checkDpipeWiring(t, chain(tt.chain), fds, n)
			if tt.fds != nil && !reflect.DeepEqual(fds, tt.fds) {
				t.Errorf("fds\n got %v\nwant %v", fds, tt.fds)
			}
			if got := dpipeFlows(fds); !slices.Equal(got, tt.flows) {
				t.Errorf("flows\n got %v\nwant %v", got, tt.flows)
			}
		})
	}
}

// checkDpipeWiring checks what holds for every wiring: each end of each pipe goes to
// exactly one command, every command has stdin and stdout, and only the bidirectional
// middle commands have alternate fds.
func checkDpipeWiring(t *testing.T, cmds []dpipeCommand, fds []dpipeFDs, pipes int) {
	t.Helper()
	if len(fds) != len(cmds) {
		t.Fatalf("%d wirings for %d commands", len(fds), len(cmds))
	}
	used := make([]int, 2*pipes)
	for k, f := range fds {
		if f.Stdin < 0 || f.Stdout < 0 || f.Stdin%2 != 0 || f.Stdout%2 != 1 {
			t.Errorf("command %d: stdin %d stdout %d", k, f.Stdin, f.Stdout)
		}
		middle := k > 0 && k < len(cmds)-1 && cmds[k].Flow == flowBoth
		if middle != (f.AltIn >= 0) || middle != (f.AltOut >= 0) {
			t.Errorf("command %d (flow %q): alternate fds %d %d", k, cmds[k].Flow, f.AltIn, f.AltOut)
		}
		if middle && (f.AltIn%2 != 0 || f.AltOut%2 != 1) {
			t.Errorf("command %d: alternate in %d out %d", k, f.AltIn, f.AltOut)
		}
		for _, e := range []int{f.Stdin, f.Stdout, f.AltIn, f.AltOut} {
			if e >= 2*pipes {
				t.Fatalf("command %d: end %d of %d pipes", k, e, pipes)
			}
			if e >= 0 {
				used[e]++
			}
		}
	}
	for e, n := range used {
		if n != 1 {
			t.Errorf("pipe end %d used %d times", e, n)
		}
	}
}

func TestDpipeUsageMatchesDebian(t *testing.T) {
	want, err := os.ReadFile("testdata/dpipe-debian.usage")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf(dpipeUsage, "dpipe"); got != string(want) {
		t.Errorf("usage text\n got %q\nwant %q", got, want)
	}
}

// TestDpipeMainHelp runs -h in-process: diagnostics before -h, then the usage text on
// stderr, then SIGTERM to itself (caught here).
func TestDpipeMainHelp(t *testing.T) {
	var raised []string
	saved := dpipeRaise
	dpipeRaise = func(sig syscall.Signal, group bool) { raised = append(raised, fmt.Sprint(sig, group)) }
	defer func() { dpipeRaise = saved }()

	var out, errb bytes.Buffer
	err := DpipeMain(context.Background(), []string{"-x", "-h", "-y"}, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 255 {
		t.Errorf("DpipeMain -h: %v, want exit status 255 when SIGTERM does not end it", err)
	}
	want := "dpipe: invalid option -- 'x'\n" + fmt.Sprintf(dpipeUsage, "dpipe")
	if errb.String() != want {
		t.Errorf("stderr\n got %q\nwant %q", errb.String(), want)
	}
	if out.Len() != 0 {
		t.Errorf("stdout: %q", out.String())
	}
	if !slices.Equal(raised, []string{fmt.Sprint(syscall.SIGTERM, false)}) {
		t.Errorf("raised %v, want SIGTERM to itself only", raised)
	}
}

func TestWexitstatus(t *testing.T) {
	for _, tt := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"exit 255", 255},
		{"kill -TERM $$", 0}, // WEXITSTATUS of a signalled process
		{"kill -KILL $$", 0},
	} {
		cmd := exec.Command("/bin/sh", "-c", tt.script)
		cmd.Run()
		if got := wexitstatus(cmd.ProcessState); got != tt.want {
			t.Errorf("sh -c %q: wexitstatus %d, want %d", tt.script, got, tt.want)
		}
	}
}

func TestExecvpPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "plain"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "plain"), []byte("#!/bin/sh\n"), 0o755)

	t.Setenv("PATH", dir+":"+other)
	for _, tt := range []struct {
		name, want string
	}{
		{"tool", exe},
		{"plain", filepath.Join(other, "plain")}, // not executable in dir: the search goes on
		{"sub", ""},
		{"missing", ""},
		{"", ""},
		{"./x/y", "./x/y"}, // with a slash: as given, execve reports
	} {
		got, err := execvpPath(tt.name)
		if tt.want == "" {
			if err == nil {
				t.Errorf("execvpPath(%q) = %q, want not found", tt.name, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("execvpPath(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}

	t.Setenv("PATH", ":"+other) // an empty element is the current directory
	t.Chdir(dir)
	if got, err := execvpPath("tool"); err != nil || got != "./tool" {
		t.Errorf("execvpPath(tool) with PATH=%q = %q, %v; want ./tool", os.Getenv("PATH"), got, err)
	}

	os.Unsetenv("PATH") // restored by t.Setenv's cleanup
	if got, err := execvpPath("sh"); err != nil || got != "/bin/sh" {
		t.Errorf("execvpPath(sh) without PATH = %q, %v; want glibc's default path, /bin/sh", got, err)
	}
}

func TestAlternateFDs(t *testing.T) {
	for _, tt := range []struct {
		inherited []int
		a, b      int
	}{
		{nil, 3, 4},
		{[]int{3}, 4, 5},
		{[]int{4}, 3, 5},
		{[]int{3, 4, 6}, 5, 7},
		{[]int{10}, 3, 4},
	} {
		m := map[int]bool{}
		for _, fd := range tt.inherited {
			m[fd] = true
		}
		if a, b := alternateFDs(m); a != tt.a || b != tt.b {
			t.Errorf("alternateFDs(%v) = %d, %d; want %d, %d", tt.inherited, a, b, tt.a, tt.b)
		}
	}
}

// FuzzDpipeArgs splits NUL-separated argument lists as dpipe does: options, then the
// chain, then the wiring. Nothing may panic, the input stays as it was, and a chain that
// is accepted is the words cut at separators, wired with every pipe end used once.
func FuzzDpipeArgs(f *testing.F) {
	for _, s := range []string{
		"a\x00=\x00b",
		"-p\x00f\x00a\x00=\x00b\x00=\x00c",
		"a\x00=}\x00b\x00}=\x00c",
		"echo\x00\x00=\x00cat",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\x00")
		orig := slices.Clone(args)
		o := parseDpipeOptions(args)
		if len(o.Words) > len(args) || !slices.Equal(o.Words, args[len(args)-len(o.Words):]) {
			t.Fatalf("words %q are not a tail of %q", o.Words, args)
		}
		cmds, err := splitDpipeChain(o.Words)
		if !slices.Equal(args, orig) {
			t.Fatalf("input modified: %q -> %q", orig, args)
		}
		if err != nil {
			if !errors.Is(err, errDpipeUsage) || cmds != nil {
				t.Fatalf("splitDpipeChain(%q) = %v, %v", o.Words, cmds, err)
			}
			return
		}
		if len(cmds) < 2 || cmds[0].Flow != flowBoth {
			t.Fatalf("splitDpipeChain(%q) = %v", o.Words, cmds)
		}
		// The words are the commands with one separator between each two.
		i := 0
		for k, c := range cmds {
			if len(c.Argv) == 0 {
				t.Fatalf("splitDpipeChain(%q): empty command %d", o.Words, k)
			}
			if !slices.Equal(c.Argv, o.Words[i:i+len(c.Argv)]) {
				t.Fatalf("splitDpipeChain(%q): command %d %q is not words[%d:]", o.Words, k, c.Argv, i)
			}
			for _, w := range c.Argv {
				if strings.HasPrefix(w, "=") {
					t.Fatalf("splitDpipeChain(%q): separator %q inside command %d", o.Words, w, k)
				}
			}
			i += len(c.Argv)
			if k == len(cmds)-1 {
				break
			}
			sep := o.Words[i]
			if !strings.HasPrefix(sep, "=") && !(len(sep) >= 2 && (sep[0] == '{' || sep[0] == '}') && sep[1] == '=') {
				t.Fatalf("splitDpipeChain(%q): %q taken as a separator", o.Words, sep)
			}
			i++
		}
		if i != len(o.Words) {
			t.Fatalf("splitDpipeChain(%q): %d words used", o.Words, i)
		}
		fds, n := planDpipeWiring(cmds)
		checkDpipeWiring(t, cmds, fds, n)
	})
}
