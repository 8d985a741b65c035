package auth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestBasicAuth(t *testing.T) {
	users := testUsers(t)
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	b := newBasicAuth(users, clock.now)
	h := b.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := UserFromContext(r.Context())
		w.Write([]byte("hello " + u))
	}))
	do := func(setAuth func(*http.Request)) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/status", nil)
		if setAuth != nil {
			setAuth(r)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	basic := func(u, p string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth(u, p) } }

	w := do(basic("alice", "s3cret pw"))
	if w.Code != 200 || w.Body.String() != "hello alice" {
		t.Fatalf("right password: %d %q", w.Code, w.Body)
	}
	for name, setAuth := range map[string]func(*http.Request){
		"none":           nil,
		"wrong password": basic("alice", "s3cret pX"),
		"unknown user":   basic("mallory", "s3cret pw"),
		"empty":          basic("", ""),
		"not basic":      func(r *http.Request) { r.Header.Set("Authorization", "Bearer xyz") },
		"long password":  basic("alice", strings.Repeat("x", maxBasicPassword+1)),
	} {
		w := do(setAuth)
		var body struct{ Error string }
		err := json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != http.StatusUnauthorized || err != nil || body.Error == "" ||
			w.Header().Get("WWW-Authenticate") != `Basic realm="raftsql"` || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %v %q %v", name, w.Code, w.Header(), w.Body, err)
		}
		if strings.Contains(w.Body.String(), "s3cret") {
			t.Errorf("%s: the body quotes the password: %q", name, w.Body)
		}
	}
	if w := do(basic("mallory", "x")); !strings.Contains(w.Body.String(), `password authentication failed for user \"mallory\"`) {
		t.Errorf("unknown user body %q", w.Body)
	}

	// The success is cached for a while: the check does not derive again
	// (a changed verifier would otherwise be noticed) until it expires.
	if len(b.cache) != 1 {
		t.Fatalf("cache holds %d entries, want 1", len(b.cache))
	}
	for k := range b.cache {
		b.cache[k] = clock.now().Add(basicCacheTTL) // keep the entry
	}
	b.users = nil // nobody, unless cached
	if w := do(basic("alice", "s3cret pw")); w.Code != 200 {
		t.Errorf("cached success not used: %d", w.Code)
	}
	if w := do(basic("alice", "s3cret pX")); w.Code != 401 {
		t.Errorf("wrong password passed through the cache: %d", w.Code)
	}
	clock.add(basicCacheTTL)
	if w := do(basic("alice", "s3cret pw")); w.Code != 401 {
		t.Errorf("expired cache entry used: %d", w.Code)
	}
}

func TestBasicAuthCacheBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	users := testUsers(t)
	fill := func(b *basicAuth, ttl func(i int) time.Duration) {
		for i := 0; len(b.cache) < basicCacheMax; i++ {
			var k [32]byte
			k[0], k[1] = byte(i), byte(i>>8)
			b.cache[k] = clock.now().Add(ttl(i))
		}
	}
	// Half of a full cache expired: those go, the rest stay.
	b := newBasicAuth(users, clock.now)
	fill(b, func(i int) time.Duration { return time.Duration(i%2) * time.Hour })
	if err := b.check("alice", "s3cret pw"); err != nil {
		t.Fatal(err)
	}
	if n := len(b.cache); n != basicCacheMax/2+1 {
		t.Errorf("after purging expired entries: %d, want %d", n, basicCacheMax/2+1)
	}
	// A full cache of live entries is reset.
	b = newBasicAuth(users, clock.now)
	fill(b, func(int) time.Duration { return time.Hour })
	if err := b.check("alice", "s3cret pw"); err != nil {
		t.Fatal(err)
	}
	if n := len(b.cache); n != 1 {
		t.Errorf("a full cache of live entries was not reset: %d", n)
	}
}

func TestBasicAuthPublic(t *testing.T) {
	users := testUsers(t)
	srv := httptest.NewServer(BasicAuth(users)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.SetBasicAuth("alice", "s3cret pw")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	resp, err = srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("no credentials: status %d", resp.StatusCode)
	}
}
