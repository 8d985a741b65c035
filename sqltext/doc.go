// Package sqltext works on SQL as text, before it reaches SQLite: a lexer
// (Lex), a statement splitter and classifier (Split, Classify), parsers for
// SET and SHOW (ParseSet, ParseShow), the PostgreSQL → SQLite translation
// (Translate) and the determinism rewrite the leader applies before it
// proposes a write (MakeDeterministic).
//
// Everything here is a pure function of its arguments: no state, no I/O,
// no clock or randomness except what the caller passes in. All of it works
// on tokens, never on regular expressions over the raw text, so string
// literals, quoted identifiers, comments and dollar quotes are never
// rewritten by accident.
//
// Lifecycle of a query in the server:
//
//	Split(query)            → statements with Kind (read/write/txn/SET/SHOW…),
//	                          Verb (CommandComplete tag) and Offset
//	Translate(stmt.Text)    → SQLite dialect ($n → ?n, ::casts, SERIAL, …)
//	MakeDeterministic(...)  → for writes, on the leader only: random(), 'now'…
//	                          replaced by literals; refused if impossible
//
// Errors: text that cannot be tokenized gives a *SyntaxError wrapping
// ErrSyntax, with the byte offset (add Statement.Offset for a position in
// the whole query string); statements that cannot be made deterministic
// give an error wrapping ErrNonDeterministic.
//
// Debugging: Lex shows exactly how a text is tokenized (each Token has its
// kind, offset and source text); the table tests in *_test.go list every
// rewrite rule with an example, and TestCaptures* run every query of the
// real-client captures in ../../shared/pgwire-captures through Split and
// Translate. Fuzz with
//
//	go test ./sqltext -run XXX -fuzz FuzzSplit -fuzztime 1m
package sqltext
