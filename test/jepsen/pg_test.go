package jepsen

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgCluster pretends that one PostgreSQL server is three nodes, to check the
// workloads' SQL and the whole pipeline of a run against a database whose
// behaviour is known.
type pgCluster struct {
	fakeCluster
	dsn string
}

func (p *pgCluster) DSN(id, level string) string {
	u, err := url.Parse(p.dsn)
	if err != nil {
		return p.dsn
	}
	if level != "" {
		q := u.Query()
		q.Set("options", "-c raftsql.read_consistency="+level)
		u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	}
	return u.String()
}

// TestWorkloadsAgainstPostgres runs every workload without faults against
// the PostgreSQL server in JEPSEN_PG_DSN (skipped when unset), e.g.
// JEPSEN_PG_DSN=postgres://postgres@127.0.0.1:5432/jepsen?sslmode=disable.
func TestWorkloadsAgainstPostgres(t *testing.T) {
	dsn := os.Getenv("JEPSEN_PG_DSN")
	if dsn == "" {
		t.Skip("JEPSEN_PG_DSN not set; set it to a scratch PostgreSQL database to check the workloads")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS reg, acct, set_items"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	cl := &pgCluster{fakeCluster: *newFake(false), dsn: dsn}
	res, err := Run(ctx, Config{
		Cluster: cl, Duration: 3 * time.Second, Seed: 1, NoNemesis: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Summary())
	if len(res.Problems) != 0 {
		t.Fatalf("problems against PostgreSQL: %q", res.Problems)
	}
	if len(res.Register.Ops()) < 20 || len(res.Bank.Ops()) < 10 || len(res.Set.Ops()) < 10 {
		t.Fatal("too few operations ran")
	}
	for _, op := range res.Register.Ops() {
		if op.Status != OK {
			t.Errorf("register op failed against PostgreSQL: %v: %s", op, op.Err)
		}
	}
	for _, op := range res.Bank.Ops() {
		// PostgreSQL's row locks deadlock two opposite transfers; that
		// is the one error allowed here.
		if op.Status != OK && !strings.Contains(op.Err, "40P01") {
			t.Fatalf("bank op failed against PostgreSQL: %+v", op)
		}
	}
	if err := res.WriteArtifacts(t.TempDir()); err != nil {
		t.Fatal(err)
	}
}
