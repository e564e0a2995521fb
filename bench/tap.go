package main

// The TAP row of `make bench`: iperf3 TCP between two network namespaces on TAPs of one
// switch. Namespace A holds the switch's own -t TAP (the switch runs under `ip netns exec
// A`, so the TAP is born there); namespace B holds the TAP of a vde_plug2tap attached to
// the switch. The pair is ours (vde_switch + vde_plug2tap links to bin/vde) or Debian's
// (/usr/bin/vde_switch + /usr/bin/vde_plug2tap). Needs root, iproute2 and iperf3.
//
// Hook it into main.go's round loop with, per round and pair,
//
//	r, err := tapRound(ctx, tapPair{"ours", cfg.ours, "bin/vde_plug2tap"}, round, 5*time.Second)
//
// or run all rounds of both pairs, alternating, with
//
//	sums, err := runTapBench(ctx, ours, debian, cfg.rounds, 5*time.Second, os.Stdout)
//
// and print sums (tapSummary.String) under the frames/s table.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// tapPair is the switch and vde_plug2tap of one implementation.
type tapPair struct {
	name     string // "ours" or "debian"
	sw       string // vde_switch binary
	plug2tap string // vde_plug2tap binary
}

// tapResult is one iperf3 run.
type tapResult struct {
	bitsPerSec  float64 // received by the server, per second
	retransmits int     // TCP retransmissions the client counted
}

// tapSummary is the TAP row: receive rates over the rounds of both pairs.
type tapSummary struct {
	ours, debian []float64 // bits/s per round
}

func (s tapSummary) String() string {
	mo, md := median(s.ours), median(s.debian)
	r := medianRatio(mo, md)
	return fmt.Sprintf("iperf3 TCP over TAPs of one switch (-t + vde_plug2tap): ours median %.0f Mbit/s (%d rounds), debian median %.0f Mbit/s (%d rounds), ours/debian %s",
		mo/1e6, len(s.ours), md/1e6, len(s.debian), r)
}

// runTapBench runs rounds of both pairs alternately and reports each run on w.
func runTapBench(ctx context.Context, ours, debian tapPair, rounds int, dur time.Duration, w io.Writer) (tapSummary, error) {
	var s tapSummary
	for round := 1; round <= rounds; round++ {
		for _, p := range []tapPair{ours, debian} {
			r, err := tapRound(ctx, p, round, dur)
			if err != nil {
				return s, fmt.Errorf("tap round %d, %s: %w", round, p.name, err)
			}
			fmt.Fprintf(w, "round %d/%d  %-6s tap  %8.0f Mbit/s  (%d retransmits)\n", round, rounds, p.name, r.bitsPerSec/1e6, r.retransmits)
			if p.name == ours.name {
				s.ours = append(s.ours, r.bitsPerSec)
			} else {
				s.debian = append(s.debian, r.bitsPerSec)
			}
		}
	}
	return s, nil
}

// tapRound sets up the two namespaces, the switch with its TAP and the vde_plug2tap, runs
// iperf3 for dur from B to A, and tears everything down.
func tapRound(ctx context.Context, p tapPair, round int, dur time.Duration) (res tapResult, err error) {
	if os.Geteuid() != 0 {
		return res, errors.New("needs root (network namespaces, TAP devices)")
	}
	for _, tool := range []string{"ip", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			return res, fmt.Errorf("needs %s: %w", tool, err)
		}
	}
	nsA, nsB, delNS, err := netnsPair(ctx, "vdebench", round)
	if err != nil {
		return res, err
	}
	defer delNS()
	tapA, tapB := fmt.Sprintf("vba%x", os.Getpid()&0xfffff), fmt.Sprintf("vbb%x", os.Getpid()&0xfffff)

	sw, err := startNetnsSwitch(ctx, p.sw, nsA, tapA, false)
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := sw.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	plug, err := startBg(ctx, "ip", "netns", "exec", nsB, p.plug2tap, "-s", sw.ctlDir, tapB)
	if err != nil {
		return res, err
	}
	defer plug.stop()

	if err := upHosts(ctx, nsDev{nsA, tapA, "10.77.0.1/24"}, nsDev{nsB, tapB, "10.77.0.2/24"}); err != nil {
		return res, fmt.Errorf("%w; switch output:\n%s", err, sw.out.String())
	}
	if err := waitPing(ctx, nsB, "10.77.0.1", 20*time.Second); err != nil {
		return res, err
	}

	return iperfTCP(ctx, nsA, nsB, "10.77.0.1", dur)
}

// nsDev is a network device in a namespace, and the address it gets.
type nsDev struct{ ns, dev, cidr string }

// upHosts waits for each host's device to appear, gives it its address and brings it up.
func upHosts(ctx context.Context, hosts ...nsDev) error {
	for _, h := range hosts {
		if err := waitLink(ctx, h.ns, h.dev, 10*time.Second); err != nil {
			return err
		}
		if err := ipCmd(ctx, "-n", h.ns, "addr", "add", h.cidr, "dev", h.dev); err != nil {
			return err
		}
		if err := ipCmd(ctx, "-n", h.ns, "link", "set", h.dev, "up"); err != nil {
			return err
		}
	}
	return nil
}

// iperfTCP runs an iperf3 server on addr in namespace srvNS and a client in cliNS that
// sends to it for dur, and returns what the server received.
func iperfTCP(ctx context.Context, srvNS, cliNS, addr string, dur time.Duration) (tapResult, error) {
	var res tapResult
	port := strconv.Itoa(20000 + rand.IntN(20000))
	srv, err := startBg(ctx, "ip", "netns", "exec", srvNS, "iperf3", "-s", "-1", "-B", addr, "-p", port)
	if err != nil {
		return res, err
	}
	defer srv.stop()
	secs := strconv.Itoa(max(1, int(dur/time.Second)))
	var out []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", cliNS, "iperf3", "-c", addr, "-p", port, "-t", secs, "-J", "--connect-timeout", "2000")
		out, err = cmd.Output()
		// iperf3 -J may exit 0 and report the failure in "error".
		if !strings.Contains(string(out), "unable to connect") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the server is not listening yet
	}
	var j struct {
		End struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(out, &j); jerr != nil || j.Error != "" || err != nil {
		return res, fmt.Errorf("iperf3 client: %v %s %v\n%s", err, j.Error, jerr, out)
	}
	return tapResult{bitsPerSec: j.End.SumReceived.BitsPerSecond, retransmits: j.End.SumSent.Retransmits}, nil
}

// startNetnsSwitch runs `ip netns exec ns bin -s DIR/sw.ctl -t tap` as startSwitch runs a
// switch (temp dir, stdin pipe kept open, reaped on exit) and waits for its ctl socket;
// session as for startSwitchCmd.
func startNetnsSwitch(ctx context.Context, bin, ns, tap string, session bool) (*switchProc, error) {
	return startSwitchCmd(ctx, bin, []string{"ip", "netns", "exec", ns}, session, "-t", tap)
}

// bgProc is a helper process (vde_plug2tap, iperf3 server) stopped by PID.
type bgProc struct {
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{}
}

func startBg(ctx context.Context, name string, args ...string) (*bgProc, error) {
	return startBgAttr(ctx, &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}, name, args...)
}

// startDaemonBg is startBg for a process that runs as a daemon would (daemonAttr).
func startDaemonBg(ctx context.Context, name string, args ...string) (*bgProc, error) {
	return startBgAttr(ctx, daemonAttr(), name, args...)
}

func startBgAttr(ctx context.Context, attr *syscall.SysProcAttr, name string, args ...string) (*bgProc, error) {
	b := &bgProc{cmd: exec.Command(name, args...), out: &tailBuffer{}, done: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	b.cmd.SysProcAttr = attr
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	reap.addProc(b.cmd.Process)
	go func() {
		b.cmd.Wait()
		reap.delProc(b.cmd.Process)
		close(b.done)
	}()
	return b, nil
}

func (b *bgProc) stop() {
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		b.cmd.Process.Signal(syscall.SIGKILL)
		<-b.done
	}
}

// netnsPair makes namespaces PREFIX-a-PID-ROUND and PREFIX-b-PID-ROUND with their
// loopback up; del removes them (also those made before a failure).
func netnsPair(ctx context.Context, prefix string, round int) (a, b string, del func(), err error) {
	id := fmt.Sprintf("%d-%d", os.Getpid(), round)
	a, b = prefix+"-a-"+id, prefix+"-b-"+id
	var made []string
	del = func() {
		for _, ns := range made {
			ipCmd(context.Background(), "netns", "del", ns)
		}
	}
	for _, ns := range []string{a, b} {
		if err := ipCmd(ctx, "netns", "add", ns); err != nil {
			del()
			return "", "", nil, err
		}
		made = append(made, ns)
		if err := ipCmd(ctx, "-n", ns, "link", "set", "lo", "up"); err != nil {
			del()
			return "", "", nil, err
		}
	}
	return a, b, del, nil
}

func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func waitLink(ctx context.Context, ns, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := exec.CommandContext(ctx, "ip", "-n", ns, "link", "show", name).Run()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("TAP %s did not appear in %s within %v", name, ns, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitPing(ctx context.Context, ns, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "ping", "-n", "-c", "1", "-W", "1", addr).CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("no ping answer from %s in %s within %v: %s", addr, ns, timeout, out)
		}
	}
}
