// Package sqltext works on SQL as text, before it reaches SQLite: a lexer
// (Lex), a statement splitter and classifier (Split, Classify), parsers for
// SET and SHOW (ParseSet, ParseSetStmt, ParseShow), the PostgreSQL →
// SQLite translation (Translate) and the determinism rewrite the leader
// applies before it proposes a write (MakeDeterministic).
//
// Everything here is a pure function of its arguments: no state, no I/O,
// no clock or randomness except what the caller passes in, safe for
// concurrent use. All of it works on tokens, never on regular expressions
// over the raw text, so string literals, quoted identifiers, comments and
// dollar quotes are never rewritten by accident.
//
// Lifecycle of a query in the server:
//
//	Split(query)            → statements with Kind (read/write/txn/SET/SHOW…),
//	                          Verb (CommandComplete tag) and Offset
//	ParseSetStmt/ParseShow  → for KindSet/KindShow, answered by the front end
//	Translate(stmt.Text)    → SQLite dialect ($n → ?n, ::casts, SERIAL, …)
//	MakeDeterministic(...)  → for writes, on the leader only: random(), 'now'…
//	                          replaced by literals; refused if impossible
//
// Translate's output needs two things from whoever opens SQLite: a
// two-argument function regexp(pattern, text) (RegexpFunc; SQLite calls it
// for the REGEXP operator that ~ and OPERATOR(pg_catalog.~) become), and,
// if used, functions current_user(), session_user(), current_schema() and
// current_catalog() for the bare keywords. Translate keeps the declared
// column types of CREATE TABLE as written, except SERIAL columns, which
// must be declared INTEGER to become SQLite's auto-increment rowid.
//
// Errors: text that cannot be tokenized gives a *SyntaxError wrapping
// ErrSyntax, with the byte offset (add Statement.Offset for a position in
// the whole query string); PostgreSQL without a SQLite equivalent gives
// ErrUnsupported; statements that cannot be made deterministic give an
// error wrapping ErrNonDeterministic that names the function.
//
// Debugging: Lex shows exactly how a text is tokenized (each Token has its
// kind, offset and source text). The table tests list every rule with an
// example (translate_test.go, determinism_test.go, split_test.go);
// sqlite_test.go runs translated statements on a real SQLite and checks
// the results; TestCaptures* run every query of the real-client captures
// in ../../shared/pgwire-captures through Split and Translate. Fuzz with
//
//	go test ./sqltext -run XXX -fuzz FuzzTranslate -fuzztime 1m
//
// (also FuzzSplit, FuzzMakeDeterministic); benchmarks with
// go test ./sqltext -run XXX -bench .
package sqltext
