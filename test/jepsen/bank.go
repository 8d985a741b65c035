package jepsen

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// BankOp is one operation of the bank workload.
type BankOp struct {
	Client  int           `json:"client"`
	Worker  int           `json:"worker"`
	Node    string        `json:"node"`
	Kind    string        `json:"kind"`              // "transfer" or "read"
	Variant string        `json:"variant,omitempty"` // transfer: case, txn, multi
	From    int           `json:"from,omitempty"`
	To      int           `json:"to,omitempty"`
	Amount  int           `json:"amount,omitempty"`
	Level   string        `json:"level,omitempty"`
	Bals    []int64       `json:"bals,omitempty"` // read: balance per account id order
	Status  Status        `json:"status"`
	Err     string        `json:"err,omitempty"`
	Call    time.Duration `json:"call"`
	Return  time.Duration `json:"return"`
}

// Bank moves money between accounts; the total never changes. Transfers
// come in three shapes, each atomic by itself:
//   - case: one UPDATE that debits and credits both rows with a CASE, only
//     if the source has the money (both rows change or neither does);
//   - txn: BEGIN; debit; credit; COMMIT (balances may go negative, the
//     total is still invariant);
//   - multi: both UPDATEs in one simple Query, an implicit transaction.
type Bank struct {
	Accounts int   // default 5
	Initial  int64 // per account, default 100
	Levels   []string
	ops      log[BankOp]
}

func (b *Bank) defaults() {
	if b.Accounts == 0 {
		b.Accounts = 5
	}
	if b.Initial == 0 {
		b.Initial = 100
	}
	if len(b.Levels) == 0 {
		b.Levels = []string{"linearizable", "lease", "stale"}
	}
}

// Total is the invariant sum of all balances.
func (b *Bank) Total() int64 { b.defaults(); return int64(b.Accounts) * b.Initial }

// Name implements Workload.
func (b *Bank) Name() string { return "bank" }

// Setup creates the accounts.
func (b *Bank) Setup(ctx context.Context, conn *pgx.Conn) error {
	b.defaults()
	if _, err := conn.Exec(ctx, "CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER NOT NULL)"); err != nil {
		return fmt.Errorf("bank setup: %w", err)
	}
	var v []string
	for i := 0; i < b.Accounts; i++ {
		v = append(v, fmt.Sprintf("(%d, %d)", i, b.Initial))
	}
	if _, err := conn.Exec(ctx, "INSERT INTO acct (id, bal) VALUES "+strings.Join(v, ", ")); err != nil {
		return fmt.Errorf("bank setup: %w", err)
	}
	return nil
}

// Step runs one transfer or read.
func (b *Bank) Step(ctx context.Context, w *Worker) {
	r := w.Rand()
	op := BankOp{Worker: w.ID}
	if r.IntN(2) == 0 {
		op.Kind = "read"
		op.Level = b.Levels[r.IntN(len(b.Levels))]
		if err := w.SetLevel(ctx, op.Level); err != nil {
			return
		}
	} else {
		op.Kind = "transfer"
		op.Variant = []string{"case", "txn", "multi"}[r.IntN(3)]
		op.From = r.IntN(b.Accounts)
		op.To = (op.From + 1 + r.IntN(b.Accounts-1)) % b.Accounts
		op.Amount = 1 + r.IntN(20)
		if err := w.Ready(ctx); err != nil {
			return
		}
	}
	op.Node = w.Node
	op.Client = w.Client()
	op.Call = w.clock.Now()
	err := w.Do(ctx, func(ctx context.Context, c *pgx.Conn) error {
		if op.Kind == "read" {
			rows, err := c.Query(ctx, "SELECT id, bal FROM acct ORDER BY id")
			if err != nil {
				return err
			}
			bals, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (int64, error) {
				var id, bal int64
				err := row.Scan(&id, &bal)
				return bal, err
			})
			op.Bals = bals
			return err
		}
		return b.transfer(ctx, c, op)
	})
	op.Return = w.clock.Now()
	op.Status = Classify(err)
	op.Err = errText(err)
	if op.Kind == "read" && err != nil {
		op.Status = Fail
	}
	b.ops.add(op)
	if op.Status == Unknown {
		w.NewClient()
	}
	if op.Status == OK && op.Kind == "transfer" {
		w.ackWrite(op.Return)
	}
}

func (b *Bank) transfer(ctx context.Context, c *pgx.Conn, op BankOp) error {
	switch op.Variant {
	case "case":
		_, err := c.Exec(ctx, `UPDATE acct SET bal = CASE WHEN id = $1 THEN bal - $3 ELSE bal + $3 END
			WHERE id IN ($1, $2) AND (SELECT bal FROM acct WHERE id = $1) >= $3`, op.From, op.To, op.Amount)
		return err
	case "txn":
		// Optimistic transactions abort with 40001 when the database
		// changed under them; try again a few times (the total is
		// invariant whether or not an earlier attempt was applied).
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			if err = b.txnTransfer(ctx, c, op); SQLState(err) != "40001" {
				return err
			}
		}
		return err
	default:
		// No arguments: pgx sends one simple Query, an implicit
		// transaction of both statements.
		_, err := c.Exec(ctx, fmt.Sprintf("UPDATE acct SET bal = bal - %d WHERE id = %d; UPDATE acct SET bal = bal + %d WHERE id = %d",
			op.Amount, op.From, op.Amount, op.To))
		return err
	}
}

// txnTransfer is one BEGIN; debit; credit; COMMIT.
func (b *Bank) txnTransfer(ctx context.Context, c *pgx.Conn, op BankOp) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "UPDATE acct SET bal = bal - $1 WHERE id = $2", op.Amount, op.From); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "UPDATE acct SET bal = bal + $1 WHERE id = $2", op.Amount, op.To); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Ops returns the recorded history.
func (b *Bank) Ops() []BankOp { return b.ops.all() }

// CheckReads returns one problem per read that saw a wrong total or a
// wrong number of accounts.
func (b *Bank) CheckReads(ops []BankOp) []string {
	b.defaults()
	var out []string
	for _, op := range ops {
		if op.Kind != "read" || op.Status != OK {
			continue
		}
		if p := b.checkBalances(op.Bals); p != "" {
			out = append(out, fmt.Sprintf("bank read[%s] on %s at %v: %s", op.Level, op.Node, op.Call, p))
		}
	}
	return out
}

func (b *Bank) checkBalances(bals []int64) string {
	var sum int64
	for _, v := range bals {
		sum += v
	}
	if len(bals) != b.Accounts || sum != b.Total() {
		return fmt.Sprintf("%d accounts %v with total %d, want %d accounts with total %d", len(bals), bals, sum, b.Accounts, b.Total())
	}
	return ""
}
