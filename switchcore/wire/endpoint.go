package wire

// Endpoint moves whole Ethernet frames. Batches amortise syscalls; n is how many were moved.
//
// ReadBatch blocks until at least one frame is available, fills frames[i][:sizes[i]] for
// i < n and returns n. WriteBatch sends frames in order and returns how many were sent; a
// frame the peer could not take right now is dropped, not waited for.
type Endpoint interface {
	ReadBatch(frames [][]byte, sizes []int) (n int, err error)
	WriteBatch(frames [][]byte) (n int, err error)
	Close() error
}

// FaultReporter is an endpoint that counts, by reason, the frames its peer got wrong or
// could not take (a vhost-user frontend's bad descriptors, receive buffers missing or
// too short): the switch's metrics show them per port.
type FaultReporter interface {
	ReportFaults(fn func(reason string, n uint64))
}

// Frame sizes on the data path.
const (
	// MinFrame is the shortest frame a switch forwards (an Ethernet header).
	MinFrame = 14
	// MaxFrame is the largest datagram vdeplug4 clients accept (jumbo 9216 + header + tag).
	MaxFrame = 9234
	// BatchSize is how many frames one recvmmsg/sendmmsg moves at most.
	BatchSize = 32
)
