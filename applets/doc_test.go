package applets

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/vde-go/vde/switchcore/wire"
)

// TestManualsCoverApplets: every applet has a page (ifup-hook has its item in vde(1)),
// and every name a page answers to finds it.
func TestManualsCoverApplets(t *testing.T) {
	pages := appletManuals()
	for _, a := range All() {
		if a.Name == "ifup-hook" {
			continue
		}
		if pages[a.Name] == nil {
			t.Errorf("applet %s has no manual page (manuals.go)", a.Name)
		}
		for _, n := range append([]string{a.Name}, a.Aliases...) {
			if m, _ := findManual(n); m == nil || m.applet != a.Name {
				t.Errorf("vde --man %s does not find %s's page", n, a.Name)
			}
		}
	}
	// vde(1) has an item for every applet.
	vde, _ := findManual("vde")
	items := map[string]bool{}
	for _, b := range vde.description {
		if b.kind == 'i' {
			items[b.term] = true
		}
	}
	for _, a := range All() {
		if !items["**"+a.Name+"**"] {
			t.Errorf("vde(1) has no item for the applet %s (manuals.go)", a.Name)
		}
	}
}

// TestEveryOptionDocumented: an option without a Usage, or a value option whose Usage
// names no `PLACEHOLDER`, fails here.
func TestEveryOptionDocumented(t *testing.T) {
	for _, m := range manuals {
		for _, f := range m.flags {
			d := describeFlag(f)
			u, _ := f.(interface{ GetUsage() string })
			switch {
			case u == nil || strings.TrimSpace(u.GetUsage()) == "":
				t.Errorf("%s: option %v has no Usage", m.name, f.Names())
			case d.arg != "" && !strings.Contains(u.GetUsage(), "`"):
				t.Errorf("%s: option %v takes a value but its Usage %q names no `PLACEHOLDER`", m.name, f.Names(), u.GetUsage())
			}
		}
	}
	// vde_tunctl's parser reads an option string: each of its letters, and no other, has
	// an entry in tunctlFlags, with a value exactly when the string says so.
	documented := map[string]bool{}
	for _, f := range tunctlFlags {
		d := describeFlag(f)
		documented[d.shorts[0]] = d.arg != ""
	}
	for i := 0; i < len(tunctlOptString); i++ {
		c := string(tunctlOptString[i])
		if c == ":" {
			continue
		}
		hasArg := i+1 < len(tunctlOptString) && tunctlOptString[i+1] == ':'
		if v, ok := documented[c]; !ok {
			t.Errorf("vde_tunctl: -%s is not documented in tunctlFlags", c)
		} else if v != hasArg {
			t.Errorf("vde_tunctl: -%s: takes a value %v, documented %v", c, hasArg, v)
		}
		delete(documented, c)
	}
	for c := range documented {
		t.Errorf("vde_tunctl: -%s is documented but not in the option string %q", c, tunctlOptString)
	}
}

// TestURLPageCoversSchemes: every registered URL scheme has its item in vde_plug_url(7).
func TestURLPageCoversSchemes(t *testing.T) {
	terms := map[string]bool{}
	for _, b := range urlManual.description {
		if b.kind == 'i' {
			scheme, _, _ := strings.Cut(strings.TrimPrefix(b.term, "**"), "://")
			terms[scheme] = true
		}
	}
	if len(wire.Schemes()) < 10 {
		t.Fatalf("only %d schemes registered: %v", len(wire.Schemes()), wire.Schemes())
	}
	for _, s := range wire.Schemes() {
		if !terms[s] {
			t.Errorf("scheme %s:// is not documented in vde_plug_url(7) (manual_url.go)", s)
		}
	}
}

// optionToken finds the options a usage text or a page names: -x, --long, -long.
var optionToken = regexp.MustCompile(`(?:^|[\s\[|,(])(--?[A-Za-z0-9][A-Za-z0-9-]*)`)

// pageText is a page's roff with escapes and requests reduced to text, enough to find
// option names in.
func pageText(roff string) string {
	r := strings.NewReplacer(`\-`, "-", `\fB`, "", `\fI`, "", `\fR`, "", `\e`, `\`, `\&`, "")
	return r.Replace(roff)
}

// missingOptions returns the options the help text names that the page does not: a
// one-dash long option (-sock) is found as --sock too.
func missingOptions(help, page string) []string {
	have := map[string]bool{}
	for _, m := range optionToken.FindAllStringSubmatch(page, -1) {
		have[m[1]] = true
	}
	var missing []string
	for _, m := range optionToken.FindAllStringSubmatch(help, -1) {
		o := m[1]
		if !have[o] && !have["-"+o] {
			missing = append(missing, o)
		}
	}
	return missing
}

// TestPagesListHelpOptions: each page names every option its program's usage text names.
func TestPagesListHelpOptions(t *testing.T) {
	for _, m := range manuals {
		if m.applet == "" {
			continue
		}
		var help string
		if m.applet == "dpipe" {
			help = dpipeUsage // dpipe -h kills its own process group, this test with it
		} else {
			a, _ := Lookup(m.applet)
			var out bytes.Buffer
			a.Main(context.Background(), []string{"--help"}, Stdio{In: strings.NewReader(""), Out: &out, Err: &out})
			help = out.String()
		}
		var page bytes.Buffer
		if err := renderMan(&page, m); err != nil {
			t.Fatal(err)
		}
		if missing := missingOptions(help, pageText(page.String())); len(missing) > 0 {
			t.Errorf("%s(%d) does not name %v, which %s --help names:\n%s", m.name, m.section, missing, m.name, help)
		}
	}
}

// TestPagesRenderClean: groff finds nothing to warn about in any page.
func TestPagesRenderClean(t *testing.T) {
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("groff is not installed (Debian: groff-base)")
	}
	for _, m := range manuals {
		var page bytes.Buffer
		if err := renderMan(&page, m); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("groff", "-man", "-Tascii", "-ww", "-z")
		cmd.Stdin = &page
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff on %s(%d): %v\n%s", m.name, m.section, err, out)
		}
	}
}

func TestDocMainErrors(t *testing.T) {
	for _, args := range [][]string{{"--man"}, {"--man", "nosuchtool"}, {"--completion", "fish"}} {
		var out, errb bytes.Buffer
		err := DocMain(context.Background(), args, Stdio{Out: &out, Err: &errb})
		if ee, ok := err.(*ExitError); !ok || ee.Code != 2 || !strings.Contains(errb.String(), "usage: vde --man") {
			t.Errorf("DocMain(%q) = %v, stderr %q; want exit 2 with the usage", args, err, errb.String())
		}
	}
	var out bytes.Buffer
	if err := DocMain(context.Background(), []string{"--man", "unixcmd"}, Stdio{Out: &out}); err != nil || !strings.HasPrefix(out.String(), ".so man1/vdecmd.1\n.\\\" Generated by") {
		t.Errorf("vde --man unixcmd = %q, %v; want .so man1/vdecmd.1", out.String(), err)
	}
}

// TestCompletionScripts: both scripts parse, and name every option of every page.
func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh"} {
		var b bytes.Buffer
		if err := DocMain(context.Background(), []string{"--completion", sh}, Stdio{Out: &b}); err != nil {
			t.Fatalf("vde --completion %s: %v", sh, err)
		}
		script := b.String()
		for _, m := range manuals {
			if m.applet == "" {
				continue
			}
			for _, f := range m.flags {
				for _, n := range f.Names() {
					o := "--" + n
					if len(n) == 1 {
						o = "-" + n
					}
					if !strings.Contains(script, o) {
						t.Errorf("%s completion lacks %s's %s", sh, m.name, o)
					}
				}
			}
		}
		if _, err := exec.LookPath(sh); err != nil {
			t.Logf("%s is not installed: not parsed", sh)
			continue
		}
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -n on vde --completion %s: %v\n%s", sh, sh, err, out)
		}
	}
}
