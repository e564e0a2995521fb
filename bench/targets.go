package main

// The targets of the performance issue, checked against this run's own figures, each with
// what bounds it in the same run: the batched relay (the least a switch's receive and send
// cost), the kernel's share of the switch's CPU, the bare-socketpair ceiling. A missed
// target then says what holds it, not just its number.

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// target is one line of the targets table.
type target struct {
	name  string
	got   float64 // ours/debian (or ours alone), median of per-round ratios
	unit  string  // "×" or " MiB"
	want  float64
	below bool   // met when got <= want (CPU, latency, memory); else got >= want
	bound string // what this run says bounds it
}

func (t target) met() string {
	switch {
	case math.IsNaN(t.got):
		return "not measured"
	case t.below && t.got <= t.want, !t.below && t.got >= t.want:
		return "yes"
	}
	return "no"
}

func (t target) cells() []string {
	cmp := "≥"
	if t.below {
		cmp = "≤"
	}
	got := "—"
	if !math.IsNaN(t.got) {
		got = fmt.Sprintf("%.2f%s", t.got, t.unit)
	}
	return []string{t.name, fmt.Sprintf("%s %.2f%s", cmp, t.want, t.unit), got, t.met(), t.bound}
}

// targets lists the targets with this run's figures; slirp may be nil (not run).
func (s *suite) targets(slirp *slirpSummary) []target {
	med := func(v []float64) float64 { return fstatsOf(v).median }
	var cpuTs, uniTs []target // the targets at 64 B and 1500 B, listed in this order
	for _, rr := range s.relay {
		if rr.size != 64 && rr.size != 1500 {
			continue
		}
		cpu, fps := s.m[fmt.Sprintf("cpu/uni/%d", rr.size)], s.m[fmt.Sprintf("uni/%d", rr.size)]
		kern := s.m[fmt.Sprintf("kern/uni/%d", rr.size)]
		got, _ := ratios(cpu.vals["ours"], cpu.vals["debian"])
		floor, _ := ratios(rr.cpu, cpu.vals["debian"])
		cpuTs = append(cpuTs, target{
			name: fmt.Sprintf("switch CPU per forwarded frame, A→B %d B", rr.size), got: got, unit: "×", want: 0.5, below: true,
			bound: fmt.Sprintf("the batched relay costs %s Debian's; kernel share of the CPU: ours %.1f%%, Debian's %.1f%%, the relay's %.1f%%",
				ratio(floor), med(kern.vals["ours"]), med(kern.vals["debian"]), med(rr.kern)),
		})
		got, _ = ratios(fps.vals["ours"], fps.vals["debian"])
		relay, _ := ratios(rr.fps, fps.vals["debian"])
		uniTs = append(uniTs, target{
			name: fmt.Sprintf("unicast frames/s, A→B %d B", rr.size), got: got, unit: "×", want: 1.3,
			bound: fmt.Sprintf("the batched relay moves %s Debian's frames/s; ours is %s of the socketpair ceiling",
				ratio(relay), ratio(s.ceilingFraction(fmt.Sprintf("uni/%d", rr.size)))),
		})
	}
	ts := append(cpuTs, uniTs...)
	for _, size := range multiSizes {
		key := fmt.Sprintf("4x4/%d", size)
		fps := s.m[key]
		got, _ := ratios(fps.vals["ours"], fps.vals["debian"])
		cpu := s.m[fmt.Sprintf("cpu/4x4/%d", size)]
		cpuR, _ := ratios(cpu.vals["ours"], cpu.vals["debian"])
		ts = append(ts, target{
			name: fmt.Sprintf("%d→%d frames/s, %d B", fourPairs, fourPairs, size), got: got, unit: "×", want: 1.3,
			bound: fmt.Sprintf("CPU per frame %s Debian's, %.1f%% of it the kernel's; ours is %s of the ceiling of %d socketpairs",
				ratio(cpuR), med(s.m[fmt.Sprintf("kern/4x4/%d", size)].vals["ours"]), ratio(s.ceilingFraction(key)), fourPairs),
		})
	}
	p50, _ := ratios(s.m["lat/p50"].vals["ours"], s.m["lat/p50"].vals["debian"])
	p99, _ := ratios(s.m["lat/p99"].vals["ours"], s.m["lat/p99"].vals["debian"])
	ts = append(ts, target{name: "round trip p99", got: p99, unit: "×", want: 1, below: true,
		bound: fmt.Sprintf("p50: %s", ratio(p50))})
	ts = append(ts, target{name: fmt.Sprintf("VmRSS with %d ports", s.cfg.rssPorts), got: med(s.m["rss/full"].vals["ours"]),
		unit: " MiB", want: 64, below: true, bound: ""})
	if slirp != nil {
		ts = append(ts, slirp.targets()...)
	}
	return ts
}

// targets are the slirp rows' targets that this run measured: host→guest of our switch's
// TAP against Debian's and slirp4netns, and, with a per-frame guest (Debian's vde_plug
// tap://), on our switch against slirp4netns and on Debian's switch against Debian's
// slirpvde. Each names the other routers' figures of the same run as what bounds it, first
// the per-frame path with the host's kernel as the router (vp-kernel, vp-kernel-dsw).
func (s *slirpSummary) targets() []target {
	stream := func(rev bool) slirpCase { return slirpCase{reverse: rev, method: "stream"} }
	var ts []target
	add := func(name, ours, other string, c slirpCase, want float64, bound string) {
		if s.samples[ours] == nil || s.samples[other] == nil {
			return
		}
		ts = append(ts, target{name: name, got: perRoundRatio(s.samples[ours][c], s.samples[other][c]), unit: "×", want: want, bound: bound})
	}
	mbit := func(router string, c slirpCase) string {
		if s.samples[router] == nil {
			return "—"
		}
		st := slirpStatsOf(s.samples[router][c])
		if st.n == 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f", st.median/1e6)
	}
	// kernel names the per-frame path's bound: the same guest, plug and switch with the
	// host's kernel as the router, its Mbit/s, its ratio to the target's reference, and its
	// processes' CPU per MB.
	kernel := func(k, other string, c slirpCase) string {
		if s.samples[k] == nil {
			return k + " not run"
		}
		return fmt.Sprintf("bound, the kernel as router (%s): %s Mbit/s = %s %s, CPU per MB %s", k, mbit(k, c),
			ratio(perRoundRatio(s.samples[k][c], s.samples[other][c])), other, s.cpu(k, c))
	}
	add("slirp TCP host→guest (stream) over Debian's slirpvde", slirpOurs, slirpDebian, stream(true), 3, "")
	add("slirp TCP host→guest (stream) over slirp4netns", slirpOurs, slirpSlirp4netns, stream(true), 1, "")
	for _, rev := range []bool{false, true} {
		c := stream(rev)
		want := 1.5
		if rev {
			want = 1
		}
		// slirp4netns writes the guest's TAP itself; the per-frame guest's frames cross
		// Debian's vde_plug and the switch: the plug alone with our router (ours-plug, no
		// switch, GSO TAP) and our switch's own TAP (ours) tell the hops' costs apart.
		add(fmt.Sprintf("slirp per-frame guest on our switch, TCP %s (stream) over slirp4netns", c.path()), slirpVPOurs, slirpSlirp4netns, c, want,
			fmt.Sprintf("%s; median Mbit/s: vp-ours %s, slirp4netns %s, ours (switch -t TAP) %s, ours-plug %s; CPU per MB: vp-ours %s, slirp4netns %s",
				kernel(slirpVPKernel, slirpSlirp4netns, c),
				mbit(slirpVPOurs, c), mbit(slirpSlirp4netns, c), mbit(slirpOurs, c), mbit(slirpOursPlug, c), s.cpu(slirpVPOurs, c), s.cpu(slirpSlirp4netns, c)))
	}
	for _, rev := range []bool{false, true} {
		c := stream(rev)
		add(fmt.Sprintf("slirp per-frame guest on Debian's switch, TCP %s (stream) over Debian's slirpvde", c.path()), slirpVPOursDSw, slirpVPDebian, c, 3,
			fmt.Sprintf("%s; median Mbit/s: vp-ours-dsw %s, vp-debian %s, vp-ours (our switch) %s; CPU per MB: vp-ours-dsw %s, vp-debian %s",
				kernel(slirpVPKernelDSw, slirpVPDebian, c), mbit(slirpVPOursDSw, c), mbit(slirpVPDebian, c), mbit(slirpVPOurs, c), s.cpu(slirpVPOursDSw, c), s.cpu(slirpVPDebian, c)))
	}
	return ts
}

// ceilingFraction is the median of the per-round fractions ours/ceiling for the metric key.
func (s *suite) ceilingFraction(key string) float64 {
	for _, c := range s.ceiling {
		if c.key == key {
			f, _ := ratios(s.m[key].vals["ours"], c.vals)
			return f
		}
	}
	return math.NaN()
}

var targetHead = []string{"target", "wanted (ours/debian)", "this run", "met", "what bounds it, in this run"}

func printTargets(w io.Writer, ts []target) {
	fmt.Fprintln(w, "targets of the performance issue (medians of per-round ratios):")
	var rows [][]string
	for _, t := range ts {
		rows = append(rows, t.cells())
	}
	printRows(w, targetHead, rows)
}

func targetsMarkdown(ts []target) string {
	var b strings.Builder
	b.WriteString("\n## Targets\n\n")
	b.WriteString("The performance issue's targets against this run's figures (medians of the per-round " +
		"ratios ours/debian; memory in MiB), each with what bounds it in the same run. The batched relay " +
		"and the socketpair ceiling are the tables above; the kernel's share is stime over utime+stime " +
		"of the process. The zero-allocation target is the Go benchmark's (`go test -bench . -benchmem " +
		"./switchcore/...`, the first command of `make bench`).\n\n")
	var rows [][]string
	for _, t := range ts {
		rows = append(rows, t.cells())
	}
	mdTable(&b, targetHead, "|---|---:|---:|---|---|", rows)
	return b.String()
}
