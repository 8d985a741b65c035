package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/raftsql/raftsql/consensus"
)

// testCA issues certificates for 127.0.0.1 signed by a fresh CA.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) issue(t *testing.T, name string, serial int64) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func mutualTLS(ca *testCA, cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.pool, ClientCAs: ca.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
}

func TestTCPMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	a := newTCP(t, TCPConfig{ID: "a", TLS: mutualTLS(ca, ca.issue(t, "a", 2))})
	b := newTCP(t, TCPConfig{ID: "b", TLS: mutualTLS(ca, ca.issue(t, "b", 3))})
	a.tr.AddPeer("b", b.tr.Addr())
	a.tr.Send([]consensus.Message{testMsg("a", "b", 1)})
	waitFor(t, "delivery over mutual TLS", func() bool { return len(b.h.received()) == 1 })

	// A plaintext peer and a TLS peer without a client certificate are
	// both refused.
	c, err := net.Dial("tcp", b.tr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Write(appendPreface(nil, preface{From: "a", To: "b"}))
	c.Write(appendFrame(nil, appendMessagesPayload(nil, []consensus.Message{testMsg("a", "b", 2)})))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, c)
	c.Close()
	other := newTestCA(t)
	intruder := newTCP(t, TCPConfig{ID: "a", TLS: mutualTLS(ca, other.issue(t, "a", 4))})
	intruder.tr.AddPeer("b", b.tr.Addr())
	intruder.tr.Send([]consensus.Message{testMsg("a", "b", 3)})
	waitFor(t, "intruder refused", func() bool { return b.tr.(*TCP).Stats().BadPeers >= 2 })
	if n := len(b.h.received()); n != 1 {
		t.Fatalf("b received %d messages; only the one over mutual TLS is allowed", n)
	}
}
