package switchcore

import (
	"testing"
	"time"
)

// Receivers that never read fill their output queues; together the queues stay within
// queueBudget, and the bytes come back when the endpoints go.
func TestOutQueuesShareABudget(t *testing.T) {
	s := newTestSwitch(t, Config{NumPorts: 32})
	s.logf = func(string, ...any) {}
	src := dial(t, s, 1)
	var stalled []interface{ Close() error }
	for p := 2; p < 24; p++ { // 22 queues of up to 1024 frames * 2 KiB: 44 MiB wanted
		stalled = append(stalled, dial(t, s, p))
	}
	f := frame(0xff, 1, "storm")
	for i := 0; i < outQueueLen+64; i++ {
		for {
			if n, _ := src.WriteBatch([][]byte{f}); n == 1 {
				break
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.queueBytes.Load() < queueBudget-minSlotBuf && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.queueBytes.Load(); got > queueBudget || got < queueBudget-minSlotBuf {
		t.Fatalf("queues hold %d bytes; want the budget, %d, reached and not passed", got, queueBudget)
	}
	for _, c := range stalled {
		c.Close()
	}
	for s.queueBytes.Load() != 0 && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.queueBytes.Load(); got != 0 {
		t.Fatalf("%d queue bytes still charged after the receivers left", got)
	}
}
