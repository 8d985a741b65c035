package transport

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/raftsql/raftsql/consensus"
)

// countHandler counts received messages.
type countHandler struct{ n atomic.Uint64 }

func (h *countHandler) Receive(consensus.Message)   { h.n.Add(1) }
func (h *countHandler) ReportUnreachable(string)    {}
func (h *countHandler) ReportSnapshot(string, bool) {}

// BenchmarkTCPThroughput measures messages per second between two TCP
// transports on loopback: MsgApp with one 200-byte entry, handed to Send
// batch at a time.
//
//	go test ./consensus/transport -run '^$' -bench TCPThroughput
func BenchmarkTCPThroughput(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			rx := &countHandler{}
			recv, err := NewTCP(TCPConfig{ID: "b", ListenAddr: "127.0.0.1:0"})
			if err != nil {
				b.Fatal(err)
			}
			if err := recv.Start(b.Context(), rx); err != nil {
				b.Fatal(err)
			}
			defer recv.Close()
			send, err := NewTCP(TCPConfig{ID: "a", ListenAddr: "127.0.0.1:0", QueueSize: 1 << 16})
			if err != nil {
				b.Fatal(err)
			}
			if err := send.Start(b.Context(), &countHandler{}); err != nil {
				b.Fatal(err)
			}
			defer send.Close()
			send.AddPeer("b", recv.Addr())
			msgs := make([]consensus.Message, batch)
			for i := range msgs {
				msgs[i] = consensus.Message{Type: consensus.MsgApp, From: "a", To: "b", Term: 3, Index: uint64(i), Entries: []consensus.Entry{{Term: 3, Index: uint64(i + 1), Data: make([]byte, 200)}}}
			}
			b.ResetTimer()
			sent := uint64(0)
			wait := func(ahead uint64) {
				for sent-rx.n.Load() > ahead {
					if send.Stats().MessagesDropped > 0 {
						b.Fatal("messages dropped")
					}
					runtime.Gosched()
				}
			}
			for sent < uint64(b.N) {
				send.Send(msgs)
				sent += uint64(batch)
				wait(1 << 14) // stay well inside the queue
			}
			wait(0)
			st := send.Stats()
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(st.MessagesSent)/float64(st.Batches), "msgs/frame")
		})
	}
}
