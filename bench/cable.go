package main

// The cable row: two switches of one implementation joined by that implementation's
// `dpipe vde_plug A = vde_plug B` (the seed's tunnel without ssh), frames A→B across it.

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// cableImpl is the switch, dpipe and vde_plug of one implementation.
type cableImpl struct {
	name, sw, dpipe, plug string
}

// cableSummary holds frames/s and bit/s per round of each implementation.
type cableSummary struct {
	size                 int
	oursFPS, debianFPS   []float64
	oursBits, debianBits []float64
}

func (s cableSummary) String() string {
	mo, md := median(s.oursFPS), median(s.debianFPS)
	r := medianRatio(mo, md)
	return fmt.Sprintf("dpipe'd vde_plug cable between two switches, %d B frames: ours median %s frames/s (%.0f Mbit/s), debian median %s frames/s (%.0f Mbit/s), ours/debian %s (%d rounds)",
		s.size, thousands(mo), median(s.oursBits)/1e6, thousands(md), median(s.debianBits)/1e6, r, len(s.oursFPS))
}

func runCableBench(ctx context.Context, cfg *config, impls [2]cableImpl, size int, w io.Writer) (cableSummary, error) {
	return linkRounds(ctx, cfg, [2]string{impls[0].name, impls[1].name}, size, w, "cable", func(i int) (result, error) {
		return cableOnce(ctx, cfg, impls[i], size)
	})
}

func cableOnce(ctx context.Context, cfg *config, im cableImpl, size int) (result, error) {
	return linkOnce(ctx, cfg, im.sw, size, func(a, b *switchProc) *exec.Cmd {
		return exec.Command(im.dpipe, im.plug, a.ctlDir, "=", im.plug, b.ctlDir)
	})
}

// openCablePair dials A on one switch and B on the other and waits (up to 10 s) until
// the cable between them carries the learning frames.
func openCablePair(ctx context.Context, swA, swB *switchProc) (*pair, error) {
	p := &pair{sw: swA}
	var err error
	if p.a, err = wire.Dial(swA.ctlDir, wire.DialOptions{Description: "bench-A"}); err != nil {
		return nil, fmt.Errorf("dial A: %w", err)
	}
	if p.b, err = wire.Dial(swB.ctlDir, wire.DialOptions{Description: "bench-B"}); err != nil {
		p.a.Close()
		return nil, fmt.Errorf("dial B: %w", err)
	}
	p.rxA, p.rxB = startCounter(p.a.Datagram), startCounter(p.b.Datagram)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := p.learn(ctx)
		if err == nil {
			return p, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.close()
			return nil, fmt.Errorf("cable: %w", err)
		}
	}
}

func cableImpls(cfg *config) [2]cableImpl {
	dir := filepath.Dir(cfg.ours)
	return [2]cableImpl{
		{"ours", cfg.ours, filepath.Join(dir, "dpipe"), filepath.Join(dir, "vde_plug")},
		{"debian", cfg.debian, "/usr/bin/dpipe", "/usr/bin/vde_plug"},
	}
}
