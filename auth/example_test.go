package auth_test

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/raftsql/raftsql/auth"
)

// A front end drives one exchange per connection; here the client's
// messages are a wrong password's.
func ExampleSCRAMServer() {
	v, _ := auth.NewVerifier("correct horse", []byte("0123456789abcdef"), auth.DefaultIterations)
	users, _ := auth.NewUsers(map[string]auth.Verifier{"alice": v})

	s := auth.NewSCRAMServer(users, "alice", rand.Reader)
	serverFirst, err := s.ClientFirst([]byte("n,,n=,r=clientnonce")) // SASLInitialResponse data
	if err != nil {
		fmt.Println("08P01:", err)
		return
	}
	_ = serverFirst // → AuthenticationSASLContinue
	_, err = s.ClientFinal([]byte("c=biws,r=wrongnonce,p=AAAA"))
	switch {
	case errors.Is(err, auth.ErrAuthFailed):
		fmt.Println("28P01:", err)
	case errors.Is(err, auth.ErrProtocol):
		fmt.Println("08P01:", err)
	}
	// Output: 08P01: malformed SCRAM message: nonce does not match the server's
}

// The line for an auth file (cross-checked with Python's hashlib).
func ExampleFormatEntry() {
	v, _ := auth.NewVerifier("correct horse", []byte("0123456789abcdef"), auth.DefaultIterations)
	line, _ := auth.FormatEntry("alice", v)
	fmt.Println(line)
	// Output: alice:SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$tSgetjYW5SQlNzIxJAKMryuDGH8Snw5oWcj1eOW0ZyI=:bbZ1dJMgYYaKKR1fU1oGHkWJzi9OQY4yU8Fuksa1t70=
}
