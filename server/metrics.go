package server

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/node"
	"github.com/raftsql/raftsql/pgwire"
)

// metrics holds what the node counts itself; the rest of /metrics is read
// from the components when scraped. It is the pgwire.Observer of the
// PostgreSQL front end. Label values come from closed sets (roles,
// pgwire.QueryKinds, SQLSTATEs capped at maxSQLStates), so the number of
// series stays bounded whatever clients send.
type metrics struct {
	mu          sync.Mutex
	lastLeader  string
	leaderSeen  bool
	leaderChgs  uint64
	writeHist   histogram
	readHist    histogram
	saveHist    histogram // Raft log Save: one write + fsync
	writeErrors uint64
	readErrors  uint64

	connsOpen  int64
	connsTotal uint64
	queryHist  map[pgwire.QueryKind]*histogram
	sqlErrors  map[string]uint64 // by SQLSTATE
}

// maxSQLStates bounds the sqlstate label of raftsql_errors_total; more
// distinct codes than this are counted as sqlstate="other".
const maxSQLStates = 200

func newMetrics() *metrics {
	m := &metrics{writeHist: newHistogram(), readHist: newHistogram(), saveHist: newHistogram(),
		queryHist: make(map[pgwire.QueryKind]*histogram), sqlErrors: make(map[string]uint64)}
	for _, k := range pgwire.QueryKinds {
		h := newHistogram()
		m.queryHist[k] = &h
	}
	return m
}

var _ pgwire.Observer = (*metrics)(nil)

// ConnOpened implements pgwire.Observer.
func (m *metrics) ConnOpened() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.connsOpen++
	m.connsTotal++
}

// ConnClosed implements pgwire.Observer.
func (m *metrics) ConnClosed() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.connsOpen--
}

// Query implements pgwire.Observer.
func (m *metrics) Query(kind pgwire.QueryKind, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.queryHist[kind]
	if h == nil {
		h = m.queryHist[pgwire.QueryOther]
	}
	h.observe(d)
}

// Error implements pgwire.Observer.
func (m *metrics) Error(sqlstate string) {
	label := sqlstateLabel(sqlstate)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sqlErrors[label]; !ok && len(m.sqlErrors) >= maxSQLStates {
		label = "other"
	}
	m.sqlErrors[label]++
}

// sqlstateLabel is code if it is a well-formed SQLSTATE (five digits or
// upper-case letters), else XX000 (internal error).
func sqlstateLabel(code string) string {
	if len(code) != 5 {
		return "XX000"
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return "XX000"
		}
	}
	return code
}

func (m *metrics) observeSave(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.saveHist.observe(d)
}

// timedStore times every Save of the Raft log (one write and one fsync)
// into raftsql_raft_save_duration_seconds.
type timedStore struct {
	node.LogStore
	m *metrics
}

func (t timedStore) Save(hs consensus.HardState, entries []consensus.Entry, snap *consensus.SnapshotMeta) error {
	start := time.Now()
	err := t.LogStore.Save(hs, entries, snap)
	t.m.observeSave(time.Since(start))
	return err
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

func (h *histogram) clone() histogram {
	c := *h
	c.counts = append([]uint64(nil), h.counts...)
	return c
}

func (h *histogram) write(w io.Writer, name, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	h.writeSeries(w, name, "")
}

// writeSeries writes the series of one histogram; labels ("" or
// `kind="select"`) go before le.
func (h *histogram) writeSeries(w io.Writer, name, labels string) {
	sep, braced := "", ""
	if labels != "" {
		sep, braced = labels+",", "{"+labels+"}"
	}
	for i, b := range h.bounds {
		fmt.Fprintf(w, "%s_bucket{%sle=\"%g\"} %d\n", name, sep, b, h.counts[i])
	}
	fmt.Fprintf(w, "%s_bucket{%sle=\"+Inf\"} %d\n%s_sum%s %g\n%s_count%s %d\n", name, sep, h.count, name, braced, h.sum, name, braced, h.count)
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
	counter(w, "raftsql_snapshots_total", "Snapshots this node took of its SQLite state.", nm.SnapshotsTaken)
	counter(w, "raftsql_snapshot_seconds_total", "Time spent taking snapshots.", nm.SnapshotTime.Seconds())
	gauge(w, "raftsql_snapshot_last_seconds", "Duration of the last snapshot taken.", nm.LastSnapshot.Seconds())
	counter(w, "raftsql_snapshots_installed_total", "Snapshots received from a leader and installed.", nm.SnapshotsInstalled)
	counter(w, "raftsql_snapshot_install_seconds_total", "Time spent installing received snapshots.", nm.InstallTime.Seconds())

	// Copy under the lock, write after it: a slow scraper must not stall
	// the sessions that report to the same metrics.
	m := s.metrics
	m.mu.Lock()
	leaderChgs, writeErrors, readErrors := m.leaderChgs, m.writeErrors, m.readErrors
	writeHist, readHist, saveHist := m.writeHist.clone(), m.readHist.clone(), m.saveHist.clone()
	connsOpen, connsTotal := m.connsOpen, m.connsTotal
	queryHist := make(map[pgwire.QueryKind]histogram, len(m.queryHist))
	for k, h := range m.queryHist {
		queryHist[k] = h.clone()
	}
	sqlErrors := maps.Clone(m.sqlErrors)
	m.mu.Unlock()

	counter(w, "raftsql_leader_changes_total", "Leader changes seen by this node.", leaderChgs)
	counter(w, "raftsql_write_errors_total", "Writes that returned an error to the client.", writeErrors)
	counter(w, "raftsql_read_errors_total", "Reads that returned an error to the client.", readErrors)
	writeHist.write(w, "raftsql_write_duration_seconds", "Latency of replicated writes (proposals made through this node), from proposal to local apply.")
	readHist.write(w, "raftsql_read_duration_seconds", "Latency of reads, including the consistency wait.")
	saveHist.write(w, "raftsql_raft_save_duration_seconds", "Latency of Raft log writes, each one fsync.")

	gauge(w, "raftsql_pg_connections", "Open PostgreSQL sessions (past startup and authentication).", connsOpen)
	counter(w, "raftsql_pg_connections_total", "PostgreSQL sessions opened.", connsTotal)
	fmt.Fprintf(w, "# HELP raftsql_queries_total Statements executed, by kind.\n# TYPE raftsql_queries_total counter\n")
	for _, k := range pgwire.QueryKinds {
		h := queryHist[k]
		fmt.Fprintf(w, "raftsql_queries_total{kind=%q} %d\n", string(k), h.count)
	}
	fmt.Fprintf(w, "# HELP raftsql_query_duration_seconds Latency of statements, by kind, from submission to the result sent.\n# TYPE raftsql_query_duration_seconds histogram\n")
	for _, k := range pgwire.QueryKinds {
		h := queryHist[k]
		h.writeSeries(w, "raftsql_query_duration_seconds", fmt.Sprintf("kind=%q", string(k)))
	}
	fmt.Fprintf(w, "# HELP raftsql_errors_total Errors sent to PostgreSQL clients, by SQLSTATE.\n# TYPE raftsql_errors_total counter\n")
	for _, code := range slices.Sorted(maps.Keys(sqlErrors)) {
		fmt.Fprintf(w, "raftsql_errors_total{sqlstate=%q} %d\n", code, sqlErrors[code])
	}
}
