package server

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/raftsql/raftsql/auth"
)

// loadSecurity reads the auth file and certificates the flags name, so
// that a bad file stops the node at start-up with an error naming it.
func (c *Config) loadSecurity() (*auth.Setup, error) {
	setup, err := auth.Load(auth.Options{
		AuthFile: c.AuthFile,
		TLSCert:  c.TLSCert, TLSKey: c.TLSKey, TLSCA: c.TLSCA,
		PeerTLS: c.PeerTLS,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return setup, nil
}

// tlsListener wraps ln in TLS when cfg is set.
func tlsListener(ln net.Listener, cfg *tls.Config) net.Listener {
	if cfg == nil {
		return ln
	}
	return tls.NewListener(ln, cfg)
}
