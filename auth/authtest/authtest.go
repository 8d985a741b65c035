package authtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftsql/raftsql/auth"
)

// CA is a test certificate authority.
type CA struct {
	Cert     *x509.Certificate
	Key      *ecdsa.PrivateKey
	CertFile string // PEM of Cert, for --tls-ca
	Pool     *x509.CertPool

	dir    string
	serial atomic.Int64
}

// NewCA makes a CA valid from an hour ago for a day, and writes its
// certificate to a file in a fresh temporary directory.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Cert: cert, Key: key, dir: t.TempDir(), Pool: x509.NewCertPool()}
	ca.Pool.AddCert(cert)
	ca.serial.Store(1)
	ca.CertFile = filepath.Join(ca.dir, "ca.crt")
	writePEM(t, ca.CertFile, "CERTIFICATE", der)
	return ca
}

// CertOptions adjusts a certificate that Issue makes.
type CertOptions struct {
	// Hosts are DNS names or IP addresses for the subject alternative
	// names (default "127.0.0.1" and "localhost").
	Hosts []string
	// NotBefore, NotAfter default to an hour ago and a day from now.
	NotBefore, NotAfter time.Time
	// ExtKeyUsage defaults to serverAuth and clientAuth.
	ExtKeyUsage []x509.ExtKeyUsage
}

// Issue makes a certificate for name signed by ca, and writes it and its
// key to name.crt and name.key (PEM) in the CA's directory.
func (ca *CA) Issue(t testing.TB, name string, opts CertOptions) (certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	if opts.NotBefore.IsZero() {
		opts.NotBefore = now.Add(-time.Hour)
	}
	if opts.NotAfter.IsZero() {
		opts.NotAfter = now.Add(24 * time.Hour)
	}
	if opts.ExtKeyUsage == nil {
		opts.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	if opts.Hosts == nil {
		opts.Hosts = []string{"127.0.0.1", "localhost"}
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: opts.NotBefore, NotAfter: opts.NotAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: opts.ExtKeyUsage}
	for _, h := range opts.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(ca.dir, name+".crt")
	keyFile = filepath.Join(ca.dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

// WriteAuthFile writes an auth file with the given users and passwords
// (PBKDF2 with few iterations, to keep tests fast) and returns its path.
func WriteAuthFile(t testing.TB, passwords map[string]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# written by authtest\n")
	for user, pw := range passwords {
		salt := make([]byte, auth.SaltLen)
		rand.Read(salt)
		v, err := auth.NewVerifier(pw, salt, 64)
		if err != nil {
			t.Fatal(err)
		}
		line, err := auth.FormatEntry(user, v)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(line + "\n")
	}
	path := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
