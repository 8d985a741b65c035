package auth_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/raftsql/raftsql/auth"
	"github.com/raftsql/raftsql/auth/authtest"
)

// scramBackend is the smallest PostgreSQL server that authenticates with
// auth.SCRAMServer: startup, the SASL exchange, then ReadyForQuery; it
// reports each connection's outcome on results.
func scramBackend(t *testing.T, users *auth.Users) (addr string, results <-chan error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan error, 16)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(10 * time.Second))
				ch <- serveSCRAM(nc, users)
			}()
		}
	}()
	return ln.Addr().String(), ch
}

func serveSCRAM(nc net.Conn, users *auth.Users) error {
	be := pgproto3.NewBackend(nc, nc)
	var startup *pgproto3.StartupMessage
	for startup == nil {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			if _, err := nc.Write([]byte{'N'}); err != nil {
				return err
			}
		case *pgproto3.StartupMessage:
			startup = m
		default:
			return errors.New("unexpected startup message")
		}
	}
	user := startup.Parameters["user"]
	fail := func(code string, err error) error {
		be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: code, Message: err.Error()})
		be.Flush()
		return err
	}
	s := auth.NewSCRAMServer(users, user, rand.Reader)
	be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{auth.Mechanism}})
	if err := be.Flush(); err != nil {
		return err
	}
	be.SetAuthType(pgproto3.AuthTypeSASL)
	msg, err := be.Receive()
	if err != nil {
		return err
	}
	init, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok || init.AuthMechanism != auth.Mechanism {
		return fail("08P01", errors.New("expected SASLInitialResponse for SCRAM-SHA-256"))
	}
	serverFirst, err := s.ClientFirst(init.Data)
	if err != nil {
		return fail("08P01", err)
	}
	be.Send(&pgproto3.AuthenticationSASLContinue{Data: serverFirst})
	if err := be.Flush(); err != nil {
		return err
	}
	be.SetAuthType(pgproto3.AuthTypeSASLContinue)
	if msg, err = be.Receive(); err != nil {
		return err
	}
	resp, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return fail("08P01", errors.New("expected SASLResponse"))
	}
	serverFinal, err := s.ClientFinal(resp.Data)
	if errors.Is(err, auth.ErrAuthFailed) {
		return fail("28P01", err)
	} else if err != nil {
		return fail("08P01", err)
	}
	be.Send(&pgproto3.AuthenticationSASLFinal{Data: serverFinal})
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		return err
	}
	be.Receive() // Terminate, or the client hangs up
	return nil
}

func TestSCRAMWithPgx(t *testing.T) {
	users, err := auth.LoadFile(authtest.WriteAuthFile(t, map[string]string{"alice": "correct horse", "bob": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	addr, results := scramBackend(t, users)
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	connect := func(user, password string) error {
		conn, err := pgx.Connect(ctx, "host="+host+" port="+port+" sslmode=disable user="+user+" password='"+password+"'")
		if err == nil {
			conn.Close(ctx)
		}
		return err
	}

	if err := connect("alice", "correct horse"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := <-results; err != nil {
		t.Errorf("server side of the right password: %v", err)
	}
	for _, tc := range []struct{ user, password string }{{"alice", "correct horsf"}, {"mallory", "correct horse"}} {
		err := connect(tc.user, tc.password)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "28P01" || pgErr.Message != `password authentication failed for user "`+tc.user+`"` {
			t.Errorf("%s/%s: err %v, want 28P01", tc.user, tc.password, err)
		}
		if err := <-results; !errors.Is(err, auth.ErrAuthFailed) {
			t.Errorf("%s: server side: %v", tc.user, err)
		}
	}
}
