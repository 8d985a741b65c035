package jepsen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/jackc/pgx/v5"
)

// Register operation kinds.
const (
	RegRead  = "read"
	RegWrite = "write"
	RegCAS   = "cas"
)

// RegOp is one operation of the register workload. Values are small
// positive integers; 0 is the initial value of every key.
type RegOp struct {
	Client int    `json:"client"` // porcupine lane: a worker gets a new one after an unknown op
	Worker int    `json:"worker"`
	Node   string `json:"node"`
	Kind   string `json:"kind"`
	Level  string `json:"level,omitempty"` // read consistency of a read
	Key    int    `json:"key"`
	Value  int    `json:"value"`         // read: the value seen; write/cas: the new value
	Old    int    `json:"old,omitempty"` // cas: the expected value
	// Matched: a cas (or write) changed a row; for a cas false means the
	// compare failed.
	Matched bool          `json:"matched"`
	Status  Status        `json:"status"`
	Err     string        `json:"err,omitempty"`
	Call    time.Duration `json:"call"`
	Return  time.Duration `json:"return"`
}

func (o RegOp) String() string {
	switch o.Kind {
	case RegRead:
		return fmt.Sprintf("read[%s](%d) -> %d", o.Level, o.Key, o.Value)
	case RegWrite:
		return fmt.Sprintf("write(%d, %d) %s", o.Key, o.Value, o.Status)
	default:
		m := "ok"
		if !o.Matched {
			m = "no match"
		}
		if o.Status == Unknown {
			m = "unknown"
		}
		return fmt.Sprintf("cas(%d, %d -> %d) %s", o.Key, o.Old, o.Value, m)
	}
}

// regInput and regOutput are what porcupine sees.
type regInput struct {
	kind     string
	key      int
	value    int
	old      int
	level    string
	node     string
	unknown  bool
	matched  bool
	readSeen int
}

// RegisterModel is the sequential specification of one register per key.
// The state of a partition is the key's value.
func RegisterModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[int][]porcupine.Operation{}
			var keys []int
			for _, op := range h {
				k := op.Input.(regInput).key
				if _, ok := byKey[k]; !ok {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			sort.Ints(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() any { return 0 },
		Step: func(state, input, _ any) (bool, any) {
			s := state.(int)
			in := input.(regInput)
			switch in.kind {
			case RegRead:
				return in.readSeen == s, s
			case RegWrite:
				// The row always exists, so a write always matches.
				return in.unknown || in.matched, in.value
			case RegCAS:
				if in.unknown {
					if s == in.old {
						return true, in.value
					}
					return true, s
				}
				if in.matched {
					return s == in.old, in.value
				}
				return s != in.old, s
			}
			return false, s
		},
		DescribeOperation: func(input, _ any) string {
			in := input.(regInput)
			suffix := ""
			if in.unknown {
				suffix = " ?"
			}
			switch in.kind {
			case RegRead:
				return fmt.Sprintf("%s: read[%s](k%d) = %d", in.node, in.level, in.key, in.readSeen)
			case RegWrite:
				return fmt.Sprintf("%s: write(k%d, %d)%s", in.node, in.key, in.value, suffix)
			}
			res := "ok"
			if !in.matched {
				res = "fail"
			}
			if in.unknown {
				res = "?"
			}
			return fmt.Sprintf("%s: cas(k%d, %d→%d) %s", in.node, in.key, in.old, in.value, res)
		},
		DescribeState: func(state any) string { return fmt.Sprint(state) },
	}
}

// RegisterHistory turns recorded ops into a porcupine history that keeps
// every write and cas that may have happened and the OK reads of the given
// levels. Unknown writes get a return time after everything else, so they
// can take effect at any time after their call, or (last) not at all.
func RegisterHistory(ops []RegOp, levels ...string) []porcupine.Operation {
	want := map[string]bool{}
	for _, l := range levels {
		want[l] = true
	}
	var end time.Duration
	for _, o := range ops {
		end = max(end, o.Return, o.Call)
	}
	end += time.Second
	var h []porcupine.Operation
	for _, o := range ops {
		in := regInput{kind: o.Kind, key: o.Key, value: o.Value, old: o.Old, level: o.Level, node: o.Node, matched: o.Matched}
		ret := o.Return
		switch {
		case o.Kind == RegRead:
			if o.Status != OK || !want[o.Level] {
				continue
			}
			in.readSeen = o.Value
		case o.Status == Fail:
			continue
		case o.Status == Unknown:
			in.unknown = true
			ret = end
		}
		h = append(h, porcupine.Operation{ClientId: o.Client, Input: in, Call: int64(o.Call), Output: nil, Return: int64(ret)})
	}
	return h
}

// LinearCheck is the verdict on one register history.
type LinearCheck struct {
	Levels []string
	Ops    int // operations checked
	Result porcupine.CheckResult
	info   porcupine.LinearizationInfo
	model  porcupine.Model
}

// CheckRegister checks the sub-history of the given read levels.
func CheckRegister(ops []RegOp, timeout time.Duration, levels ...string) LinearCheck {
	m := RegisterModel()
	h := RegisterHistory(ops, levels...)
	res, info := porcupine.CheckOperationsVerbose(m, h, timeout)
	return LinearCheck{Levels: levels, Ops: len(h), Result: res, info: info, model: m}
}

// Err is nil for a linearizable history.
func (lc LinearCheck) Err() error {
	switch lc.Result {
	case porcupine.Ok:
		return nil
	case porcupine.Illegal:
		return fmt.Errorf("%w (reads: %s)", ErrNotLinear, strings.Join(lc.Levels, ","))
	}
	return fmt.Errorf("%w (reads: %s)", ErrCheckTimeout, strings.Join(lc.Levels, ","))
}

// Visualize writes porcupine's HTML visualization of the history, with the
// nemesis schedule drawn as annotations.
func (lc LinearCheck) Visualize(w io.Writer, faults []Fault) error {
	var ann []porcupine.Annotation
	for _, f := range faults {
		ann = append(ann, porcupine.Annotation{
			Tag:             "nemesis",
			Start:           int64(f.Start),
			End:             int64(f.End),
			Description:     f.Kind + " " + strings.Join(f.Targets, ","),
			Details:         f.Note,
			BackgroundColor: "#f6c6c6",
		})
	}
	lc.info.AddAnnotations(ann)
	return porcupine.Visualize(lc.model, lc.info, w)
}

// Register is the register workload.
type Register struct {
	Keys       int // keys in use at a time (default 4)
	OpsPerKey  int // ops before the workers move to fresh keys (default 250)
	TotalKeys  int // rows created at setup (default 400)
	Values     int // values are drawn from 1..Values (default 5)
	ReadLevels []string
	ops        log[RegOp]
	opCount    counter
}

func (r *Register) defaults() {
	if r.Keys == 0 {
		r.Keys = 4
	}
	if r.OpsPerKey == 0 {
		r.OpsPerKey = 250
	}
	if r.TotalKeys == 0 {
		r.TotalKeys = 400
	}
	if r.Values == 0 {
		r.Values = 5
	}
	if len(r.ReadLevels) == 0 {
		r.ReadLevels = []string{"linearizable", "lease", "stale"}
	}
}

// Name implements Workload.
func (r *Register) Name() string { return "register" }

// Setup creates the table and every key with value 0.
func (r *Register) Setup(ctx context.Context, conn *pgx.Conn) error {
	r.defaults()
	if _, err := conn.Exec(ctx, "CREATE TABLE reg (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)"); err != nil {
		return fmt.Errorf("register setup: %w", err)
	}
	for lo := 0; lo < r.TotalKeys; lo += 100 {
		var b strings.Builder
		b.WriteString("INSERT INTO reg (k, v) VALUES ")
		for k := lo; k < min(lo+100, r.TotalKeys); k++ {
			if k > lo {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "(%d, 0)", k)
		}
		if _, err := conn.Exec(ctx, b.String()); err != nil {
			return fmt.Errorf("register setup: %w", err)
		}
	}
	return nil
}

// Step runs one operation on w's connection.
func (r *Register) Step(ctx context.Context, w *Worker) {
	n := r.opCount.next()
	gen := (n / r.OpsPerKey) * r.Keys
	key := (gen + w.rng.IntN(r.Keys)) % r.TotalKeys
	op := RegOp{Worker: w.ID, Key: key}
	switch x := w.rng.IntN(10); {
	case x < 5:
		op.Kind = RegRead
		op.Level = r.ReadLevels[w.rng.IntN(len(r.ReadLevels))]
	case x < 7:
		op.Kind = RegWrite
		op.Value = 1 + w.rng.IntN(r.Values)
	default:
		op.Kind = RegCAS
		op.Old = 1 + w.rng.IntN(r.Values)
		op.Value = 1 + w.rng.IntN(r.Values)
	}
	if op.Kind == RegRead {
		if err := w.SetLevel(ctx, op.Level); err != nil {
			return // nothing was attempted
		}
	} else if err := w.Ready(ctx); err != nil {
		return
	}
	op.Node = w.Node
	op.Client = w.Client()
	op.Call = w.clock.Now()
	err := w.Do(ctx, func(ctx context.Context, c *pgx.Conn) error {
		switch op.Kind {
		case RegRead:
			err := c.QueryRow(ctx, "SELECT v FROM reg WHERE k = $1", op.Key).Scan(&op.Value)
			if errors.Is(err, pgx.ErrNoRows) {
				op.Value = -1 // never valid: every key exists
				return nil
			}
			return err
		case RegWrite:
			tag, err := c.Exec(ctx, "UPDATE reg SET v = $1 WHERE k = $2", op.Value, op.Key)
			op.Matched = err == nil && tag.RowsAffected() == 1
			return err
		default:
			tag, err := c.Exec(ctx, "UPDATE reg SET v = $1 WHERE k = $2 AND v = $3", op.Value, op.Key, op.Old)
			op.Matched = err == nil && tag.RowsAffected() == 1
			return err
		}
	})
	op.Return = w.clock.Now()
	op.Status = Classify(err)
	op.Err = errText(err)
	if op.Kind == RegRead && err != nil {
		op.Status = Fail
	}
	r.ops.add(op)
	if op.Status == Unknown {
		w.NewClient()
	}
	if op.Status == OK && op.Kind != RegRead {
		w.ackWrite(op.Return)
	}
}

// Ops returns the recorded history.
func (r *Register) Ops() []RegOp { return r.ops.all() }

// counter hands out increasing numbers.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) next() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n - 1
}

func (c *counter) peek() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// leaseProbe returns the nemesis hook for pauses: before a node is paused
// it opens a lease and a linearizable connection to it; right after the
// node is resumed it reads every key in use through both and records the
// reads. A leader that wakes up from a pause after the others elected a
// new leader and took writes must not answer from its old state: porcupine
// then sees a read called after those writes that returns an older value.
func (r *Register) leaseProbe(rs *runState, clock *Clock, log *slog.Logger) func(ctx context.Context, id string) func() string {
	return func(ctx context.Context, id string) func() string {
		type probeConn struct {
			level string
			conn  *pgx.Conn
		}
		var conns []probeConn
		for _, level := range []string{"lease", "linearizable"} {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			conn, err := pgx.Connect(cctx, rs.cluster.DSN(id, level))
			cancel()
			if err != nil {
				log.Info("jepsen: pause probe cannot connect", "node", id, "err", err)
				continue
			}
			conns = append(conns, probeConn{level, conn})
		}
		return func() string {
			gen := (r.opCount.peek() / r.OpsPerKey) * r.Keys
			var wg sync.WaitGroup
			var mu sync.Mutex
			ok := 0
			for _, pc := range conns {
				wg.Add(1)
				go func(pc probeConn) {
					defer wg.Done()
					defer pc.conn.Close(context.Background())
					client := rs.clients.next()
					for i := 0; i < r.Keys; i++ {
						op := RegOp{Client: client, Worker: -1, Node: id, Kind: RegRead, Level: pc.level, Key: (gen + i) % r.TotalKeys}
						op.Call = clock.Now()
						octx, cancel := context.WithTimeout(context.Background(), rs.opTimeout)
						err := pc.conn.QueryRow(octx, "SELECT v FROM reg WHERE k = $1", op.Key).Scan(&op.Value)
						cancel()
						op.Return = clock.Now()
						op.Status, op.Err = OK, errText(err)
						if err != nil {
							op.Status = Fail
						}
						r.ops.add(op)
						if err != nil {
							return
						}
						mu.Lock()
						ok++
						mu.Unlock()
					}
				}(pc)
			}
			wg.Wait()
			return fmt.Sprintf("probe: %d reads answered by %s right after the resume", ok, id)
		}
	}
}
