package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vde-go/vde/switchcore"
)

type fakeSource struct{ st switchcore.Stats }

func (f *fakeSource) Stats() switchcore.Stats { return f.st }

func TestCollector(t *testing.T) {
	start := time.Unix(1700000000, 0)
	src := &fakeSource{st: switchcore.Stats{
		Ports: []switchcore.PortStats{
			{Port: 1, Active: true, Endpoints: 1, InFrames: 10, InBytes: 600, OutFrames: 7, OutBytes: 420, Drops: 2, Bad: 1, Queued: 3},
			{Port: 4, LoopBlocked: true, Faults: map[string]uint64{"bad_descriptor": 3, "rx_no_buffer": 0}},
		},
		MACs: 5, MACLimit: 65536, NotLearned: 9, LoopBlocks: 2, Start: start,
	}}
	c := NewCollector(src)
	c.now = func() time.Time { return start.Add(90 * time.Second) }
	want := `
# HELP vde_switch_port_in_frames_total Frames the port's endpoints sent to the switch.
# TYPE vde_switch_port_in_frames_total counter
vde_switch_port_in_frames_total{port="1"} 10
vde_switch_port_in_frames_total{port="4"} 0
# HELP vde_switch_port_dropped_frames_total Frames the port's full or gone receivers did not take.
# TYPE vde_switch_port_dropped_frames_total counter
vde_switch_port_dropped_frames_total{port="1"} 2
vde_switch_port_dropped_frames_total{port="4"} 0
# HELP vde_switch_port_queued_frames Frames waiting in the port's queues for a slow receiver.
# TYPE vde_switch_port_queued_frames gauge
vde_switch_port_queued_frames{port="1"} 3
vde_switch_port_queued_frames{port="4"} 0
# HELP vde_switch_mac_table_entries Entries of the MAC address table.
# TYPE vde_switch_mac_table_entries gauge
vde_switch_mac_table_entries 5
# HELP vde_switch_mac_not_learned_frames_total Frames whose new source address the full MAC table did not learn.
# TYPE vde_switch_mac_not_learned_frames_total counter
vde_switch_mac_not_learned_frames_total 9
# HELP vde_switch_loopguard_blocks_total Ports the loop guard blocked because addresses flapped between ports at storm rates.
# TYPE vde_switch_loopguard_blocks_total counter
vde_switch_loopguard_blocks_total 2
# HELP vde_switch_port_loopguard_blocked 1 while the loop guard blocks the port, else 0.
# TYPE vde_switch_port_loopguard_blocked gauge
vde_switch_port_loopguard_blocked{port="1"} 0
vde_switch_port_loopguard_blocked{port="4"} 1
# HELP vde_switch_port_endpoint_faults_total Frames dropped because of what the port's endpoint got wrong or could not take, by reason (vhost-user frontends: bad_descriptor, rx_no_buffer, rx_too_long, tx_too_long, tx_offload_dropped).
# TYPE vde_switch_port_endpoint_faults_total counter
vde_switch_port_endpoint_faults_total{port="4",reason="bad_descriptor"} 3
vde_switch_port_endpoint_faults_total{port="4",reason="rx_no_buffer"} 0
# HELP vde_switch_uptime_seconds Seconds since the switch started.
# TYPE vde_switch_uptime_seconds gauge
vde_switch_uptime_seconds 90
# HELP vde_switch_start_time_seconds When the switch started, in seconds since the Unix epoch.
# TYPE vde_switch_start_time_seconds gauge
vde_switch_start_time_seconds 1.7e+09
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"vde_switch_port_in_frames_total", "vde_switch_port_dropped_frames_total", "vde_switch_port_queued_frames",
		"vde_switch_mac_table_entries", "vde_switch_mac_not_learned_frames_total", "vde_switch_uptime_seconds",
		"vde_switch_loopguard_blocks_total", "vde_switch_port_loopguard_blocked", "vde_switch_port_endpoint_faults_total",
		"vde_switch_start_time_seconds"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func scrape(t *testing.T, client *http.Client, url string, accept string) (string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b), resp.Header.Get("Content-Type")
}

func TestServeTCPAndUnix(t *testing.T) {
	reg, err := NewRegistry(NewCollector(&fakeSource{st: switchcore.Stats{Start: time.Now()}}))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Listen("127.0.0.1:0", reg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	body, ctype := scrape(t, http.DefaultClient, "http://"+srv.Addr().String()+"/metrics", "")
	if !strings.Contains(body, "vde_switch_uptime_seconds ") || !strings.Contains(body, "process_open_fds ") || !strings.HasPrefix(ctype, "text/plain") {
		t.Errorf("text format: %s\n%s", ctype, body)
	}
	body, ctype = scrape(t, http.DefaultClient, "http://"+srv.Addr().String()+"/", "application/openmetrics-text; version=1.0.0")
	if !strings.HasPrefix(ctype, "application/openmetrics-text") || !strings.HasSuffix(body, "# EOF\n") {
		t.Errorf("OpenMetrics: %s\n%s", ctype, body)
	}

	path := filepath.Join(t.TempDir(), "metrics.sock")
	// A stale socket (its server gone) is replaced; a live one is refused.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	us, err := Listen(path, reg, t.Logf)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	if _, err := Listen(path, reg, t.Logf); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second server on %s: %v, want in use", path, err)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	if body, _ := scrape(t, client, "http://switch/metrics", ""); !strings.Contains(body, "vde_switch_mac_table_entries 0") {
		t.Errorf("over the unix socket:\n%s", body)
	}
	us.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s left behind after Close: %v", path, err)
	}
	if _, err := Listen("127.0.0.1:99999", reg, t.Logf); err == nil || !strings.Contains(err.Error(), "127.0.0.1:99999") {
		t.Errorf("a bad port: %v", err)
	}
}
