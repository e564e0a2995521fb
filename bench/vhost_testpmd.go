package main

// The vhost-user rows' frontend: one dpdk-testpmd with two virtio_user ports (vhostuser.go).

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// frontResult is one window of the frontend.
type frontResult struct {
	fps        float64    // both ports' Rx-pps summed
	pps        [2]float64 // each port's
	backCores  float64    // the backend's PIDs' CPU over the window, in cores
	backWait   float64    // the time their threads were runnable but not running, in cores
	frontCores float64
	busy       float64 // machine busy fraction
}

// testpmd runs one dpdk-testpmd at its interactive prompt with its stdout read as it
// comes (stdbuf -oL: testpmd's printf is otherwise buffered into a pipe).
type testpmd struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	prefix string
	mu     sync.Mutex
	out    strings.Builder
	done   chan struct{}
}

// startTestpmd runs `taskset -c cpu stdbuf -oL dpdk-testpmd EAL... -- -i app...`.
func startTestpmd(ctx context.Context, cpu int, prefix string, eal, app []string) (*testpmd, error) {
	args := []string{"-c", strconv.Itoa(cpu), "stdbuf", "-oL", "dpdk-testpmd",
		"--lcores", fmt.Sprintf("0@%d,1@%d", cpu, cpu), "--no-huge", "--no-pci", "--no-shconf", "--file-prefix", prefix}
	args = append(append(append(args, eal...), "--", "-i"), app...)
	t := &testpmd{cmd: exec.Command("taskset", args...), prefix: prefix, done: make(chan struct{})}
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var err error
	if t.stdin, err = t.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := t.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	t.cmd.Stderr = t.cmd.Stdout
	if err := t.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dpdk-testpmd: %w", err)
	}
	reap.addProc(t.cmd.Process)
	go func() {
		br := bufio.NewReader(out)
		buf := make([]byte, 4096)
		for {
			n, err := br.Read(buf)
			t.mu.Lock()
			t.out.Write(buf[:n])
			t.mu.Unlock()
			if err != nil {
				break
			}
		}
		t.cmd.Wait()
		reap.delProc(t.cmd.Process)
		close(t.done)
	}()
	return t, nil
}

func (t *testpmd) output() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.out.String()
}

// waitFor polls the output until cond holds for it, testpmd exits or timeout passes.
func (t *testpmd) waitFor(ctx context.Context, what string, timeout time.Duration, cond func(string) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond(t.output()) {
			return nil
		}
		select {
		case <-t.done:
			return fmt.Errorf("testpmd exited waiting for %s: %s", what, tailLines(t.output(), 8))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testpmd: no %s within %v: %s", what, timeout, tailLines(t.output(), 8))
		}
	}
}

func (t *testpmd) send(cmd string) error {
	_, err := io.WriteString(t.stdin, cmd+"\n")
	return err
}

// stop asks testpmd to quit, then SIGTERM, then SIGKILL, and removes its runtime dir.
func (t *testpmd) stop() {
	t.send("quit")
	t.stdin.Close()
	select {
	case <-t.done:
	case <-time.After(5 * time.Second):
		t.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-t.done:
		case <-time.After(5 * time.Second):
			t.cmd.Process.Signal(syscall.SIGKILL)
			<-t.done
		}
	}
	os.RemoveAll(filepath.Join("/var/run/dpdk", t.prefix))
}

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

var rxPPS = regexp.MustCompile(`Rx-pps:\s+(\d+)\s+Rx-bps:\s+(\d+)`)

// runFrontend starts the two-port frontend on socks, puts frames of size in flight, and
// measures both ports' receive rates over the window while sampling the backend's pids.
func runFrontend(ctx context.Context, cfg *config, socks [2]string, size int, pids []int, prefix string) (frontResult, error) {
	var r frontResult
	eal := []string{"-m", "256",
		"--vdev=net_virtio_user0,path=" + socks[0] + ",queues=1,mac=" + vhMAC0,
		"--vdev=net_virtio_user1,path=" + socks[1] + ",queues=1,mac=" + vhMAC1}
	app := []string{"--total-num-mbufs=8192", "--forward-mode=mac", "--txpkts=" + strconv.Itoa(size),
		"--eth-peer=0," + vhMAC1, "--eth-peer=1," + vhMAC0}
	t, err := startTestpmd(ctx, 0, prefix, eal, app)
	if err != nil {
		return r, err
	}
	defer t.stop()
	if err := t.waitFor(ctx, "prompt", 30*time.Second, func(s string) bool { return strings.Contains(s, "testpmd> ") }); err != nil {
		return r, err
	}
	// Let the backend enable the rings before the first frames, which are not sent again if lost.
	if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
		return r, err
	}
	shows := 0
	show := func() ([2]float64, [2]float64, error) {
		shows++
		if err := t.send("show port stats all"); err != nil {
			return [2]float64{}, [2]float64{}, err
		}
		var m [][]string
		err := t.waitFor(ctx, "port stats", 10*time.Second, func(s string) bool {
			m = rxPPS.FindAllStringSubmatch(s, -1)
			return len(m) >= 2*shows
		})
		if err != nil {
			return [2]float64{}, [2]float64{}, err
		}
		var pps, bps [2]float64
		for i := range 2 {
			pps[i], _ = strconv.ParseFloat(m[len(m)-2+i][1], 64)
			bps[i], _ = strconv.ParseFloat(m[len(m)-2+i][2], 64)
		}
		return pps, bps, nil
	}
	if _, _, err := show(); err != nil { // the first show only sets testpmd's baseline
		return r, err
	}
	// A backend may drop the first frames while it still sets its rings up (OVS does under
	// load): start again until frames go round, for up to 20 s.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := t.send(fmt.Sprintf("start tx_first %d", vhBursts)); err != nil {
			return r, err
		}
		if err := sleepCtx(ctx, vhWarmup(cfg)); err != nil {
			return r, err
		}
		pps, _, err := show()
		if err != nil {
			return r, err
		}
		if pps[0]+pps[1] > 0 || time.Now().After(deadline) {
			break
		}
		if err := t.send("stop"); err != nil {
			return r, err
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return r, err
		}
	}
	frontPID := []int{t.cmd.Process.Pid}
	c0, f0, m0, w0 := sampleProcs(pids), sampleProcs(frontPID), sampleCPU(nil), schedWait(pids)
	if err := sleepCtx(ctx, vhDur(cfg)); err != nil {
		return r, err
	}
	pps, bps, err := show()
	c1, f1, m1, w1 := sampleProcs(pids), sampleProcs(frontPID), sampleCPU(nil), schedWait(pids)
	if err != nil {
		return r, err
	}
	dt := m1.t.Sub(m0.t).Seconds()
	for _, p := range procsBetween(c0, c1) {
		r.backCores += p.cpu / dt
	}
	r.frontCores = procsBetween(f0, f1)[0].cpu / dt
	r.backWait = (w1 - w0) / dt
	r.busy = cpuBetween(m0, m1).busyF
	r.pps = pps
	r.fps = pps[0] + pps[1]
	if r.fps == 0 {
		return r, fmt.Errorf("no frames went round (%d bursts of 32 per port sent)", vhBursts)
	}
	// testpmd's Rx-bps counts the frame without the CRC: it must match the size sent.
	if got := (bps[0] + bps[1]) / r.fps / 8; math.Abs(got-float64(size)) > 2 {
		return r, fmt.Errorf("frames arrive as %.0f B, not %d B", got, size)
	}
	return r, nil
}
