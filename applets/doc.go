package applets

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// The manual pages and shell completions are rendered from the option tables the parsers
// use (switchFlags, plugFlags, ...), with each flag's Usage as its one-line description,
// so an option cannot be added without its documentation (doc_test.go fails on a flag
// without Usage, or a value flag whose Usage names no `PLACEHOLDER`). The prose around
// the options lives in manuals.go. `vde --man NAME` prints a page and
// `vde --completion bash|zsh` a completion script; `make install` writes both.

// manual is the documentation of one program: its man page's prose around the options
// its parser declares.
type manual struct {
	// applet is the registry name of the program ("switch"); empty for a page that is no
	// applet's (vde(1), vde_plug_url(7)).
	applet string
	// name is the page's name: the name make install gives the program (vde_switch).
	name string
	// section is the manual section: 1 for programs, 7 for the URL schemes.
	section int
	// aliases are other names make install gives the program; each gets a page that
	// sources this one (.so), and `vde --man ALIAS` prints it.
	aliases []string
	// summary is the NAME line's text after "name \-".
	summary string
	// synopsis lines, each starting with the program's name; **bold** and __italic__.
	synopsis []string
	// description is the DESCRIPTION section.
	description []block
	// flags is the parser's option table, rendered as the OPTIONS section.
	flags []cli.Flag
	// longOnly says the parser is getopt_long_only's (one-dash long options, prefixes):
	// the OPTIONS section says so.
	longOnly bool
	// sections follow OPTIONS (EXAMPLES, FILES, EXIT STATUS, ...).
	sections []section
	// seeAlso are page references, "vde_plug(1)".
	seeAlso []string
}

// section is a titled part of a page.
type section struct {
	title  string
	blocks []block
}

// block is one paragraph-level element of a page.
type block struct {
	kind byte // 'p' paragraph, 'e' example (no fill), 'i' tagged item, 's' subheading
	term string
	text string
}

// para is a filled paragraph; **bold** and __italic__ mark words.
func para(s string) block { return block{kind: 'p', text: s} }

// example is a verbatim block (commands, file contents).
func example(s string) block { return block{kind: 'e', text: s} }

// subsection is a heading inside a section.
func subsection(title string) block { return block{kind: 's', text: title} }

// item is a tagged paragraph: term on its line, text indented below.
func item(term, text string) block { return block{kind: 'i', term: term, text: text} }

// manuals are every page, registered from manuals.go.
var manuals []*manual

// findManual returns the manual for a page name, an alias of one, or an applet's name
// or alias (vde-switch finds vde_switch's); alias says the name is not the page's own.
func findManual(name string) (m *manual, alias bool) {
	for _, m := range manuals {
		if m.name == name {
			return m, false
		}
	}
	for _, m := range manuals {
		for _, a := range m.aliases {
			if a == name {
				return m, true
			}
		}
	}
	if a, _, ok := ForName(name); ok {
		for _, m := range manuals {
			if m.applet == a.Name {
				return m, true
			}
		}
	}
	return nil, false
}

const docUsage = `usage: vde --man NAME              print the manual page of NAME (vde, vde_switch, ..., vde_plug_url)
       vde --completion bash|zsh    print the shell completion script
`

// DocMain is `vde --man NAME` and `vde --completion SHELL`; args start
// with the option.
func DocMain(ctx context.Context, args []string, stdio Stdio) error {
	bad := func(msg string) error {
		fmt.Fprintf(stdio.Err, "vde: %s\n%s", msg, docUsage)
		return exit(2)
	}
	switch {
	case len(args) == 2 && args[0] == "--man":
		m, alias := findManual(args[1])
		if m == nil {
			return bad(fmt.Sprintf("no manual page for '%s'", args[1]))
		}
		if alias {
			// .so first: man-db and groff take such a page as a link to the other.
			fmt.Fprintf(stdio.Out, ".so man%d/%s.%d\n%s", m.section, m.name, m.section, generatedMark(args[1]))
			return nil
		}
		return renderMan(stdio.Out, m)
	case len(args) == 2 && args[0] == "--completion":
		switch args[1] {
		case "bash":
			return renderBash(stdio.Out)
		case "zsh":
			return renderZsh(stdio.Out)
		}
		return bad(fmt.Sprintf("no completion for shell '%s' (bash, zsh)", args[1]))
	}
	return bad("bad arguments")
}

// flagDoc is what the pages and completions need of one option.
type flagDoc struct {
	shorts, longs []string // names without dashes
	// dash is what a long name is written with: "--", or "-" for a program that reads
	// its long options with one dash only (vdeq's -sock).
	dash string
	// arg is the value's placeholder (FILE); empty for a flag without a value.
	arg string
	// optArg: the value is optional and only given as --long=VALUE.
	optArg bool
	// usage is the description without the placeholder's backquotes.
	usage string
}

// describeFlag reads a flag of an option table: its names, its value's placeholder from
// the `backquoted` word of its Usage (as urfave/cli's help does), its description.
func describeFlag(f cli.Flag) flagDoc {
	d := flagDoc{dash: "--"}
	if od, ok := f.(interface{ oneDash() bool }); ok && od.oneDash() {
		d.dash = "-"
	}
	for _, n := range f.Names() {
		if len(n) == 1 {
			d.shorts = append(d.shorts, n)
		} else {
			d.longs = append(d.longs, n)
		}
	}
	var usage string
	if u, ok := f.(interface{ GetUsage() string }); ok {
		usage = u.GetUsage()
	}
	placeholder := ""
	if i := strings.IndexByte(usage, '`'); i >= 0 {
		if j := strings.IndexByte(usage[i+1:], '`'); j >= 0 {
			placeholder = usage[i+1 : i+1+j]
			usage = usage[:i] + placeholder + usage[i+2+j:]
		}
	}
	d.usage = usage
	takes := false
	if tv, ok := f.(interface{ TakesValue() bool }); ok {
		takes = tv.TakesValue()
	}
	if oa, ok := f.(interface{ optionalArg() bool }); ok && oa.optionalArg() {
		takes, d.optArg = true, true
	}
	if takes {
		d.arg = placeholder
		if d.arg == "" {
			d.arg = "VALUE"
		}
	}
	return d
}

// roffEscape makes text safe for roff: backslashes, hyphens (minus signs, so options
// can be copied), and a leading dot or quote.
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}

// roffInline escapes text and turns **bold** and __italic__ into font changes.
func roffInline(s string) string {
	s = roffEscape(s)
	for _, m := range []struct{ mark, font string }{{"**", `\fB`}, {"__", `\fI`}} {
		for {
			i := strings.Index(s, m.mark)
			if i < 0 {
				break
			}
			j := strings.Index(s[i+2:], m.mark)
			if j < 0 {
				break
			}
			s = s[:i] + m.font + s[i+2:i+2+j] + `\fR` + s[i+4+j:]
		}
	}
	return s
}

// optionTerm is an option's names as the OPTIONS section shows them:
// "-s, --sock, --unix DIR".
func optionTerm(d flagDoc) string {
	var names []string
	for _, s := range d.shorts {
		names = append(names, `\fB\-`+s+`\fR`)
	}
	for _, l := range d.longs {
		names = append(names, `\fB`+roffEscape(d.dash+l)+`\fR`)
	}
	t := strings.Join(names, ", ")
	switch {
	case d.optArg && len(d.longs) > 0:
		t += `[\fB=\fR\fI` + roffEscape(d.arg) + `\fR]`
	case d.arg != "":
		t += ` \fI` + roffEscape(d.arg) + `\fR`
	}
	return t
}

func writeBlocks(w io.Writer, blocks []block) {
	for _, b := range blocks {
		switch b.kind {
		case 'p':
			fmt.Fprintf(w, ".PP\n%s\n", roffInline(b.text))
		case 'e':
			fmt.Fprintf(w, ".PP\n.RS 4\n.nf\n%s\n.fi\n.RE\n", roffEscape(b.text))
		case 'i':
			fmt.Fprintf(w, ".TP\n%s\n%s\n", roffInline(b.term), roffInline(b.text))
		case 's':
			fmt.Fprintf(w, ".SS %s\n", roffInline(b.text))
		}
	}
}

// generatedMark is the comment line that starts every page we write; make uninstall
// removes only pages that carry it.
func generatedMark(name string) string {
	return fmt.Sprintf(".\\\" Generated by `vde --man %s` (vde %s) from its option tables; do not edit.\n", name, Version)
}

// renderMan writes m as a man(7) page.
func renderMan(w io.Writer, m *manual) error {
	title := strings.ToUpper(m.name)
	io.WriteString(w, generatedMark(m.name))
	fmt.Fprintf(w, ".TH %s %d \"\" \"vde %s\" \"VDE Manual\"\n", roffEscape(title), m.section, Version)
	// No hyphenation or justification: options stay whole and can be searched for.
	fmt.Fprintf(w, ".nh\n.ad l\n")
	names := append([]string{m.name}, m.aliases...)
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", roffEscape(strings.Join(names, ", ")), roffEscape(m.summary))
	if len(m.synopsis) > 0 {
		fmt.Fprintf(w, ".SH SYNOPSIS\n")
		for i, s := range m.synopsis {
			if i > 0 {
				fmt.Fprintf(w, ".br\n")
			}
			fmt.Fprintf(w, "%s\n", roffInline(s))
		}
	}
	if len(m.description) > 0 {
		fmt.Fprintf(w, ".SH DESCRIPTION\n")
		writeBlocks(w, m.description)
	}
	if len(m.flags) > 0 {
		fmt.Fprintf(w, ".SH OPTIONS\n")
		if m.longOnly {
			writeBlocks(w, []block{para("Options are read as the C tools' getopt_long_only(3) reads them: " +
				"a long option also works with one dash (**-" + firstLong(m.flags) + "**) and as any unique prefix of its name; " +
				"a short option's value may follow it in the same word (**-s/tmp/sw**), and short options without values may be bundled.")})
		}
		for _, f := range m.flags {
			d := describeFlag(f)
			fmt.Fprintf(w, ".TP\n%s\n%s\n", optionTerm(d), roffInline(d.usage))
		}
	}
	for _, s := range m.sections {
		fmt.Fprintf(w, ".SH %s\n", roffEscape(strings.ToUpper(s.title)))
		writeBlocks(w, s.blocks)
	}
	if len(m.seeAlso) > 0 {
		refs := make([]string, len(m.seeAlso))
		for i, r := range m.seeAlso {
			name, sec, _ := strings.Cut(r, "(")
			refs[i] = `\fB` + roffEscape(name) + `\fR(` + sec
		}
		fmt.Fprintf(w, ".SH SEE ALSO\n%s\n", strings.Join(refs, ",\n"))
	}
	_, err := fmt.Fprintf(w, ".SH BUGS\nReport bugs at https://github.com/vde\\-go/vde/issues.\n")
	return err
}

// firstLong is the first long option of a table, for the OPTIONS section's example.
func firstLong(flags []cli.Flag) string {
	for _, f := range flags {
		if d := describeFlag(f); len(d.longs) > 0 && d.longs[0] != "help" {
			return d.longs[0]
		}
	}
	return "help"
}

// appletManuals is every page of an applet, by applet name, for the completions.
func appletManuals() map[string]*manual {
	out := map[string]*manual{}
	for _, m := range manuals {
		if m.applet != "" {
			out[m.applet] = m
		}
	}
	return out
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
