package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestJoinRefusedAfterPromotionIsNotFatal: a joining voter-to-be keeps
// asking /join until its own configuration shows it as a voter; when the
// leader promotes it between two asks, the next ask is refused with 409
// "already a voter" before this node has applied the promotion. Found by
// TestJepsen's membership nemesis (the node exited). The node must wait,
// not stop.
func TestJoinRefusedAfterPromotionIsNotFatal(t *testing.T) {
	var asks atomic.Int32
	member := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/join" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if asks.Add(1) == 1 {
			json.NewEncoder(w).Encode(joinResponse{Status: "joined as learner", Promote: true})
			return
		}
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(map[string]string{"error": `node "4" is already a voter; if its data directory was lost, remove it first`})
	}))
	defer member.Close()
	cfg := Config{
		ID: "4", DataDir: t.TempDir(),
		PGAddr: freeAddr(t), RaftAddr: freeAddr(t), HTTPAddr: freeAddr(t),
		Join:   strings.TrimPrefix(member.URL, "http://"),
		Logger: testLogger(t, "4"),
	}
	c := &testCluster{t: t, cfgs: []Config{cfg}, servers: make([]*Server, 1)}
	c.start(0)
	defer c.stop(0)
	deadline := time.Now().Add(30 * time.Second)
	for asks.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the joining node asked %d times in 30s", asks.Load())
		}
		select {
		case <-c.servers[0].Fatal():
			t.Fatalf("the node stopped after %d asks: %v", asks.Load(), c.servers[0].fatalErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	select {
	case <-c.servers[0].Fatal():
		t.Fatalf("the node stopped: %v", c.servers[0].fatalErr)
	default:
	}
}
