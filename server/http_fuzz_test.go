package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// checkDecoded runs one admin request body through the decoder of its
// endpoint, as the handler does, and checks the outcome: a refusal is a
// 4xx with a JSON {"error": "..."} body; an acceptance writes nothing and
// yields a request the handler can act on.
func checkDecoded(t *testing.T, path string, body []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	var ok bool
	var id, raftAddr string
	var raw []byte
	switch path {
	case "/join":
		var jr joinRequest
		jr, raw, ok = decodeJoin(rec, req)
		id, raftAddr = jr.ID, jr.RaftAddr
	default:
		var ir idRequest
		ir, raw, ok = decodeID(rec, req)
		id = ir.ID
	}
	if !ok {
		if rec.Code < 400 || rec.Code > 499 {
			t.Fatalf("%s %q: refused with status %d, want 4xx", path, body, rec.Code)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %q: error Content-Type %q", path, body, ct)
		}
		var e map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatalf("%s %q: error body %q is not JSON: %v", path, body, rec.Body.Bytes(), err)
		}
		if msg, _ := e["error"].(string); msg == "" || len(e) != 1 {
			t.Fatalf("%s %q: error body %q, want {\"error\": \"...\"}", path, body, rec.Body.Bytes())
		}
		return
	}
	if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
		t.Fatalf("%s %q: accepted but wrote %d %q", path, body, rec.Code, rec.Body.Bytes())
	}
	if !bytes.Equal(raw, body) {
		t.Fatalf("%s %q: forwarded body %q differs", path, body, raw)
	}
	if !json.Valid(body) || len(body) > maxJSONBody {
		t.Fatalf("%s %q: accepted a body that is not one bounded JSON value", path, body)
	}
	if err := checkNodeID(id); err != nil {
		t.Fatalf("%s %q: accepted id %q: %v", path, body, id, err)
	}
	if path == "/join" {
		if err := checkRaftAddr(raftAddr); err != nil {
			t.Fatalf("%s %q: accepted raft_addr %q: %v", path, body, raftAddr, err)
		}
	}
}

// FuzzAdminJSON feeds arbitrary bodies to the decoders of POST /join,
// /remove and /transfer-leadership (the request bodies of the HTTP API
// that come from the network).
func FuzzAdminJSON(f *testing.F) {
	for _, s := range []string{
		`{"id":"4","raft_addr":"127.0.0.1:7004","voter":true}`,
		`{"id":"4","raft_addr":"127.0.0.1:7004"}`,
		`{"id":"4","raft_addr":"[::1]:7004","voter":false}`,
		`{"id":"2"}`,
		`{"id":" "}`,
		`{"id":"x","extra":1}`,
		`{"id":"x"}{"id":"y"}`,
		`{"id":"x"} trailing`,
		`{"id":"x","raft_addr":"nohostport"}`,
		`{"id":"x","raft_addr":"h:99999"}`,
		`{"id":"a\u0000b","raft_addr":"h:1"}`,
		`{"id":1}`,
		`[]`, `null`, `"id"`, ``, `{`, `{"voter":"yes"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/join", "/remove", "/transfer-leadership"} {
			checkDecoded(t, path, body)
		}
	})
}

// TestAdminJSONRefusals pins the answers to bodies a fuzzer finds slowly.
func TestAdminJSONRefusals(t *testing.T) {
	for _, tc := range []struct {
		path, body string
		status     int
		msg        string
	}{
		{"/remove", `{"id":"x"}{"id":"y"}`, 400, "after the JSON value"},
		{"/join", `{"id":"x","raft_addr":"h:1"} junk`, 400, "after the JSON value"},
		{"/join", `{"id":"x","raft_addr":"nohostport"}`, 400, "raft_addr"},
		{"/join", `{"id":"x","raft_addr":"h:0"}`, 400, "port"},
		{"/join", `{"id":"x","raft_addr":":7000"}`, 400, "host"},
		{"/join", `{"id":"a b","raft_addr":"h:1"}`, 400, "id"},
		{"/transfer-leadership", `{"id":"` + strings.Repeat("x", 300) + `"}`, 400, "id"},
		{"/remove", `{"id":"x","pad":"` + strings.Repeat("x", maxJSONBody) + `"}`, 413, "larger than"},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
		var ok bool
		if tc.path == "/join" {
			_, _, ok = decodeJoin(rec, req)
		} else {
			_, _, ok = decodeID(rec, req)
		}
		if ok || rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.msg) {
			t.Errorf("%s %.60q: ok=%v %d %s, want %d mentioning %q", tc.path, tc.body, ok, rec.Code, rec.Body.String(), tc.status, tc.msg)
		}
		checkDecoded(t, tc.path, []byte(tc.body))
	}
	for _, good := range []string{`{"id":"n4","raft_addr":"node4.example:7000","voter":false}`, ` {"id":"n4","raft_addr":"[::1]:7000"} ` + "\n"} {
		checkDecoded(t, "/join", []byte(good))
		rec := httptest.NewRecorder()
		if _, _, ok := decodeJoin(rec, httptest.NewRequest(http.MethodPost, "/join", strings.NewReader(good))); !ok {
			t.Errorf("%s refused: %s", good, rec.Body.String())
		}
	}
}
