package main

import (
	"fmt"
	"io"
	"math"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// stats is min/median/max of one implementation's figures for one frame size.
type stats struct {
	n                int     // rounds with a figure
	truncated        int     // rounds where the switch cut the frames
	failed           int     // rounds with an error
	min, median, max float64 // frames/s
}

func (s stats) String() string {
	switch {
	case s.n == 0 && s.truncated > 0:
		return "truncates"
	case s.n == 0:
		return "failed"
	}
	return fmt.Sprintf("%s / %s / %s", thousands(s.min), thousands(s.median), thousands(s.max))
}

// row is one frame size in the table.
type row struct {
	size           int
	ours, debian   stats
	medianOfRatios float64 // median over rounds of ours/debian; NaN without pairs
	ratioOfMedians float64 // NaN without both medians
	pairs          int     // rounds that gave a ratio
}

func summarize(cfg *config, res measurements) []row {
	var rows []row
	for _, size := range cfg.sizes {
		o, d := res["ours"][size], res["debian"][size]
		r := row{size: size, ours: statsOf(o), debian: statsOf(d), medianOfRatios: math.NaN(), ratioOfMedians: math.NaN()}
		var ratios []float64
		for i := range min(len(o), len(d)) {
			if o[i].ok() && d[i].ok() && d[i].fps > 0 {
				ratios = append(ratios, o[i].fps/d[i].fps)
			}
		}
		r.pairs = len(ratios)
		if len(ratios) > 0 {
			r.medianOfRatios = median(ratios)
		}
		if r.ours.n > 0 && r.debian.n > 0 && r.debian.median > 0 {
			r.ratioOfMedians = r.ours.median / r.debian.median
		}
		rows = append(rows, r)
	}
	return rows
}

func statsOf(rs []result) stats {
	var s stats
	var v []float64
	for _, r := range rs {
		switch {
		case r.truncated:
			s.truncated++
		case r.err != nil:
			s.failed++
		default:
			v = append(v, r.fps)
		}
	}
	s.n = len(v)
	if s.n > 0 {
		s.min, s.max, s.median = slices.Min(v), slices.Max(v), median(v)
	}
	return s
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// medianRatio is ours/debian of two medians for the one-line summaries (cable, TAP), or
// "n/a" when Debian's median is zero (no rounds, or nothing got through).
func medianRatio(ours, debian float64) string {
	if debian > 0 {
		return fmt.Sprintf("%.2f", ours/debian)
	}
	return "n/a"
}

func ratio(x float64) string {
	if math.IsNaN(x) {
		return "—"
	}
	return fmt.Sprintf("%.2f×", x)
}

// thousands formats a rate as an integer with thin grouping commas.
func thousands(x float64) string {
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func notes(s stats) string {
	var p []string
	if s.failed > 0 {
		p = append(p, fmt.Sprintf("%d failed", s.failed))
	}
	if s.truncated > 0 && s.n > 0 {
		p = append(p, fmt.Sprintf("%d truncated", s.truncated))
	}
	if len(p) == 0 {
		return ""
	}
	return " (" + strings.Join(p, ", ") + ")"
}

const (
	headOurs   = "ours frames/s min / median / max"
	headDebian = "debian frames/s min / median / max"
	headMoR    = "ours/debian: median of per-round ratios"
	headRoM    = "ratio of medians"
)

func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "frame\t%s\t%s\t%s\t%s\n", headOurs, headDebian, headMoR, headRoM)
	for _, r := range rows {
		fmt.Fprintf(tw, "%d B\t%s%s\t%s%s\t%s\t%s\n", r.size, r.ours, notes(r.ours), r.debian, notes(r.debian),
			ratio(r.medianOfRatios), ratio(r.ratioOfMedians))
	}
	tw.Flush()
}

func markdown(cfg *config, env, cmdline string, rows []row, res measurements) string {
	var b strings.Builder
	b.WriteString("# Switch benchmark: unicast frames/s, port A → port B\n\n")
	fmt.Fprintf(&b, "Each round starts a fresh switch of each implementation (ours first in odd rounds, Debian's first in even ones), "+
		"attaches two ports over the VDE unix-socket protocol, lets the switch learn both MACs, then "+
		"blasts frames of each size from A for %v (after %v of warm-up) and counts the frames that "+
		"arrive at B. Figures are frames received at B per second over %d rounds; "+
		"the ratio column is the median of the per-round ratios ours/debian.\n\n",
		cfg.duration, cfg.warmup, cfg.rounds)
	fmt.Fprintf(&b, "| frame | %s | %s | %s | %s |\n", headOurs, headDebian, headMoR, headRoM)
	b.WriteString("|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d B | %s%s | %s%s | %s | %s |\n", r.size, r.ours, notes(r.ours), r.debian, notes(r.debian),
			ratio(r.medianOfRatios), ratio(r.ratioOfMedians))
	}
	b.WriteString("\nPer round (frames/s received at B):\n\n")
	b.WriteString("| frame | implementation |")
	for i := 1; i <= cfg.rounds; i++ {
		fmt.Fprintf(&b, " round %d |", i)
	}
	b.WriteString("\n|---:|---|" + strings.Repeat("---:|", cfg.rounds) + "\n")
	for _, size := range cfg.sizes {
		for _, name := range []string{"ours", "debian"} {
			fmt.Fprintf(&b, "| %d B | %s |", size, name)
			for _, r := range res[name][size] {
				switch {
				case r.truncated:
					b.WriteString(" truncates |")
				case r.err != nil:
					b.WriteString(" failed |")
				default:
					fmt.Fprintf(&b, " %s |", thousands(r.fps))
				}
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "\n%s\n\nReproduce with:\n\n```\nmake && %s\n```\n", env, cmdline)
	return b.String()
}

func numCPU() int { return runtime.NumCPU() }

// versions names the Go toolchain that built the benchmark (go run uses the same one) and,
// where dpkg knows it, the version of Debian's vde-switch package.
func versions() string {
	v := runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "vde-switch").Output(); err == nil && len(out) > 0 {
		v += ", Debian vde-switch " + strings.TrimSpace(string(out))
	}
	return v
}

// inRoundOrder is the order the implementations run in a round: as given in odd rounds,
// reversed in even ones, so that what a row's first run inherits from the one before it
// (a loaded machine, a switch still exiting, the bench's own garbage) falls on each in turn.
func inRoundOrder[T any](impls []T, round int) []T {
	if round%2 == 1 {
		return impls
	}
	r := slices.Clone(impls)
	slices.Reverse(r)
	return r
}
