package pgwire_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/raftsql/raftsql/pgwire"
)

// TestTargetSessionAttrs: a client asking for a read-write session finds
// the leader and refuses a follower.
func TestTargetSessionAttrs(t *testing.T) {
	s := startServer(t, nil)
	ctx := ctxT(t)
	c, err := pgx.Connect(ctx, s.url("target_session_attrs=read-write"))
	if err != nil {
		t.Fatalf("leader refused: %v", err)
	}
	c.Close(ctx)
	s.eng.Leader.Store(false)
	if c, err := pgx.Connect(ctx, s.url("target_session_attrs=read-write")); err == nil {
		c.Close(ctx)
		t.Fatalf("follower accepted as read-write")
	}
	c, err = pgx.Connect(ctx, s.url("target_session_attrs=read-only"))
	if err != nil {
		t.Fatalf("follower refused as read-only: %v", err)
	}
	c.Close(ctx)
}

func TestErrorPosition(t *testing.T) {
	s := startServer(t, nil)
	c := connect(t, s, "")
	ctx := ctxT(t)
	_, err := c.Exec(ctx, "select 1; select * fro t")
	var pe *pgconn.PgError
	if !errorsAs(err, &pe) || pe.Code != "42601" || pe.Position != 20 {
		t.Fatalf("err = %#v", err)
	}
	_, err = c.Exec(ctx, "selec 1")
	if !errorsAs(err, &pe) || pe.Code != "42601" || pe.Position != 1 || !strings.Contains(pe.Message, `"selec"`) {
		t.Fatalf("err = %#v", err)
	}
	// Every error code keeps the session usable.
	for _, q := range []string{"create table u (a integer primary key, b text not null check (length(b) < 5), c integer references u(a))"} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for q, code := range map[string]string{
		"insert into u(a, b) values (1, 'x'), (1, 'y')": "23505",
		"insert into u(a) values (2)":                   "23502",
		"insert into u(a, b, c) values (3, 'x', 99)":    "23503",
		"insert into u(a, b) values (4, 'toolong')":     "23514",
		"select nosuchcol from u":                       "42703",
		"create table u (a int)":                        "42P07",
		"select * from nosuch":                          "42P01",
	} {
		_, err := c.Exec(ctx, q)
		if pgCode(err) != code {
			t.Errorf("%s: %v, want %s", q, err, code)
		}
		var one int
		if err := c.QueryRow(ctx, "select 1").Scan(&one); err != nil {
			t.Fatalf("after %s: %v", q, err)
		}
	}
}

func errorsAs(err error, pe **pgconn.PgError) bool {
	e, ok := err.(*pgconn.PgError)
	if ok {
		*pe = e
	}
	return ok
}

func TestMaxConns(t *testing.T) {
	s := startServer(t, func(c *pgwire.Config) { c.MaxConns = 1 })
	ctx := ctxT(t)
	c := connect(t, s, "")
	if c2, err := pgx.Connect(ctx, s.url("")); err == nil || pgCode(err) != "53300" {
		if c2 != nil {
			c2.Close(ctx)
		}
		t.Fatalf("second connection: %v", err)
	}
	c.Close(ctx)
	// The slot is freed when the first connection ends (poll: the server
	// notices the close asynchronously).
	deadline := time.Now().Add(10 * time.Second)
	for {
		c3, err := pgx.Connect(ctx, s.url(""))
		if err == nil {
			c3.Close(ctx)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	s := startServer(t, func(c *pgwire.Config) { c.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}} })
	ctx := ctxT(t)
	url := strings.Replace(s.url(""), "sslmode=disable", "sslmode=require", 1)
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatalf("connection is not TLS: %T", c.PgConn().Conn())
	}
	var one int
	if err := c.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
		t.Fatal(err)
	}
	_ = pgproto3.SSLRequest{}
}

// TestInformationSchema: catalog views that drivers and ORMs query, with
// their own filters, in both protocols.
func TestInformationSchema(t *testing.T) {
	s := startServer(t, nil)
	c := connect(t, s, "")
	ctx := ctxT(t)
	if _, err := c.Exec(ctx, "create table people (id integer primary key, name varchar(40) not null, born date)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c.QueryRow(ctx, "select count(*) from information_schema.tables where table_schema = 'public' and table_name = $1", "people").Scan(&n); err != nil || n != 1 {
		t.Fatalf("tables: %d %v", n, err)
	}
	rows, err := c.Query(ctx, "select column_name, data_type, is_nullable from information_schema.columns where table_name = $1 order by ordinal_position", "people")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var col, typ, null string
		if err := rows.Scan(&col, &typ, &null); err != nil {
			t.Fatal(err)
		}
		got = append(got, col+" "+typ+" "+null)
	}
	if strings.Join(got, ", ") != "id integer NO, name character varying NO, born date YES" {
		t.Fatalf("columns: %v (%v)", got, rows.Err())
	}
	var tn string
	if err := c.QueryRow(ctx, "select tablename from pg_tables where schemaname = 'public'", pgx.QueryExecModeSimpleProtocol).Scan(&tn); err != nil || tn != "people" {
		t.Fatalf("pg_tables: %q %v", tn, err)
	}
	// An unsupported catalog query gets zero rows, not an error.
	rows, err = c.Query(ctx, "select t.typname, t.oid from pg_catalog.pg_type t where t.typname = $1", "hstore")
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Fatalf("rows from pg_type")
	}
	if rows.Close(); rows.Err() != nil {
		t.Fatal(rows.Err())
	}
}
