package auth_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/raftsql/raftsql/auth"
	"github.com/raftsql/raftsql/auth/authtest"
)

// The HTTP API under --peer-tls: nodes are recognised by their
// certificate, operators by their password, everyone else is refused.
func TestHTTPWithNodeCertificates(t *testing.T) {
	ca := authtest.NewCA(t, "cluster ca")
	srvCert, srvKey := ca.Issue(t, "n1", authtest.CertOptions{})
	cliCert, cliKey := ca.Issue(t, "n2", authtest.CertOptions{})
	users, err := auth.LoadFile(authtest.WriteAuthFile(t, map[string]string{"admin": "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	whoami := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		node, _ := auth.NodeName(r)
		user, _ := auth.UserFromContext(r.Context())
		json.NewEncoder(w).Encode(map[string]string{"node": node, "user": user})
	})
	mux := http.NewServeMux()
	mux.Handle("/status", auth.BasicAuth(users)(whoami))
	mux.Handle("/join", auth.RequireNode(whoami))
	mux.Handle("/join-or-user", auth.BasicAuth(users)(auth.RequireNode(whoami)))

	start := func(caFile string) *httptest.Server {
		cfg, err := auth.HTTPTLS(srvCert, srvKey, caFile)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(mux)
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes
		srv.TLS = cfg
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv
	}
	_, nodeTLS, err := auth.PeerTLS(cliCert, cliKey, ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	node := &http.Client{Transport: &http.Transport{TLSClientConfig: nodeTLS}}
	operator := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	get := func(c *http.Client, url, user, pw string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	srv := start(ca.CertFile)
	for _, tc := range []struct {
		name     string
		c        *http.Client
		path     string
		user, pw string
		code     int
		body     string
	}{
		{"node status", node, "/status", "", "", 200, `{"node":"n2","user":""}` + "\n"},
		{"node join", node, "/join", "", "", 200, `{"node":"n2","user":""}` + "\n"},
		{"operator status", operator, "/status", "admin", "pw", 200, `{"node":"","user":"admin"}` + "\n"},
		{"operator wrong password", operator, "/status", "admin", "px", 401, ""},
		{"anonymous status", operator, "/status", "", "", 401, ""},
		{"operator join", operator, "/join", "admin", "pw", 403, ""},
		{"node join (with auth)", node, "/join-or-user", "", "", 200, `{"node":"n2","user":""}` + "\n"},
		{"operator join (with auth)", operator, "/join-or-user", "admin", "pw", 200, `{"node":"","user":"admin"}` + "\n"},
		{"anonymous join (with auth)", operator, "/join-or-user", "", "", 401, ""},
	} {
		code, body := get(tc.c, srv.URL+tc.path, tc.user, tc.pw)
		if code != tc.code || tc.body != "" && body != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, body, tc.code, tc.body)
		}
	}

	// A client certificate of another CA fails the handshake.
	other := authtest.NewCA(t, "other ca")
	oCert, oKey := other.Issue(t, "intruder", authtest.CertOptions{})
	pair, err := tls.LoadX509KeyPair(oCert, oKey)
	if err != nil {
		t.Fatal(err)
	}
	intruder := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }}}}
	if resp, err := intruder.Get(srv.URL + "/join"); err == nil {
		resp.Body.Close()
		t.Errorf("a certificate of another CA got through: %d", resp.StatusCode)
	}

	// Without --tls-ca the server asks for no certificate: nobody is a node.
	plain := start("")
	if code, _ := get(node, plain.URL+"/join", "", ""); code != 403 {
		t.Errorf("join without a CA configured: %d", code)
	}
	if code, _ := get(node, plain.URL+"/status", "", ""); code != 401 {
		t.Errorf("status without a CA configured: %d", code)
	}
}
