package main

// The vhost-user rows' backends (vhostuser.go): our switch, DPDK's own vhost bridge and
// OVS-DPDK, each started fresh and stopped by PID; and the CPU pinning they share.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// startOursVhost runs our switch on CPU 1 with one vhost-user socket for both frontends.
func startOursVhost(ctx context.Context, cfg *config, dir string) ([2]string, []int, func(), error) {
	sock := filepath.Join(dir, "vh.sock")
	sw, err := startSwitchCmd(ctx, cfg.ours, []string{"taskset", "-c", "1"}, false, "--vhost-user", sock)
	if err != nil {
		return [2]string{}, nil, nil, err
	}
	if err := waitSocket(ctx, sock, 10*time.Second); err != nil {
		sw.stop()
		return [2]string{}, nil, nil, err
	}
	return [2]string{sock, sock}, []int{sw.cmd.Process.Pid}, func() { sw.stop() }, nil
}

// startBridge runs testpmd on CPU 1 with two net_vhost ports (servers at DIR/b0.sock and
// DIR/b1.sock) joined by io forwarding: DPDK's own vhost code with nothing else to do, the
// frontend's ceiling when the machine is quiet (a poller loses most when it is not).
func startBridge(ctx context.Context, dir string) ([2]string, []int, func(), error) {
	socks := [2]string{filepath.Join(dir, "b0.sock"), filepath.Join(dir, "b1.sock")}
	prefix := fmt.Sprintf("vdebench-%d-bridge-%s", os.Getpid(), filepath.Base(dir))
	eal := []string{"-m", "256",
		"--vdev=net_vhost0,iface=" + socks[0] + ",queues=1",
		"--vdev=net_vhost1,iface=" + socks[1] + ",queues=1"}
	t, err := startTestpmd(ctx, 1, prefix, eal, []string{"--total-num-mbufs=8192", "--forward-mode=io"})
	if err != nil {
		return socks, nil, nil, err
	}
	err = t.waitFor(ctx, "prompt", 30*time.Second, func(s string) bool { return strings.Contains(s, "testpmd> ") })
	if err == nil {
		err = t.send("start")
	}
	for _, s := range socks {
		if err == nil {
			err = waitSocket(ctx, s, 10*time.Second)
		}
	}
	if err != nil {
		t.stop()
		return socks, nil, nil, err
	}
	return socks, []int{t.cmd.Process.Pid}, t.stop, nil
}

// startOVS runs a private OVS-DPDK in dir: ovsdb-server and ovs-vswitchd-dpdk as children
// (stopped by PID), bridge br0 (datapath netdev, NORMAL) with dpdkvhostuser ports vhu0 and
// vhu1, whose server sockets are DIR/vhu0 and DIR/vhu1.
func startOVS(ctx context.Context, dir string) (socks [2]string, pids []int, stop func(), err error) {
	socks = [2]string{filepath.Join(dir, "vhu0"), filepath.Join(dir, "vhu1")}
	prefix := fmt.Sprintf("vdebench-%d-ovs-%s", os.Getpid(), filepath.Base(dir))
	vars := []string{"OVS_RUNDIR=" + dir, "OVS_DBDIR=" + dir, "OVS_LOGDIR=" + dir, "OVS_SYSCONFDIR=" + dir}
	env := append(os.Environ(), vars...)
	db, dbSock := filepath.Join(dir, "conf.db"), filepath.Join(dir, "db.sock")
	var undo []func()
	stop = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	run := func(name string, args ...string) error {
		c := exec.CommandContext(ctx, name, args...)
		c.Env = env
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	// `env VARS... CMD` execs CMD: the PID startBg gives is the daemon's own.
	bg := func(args ...string) (*bgProc, error) {
		b, err := startBg(ctx, "env", append(vars, args...)...)
		if err == nil {
			undo = append(undo, b.stop)
		}
		return b, err
	}
	if err = run("ovsdb-tool", "create", db, "/usr/share/openvswitch/vswitch.ovsschema"); err != nil {
		return
	}
	if _, err = bg("ovsdb-server", db, "--remote=punix:"+dbSock, "--unixctl="+filepath.Join(dir, "ovsdb-server.ctl"),
		"--log-file="+filepath.Join(dir, "ovsdb-server.log"), "--pidfile="+filepath.Join(dir, "ovsdb-server.pid")); err != nil {
		return
	}
	if err = waitSocket(ctx, dbSock, 10*time.Second); err != nil {
		return
	}
	vsctl := func(args ...string) error {
		return run("ovs-vsctl", append([]string{"--db=unix:" + dbSock, "--timeout=60"}, args...)...)
	}
	if err = vsctl("--no-wait", "init"); err != nil {
		return
	}
	if err = vsctl("--no-wait", "set", "Open_vSwitch", ".", "other_config:dpdk-init=true",
		"other_config:dpdk-extra="+vhOVSEAL+" --file-prefix "+prefix, "other_config:pmd-cpu-mask=0x2"); err != nil {
		return
	}
	undo = append(undo, func() { os.RemoveAll(filepath.Join("/var/run/dpdk", prefix)) })
	sw, err := bg(vhOVSBin, "unix:"+dbSock, "--unixctl="+filepath.Join(dir, "ovs-vswitchd.ctl"),
		"--log-file="+filepath.Join(dir, "ovs-vswitchd.log"), "--pidfile="+filepath.Join(dir, "ovs-vswitchd.pid"))
	if err != nil {
		return
	}
	if err = vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev"); err != nil {
		return
	}
	for i, s := range socks {
		if err = vsctl("add-port", "br0", filepath.Base(s), "--", "set", "Interface", filepath.Base(s), "type=dpdkvhostuser"); err != nil {
			return
		}
		if err = waitSocket(ctx, socks[i], 30*time.Second); err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "ovs-vswitchd.log"))
			err = fmt.Errorf("%w; ovs-vswitchd.log: %s", err, tailLines(string(log), 6))
			return
		}
	}
	// A fresh bridge's only flow is NORMAL; say so rather than rely on it.
	if err = run("ovs-ofctl", "del-flows", "br0"); err == nil {
		err = run("ovs-ofctl", "add-flow", "br0", "actions=NORMAL")
	}
	if err != nil {
		if _, lerr := exec.LookPath("ovs-ofctl"); lerr != nil {
			err = nil // the default flow is NORMAL anyway
		} else {
			return
		}
	}
	return socks, []int{sw.cmd.Process.Pid}, stop, nil
}

// schedWait is how long every thread of the processes pids has been runnable but waiting
// for a CPU, in seconds: the second field of /proc/PID/task/TID/schedstat, summed. Next to
// a process's CPU time it tells a process that sleeps (waiting for work) from one that
// would run but shares its CPU.
func schedWait(pids []int) float64 {
	var ns float64
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if f := strings.Fields(string(b)); err == nil && len(f) >= 2 {
				v, _ := strconv.ParseFloat(f[1], 64)
				ns += v
			}
		}
	}
	return ns / 1e9
}

func waitSocket(ctx context.Context, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if st, err := os.Stat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("socket %s did not appear within %v", path, timeout)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// ovsMissing says why OVS-DPDK cannot be measured here, or "".
func ovsMissing() string {
	for _, tool := range []string{vhOVSBin, "ovsdb-server", "ovsdb-tool", "ovs-vsctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "not installed"
		}
	}
	if _, err := os.Stat("/usr/share/openvswitch/vswitch.ovsschema"); err != nil {
		return "not installed"
	}
	return ""
}

func ovsVersion() string {
	out, err := exec.Command(vhOVSBin, "--version").Output()
	if err != nil {
		return ""
	}
	l, _, _ := strings.Cut(string(out), "\n")
	if i := strings.LastIndexByte(l, ' '); i >= 0 {
		return l[i+1:]
	}
	return ""
}

// pinSelf sets the CPU affinity of every thread of this process to cpu; restore gives each
// thread (and any started since) every CPU back.
func pinSelf(cpu int) (restore func(), err error) {
	set := func(s *unix.CPUSet) error {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, s); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
		}
		return nil
	}
	var one, all unix.CPUSet
	one.Set(cpu)
	for i := range numCPU() {
		all.Set(i)
	}
	if err := set(&one); err != nil {
		set(&all)
		return nil, err
	}
	return func() { set(&all) }, nil
}
