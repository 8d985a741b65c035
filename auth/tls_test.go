package auth_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftsql/raftsql/auth"
	"github.com/raftsql/raftsql/auth/authtest"
	"github.com/raftsql/raftsql/consensus"
	"github.com/raftsql/raftsql/consensus/transport"
)

// handshake runs one TLS connection over loopback and returns the error
// each side saw: the server's handshake, and the client's handshake or its
// first read (in TLS 1.3 a client learns that the server refused its
// certificate only then).
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		if err := tc.HandshakeContext(ctx); err != nil {
			done <- err
			return
		}
		_, err = tc.Write([]byte("x"))
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if client.ServerName == "" {
		client = client.Clone()
		client.ServerName = "127.0.0.1"
	}
	tc := tls.Client(c, client)
	if clientErr = tc.HandshakeContext(ctx); clientErr == nil {
		_, clientErr = tc.Read(make([]byte, 1))
	}
	c.Close() // a server still in its handshake sees the client gone
	return <-done, clientErr
}

func TestServerTLS(t *testing.T) {
	ca := authtest.NewCA(t, "test ca")
	cert, key := ca.Issue(t, "server", authtest.CertOptions{})
	cfg, err := auth.ServerTLS(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("config %+v", cfg)
	}
	if sErr, cErr := handshake(t, cfg, &tls.Config{RootCAs: ca.Pool}); sErr != nil || cErr != nil {
		t.Errorf("verifying client: server %v, client %v", sErr, cErr)
	}
	if sErr, _ := handshake(t, cfg, &tls.Config{RootCAs: ca.Pool, MaxVersion: tls.VersionTLS11}); sErr == nil {
		t.Error("a TLS 1.1 client was accepted")
	}
	other := authtest.NewCA(t, "other ca")
	if _, cErr := handshake(t, cfg, &tls.Config{RootCAs: other.Pool}); cErr == nil {
		t.Error("a client that trusts another CA accepted the server")
	}
}

func TestTLSConfigErrors(t *testing.T) {
	ca := authtest.NewCA(t, "test ca")
	cert, key := ca.Issue(t, "node", authtest.CertOptions{})
	_, otherKey := ca.Issue(t, "other", authtest.CertOptions{})
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM at all\n"), 0o600)
	missing := filepath.Join(dir, "missing.pem")
	expiredCert, expiredKey := ca.Issue(t, "expired", authtest.CertOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"no cert", "", key, "both needed"},
		{"missing cert", missing, key, "certificate: open " + missing},
		{"missing key", cert, missing, "private key: open " + missing},
		{"garbage cert", garbage, key, garbage + " holds no PEM CERTIFICATE"},
		{"garbage key", cert, garbage, garbage + " holds no PEM private key"},
		{"key of another cert", cert, otherKey, "private key does not match public key"},
		{"key as cert", key, key, key + " holds no PEM CERTIFICATE"},
		{"expired", expiredCert, expiredKey, "expired at"},
	} {
		_, err := auth.ServerTLS(tc.cert, tc.key)
		if !errors.Is(err, auth.ErrTLSConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ServerTLS %s: err %v, want ErrTLSConfig with %q", tc.name, err, tc.want)
		}
		_, _, err = auth.PeerTLS(tc.cert, tc.key, ca.CertFile)
		if !errors.Is(err, auth.ErrTLSConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("PeerTLS %s: err %v, want ErrTLSConfig with %q", tc.name, err, tc.want)
		}
	}

	other := authtest.NewCA(t, "other ca")
	foreignCert, foreignKey := other.Issue(t, "foreign", authtest.CertOptions{})
	serverOnlyCert, serverOnlyKey := ca.Issue(t, "serveronly", authtest.CertOptions{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	for _, tc := range []struct {
		name, cert, key, ca, want string
	}{
		{"no CA", cert, key, "", "--tls-ca"},
		{"missing CA", cert, key, missing, "CA: open " + missing},
		{"garbage CA", cert, key, garbage, garbage + " holds no PEM CERTIFICATE"},
		{"cert of another CA", foreignCert, foreignKey, ca.CertFile, "is not signed by the CA in " + ca.CertFile},
		{"no clientAuth usage", serverOnlyCert, serverOnlyKey, ca.CertFile, "lacks the clientAuth extended key usage"},
	} {
		_, _, err := auth.PeerTLS(tc.cert, tc.key, tc.ca)
		if !errors.Is(err, auth.ErrTLSConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("PeerTLS %s: err %v, want ErrTLSConfig with %q", tc.name, err, tc.want)
		}
	}
}

func TestPeerTLS(t *testing.T) {
	ca := authtest.NewCA(t, "cluster ca")
	aCert, aKey := ca.Issue(t, "a", authtest.CertOptions{})
	bCert, bKey := ca.Issue(t, "b", authtest.CertOptions{})
	server, _, err := auth.PeerTLS(aCert, aKey, ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	_, client, err := auth.PeerTLS(bCert, bKey, ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	if server.InsecureSkipVerify || client.InsecureSkipVerify || server.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("server %+v client %+v", server, client)
	}

	if sErr, cErr := handshake(t, server, client); sErr != nil || cErr != nil {
		t.Fatalf("two nodes of the CA: server %v, client %v", sErr, cErr)
	}

	// No client certificate: refused.
	noCert := &tls.Config{RootCAs: ca.Pool}
	if sErr, cErr := handshake(t, server, noCert); sErr == nil || cErr == nil {
		t.Errorf("client without a certificate: server %v, client %v", sErr, cErr)
	}

	// A certificate from another CA (which the client itself trusts): refused.
	other := authtest.NewCA(t, "other ca")
	oCert, oKey := other.Issue(t, "intruder", authtest.CertOptions{})
	oPair, err := tls.LoadX509KeyPair(oCert, oKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := ca.Pool.Clone()
	pool.AddCert(other.Cert)
	// (Sent whatever the server's list of acceptable CAs, which a Go
	// client would otherwise honour by sending no certificate.)
	foreign := &tls.Config{RootCAs: pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &oPair, nil }}
	if sErr, _ := handshake(t, server, foreign); sErr == nil || !strings.Contains(sErr.Error(), "unknown authority") {
		t.Errorf("client with a certificate of another CA: server %v", sErr)
	}

	// A server with a certificate of another CA: the node refuses it.
	intruder := &tls.Config{Certificates: []tls.Certificate{oPair}, ClientAuth: tls.RequireAnyClientCert}
	if _, cErr := handshake(t, intruder, client); cErr == nil || !strings.Contains(cErr.Error(), "unknown authority") {
		t.Errorf("server with a certificate of another CA: client %v", cErr)
	}

	// A server certificate of the CA but for another host: refused too.
	elsewhereCert, elsewhereKey := ca.Issue(t, "elsewhere", authtest.CertOptions{Hosts: []string{"10.9.9.9"}})
	elsewhere, _, err := auth.PeerTLS(elsewhereCert, elsewhereKey, ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, cErr := handshake(t, elsewhere, client); cErr == nil {
		t.Error("server certificate for another host accepted")
	}
}

type recvHandler struct {
	mu  sync.Mutex
	got []consensus.Message
}

func (h *recvHandler) Receive(m consensus.Message) {
	h.mu.Lock()
	h.got = append(h.got, m)
	h.mu.Unlock()
}
func (h *recvHandler) ReportUnreachable(string)    {}
func (h *recvHandler) ReportSnapshot(string, bool) {}
func (h *recvHandler) count() int                  { h.mu.Lock(); defer h.mu.Unlock(); return len(h.got) }

// The server config of PeerTLS is what consensus/transport takes: Raft
// messages flow between nodes of the CA, and not from a node of another.
func TestPeerTLSWithTransport(t *testing.T) {
	ca := authtest.NewCA(t, "cluster ca")
	other := authtest.NewCA(t, "other ca")
	start := func(id string, ca *authtest.CA) (*transport.TCP, *recvHandler) {
		cert, key := ca.Issue(t, id, authtest.CertOptions{})
		server, _, err := auth.PeerTLS(cert, key, ca.CertFile)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := transport.NewTCP(transport.TCPConfig{ID: id, ListenAddr: "127.0.0.1:0", TLS: server})
		if err != nil {
			t.Fatal(err)
		}
		h := &recvHandler{}
		if err := tr.Start(t.Context(), h); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr, h
	}
	a, _ := start("a", ca)
	b, hb := start("b", ca)
	x, _ := start("x", other)
	a.AddPeer("b", b.Addr())
	x.AddPeer("b", b.Addr())
	msg := func(from string) []consensus.Message {
		return []consensus.Message{{Type: consensus.MsgHeartbeat, From: from, To: "b", Term: 1}}
	}
	deadline := time.Now().Add(10 * time.Second)
	for hb.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no message from a node of the CA")
		}
		a.Send(msg("a"))
		time.Sleep(10 * time.Millisecond)
	}
	n := hb.count()
	// x keeps trying (and reconnecting) for a while; none of its
	// messages may arrive. The transport counts its failed dials.
	for x.Stats().DialFailures < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("x never failed to dial: %+v", x.Stats())
		}
		x.Send(msg("x"))
		time.Sleep(10 * time.Millisecond)
	}
	hb.mu.Lock()
	defer hb.mu.Unlock()
	for _, m := range hb.got[n:] {
		if m.From == "x" {
			t.Fatalf("a message from a node of another CA arrived: %+v", m)
		}
	}
}
