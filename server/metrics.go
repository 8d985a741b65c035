package server

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/raftsql/raftsql/consensus"
)

// metrics holds what the node counts itself; the rest of /metrics is read
// from the components when scraped.
type metrics struct {
	mu          sync.Mutex
	lastLeader  string
	leaderSeen  bool
	leaderChgs  uint64
	writeHist   histogram
	readHist    histogram
	writeErrors uint64
	readErrors  uint64
}

func newMetrics() *metrics {
	return &metrics{writeHist: newHistogram(), readHist: newHistogram()}
}

// histogram is a cumulative latency histogram with fixed buckets (seconds).
type histogram struct {
	bounds []float64
	counts []uint64
	sum    float64
	count  uint64
}

func newHistogram() histogram {
	b := []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	return histogram{bounds: b, counts: make([]uint64, len(b))}
}

func (h *histogram) observe(d time.Duration) {
	v := d.Seconds()
	for i, b := range h.bounds {
		if v <= b {
			h.counts[i]++
		}
	}
	h.sum += v
	h.count++
}

func (h *histogram) write(w io.Writer, name, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	for i, b := range h.bounds {
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", name, b, h.counts[i])
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, h.count, name, h.sum, name, h.count)
}

func (m *metrics) observeWrite(d time.Duration, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writeHist.observe(d)
	if err != nil {
		m.writeErrors++
	}
}

func (m *metrics) observeRead(d time.Duration, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.readHist.observe(d)
	if err != nil {
		m.readErrors++
	}
}

// noteLeader counts leader changes as seen by this node.
func (m *metrics) noteLeader(lead string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leaderSeen && lead != m.lastLeader && lead != "" {
		m.leaderChgs++
	}
	if lead != "" {
		m.lastLeader, m.leaderSeen = lead, true
	}
}

func gauge(w io.Writer, name, help string, v any) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %v\n", name, help, name, name, v)
}

func counter(w io.Writer, name, help string, v any) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %v\n", name, help, name, name, v)
}

func (s *Server) writeMetrics(w io.Writer) {
	st := s.node.Status()
	s.metrics.noteLeader(st.Lead)
	gauge(w, "raftsql_term", "Current Raft term.", st.Term)
	isLeader := 0
	if st.Role == consensus.RoleLeader {
		isLeader = 1
	}
	gauge(w, "raftsql_is_leader", "1 if this node is the leader.", isLeader)
	fmt.Fprintf(w, "# HELP raftsql_role Current role (1 for the role in the label).\n# TYPE raftsql_role gauge\n")
	for _, r := range []string{"leader", "follower", "candidate", "learner"} {
		v := 0
		if roleName(st) == r {
			v = 1
		}
		fmt.Fprintf(w, "raftsql_role{role=%q} %d\n", r, v)
	}
	gauge(w, "raftsql_commit_index", "Raft commit index.", st.Commit)
	gauge(w, "raftsql_applied_index", "Index applied to SQLite.", s.fsm.AppliedIndex())
	gauge(w, "raftsql_last_log_index", "Last index in the Raft log.", st.LastIndex)
	if st.Role == consensus.RoleLeader {
		fmt.Fprintf(w, "# HELP raftsql_follower_lag_entries Entries the leader has that a member has not acknowledged.\n# TYPE raftsql_follower_lag_entries gauge\n")
		ids := make([]string, 0, len(st.Match))
		for id := range st.Match {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			lag := uint64(0)
			if st.LastIndex > st.Match[id] {
				lag = st.LastIndex - st.Match[id]
			}
			fmt.Fprintf(w, "raftsql_follower_lag_entries{peer=%q} %d\n", id, lag)
		}
	}
	applied := s.fsm.AppliedIndex()
	lag := uint64(0)
	if st.Commit > applied {
		lag = st.Commit - applied
	}
	gauge(w, "raftsql_apply_lag_entries", "Committed entries not yet applied to SQLite on this node.", lag)
	nm := s.node.Metrics()
	counter(w, "raftsql_raft_saves_total", "Raft log writes (one fsync each, a batch of entries).", nm.Saves)
	counter(w, "raftsql_raft_slow_saves_total", "Raft log writes slower than 100 ms.", nm.SlowSaves)
	gauge(w, "raftsql_raft_max_save_seconds", "Longest Raft log write so far.", nm.MaxSave.Seconds())
	counter(w, "raftsql_applied_entries_total", "Entries applied to SQLite.", nm.Applied)
	counter(w, "raftsql_apply_batches_total", "SQLite transactions that applied entries.", nm.ApplyBatches)
	counter(w, "raftsql_read_index_requests_total", "Read-index rounds (each shared by many reads).", nm.ReadRequests)
	counter(w, "raftsql_read_index_callers_total", "Linearizable reads answered by read-index rounds.", nm.ReadCallers)
	counter(w, "raftsql_raft_dropped_inbound_total", "Raft messages dropped on a full inbound queue.", nm.DroppedInbound)
	stats := s.store.Stats()
	counter(w, "raftsql_log_fsyncs_total", "Durable commits of the Raft log.", stats.Commits)
	counter(w, "raftsql_log_entries_written_total", "Entries written to the Raft log.", stats.Entries)
	counter(w, "raftsql_log_sync_seconds_total", "Time spent writing and fsyncing the Raft log.", stats.SyncTime.Seconds())
	m := s.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	counter(w, "raftsql_leader_changes_total", "Leader changes seen by this node.", m.leaderChgs)
	counter(w, "raftsql_write_errors_total", "Writes that returned an error to the client.", m.writeErrors)
	counter(w, "raftsql_read_errors_total", "Reads that returned an error to the client.", m.readErrors)
	m.writeHist.write(w, "raftsql_write_duration_seconds", "Latency of replicated writes, from proposal to local apply.")
	m.readHist.write(w, "raftsql_read_duration_seconds", "Latency of reads, including the consistency wait.")
}
