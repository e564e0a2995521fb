package wire

import "errors"

// Join relays frames both ways between a and b until either side fails or is closed from
// the far side (a switch dropping the port); it then closes both and returns the reason.
// Frames shorter than MinFrame are dropped, as vde_plug drops them.
func Join(a, b Endpoint) error {
	done := make(chan error, 4)
	go func() { done <- relay(a, b) }()
	go func() { done <- relay(b, a) }()
	for _, e := range []Endpoint{a, b} {
		if cn, ok := e.(ClosedNotifier); ok {
			go func() { <-cn.Closed(); done <- CloseReason(e) }()
		}
	}
	err := <-done
	a.Close()
	b.Close()
	return err
}

// ErrPeerClosed reports that a switch closed its control connection.
var ErrPeerClosed = errors.New("switch closed the connection")

// CloseReason is why e's far side ended it (once its ClosedNotifier fired): its own
// CloseReason if it has one (a *Conn names its switch), else ErrPeerClosed.
func CloseReason(e Endpoint) error {
	if r, ok := e.(interface{ CloseReason() error }); ok {
		return r.CloseReason()
	}
	return ErrPeerClosed
}

// relay copies batches from src to dst; dst dropping frames (a full queue) is not an error.
func relay(src, dst Endpoint) error {
	bufs := make([][]byte, BatchSize)
	for i := range bufs {
		bufs[i] = make([]byte, MaxFrame+1)
	}
	sizes := make([]int, BatchSize)
	out := make([][]byte, 0, BatchSize)
	for {
		n, err := src.ReadBatch(bufs, sizes)
		if err != nil {
			return err
		}
		out = out[:0]
		for i := 0; i < n; i++ {
			if sizes[i] >= MinFrame && sizes[i] <= MaxFrame {
				out = append(out, bufs[i][:sizes[i]])
			}
		}
		if len(out) == 0 {
			continue
		}
		if _, err := dst.WriteBatch(out); err != nil {
			return err
		}
	}
}
