package pgwire_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/raftsql/raftsql/auth"
	"github.com/raftsql/raftsql/auth/authtest"
	"github.com/raftsql/raftsql/pgwire"
	"github.com/raftsql/raftsql/pgwire/pgwiretest"
)

func authUsersServer(t *testing.T, mod func(*pgwire.Config)) *testServer {
	t.Helper()
	users, err := auth.LoadFile(authtest.WriteAuthFile(t, map[string]string{"tester": "correct horse"}))
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, func(c *pgwire.Config) {
		c.AuthUsers = users
		if mod != nil {
			mod(c)
		}
	})
}

// authUsersTLSServer is authUsersServer with TLS, its certificate issued
// by the returned CA for "server".
func authUsersTLSServer(t *testing.T) (*testServer, *authtest.CA) {
	t.Helper()
	ca := authtest.NewCA(t, "test ca")
	cert, key := ca.Issue(t, "server", authtest.CertOptions{})
	tlsCfg, err := auth.ServerTLS(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return authUsersServer(t, func(c *pgwire.Config) { c.TLSConfig = tlsCfg }), ca
}

func TestAuthUsersPgx(t *testing.T) {
	s := authUsersServer(t, nil)
	ctx := ctxT(t)
	host, port, _ := net.SplitHostPort(s.addr)
	dsn := func(user, password string) string {
		return "host=" + host + " port=" + port + " dbname=testdb sslmode=disable user=" + user + " password='" + password + "'"
	}
	c, err := pgx.Connect(ctx, dsn("tester", "correct horse"))
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("SELECT 1: %v %v", one, err)
	}
	c.Close(ctx)

	for _, tc := range []struct{ user, password string }{{"tester", "correct horsf"}, {"tester", ""}, {"mallory", "correct horse"}} {
		_, err := pgx.Connect(ctx, dsn(tc.user, tc.password))
		if pgCode(err) != "28P01" || !strings.Contains(err.Error(), `password authentication failed for user "`+tc.user+`"`) {
			t.Errorf("%s/%q: err %v, want 28P01", tc.user, tc.password, err)
		}
	}
}

func TestAuthUsersOverTLS(t *testing.T) {
	s, ca := authUsersTLSServer(t)
	ctx := ctxT(t)
	host, port, _ := net.SplitHostPort(s.addr)
	for _, mode := range []string{"require", "verify-full sslrootcert=" + ca.CertFile} {
		// Over TLS pgx sends the GS2 header "y,," (it could bind the
		// channel, the server does not offer it).
		c, err := pgx.Connect(ctx, "host="+host+" port="+port+" dbname=testdb user=tester password='correct horse' sslmode="+mode)
		if err != nil {
			t.Fatalf("sslmode=%s: %v", mode, err)
		}
		if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
			t.Errorf("sslmode=%s: not over TLS", mode)
		}
		c.Close(ctx)
	}
	_, err := pgx.Connect(ctx, "host="+host+" port="+port+" dbname=testdb user=tester password=wrong sslmode=require")
	if pgCode(err) != "28P01" {
		t.Errorf("wrong password over TLS: %v", err)
	}
}

func TestAuthUsersPsql(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql not installed")
	}
	s, ca := authUsersTLSServer(t)
	host, port, _ := net.SplitHostPort(s.addr)
	psql := func(password, sslmode string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "psql", "-X", "-h", host, "-p", port, "-U", "tester", "-d", "testdb", "-At", "-c", "select 1")
		cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGSSLMODE="+sslmode, "PGSSLROOTCERT="+ca.CertFile, "PGCONNECT_TIMEOUT=10")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, mode := range []string{"disable", "require", "verify-full"} {
		if out, err := psql("correct horse", mode); err != nil || strings.TrimSpace(out) != "1" {
			t.Errorf("psql sslmode=%s: %v\n%s", mode, err, out)
		}
	}
	out, err := psql("wrong", "disable")
	if err == nil || !strings.Contains(out, `password authentication failed for user "tester"`) {
		t.Errorf("psql with a wrong password: %v\n%s", err, out)
	}
}

// A client that sends garbage, the wrong message or nothing during the
// exchange gets an error (or is cut off at the startup deadline), and the
// server goes on serving.
func TestAuthUsersGarbage(t *testing.T) {
	s := authUsersServer(t, func(c *pgwire.Config) { c.StartupTimeout = 500 * time.Millisecond })
	// start opens a connection, sends the startup packet and reads
	// AuthenticationSASL.
	start := func() (net.Conn, *pgproto3.Frontend) {
		t.Helper()
		nc, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		fe := pgproto3.NewFrontend(nc, nc)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "tester"}})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := msg.(*pgproto3.AuthenticationSASL); !ok || len(m.AuthMechanisms) != 1 || m.AuthMechanisms[0] != auth.Mechanism {
			t.Fatalf("first message %#v", msg)
		}
		return nc, fe
	}
	// finish reads until the server's error and the end of the connection.
	finish := func(name string, fe *pgproto3.Frontend, nc net.Conn, wantCode string) {
		t.Helper()
		var code string
		for {
			msg, err := fe.Receive()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Errorf("%s: the server did not close the connection", name)
					}
				}
				break
			}
			switch m := msg.(type) {
			case *pgproto3.ErrorResponse:
				code = m.Code
			case *pgproto3.AuthenticationOk:
				t.Errorf("%s: authenticated", name)
			}
		}
		if code != wantCode {
			t.Errorf("%s: error code %q, want %q", name, code, wantCode)
		}
	}
	rawP := func(body []byte) []byte { // a 'p' message with any body
		return append([]byte{'p', 0, 0, 0, byte(4 + len(body))}, body...)
	}
	for _, tc := range []struct {
		name string
		send func(nc net.Conn, fe *pgproto3.Frontend)
		code string
	}{
		{"query instead", func(_ net.Conn, fe *pgproto3.Frontend) { fe.Send(&pgproto3.Query{String: "select 1"}) }, "08P01"},
		{"other mechanism", func(_ net.Conn, fe *pgproto3.Frontend) {
			fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-1", Data: []byte("n,,n=,r=abc")})
		}, "08P01"},
		{"channel binding", func(_ net.Conn, fe *pgproto3.Frontend) {
			fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: auth.Mechanism, Data: []byte("p=tls-server-end-point,,n=,r=abc")})
		}, "08P01"},
		{"garbage client-first", func(_ net.Conn, fe *pgproto3.Frontend) {
			fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: auth.Mechanism, Data: []byte("\x00\xff,,,")})
		}, "08P01"},
		{"truncated body", func(nc net.Conn, _ *pgproto3.Frontend) { nc.Write(rawP([]byte("SCRAM"))) }, "08P01"},
		{"bad length", func(nc net.Conn, _ *pgproto3.Frontend) { nc.Write([]byte{'p', 0xff, 0xff, 0xff, 0xff}) }, "08P01"},
		{"silence", func(net.Conn, *pgproto3.Frontend) {}, ""},
		{"hang-up", func(nc net.Conn, _ *pgproto3.Frontend) { nc.(*net.TCPConn).CloseWrite() }, ""},
	} {
		nc, fe := start()
		tc.send(nc, fe)
		fe.Flush()
		finish(tc.name, fe, nc, tc.code)
	}

	// Garbage in the second round.
	nc, fe := start()
	fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: auth.Mechanism, Data: []byte("n,,n=,r=abc")})
	fe.Flush()
	if msg, err := fe.Receive(); err != nil {
		t.Fatal(err)
	} else if _, ok := msg.(*pgproto3.AuthenticationSASLContinue); !ok {
		t.Fatalf("got %#v", msg)
	}
	fe.Send(&pgproto3.SASLResponse{Data: []byte("c=biws,r=abc,p=AAAA")})
	fe.Flush()
	finish("bad client-final", fe, nc, "08P01")

	// The server is fine afterwards.
	c, err := pgx.Connect(ctxT(t), s.url("password=correct%20horse"))
	if err != nil {
		t.Fatalf("after the garbage: %v", err)
	}
	c.Close(context.Background())
}

// TestAuthUsersNodePostgres logs in with node-postgres when node and the pg
// module are available (NODE_PATH or testdata/node_modules).
func TestAuthUsersNodePostgres(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	if err := exec.Command("node", "-e", "require('pg')").Run(); err != nil {
		if _, serr := os.Stat("testdata/node_modules/pg"); serr != nil {
			t.Skip("node module pg not installed (npm install pg in pgwire/testdata, or set NODE_PATH)")
		}
	}
	s := authUsersServer(t, nil)
	const script = `
const { Client } = require('pg');
(async () => {
  const ok = new Client({ connectionString: process.env.PGURL_OK });
  await ok.connect();
  const r = await ok.query('select 1 as one');
  console.log('one=' + r.rows[0].one);
  await ok.end();
  const bad = new Client({ connectionString: process.env.PGURL_BAD });
  try { await bad.connect(); console.log('wrong password connected'); }
  catch (e) { console.log('wrong password: ' + e.code + ' ' + e.message); }
})().catch(e => { console.error(e); process.exit(1); });
`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "-e", script)
	cmd.Dir = "testdata"
	cmd.Env = append(os.Environ(), "PGURL_OK="+s.url("password=correct%20horse"), "PGURL_BAD="+s.url("password=wrong"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "one=1") ||
		!strings.Contains(string(out), `wrong password: 28P01 password authentication failed for user "tester"`) {
		t.Fatalf("node: %v\n%s", err, out)
	}
}

// FuzzAuthUsersStartup sends arbitrary SASL messages after a startup packet:
// the server never panics or hangs, and never authenticates.
func FuzzAuthUsersStartup(f *testing.F) {
	eng, err := pgwiretest.New()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { eng.Close() })
	users, err := auth.LoadFile(authtest.WriteAuthFile(f, map[string]string{"tester": "correct horse"}))
	if err != nil {
		f.Fatal(err)
	}
	srv, err := pgwire.NewServer(pgwire.Config{Engine: eng, AuthUsers: users, MaxMessageSize: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	pgwire.DisableRecover(srv)
	f.Add("SCRAM-SHA-256", []byte("n,,n=,r=abc"), []byte("c=biws,r=abc,p=AAAA"))
	f.Add("SCRAM-SHA-256", []byte("y,,n=tester,r=x"), []byte{})
	f.Add("PLAIN", []byte("\x00"), []byte("\xff"))
	f.Fuzz(func(t *testing.T, mech string, first, final []byte) {
		client, server := net.Pipe()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeConn(ctx, server)
		}()
		go func() { // the client writes without waiting for answers
			fe := pgproto3.NewFrontend(client, client)
			fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "tester"}})
			fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: mech, Data: first})
			fe.Send(&pgproto3.SASLResponse{Data: final})
			fe.Flush()
		}()
		client.SetDeadline(time.Now().Add(10 * time.Second))
		fe := pgproto3.NewFrontend(client, client)
		for {
			msg, err := fe.Receive()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("the server hung")
				}
				break
			}
			if _, ok := msg.(*pgproto3.AuthenticationOk); ok {
				t.Fatalf("authenticated with %q %q %q", mech, first, final)
			}
		}
		client.Close()
		<-done
	})
}
