package auth

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"time"
)

// Options are raftsqld's security flags.
type Options struct {
	AuthFile               string // --auth-file
	TLSCert, TLSKey, TLSCA string // --tls-cert, --tls-key, --tls-ca
	PeerTLS                bool   // --peer-tls
}

// Setup is what the flags configure, loaded and checked once at start-up.
// A nil field means that feature is off.
type Setup struct {
	// Users (--auth-file) go to pgwire.Config.AuthUsers and BasicAuth.
	Users *Users
	// ClientTLS (--tls-cert, --tls-key) goes to pgwire.Config.TLSConfig.
	ClientTLS *tls.Config
	// HTTPTLS is for the HTTP listener (tls.NewListener): ClientTLS, plus
	// node certificates verified against --tls-ca under --peer-tls.
	HTTPTLS *tls.Config
	// PeerServer (--peer-tls) goes to transport.TCPConfig.TLS; PeerClient
	// is for a node's own HTTP calls to other nodes (join, forwarding).
	PeerServer, PeerClient *tls.Config
}

// Load reads and checks every file the options name, so that a bad file
// stops raftsqld at start-up with an error naming it rather than at the
// first connection.
func Load(o Options) (*Setup, error) {
	var s Setup
	var err error
	if o.AuthFile != "" {
		if s.Users, err = LoadFile(o.AuthFile); err != nil {
			return nil, err
		}
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, fmt.Errorf("%w: --tls-cert and --tls-key go together", ErrTLSConfig)
	}
	if o.PeerTLS && (o.TLSCert == "" || o.TLSCA == "") {
		return nil, fmt.Errorf("%w: --peer-tls needs --tls-cert, --tls-key and --tls-ca", ErrTLSConfig)
	}
	if o.TLSCert == "" {
		return &s, nil
	}
	if s.ClientTLS, err = ServerTLS(o.TLSCert, o.TLSKey); err != nil {
		return nil, err
	}
	if !o.PeerTLS {
		s.HTTPTLS = s.ClientTLS
		return &s, nil
	}
	if s.HTTPTLS, err = HTTPTLS(o.TLSCert, o.TLSKey, o.TLSCA); err != nil {
		return nil, err
	}
	if s.PeerServer, s.PeerClient, err = PeerTLS(o.TLSCert, o.TLSKey, o.TLSCA); err != nil {
		return nil, err
	}
	return &s, nil
}

// HTTPScheme is the scheme of the nodes' HTTP API: "https" when it is
// served over TLS.
func (s *Setup) HTTPScheme() string {
	if s.HTTPTLS != nil {
		return "https"
	}
	return "http"
}

// HTTPClient returns a client for one node's calls to another's HTTP API
// (POST /join, forwarding to the leader): it presents the node
// certificate and verifies the other node against --tls-ca under
// --peer-tls; with TLS but no --peer-tls it verifies against the system
// roots.
func (s *Setup) HTTPClient(timeout time.Duration) *http.Client {
	c := &http.Client{Timeout: timeout}
	if s.PeerClient != nil {
		c.Transport = &http.Transport{TLSClientConfig: s.PeerClient.Clone(), ForceAttemptHTTP2: true}
	}
	return c
}

// HTTPHandler wraps the HTTP API h as the options require: with users,
// every path but open ones (e.g. "/readyz" for health checks) needs a
// password or a node certificate (BasicAuth); without, h is returned as
// is.
func (s *Setup) HTTPHandler(h http.Handler, open ...string) http.Handler {
	if s.Users == nil {
		return h
	}
	protected := BasicAuth(s.Users)(h)
	if len(open) == 0 {
		return protected
	}
	isOpen := make(map[string]bool, len(open))
	for _, p := range open {
		isOpen[p] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isOpen[r.URL.Path] {
			h.ServeHTTP(w, r)
			return
		}
		protected.ServeHTTP(w, r)
	})
}
