package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminHTTPSWithCACert: --cacert makes the admin commands trust a
// cluster's own CA and use https:// for addresses without a scheme (the
// --http list and the http_addr of peers from /status); without it the
// certificate is refused; a file with no certificate is a clear error.
func TestAdminHTTPSWithCACert(t *testing.T) {
	n := &fakeNode{}
	n.srv = httptest.NewTLSServer(http.HandlerFunc(n.serve))
	t.Cleanup(n.srv.Close)
	n.status = statusJSON("1", "leader", 3, "1", 10, 10)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: n.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	out, errOut, err := runCLI(t, "status", "--http", n.addr(), "--cacert", ca)
	if err != nil || !strings.Contains(out, "leader") {
		t.Fatalf("status over https with --cacert: %v\n%s%s", err, out, errOut)
	}
	if _, _, err := runCLI(t, "transfer-leadership", "2", "--http", "https://"+n.addr(), "--cacert", ca); err != nil {
		t.Fatalf("transfer-leadership over https: %v", err)
	}
	if got := n.requests(); len(got) < 2 || got[len(got)-1].Path != "/transfer-leadership" {
		t.Fatalf("requests: %+v", got)
	}

	_, errOut, err = runCLI(t, "status", "--http", "https://"+n.addr())
	if err == nil || !strings.Contains(errOut, "certificate") {
		t.Errorf("without --cacert: err %v, stderr %q; want a certificate error", err, errOut)
	}
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, err = runCLI(t, "status", "--http", n.addr(), "--cacert", bad)
	if err == nil || !strings.Contains(errOut, "no PEM certificate") {
		t.Errorf("bad --cacert: err %v, stderr %q", err, errOut)
	}
}

// TestAdminFlagBeforeSubcommand: `raftsql --http ADDR status` (the flag
// before the subcommand) talks to ADDR, not to the default address.
func TestAdminFlagBeforeSubcommand(t *testing.T) {
	n := newFakeNode(t)
	n.status = statusJSON("1", "leader", 3, "1", 10, 10)
	out, errOut, err := runCLI(t, "--http", n.addr(), "status")
	if err != nil || !strings.Contains(out, "leader") {
		t.Fatalf("raftsql --http ADDR status: %v\n%s%s", err, out, errOut)
	}
	if len(n.requests()) == 0 {
		t.Fatal("the node named by --http got no request")
	}
}
