package slirp

import "github.com/prometheus/client_golang/prometheus"

// Collector is a prometheus.Collector of a router's flows, DHCP leases, DNS queries,
// pings and what its bounds refused (Stats), read when a scraper asks.
type Collector struct{ r *Router }

// NewCollector collects r's counters.
func NewCollector(r *Router) *Collector { return &Collector{r: r} }

func slirpDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("vde_slirp_"+name, help, labels, nil)
}

var (
	descFlows      = slirpDesc("flows", "Flows open now, by kind: tcp and udp NATed through host sockets, forward for -L connections, dns for queries waiting for the proxy's answer.", "kind")
	descFlowLimit  = slirpDesc("flow_limit", "The most NATed flows open at once.")
	descOpened     = slirpDesc("flows_opened_total", "NATed flows opened, by kind.", "kind")
	descDNSQueries = slirpDesc("dns_queries_total", "UDP queries the DNS proxy took.")
	descPings      = slirpDesc("pings_total", "Echo requests sent to hosts for the guests.")
	descLeases     = slirpDesc("dhcp_leases", "Addresses the DHCP server has given out.")
	descEvicted    = slirpDesc("flows_evicted_total", "Idle UDP flows closed to make room for new ones.")
	descRefused    = slirpDesc("refused_total", "What the router's bounds refused, by bound.", "bound")
	descGSO        = slirpDesc("lan_gso_packets_total", "TCP GSO packets that crossed the switch whole, on a channel with offloads (our switch): in, the guests' TSO packets; out, the router's, which the switch cuts for guests that take no TSO.", "direction")
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFlows, descFlowLimit, descOpened, descDNSQueries, descPings, descLeases, descEvicted, descRefused, descGSO} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.r.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descFlows, float64(st.TCPFlows), "tcp")
	gauge(descFlows, float64(st.UDPFlows), "udp")
	gauge(descFlows, float64(max(0, st.Flows-st.TCPFlows-st.UDPFlows)), "forward")
	gauge(descFlows, float64(st.DNSFlows), "dns")
	gauge(descFlowLimit, float64(st.FlowLimit))
	counter(descOpened, st.TCPOpened, "tcp")
	counter(descOpened, st.UDPOpened, "udp")
	counter(descDNSQueries, st.DNSQueries)
	counter(descPings, st.Pings)
	gauge(descLeases, float64(st.Leases))
	counter(descEvicted, st.FlowsEvicted)
	counter(descRefused, st.FlowsRefused, "flows")
	counter(descRefused, st.DNSRefused, "dns_flows")
	counter(descRefused, st.DNSRateDropped, "dns_rate")
	counter(descRefused, st.TFTPRefused, "tftp")
	counter(descRefused, st.PeersRefused, "forward_peers")
	counter(descRefused, st.LoopbackRefused, "host_loopback")
	counter(descGSO, st.GSOPackets, "in")
	counter(descGSO, st.GSOSent, "out")
}
