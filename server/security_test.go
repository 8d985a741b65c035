package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/raftsql/raftsql/auth/authtest"
)

func TestAuthFileRequiresPasswords(t *testing.T) {
	file := authtest.WriteAuthFile(t, map[string]string{"alice": "s3cret-pw"})
	c := startClusterWith(t, 1, func(cfg *Config) { cfg.AuthFile = file })
	c.waitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := func(user, pw string) string {
		return fmt.Sprintf("postgres://%s:%s@%s/db?sslmode=disable", user, pw, c.servers[0].PGAddr())
	}
	conn, err := pgx.Connect(ctx, dsn("alice", "s3cret-pw"))
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("query after login: %d %v", one, err)
	}
	conn.Close(ctx)
	for _, tc := range []struct{ user, pw string }{{"alice", "wrong"}, {"mallory", "s3cret-pw"}} {
		_, err := pgx.Connect(ctx, dsn(tc.user, tc.pw))
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
			t.Fatalf("%s/%s: %v, want SQLSTATE 28P01", tc.user, tc.pw, err)
		}
	}
	// The HTTP API asks for the same credentials; /readyz stays open for
	// health checks.
	base := "http://" + c.servers[0].HTTPAddr()
	if code, body := httpDo(t, "GET", base+"/status", nil); code != http.StatusUnauthorized || !strings.Contains(string(body), "error") {
		t.Fatalf("/status without credentials: %d %s", code, body)
	}
	req, _ := http.NewRequest("GET", base+"/status", nil)
	req.SetBasicAuth("alice", "s3cret-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/status with credentials: %v %v", resp, err)
	}
	resp.Body.Close()
	// /readyz needs no credentials (it answers 503 until the node is
	// registered, never 401).
	for deadline := time.Now().Add(20 * time.Second); ; {
		code, body := httpDo(t, "GET", base+"/readyz", nil)
		if code == http.StatusOK {
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTLSForClientsAndPeers(t *testing.T) {
	ca := authtest.NewCA(t, "raftsql-test-ca")
	n := 0
	c := startClusterWith(t, 3, func(cfg *Config) {
		n++
		cfg.TLSCert, cfg.TLSKey = ca.Issue(t, fmt.Sprintf("node%d", n), authtest.CertOptions{})
		cfg.TLSCA, cfg.PeerTLS = ca.CertFile, true
	})
	lead := c.waitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Replication works over mutual TLS, and clients connect with TLS.
	for _, mode := range []string{"require", "verify-full"} {
		dsn := fmt.Sprintf("postgres://u@%s/db?sslmode=%s&sslrootcert=%s", c.servers[(lead+1)%3].PGAddr(), mode, ca.CertFile)
		dsn = strings.Replace(dsn, "127.0.0.1", "localhost", 1)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("sslmode=%s: %v", mode, err)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS tls_t (id INTEGER PRIMARY KEY)"); err != nil {
			t.Fatalf("write over TLS through a follower: %v", err)
		}
		conn.Close(ctx)
	}
	// The HTTP API serves TLS only.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	req, _ := http.NewRequest("GET", "https://"+strings.Replace(c.servers[0].HTTPAddr(), "127.0.0.1", "localhost", 1)+"/status", nil)
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("https /status: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestPeerTLSJoinNeedsANodeCertificate(t *testing.T) {
	ca := authtest.NewCA(t, "raftsql-test-ca")
	c := startClusterWith(t, 1, func(cfg *Config) {
		cfg.TLSCert, cfg.TLSKey = ca.Issue(t, "node1", authtest.CertOptions{})
		cfg.TLSCA, cfg.PeerTLS = ca.CertFile, true
	})
	c.waitLeader()
	// A client that trusts the CA but has no certificate of its own may not
	// add a member.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	url := "https://" + strings.Replace(c.servers[0].HTTPAddr(), "127.0.0.1", "localhost", 1) + "/join"
	resp, err := client.Post(url, "application/json", strings.NewReader(`{"id":"9","raft_addr":"127.0.0.1:1","voter":false}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous /join under --peer-tls: %d, want 401 or 403", resp.StatusCode)
	}
	if len(c.servers[0].node.Status().Conf.Members) != 1 {
		t.Fatalf("configuration changed: %+v", c.servers[0].node.Status().Conf)
	}
}
