package auth

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"time"
)

// ServerTLS returns the TLS configuration for the client-facing listeners
// (PostgreSQL after SSLRequest, and the HTTP API): the certificate chain
// in certFile (PEM, leaf first) with the private key in keyFile (PEM),
// TLS 1.2 or newer, no client certificates asked for.
func ServerTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := loadKeyPair(certFile, keyFile, time.Now())
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// HTTPTLS returns the TLS configuration for the HTTP API: ServerTLS, and,
// when caFile is set (--peer-tls), client certificates are verified
// against that CA if a client presents one (tls.VerifyClientCertIfGiven):
// other nodes calling the API (join, forwarding) present their node
// certificate and are recognised as nodes (NodeName, BasicAuth,
// RequireNode), while operators' tools (curl, raftsql) connect without
// one. A client certificate that does not chain to the CA fails the
// handshake.
func HTTPTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cfg, err := ServerTLS(certFile, keyFile)
	if err != nil || caFile == "" {
		return cfg, err
	}
	pool, err := loadCA(caFile)
	if err != nil {
		return nil, err
	}
	cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	return cfg, nil
}

// PeerTLS returns the configurations for mutual TLS between nodes: each
// node presents the certificate in certFile/keyFile, and both sides
// require and verify that the other's certificate chains to the CA in
// caFile (TLS 1.3 only, since both ends are raftsqld). The client side
// also checks that the server's certificate names the host or IP address
// it dialled, so node certificates need the raft addresses' hosts in
// their subject alternative names, and both the serverAuth and clientAuth
// extended key usages (or none).
//
// server is complete for both directions (it carries RootCAs as well),
// so it can be given to consensus/transport's TCPConfig.TLS, which uses
// one configuration for listening and dialling; client is for dialling
// only (e.g. an HTTP client that calls another node).
func PeerTLS(certFile, keyFile, caFile string) (server, client *tls.Config, err error) {
	now := time.Now()
	cert, err := loadKeyPair(certFile, keyFile, now)
	if err != nil {
		return nil, nil, err
	}
	pool, err := loadCA(caFile)
	if err != nil {
		return nil, nil, err
	}
	leaf := cert.Leaf
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, nil, fmt.Errorf("%w: certificate %s is not signed by the CA in %s, so peers would refuse it: %w", ErrTLSConfig, certFile, caFile, err)
	}
	if len(leaf.ExtKeyUsage) > 0 {
		for _, u := range []struct {
			usage x509.ExtKeyUsage
			name  string
		}{{x509.ExtKeyUsageServerAuth, "serverAuth"}, {x509.ExtKeyUsageClientAuth, "clientAuth"}} {
			if !slices.Contains(leaf.ExtKeyUsage, u.usage) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
				return nil, nil, fmt.Errorf("%w: certificate %s lacks the %s extended key usage that mutual TLS between nodes needs", ErrTLSConfig, certFile, u.name)
			}
		}
	}
	server = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS13,
	}
	client = &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS13,
	}
	return server, client, nil
}

// loadKeyPair reads a PEM certificate chain and its private key, with an
// error that names the file at fault.
func loadKeyPair(certFile, keyFile string, now time.Time) (tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return tls.Certificate{}, fmt.Errorf("%w: a certificate file and a key file are both needed (--tls-cert, --tls-key)", ErrTLSConfig)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: certificate: %w", ErrTLSConfig, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: private key: %w", ErrTLSConfig, err)
	}
	if !hasPEMBlock(certPEM, "CERTIFICATE") {
		return tls.Certificate{}, fmt.Errorf("%w: %s holds no PEM CERTIFICATE block", ErrTLSConfig, certFile)
	}
	if !hasPEMBlock(keyPEM, "") {
		return tls.Certificate{}, fmt.Errorf("%w: %s holds no PEM private key", ErrTLSConfig, keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: certificate %s with key %s: %w", ErrTLSConfig, certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("%w: certificate %s: %w", ErrTLSConfig, certFile, err)
		}
	}
	if now.After(cert.Leaf.NotAfter) {
		return tls.Certificate{}, fmt.Errorf("%w: certificate %s expired at %s", ErrTLSConfig, certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(cert.Leaf.NotBefore) {
		return tls.Certificate{}, fmt.Errorf("%w: certificate %s is not valid before %s", ErrTLSConfig, certFile, cert.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return cert, nil
}

func loadCA(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, fmt.Errorf("%w: a CA file is needed for mutual TLS between nodes (--tls-ca)", ErrTLSConfig)
	}
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: CA: %w", ErrTLSConfig, err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file %s: %w", ErrTLSConfig, caFile, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: CA file %s holds no PEM CERTIFICATE block", ErrTLSConfig, caFile)
	}
	return pool, nil
}

// hasPEMBlock reports whether data holds a PEM block of the given type
// ("" for any private key type).
func hasPEMBlock(data []byte, typ string) bool {
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return false
		}
		if b.Type == typ || typ == "" && (b.Type == "PRIVATE KEY" || b.Type == "EC PRIVATE KEY" || b.Type == "RSA PRIVATE KEY") {
			return true
		}
	}
}
