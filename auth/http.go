package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

const (
	// basicCacheTTL is how long a successful password check is remembered
	// (PBKDF2 with 4096 rounds costs milliseconds per request).
	basicCacheTTL = time.Minute
	// basicCacheMax bounds the cache; when full, expired entries are
	// dropped, and if none expired, all of them.
	basicCacheMax = 1024
	// maxBasicPassword bounds the password length the middleware hashes.
	maxBasicPassword = 1024
)

// Realm is the realm of the HTTP basic challenge.
const Realm = "raftsql"

type userKey struct{}

// UserFromContext returns the user that BasicAuth authenticated for the
// request whose context this is.
func UserFromContext(ctx context.Context) (string, bool) {
	u, ok := ctx.Value(userKey{}).(string)
	return u, ok
}

// NodeName returns the common name of the request's TLS client
// certificate if the server verified it against a CA, which happens only
// when the listener's tls.Config has ClientCAs (HTTPTLS with --tls-ca):
// the caller is then another node of the cluster.
func NodeName(r *http.Request) (string, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return "", false
	}
	return r.TLS.VerifiedChains[0][0].Subject.CommonName, true
}

// BasicAuth returns HTTP middleware that lets a request through only with
// HTTP basic credentials of a user in users whose password matches that
// user's SCRAM verifier, or from another node (NodeName: a client
// certificate verified against the cluster CA). Otherwise it answers 401
// with `WWW-Authenticate: Basic realm="raftsql"` and a JSON body
// {"error": "..."}. The authenticated user is in the request context
// (UserFromContext; empty for a node). Basic credentials travel in clear
// text: serve the API over TLS (HTTPTLS) when it leaves loopback.
func BasicAuth(users *Users) func(http.Handler) http.Handler {
	return newBasicAuth(users, time.Now).middleware
}

// RequireNode returns middleware that lets a request through only from
// another node (NodeName) or from a user that BasicAuth, run before it,
// authenticated; otherwise it answers 403 with a JSON error. It is for
// endpoints such as POST /join under --peer-tls, so that a process
// without a certificate of the cluster CA cannot join, while an operator
// with a password (under --auth-file) still can.
func RequireNode(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, node := NodeName(r)
		user, _ := UserFromContext(r.Context())
		if !node && user == "" {
			writeJSONError(w, http.StatusForbidden, "only a node with a certificate of the cluster CA (--peer-tls) or an authenticated user may call this")
			return
		}
		next.ServeHTTP(w, r)
	})
}

type basicAuth struct {
	users *Users
	now   func() time.Time
	key   [32]byte // keys the cache, so it never holds a password or its plain hash

	mu    sync.Mutex
	cache map[[sha256.Size]byte]time.Time // HMAC(key, user, password) → expiry
}

func newBasicAuth(users *Users, now func() time.Time) *basicAuth {
	b := &basicAuth{users: users, now: now, cache: make(map[[sha256.Size]byte]time.Time)}
	rand.Read(b.key[:])
	return b
}

func (b *basicAuth) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := NodeName(r); ok {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, "")))
			return
		}
		user, password, ok := r.BasicAuth()
		if !ok {
			unauthorized(w, "authentication required: send HTTP basic credentials of a user in the auth file")
			return
		}
		if err := b.check(user, password); err != nil {
			unauthorized(w, err.Error())
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
	})
}

// check verifies user's password: from the cache if it matched recently,
// else by deriving the stored key (also for unknown users, against a mock
// verifier, so that they take as long as a wrong password).
func (b *basicAuth) check(user, password string) error {
	failed := fmt.Errorf("%w for user %q", ErrAuthFailed, user)
	if len(password) > maxBasicPassword {
		return failed
	}
	h := hmac.New(sha256.New, b.key[:])
	fmt.Fprintf(h, "%d:%s%s", len(user), user, password)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	now := b.now()
	b.mu.Lock()
	exp, hit := b.cache[k]
	b.mu.Unlock()
	if hit && now.Before(exp) {
		return nil
	}
	v, known := b.users.verifier(user)
	if !v.matchesPassword(password) || !known {
		return failed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.cache) >= basicCacheMax {
		for key, e := range b.cache {
			if !now.Before(e) {
				delete(b.cache, key)
			}
		}
		if len(b.cache) >= basicCacheMax {
			clear(b.cache)
		}
	}
	b.cache[k] = now.Add(basicCacheTTL)
	return nil
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`"`)
	writeJSONError(w, http.StatusUnauthorized, msg)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
