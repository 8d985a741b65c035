package auth_test

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/raftsql/raftsql/auth"
	"github.com/raftsql/raftsql/auth/authtest"
)

func TestLoad(t *testing.T) {
	ca := authtest.NewCA(t, "cluster ca")
	cert, key := ca.Issue(t, "n1", authtest.CertOptions{})
	authFile := authtest.WriteAuthFile(t, map[string]string{"admin": "pw"})

	s, err := auth.Load(auth.Options{})
	if err != nil || s.Users != nil || s.ClientTLS != nil || s.HTTPTLS != nil || s.PeerServer != nil || s.PeerClient != nil || s.HTTPScheme() != "http" {
		t.Errorf("no options: %+v %v", s, err)
	}
	s, err = auth.Load(auth.Options{AuthFile: authFile, TLSCert: cert, TLSKey: key})
	if err != nil || s.Users == nil || s.ClientTLS == nil || s.HTTPTLS != s.ClientTLS || s.PeerServer != nil || s.HTTPScheme() != "https" {
		t.Errorf("auth file and TLS: %+v %v", s, err)
	}
	s, err = auth.Load(auth.Options{TLSCert: cert, TLSKey: key, TLSCA: ca.CertFile, PeerTLS: true})
	if err != nil || s.Users != nil || s.ClientTLS == nil || s.HTTPTLS == nil || s.HTTPTLS.ClientCAs == nil || s.PeerServer == nil || s.PeerClient == nil {
		t.Errorf("peer TLS: %+v %v", s, err)
	}
	for _, tc := range []struct {
		o    auth.Options
		want error
	}{
		{auth.Options{AuthFile: ca.CertFile}, auth.ErrBadFile},
		{auth.Options{TLSCert: cert}, auth.ErrTLSConfig},
		{auth.Options{TLSKey: key}, auth.ErrTLSConfig},
		{auth.Options{TLSCert: cert, TLSKey: key, PeerTLS: true}, auth.ErrTLSConfig},
		{auth.Options{TLSCert: cert, TLSKey: cert}, auth.ErrTLSConfig},
		{auth.Options{TLSCert: cert, TLSKey: key, TLSCA: key, PeerTLS: true}, auth.ErrTLSConfig},
	} {
		if _, err := auth.Load(tc.o); !errors.Is(err, tc.want) {
			t.Errorf("%+v: err %v, want %v", tc.o, err, tc.want)
		}
	}
}

// The wiring the server does: HTTPTLS listener, HTTPHandler with an open
// /readyz, a node calling with HTTPClient.
func TestSetupHTTP(t *testing.T) {
	ca := authtest.NewCA(t, "cluster ca")
	c1, k1 := ca.Issue(t, "n1", authtest.CertOptions{})
	c2, k2 := ca.Issue(t, "n2", authtest.CertOptions{})
	authFile := authtest.WriteAuthFile(t, map[string]string{"admin": "pw"})
	s1, err := auth.Load(auth.Options{AuthFile: authFile, TLSCert: c1, TLSKey: k1, TLSCA: ca.CertFile, PeerTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := auth.Load(auth.Options{AuthFile: authFile, TLSCert: c2, TLSKey: k2, TLSCA: ca.CertFile, PeerTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	srv := httptest.NewUnstartedServer(s1.HTTPHandler(api, "/readyz"))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = s1.HTTPTLS
	srv.StartTLS()
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, s1.HTTPScheme()+"://") {
		t.Fatalf("URL %s", srv.URL)
	}
	code := func(c *http.Client, path string) int {
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	node := s2.HTTPClient(10 * time.Second)
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: s2.PeerClient.Clone()}}
	anon.Transport.(*http.Transport).TLSClientConfig.Certificates = nil
	for _, tc := range []struct {
		name string
		c    *http.Client
		path string
		want int
	}{
		{"node status", node, "/status", 200},
		{"anonymous status", anon, "/status", 401},
		{"anonymous readyz", anon, "/readyz", 200},
		{"anonymous readyz/", anon, "/readyz/x", 401},
	} {
		if got := code(tc.c, tc.path); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if h := (&auth.Setup{}).HTTPHandler(api); h == nil || (&auth.Setup{}).HTTPClient(time.Second).Transport != nil {
		t.Error("without options the handler and client are plain")
	}
}
