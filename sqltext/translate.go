package sqltext

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// RegexpFunc is the SQL function that PostgreSQL's regular-expression
// match operators become. Translate rewrites `a ~ b` (and
// OPERATOR(pg_catalog.~)) to SQLite's `a REGEXP b`, which SQLite evaluates
// by calling regexp(b, a): the pattern first, then the text; a true result
// is a match. The front end must register it (Go regexp syntax; case-
// insensitive operators prefix the pattern with "(?i)").
const RegexpFunc = "regexp"

// Translate rewrites one PostgreSQL statement into SQLite's dialect. It
// works on tokens and never changes the content of string literals or
// quoted identifiers (E'…' and $$…$$ strings are re-spelled as SQLite
// strings with the same content). The rules:
//
//   - $n parameters become ?n (SQLite reads $1 as a named parameter).
//   - expr::type becomes CAST(expr AS T) where expr is the operand before
//     the :: (identifier, qualified name, literal, parameter, parenthesised
//     group, function call, subscript) and chains are cast in order. T is
//     INTEGER for the integer types, REAL for float4/float8/real/double
//     precision, NUMERIC for numeric/decimal, TEXT for the character,
//     time, timestamp, interval, uuid, json, inet… types, BLOB for bytea
//     (a '\x…' literal becomes the X'…' blob it denotes); ::date takes the
//     first 10 characters of the text (the date of an ISO timestamp);
//     ::bool/boolean becomes a CASE mapping PostgreSQL's boolean spellings
//     to 1/0. Casts
//     to reg* types, oid and the other system id types, arrays and types
//     SQLite cannot know are dropped (the operand stays as it is).
//   - SERIAL/BIGSERIAL/SMALLSERIAL (and GENERATED … AS IDENTITY) columns
//     of CREATE TABLE become INTEGER PRIMARY KEY AUTOINCREMENT (the only
//     auto-increment SQLite has; the declared type becomes INTEGER).
//   - now(), current_timestamp, transaction_timestamp(),
//     statement_timestamp(), clock_timestamp(), localtimestamp,
//     current_time and localtime become strftime(…, 'now') with
//     PostgreSQL-like text ("2006-01-02 15:04:05.000+00:00", an offset
//     that both pgx and SQLite's date functions read back); current_date
//     stays (same text in both).
//   - operand + INTERVAL '1 day 2 hours' (or -) becomes strftime(…,
//     operand, '+1 days', '+2 hours') in the same text format.
//   - ILIKE and ~~* become LIKE (SQLite's LIKE ignores ASCII case), ~~
//     LIKE, and their negations NOT LIKE; ~, ~*, !~, !~* and
//     OPERATOR(schema.op) become [NOT] REGEXP (see RegexpFunc).
//   - pg_catalog. and public. qualifiers are dropped; COLLATE
//     pg_catalog.default is dropped and COLLATE "C"/"POSIX" becomes
//     COLLATE BINARY.
//   - current_user, session_user, current_schema, current_catalog
//     without parentheses become calls (current_user()) for the front end
//     to register.
//   - typed literals DATE '…', TIME '…', TIMESTAMP '…', TIMESTAMPTZ '…'
//     become the string.
//   - SELECT … FOR UPDATE/SHARE locking clauses are dropped (writes are
//     serialised anyway); LIMIT ALL becomes LIMIT -1; FETCH FIRST n ROWS
//     ONLY becomes LIMIT n and OFFSET n ROWS loses ROWS.
//   - TRUNCATE [TABLE] t becomes DELETE FROM t; BEGIN/START TRANSACTION
//     with PostgreSQL modes becomes BEGIN, END/COMMIT … COMMIT, ABORT
//     ROLLBACK.
//
// TRUE/FALSE, ON CONFLICT, RETURNING, IF [NOT] EXISTS and declared column
// types pass through unchanged. Translate is idempotent: translating its
// output again gives the same text.
func Translate(stmt string) (string, error) {
	toks, err := Lex(stmt)
	if err != nil {
		return "", err
	}
	sig := significantTokens(toks)
	if len(sig) == 0 {
		return stmt, nil
	}
	kind, verb := classify(sig)
	switch kind {
	case KindBegin:
		if verb == "BEGIN" {
			switch kwAt(sig, 1) {
			case "DEFERRED", "IMMEDIATE", "EXCLUSIVE":
				return joinTokens(toks), nil
			}
		}
		return "BEGIN", nil
	case KindCommit:
		return "COMMIT", nil
	case KindRollback:
		return "ROLLBACK", nil
	}
	switch verb {
	case "TRUNCATE TABLE":
		return translateTruncate(sig)
	case "CREATE TABLE":
		toks, err = rewriteSerial(toks)
		if err != nil {
			return "", err
		}
	}
	tr := translator{in: toks}
	if err := tr.run(); err != nil {
		return "", err
	}
	return joinTokens(tr.out), nil
}

// tokExpr marks a synthesized token that is a complete operand
// (a CAST(…) or CASE … END): a later :: applies to all of it.
const tokExpr TokenKind = 100

// joinTokens concatenates token texts, adding a space where two pieces
// would otherwise fuse into one token (two words, or two operator
// characters that could form a new operator or comment).
func joinTokens(toks []Token) string {
	var b strings.Builder
	var last byte
	lineComment := false
	for _, t := range toks {
		if t.Text == "" {
			continue
		}
		if b.Len() > 0 {
			c := t.Text[0]
			switch {
			case lineComment && c != '\n':
				b.WriteByte('\n')
			case isIdentChar(last) && isIdentChar(c), isOpChar(last) && isOpChar(c):
				b.WriteByte(' ')
			}
		}
		b.WriteString(t.Text)
		last = t.Text[len(t.Text)-1]
		lineComment = t.Kind == TokComment && strings.HasPrefix(t.Text, "--")
	}
	return b.String()
}

type translator struct {
	in  []Token
	i   int     // next input token
	out []Token // output so far
}

// nextSig returns the index of the next significant input token at or
// after j, or len(in).
func (tr *translator) nextSig(j int) int {
	for j < len(tr.in) && !tr.in[j].significant() {
		j++
	}
	return j
}

func (tr *translator) sigAt(j int) (Token, bool) {
	j = tr.nextSig(j)
	if j < len(tr.in) {
		return tr.in[j], true
	}
	return Token{}, false
}

// lastOut returns the index of the last significant output token, or -1.
func (tr *translator) lastOut() int {
	for j := len(tr.out) - 1; j >= 0; j-- {
		if tr.out[j].significant() {
			return j
		}
	}
	return -1
}

func (tr *translator) emit(kind TokenKind, pos int, text string) {
	tr.out = append(tr.out, Token{Kind: kind, Pos: pos, Text: text})
}

func (tr *translator) run() error {
	for tr.i < len(tr.in) {
		t := tr.in[tr.i]
		tr.i++
		if err := tr.step(t); err != nil {
			return err
		}
	}
	return nil
}

func (tr *translator) step(t Token) error {
	switch t.Kind {
	case TokParam:
		if len(t.Text) > 1 && t.Text[0] == '$' && isDigit(t.Text[1]) {
			tr.emit(TokParam, t.Pos, "?"+t.Text[1:])
			return nil
		}
	case TokEString:
		v, err := decodeEString(t.Text)
		if err != nil {
			return &SyntaxError{Offset: t.Pos, Msg: err.Error()}
		}
		tr.emit(TokString, t.Pos, sqliteString(v))
		return nil
	case TokDollarString:
		tr.emit(TokString, t.Pos, sqliteString(dollarBody(t.Text)))
		return nil
	case TokIdent, TokQuotedIdent:
		return tr.word(t)
	case TokOp:
		return tr.op(t)
	}
	tr.out = append(tr.out, t)
	return nil
}

// skipSchema reports whether t is a pg_catalog or public qualifier
// directly followed by ".name", and if so consumes the ".".
func (tr *translator) skipSchema(t Token) bool {
	name := strings.ToLower(identText(t))
	if name != "pg_catalog" && name != "public" {
		return false
	}
	if tr.i+1 < len(tr.in) && isPunct(tr.in[tr.i], ".") &&
		(tr.in[tr.i+1].Kind == TokIdent || tr.in[tr.i+1].Kind == TokQuotedIdent || tr.in[tr.i+1].Kind == TokOp) {
		// not after a dot itself (t.public.x is a column of t)
		if tr.afterDot() {
			return false
		}
		tr.i++
		return true
	}
	return false
}

func identText(t Token) string {
	if t.Kind == TokQuotedIdent {
		return unquoteIdent(t.Text)
	}
	return t.Text
}

// afterDot reports whether the last output token is a "." (t is a
// qualified name's part, not a keyword or function).
func (tr *translator) afterDot() bool {
	return len(tr.out) > 0 && isPunct(tr.out[len(tr.out)-1], ".")
}

// nextIsCall reports whether the next significant input token is "(".
func (tr *translator) nextIsCall() bool {
	n, ok := tr.sigAt(tr.i)
	return ok && isPunct(n, "(")
}

// skipCallArgs consumes "( )" (or "(n)" when allowArg) after a function
// name; it reports whether it did.
func (tr *translator) skipCallArgs(allowArg bool) bool {
	j := tr.nextSig(tr.i)
	if j >= len(tr.in) || !isPunct(tr.in[j], "(") {
		return false
	}
	k := tr.nextSig(j + 1)
	if allowArg && k < len(tr.in) && tr.in[k].Kind == TokNumber {
		k = tr.nextSig(k + 1)
	}
	if k >= len(tr.in) || !isPunct(tr.in[k], ")") {
		return false
	}
	tr.i = k + 1
	return true
}

const (
	sqlNowTZ   = "(strftime('%Y-%m-%d %H:%M:%f+00:00','now'))"
	sqlNow     = "(strftime('%Y-%m-%d %H:%M:%f','now'))"
	sqlTimeTZ  = "(strftime('%H:%M:%f+00:00','now'))"
	sqlTimeNow = "(strftime('%H:%M:%f','now'))"
)

func (tr *translator) word(t Token) error {
	if tr.skipSchema(t) {
		return nil
	}
	if t.Kind == TokQuotedIdent || tr.afterDot() {
		tr.out = append(tr.out, t)
		return nil
	}
	switch kw(t) {
	case "NOW", "TRANSACTION_TIMESTAMP", "STATEMENT_TIMESTAMP", "CLOCK_TIMESTAMP":
		if tr.skipCallArgs(false) {
			tr.emit(tokExpr, t.Pos, sqlNowTZ)
			return nil
		}
	case "CURRENT_TIMESTAMP", "LOCALTIMESTAMP", "CURRENT_TIME", "LOCALTIME":
		if tr.nextIsCall() && !tr.skipCallArgs(true) {
			break // some other function of that name
		}
		switch kw(t) {
		case "CURRENT_TIMESTAMP":
			tr.emit(tokExpr, t.Pos, sqlNowTZ)
		case "LOCALTIMESTAMP":
			tr.emit(tokExpr, t.Pos, sqlNow)
		case "CURRENT_TIME":
			tr.emit(tokExpr, t.Pos, sqlTimeTZ)
		default:
			tr.emit(tokExpr, t.Pos, sqlTimeNow)
		}
		return nil
	case "CURRENT_USER", "SESSION_USER", "CURRENT_SCHEMA", "CURRENT_CATALOG":
		if !tr.nextIsCall() {
			tr.emit(tokExpr, t.Pos, strings.ToLower(t.Text)+"()")
			return nil
		}
	case "ILIKE":
		tr.emit(TokIdent, t.Pos, "LIKE")
		return nil
	case "DATE", "TIME", "TIMESTAMP", "TIMESTAMPTZ":
		// typed literal: DATE '2024-01-02' → '2024-01-02'
		if j := tr.nextSig(tr.i); j < len(tr.in) && tr.in[j].Kind == TokString && !tr.prevIsOperandEnd() {
			tr.i = j
			return nil
		}
	case "OPERATOR":
		if ok, err := tr.operatorCall(t); ok || err != nil {
			return err
		}
	case "COLLATE":
		return tr.collate(t)
	case "FOR":
		if tr.lockingClause() {
			return nil
		}
	case "FETCH":
		if tr.fetchFirst(t) {
			return nil
		}
	case "ROW", "ROWS":
		// OFFSET n ROWS → OFFSET n
		if j := tr.lastOut(); j >= 0 && (tr.out[j].Kind == TokNumber || tr.out[j].Kind == TokParam) {
			if p := prevSig(tr.out, j); p >= 0 && tr.out[p].IsKeyword("OFFSET") {
				tr.out = tr.out[:j+1] // and the space before ROWS
				return nil
			}
		}
	case "LIMIT":
		if n, ok := tr.sigAt(tr.i); ok && n.IsKeyword("ALL") {
			tr.out = append(tr.out, t)
			tr.emit(TokSpace, t.Pos, " ")
			tr.emit(TokNumber, n.Pos, "-1")
			tr.i = tr.nextSig(tr.i) + 1
			return nil
		}
	}
	tr.out = append(tr.out, t)
	return nil
}

// prevIsOperandEnd reports whether the last output token ends an operand
// (so a following word is not the start of a typed literal, and a
// following ~ is infix).
func (tr *translator) prevIsOperandEnd() bool {
	j := tr.lastOut()
	if j < 0 {
		return false
	}
	p := tr.out[j]
	switch p.Kind {
	case TokString, TokEString, TokDollarString, TokBitString, TokNumber, TokParam, TokQuotedIdent, tokExpr:
		return true
	case TokPunct:
		return p.Text == ")" || p.Text == "]"
	case TokIdent:
		return !reservedBeforeOperand[strings.ToUpper(p.Text)]
	}
	return false
}

// reservedBeforeOperand are keywords after which an operand starts (so
// they are not themselves operands or function names).
var reservedBeforeOperand = map[string]bool{
	"SELECT": true, "FROM": true, "WHERE": true, "AND": true, "OR": true, "NOT": true,
	"IN": true, "EXISTS": true, "VALUES": true, "ON": true, "AS": true, "IS": true,
	"THEN": true, "ELSE": true, "WHEN": true, "CASE": true, "BY": true, "USING": true,
	"HAVING": true, "RETURNING": true, "SET": true, "INTO": true, "JOIN": true,
	"LIKE": true, "ILIKE": true, "GLOB": true, "REGEXP": true, "MATCH": true,
	"BETWEEN": true, "ANY": true, "ALL": true, "SOME": true, "UNION": true,
	"EXCEPT": true, "INTERSECT": true, "WITH": true, "DISTINCT": true, "LIMIT": true,
	"OFFSET": true, "RETURN": true, "DO": true, "DEFAULT": true, "CHECK": true,
	"ESCAPE": true, "ORDER": true, "GROUP": true, "TABLE": true, "UPDATE": true,
	"INSERT": true, "DELETE": true, "TO": true, "OVER": true, "FILTER": true,
	"WINDOW": true, "PARTITION": true, "LATERAL": true, "END": true,
}

// fetchFirst turns FETCH {FIRST|NEXT} [n] {ROW|ROWS} ONLY (t is FETCH)
// into LIMIT n; it reports whether it did.
func (tr *translator) fetchFirst(t Token) bool {
	j := tr.nextSig(tr.i)
	if j >= len(tr.in) || !(tr.in[j].IsKeyword("FIRST") || tr.in[j].IsKeyword("NEXT")) {
		return false
	}
	n := "1"
	k := tr.nextSig(j + 1)
	if k < len(tr.in) && (tr.in[k].Kind == TokNumber || tr.in[k].Kind == TokParam) {
		n = tr.in[k].Text
		if tr.in[k].Kind == TokParam && strings.HasPrefix(n, "$") {
			n = "?" + n[1:]
		}
		k = tr.nextSig(k + 1)
	}
	if k >= len(tr.in) || !(tr.in[k].IsKeyword("ROW") || tr.in[k].IsKeyword("ROWS")) {
		return false
	}
	o := tr.nextSig(k + 1)
	if o >= len(tr.in) || !tr.in[o].IsKeyword("ONLY") {
		return false
	}
	tr.i = o + 1
	// SQLite wants LIMIT before OFFSET: OFFSET m FETCH … → LIMIT n OFFSET m
	if j := tr.lastOut(); j >= 0 && (tr.out[j].Kind == TokNumber || tr.out[j].Kind == TokParam) {
		if p := prevSig(tr.out, j); p >= 0 && tr.out[p].IsKeyword("OFFSET") {
			off := tr.out[p:]
			rest := append([]Token(nil), off...)
			tr.out = tr.out[:p]
			tr.emit(TokIdent, t.Pos, "LIMIT")
			tr.emit(TokSpace, t.Pos, " ")
			tr.emit(TokNumber, t.Pos, n)
			tr.emit(TokSpace, t.Pos, " ")
			tr.out = append(tr.out, rest...)
			return true
		}
	}
	tr.emit(TokIdent, t.Pos, "LIMIT")
	tr.emit(TokSpace, t.Pos, " ")
	tr.emit(TokNumber, t.Pos, n)
	return true
}

// lockingClause consumes FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE /
// FOR KEY SHARE [OF names] [NOWAIT | SKIP LOCKED] (t is the FOR) and any
// further locking clauses; it reports whether it did.
func (tr *translator) lockingClause() bool {
	j := tr.nextSig(tr.i)
	words := func(ws ...string) bool {
		k := j
		for _, w := range ws {
			k = tr.nextSig(k)
			if k >= len(tr.in) || !tr.in[k].IsKeyword(w) {
				return false
			}
			k++
		}
		j = k
		return true
	}
	if !(words("UPDATE") || words("SHARE") || words("NO", "KEY", "UPDATE") || words("KEY", "SHARE")) {
		return false
	}
	// UPDATE/SHARE must not be followed by a table name (FOR UPDATE OF is
	// fine; "FOR UPDATE ON" is not a locking clause).
	if words("OF") {
		for {
			k := tr.nextSig(j)
			if k >= len(tr.in) || (tr.in[k].Kind != TokIdent && tr.in[k].Kind != TokQuotedIdent) {
				break
			}
			j = k + 1
			if k2 := tr.nextSig(j); k2 < len(tr.in) && (isPunct(tr.in[k2], ",") || isPunct(tr.in[k2], ".")) {
				j = k2 + 1
				continue
			}
			break
		}
	}
	_ = words("NOWAIT") || words("SKIP", "LOCKED")
	tr.i = j
	// drop the white space before FOR
	for len(tr.out) > 0 && !tr.out[len(tr.out)-1].significant() {
		tr.out = tr.out[:len(tr.out)-1]
	}
	if k, ok := tr.sigAt(tr.i); ok && k.IsKeyword("FOR") {
		tr.i = tr.nextSig(tr.i) + 1
		tr.lockingClause()
	}
	return true
}

// collate handles COLLATE pg_catalog.default (dropped), COLLATE "C" and
// "POSIX" (BINARY); other collations pass through.
func (tr *translator) collate(t Token) error {
	j := tr.nextSig(tr.i)
	if j >= len(tr.in) {
		tr.out = append(tr.out, t)
		return nil
	}
	k := j
	if n := strings.ToLower(identText(tr.in[j])); (n == "pg_catalog" || n == "public") && j+2 < len(tr.in) && isPunct(tr.in[j+1], ".") {
		k = j + 2
	}
	name := identText(tr.in[k])
	if tr.in[k].Kind != TokIdent && tr.in[k].Kind != TokQuotedIdent {
		tr.out = append(tr.out, t)
		return nil
	}
	switch {
	case strings.EqualFold(name, "default"):
		for len(tr.out) > 0 && !tr.out[len(tr.out)-1].significant() {
			tr.out = tr.out[:len(tr.out)-1]
		}
		tr.i = k + 1
	case name == "C" || name == "POSIX" || strings.EqualFold(name, "ucs_basic"):
		tr.out = append(tr.out, t)
		tr.emit(TokSpace, t.Pos, " ")
		tr.emit(TokIdent, tr.in[k].Pos, "BINARY")
		tr.i = k + 1
	default:
		tr.out = append(tr.out, t)
	}
	return nil
}

// operatorCall handles OPERATOR(schema.op) (t is OPERATOR).
func (tr *translator) operatorCall(t Token) (bool, error) {
	j := tr.nextSig(tr.i)
	if j >= len(tr.in) || !isPunct(tr.in[j], "(") {
		return false, nil
	}
	k := tr.nextSig(j + 1)
	if k+1 < len(tr.in) && (tr.in[k].Kind == TokIdent || tr.in[k].Kind == TokQuotedIdent) && isPunct(tr.in[k+1], ".") {
		k = tr.nextSig(k + 2)
	}
	if k >= len(tr.in) || tr.in[k].Kind != TokOp {
		return false, nil
	}
	op := tr.in[k]
	e := tr.nextSig(k + 1)
	if e >= len(tr.in) || !isPunct(tr.in[e], ")") {
		return false, nil
	}
	tr.i = e + 1
	if tr.regexOp(op, true) {
		return true, nil
	}
	tr.emit(TokOp, op.Pos, op.Text)
	return true, nil
}

func (tr *translator) op(t Token) error {
	if t.Text == "::" {
		return tr.cast(t)
	}
	if (t.Text == "+" || t.Text == "-") && tr.intervalArith(t) {
		return nil
	}
	if tr.regexOp(t, false) {
		return nil
	}
	tr.out = append(tr.out, t)
	return nil
}

// intervalUnits maps PostgreSQL interval units to SQLite modifier units
// and a multiplier.
var intervalUnits = map[string]struct {
	unit string
	mul  int
}{
	"year": {"years", 1}, "years": {"years", 1}, "yr": {"years", 1}, "yrs": {"years", 1}, "y": {"years", 1},
	"month": {"months", 1}, "months": {"months", 1}, "mon": {"months", 1}, "mons": {"months", 1},
	"week": {"days", 7}, "weeks": {"days", 7}, "w": {"days", 7},
	"day": {"days", 1}, "days": {"days", 1}, "d": {"days", 1},
	"hour": {"hours", 1}, "hours": {"hours", 1}, "hr": {"hours", 1}, "hrs": {"hours", 1}, "h": {"hours", 1},
	"minute": {"minutes", 1}, "minutes": {"minutes", 1}, "min": {"minutes", 1}, "mins": {"minutes", 1}, "m": {"minutes", 1},
	"second": {"seconds", 1}, "seconds": {"seconds", 1}, "sec": {"seconds", 1}, "secs": {"seconds", 1}, "s": {"seconds", 1},
}

// intervalModifiers turns a PostgreSQL interval like '1 day 2 hours' into
// SQLite date modifiers ('+1 days', '+2 hours'), negated when neg. It
// returns nil for intervals it cannot express.
func intervalModifiers(v string, neg bool) []string {
	f := strings.Fields(strings.ToLower(v))
	if len(f) == 0 || len(f)%2 != 0 {
		return nil
	}
	var mods []string
	for i := 0; i < len(f); i += 2 {
		n, err := strconv.ParseFloat(f[i], 64)
		u, ok := intervalUnits[f[i+1]]
		if err != nil || !ok || math.IsInf(n, 0) || math.IsNaN(n) {
			return nil
		}
		n *= float64(u.mul)
		if neg {
			n = -n
		}
		if (u.unit == "months" || u.unit == "years") && n != math.Trunc(n) {
			return nil // fractional months: PostgreSQL converts to days; not worth guessing
		}
		mods = append(mods, sqliteString(fmt.Sprintf("%+g %s", n, u.unit)))
	}
	return mods
}

// intervalArith rewrites operand ± INTERVAL '…' (t is the + or -) into
// strftime(…, operand, modifiers) with the same text format as now(). It
// reports whether it did; only an operand that is not itself the right
// side of another arithmetic operator is taken (a + b - interval … is left
// alone).
func (tr *translator) intervalArith(t Token) bool {
	j := tr.nextSig(tr.i)
	if j >= len(tr.in) || !tr.in[j].IsKeyword("INTERVAL") {
		return false
	}
	k := tr.nextSig(j + 1)
	if k >= len(tr.in) || tr.in[k].Kind != TokString {
		return false
	}
	if u := tr.nextSig(k + 1); u < len(tr.in) && tr.in[u].Kind == TokIdent && intervalUnits[strings.ToLower(tr.in[u].Text)].unit != "" {
		return false // INTERVAL '1' DAY: SQL-standard field syntax, not handled
	}
	start, ok := tr.operandStart()
	if !ok {
		return false
	}
	if p := prevSig(tr.out, start); p >= 0 && tr.out[p].Kind == TokOp {
		switch tr.out[p].Text {
		case "+", "-", "*", "/", "%", "||":
			return false
		}
	}
	mods := intervalModifiers(valueText(tr.in[k]), t.Text == "-")
	if mods == nil {
		return false
	}
	end := tr.lastOut() + 1
	expr := "strftime('%Y-%m-%d %H:%M:%f+00:00', " + joinTokens(tr.out[start:end]) + ", " + strings.Join(mods, ", ") + ")"
	pos := tr.out[start].Pos
	tr.out = append(tr.out[:start], Token{Kind: tokExpr, Pos: pos, Text: expr})
	tr.i = k + 1
	return true
}

// regexOp translates the pattern-match operators; it reports whether t
// was one.
func (tr *translator) regexOp(t Token, forceInfix bool) bool {
	var repl string
	insensitive := false
	switch t.Text {
	case "~~", "~~*":
		repl = "LIKE"
	case "!~~", "!~~*":
		repl = "NOT LIKE"
	case "~":
		repl = "REGEXP"
	case "~*":
		repl, insensitive = "REGEXP", true
	case "!~":
		repl = "NOT REGEXP"
	case "!~*":
		repl, insensitive = "NOT REGEXP", true
	default:
		return false
	}
	if !forceInfix && !tr.prevIsOperandEnd() {
		return false // prefix ~ is bitwise NOT
	}
	tr.emit(TokIdent, t.Pos, repl)
	if insensitive {
		j := tr.nextSig(tr.i)
		if j < len(tr.in) && tr.in[j].Kind == TokString {
			tr.emit(TokSpace, t.Pos, " ")
			tr.emit(TokString, tr.in[j].Pos, sqliteString("(?i)"+valueText(tr.in[j])))
			tr.i = j + 1
			return true
		}
		tr.emit(TokSpace, t.Pos, " ")
		tr.emit(TokString, t.Pos, "'(?i)'")
		tr.emit(TokSpace, t.Pos, " ")
		tr.emit(TokOp, t.Pos, "||")
	}
	return true
}

// cast handles expr::type; t is the "::".
func (tr *translator) cast(t Token) error {
	start, ok := tr.operandStart()
	if !ok {
		return &SyntaxError{Offset: t.Pos, Msg: "'::' without an operand"}
	}
	ty, next, err := parseType(tr.in, tr.i)
	if err != nil {
		return err
	}
	tr.i = next
	end := tr.lastOut() + 1
	operand := joinTokens(tr.out[start:end])
	target := castTarget(ty)
	if target == "" { // dropped cast: keep the operand as it is
		tr.out = tr.out[:end]
		return nil
	}
	var expr string
	single := start == end-1
	switch {
	case target == "BLOB" && single && tr.out[start].Kind == TokString && byteaHex(tr.out[start].Text) != "":
		// '\xDEAD'::bytea is the bytes DE AD, not the text
		expr = "X'" + byteaHex(tr.out[start].Text) + "'"
	case target == "DATE":
		// the date part of a date or ISO timestamp text
		expr = "substr(CAST(" + operand + " AS TEXT),1,10)"
	case target == "BOOLEAN":
		expr = "(CASE lower(trim(CAST(" + operand + " AS TEXT)))" +
			" WHEN 't' THEN 1 WHEN 'true' THEN 1 WHEN 'y' THEN 1 WHEN 'yes' THEN 1 WHEN 'on' THEN 1 WHEN '1' THEN 1" +
			" WHEN 'f' THEN 0 WHEN 'false' THEN 0 WHEN 'n' THEN 0 WHEN 'no' THEN 0 WHEN 'off' THEN 0 WHEN '0' THEN 0 END)"
	default:
		expr = "CAST(" + operand + " AS " + target + ")"
	}
	// SQLite wants DEFAULT (expr) for anything but a literal
	if p := prevSig(tr.out, start); p >= 0 && tr.out[p].IsKeyword("DEFAULT") && !strings.HasPrefix(expr, "(") && !strings.HasPrefix(expr, "X'") {
		expr = "(" + expr + ")"
	}
	pos := tr.out[start].Pos
	tr.out = append(tr.out[:start], Token{Kind: tokExpr, Pos: pos, Text: expr})
	return nil
}

// operandStart returns the index in tr.out where the operand that ends
// at the last significant output token starts.
func (tr *translator) operandStart() (int, bool) {
	return operandStartIn(tr.out, tr.lastOutBefore(len(tr.out)))
}

func (tr *translator) lastOutBefore(n int) int {
	for j := n - 1; j >= 0; j-- {
		if tr.out[j].significant() {
			return j
		}
	}
	return -1
}

func prevSig(toks []Token, j int) int {
	for j--; j >= 0; j-- {
		if toks[j].significant() {
			return j
		}
	}
	return -1
}

// operandStartIn: the operand ending at toks[j].
func operandStartIn(toks []Token, j int) (int, bool) {
	if j < 0 {
		return 0, false
	}
	t := toks[j]
	switch t.Kind {
	case TokString, TokEString, TokDollarString, TokBitString, TokNumber, TokParam, tokExpr:
		return j, true
	case TokIdent, TokQuotedIdent:
		if t.IsKeyword("END") {
			return caseStart(toks, j)
		}
		if t.Kind == TokIdent && reservedBeforeOperand[strings.ToUpper(t.Text)] {
			return 0, false
		}
		return qualifiedStart(toks, j), true
	case TokPunct:
		var open string
		switch t.Text {
		case ")":
			open = "("
		case "]":
			open = "["
		default:
			return 0, false
		}
		depth := 0
		k := j
		for ; k >= 0; k-- {
			if toks[k].Kind != TokPunct {
				continue
			}
			switch toks[k].Text {
			case ")", "]":
				depth++
			case "(", "[":
				depth--
			}
			if depth == 0 {
				break
			}
		}
		if k < 0 || toks[k].Text != open {
			return 0, false
		}
		p := prevSig(toks, k)
		if p < 0 {
			return k, true
		}
		pt := toks[p]
		if open == "[" {
			// a subscript: a[1], f(x)[1], ARRAY[…]
			if s, ok := operandStartIn(toks, p); ok {
				return s, true
			}
			if pt.IsKeyword("ARRAY") {
				return p, true
			}
			return k, true
		}
		if (pt.Kind == TokIdent && !reservedBeforeOperand[strings.ToUpper(pt.Text)]) || pt.Kind == TokQuotedIdent {
			return qualifiedStart(toks, p), true // function call
		}
		return k, true
	}
	return 0, false
}

// caseStart finds the CASE that the END at toks[j] closes.
func caseStart(toks []Token, j int) (int, bool) {
	depth, parens := 0, 0
	for k := j; k >= 0; k-- {
		t := toks[k]
		switch {
		case isPunct(t, ")") || isPunct(t, "]"):
			parens++
		case isPunct(t, "(") || isPunct(t, "["):
			parens--
		case parens != 0:
		case t.IsKeyword("END"):
			depth++
		case t.IsKeyword("CASE"):
			depth--
			if depth == 0 {
				return k, true
			}
		}
	}
	return 0, false
}

// qualifiedStart extends the name at toks[j] back over "a.b.c".
func qualifiedStart(toks []Token, j int) int {
	for j >= 2 && isPunct(toks[j-1], ".") && (toks[j-2].Kind == TokIdent || toks[j-2].Kind == TokQuotedIdent) {
		j -= 2
	}
	return j
}

// pgType is a type name after ::.
type pgType struct {
	name  string // lower-cased, multi-word names joined by one space
	array bool
}

var multiWordTypes = [][]string{
	{"double", "precision"},
	{"character", "varying"},
	{"char", "varying"},
	{"bit", "varying"},
	{"national", "character", "varying"},
	{"national", "character"},
	{"national", "char", "varying"},
	{"national", "char"},
}

// parseType parses a type name starting at toks[i] (after ::): an optional
// schema, the name (multi-word names, quoted names), optional (args), WITH
// / WITHOUT TIME ZONE, and array suffixes. It returns the index after it.
func parseType(toks []Token, i int) (pgType, int, error) {
	var ty pgType
	sigIdx := func(j int) int {
		for j < len(toks) && !toks[j].significant() {
			j++
		}
		return j
	}
	j := sigIdx(i)
	if j >= len(toks) || (toks[j].Kind != TokIdent && toks[j].Kind != TokQuotedIdent) {
		return ty, i, &SyntaxError{Offset: posOr(toks, j), Msg: "expected a type name after '::'"}
	}
	if j+2 < len(toks) && isPunct(toks[j+1], ".") && (toks[j+2].Kind == TokIdent || toks[j+2].Kind == TokQuotedIdent) {
		j += 2 // schema.
	}
	if toks[j].Kind == TokQuotedIdent {
		ty.name = unquoteIdent(toks[j].Text)
		j++
	} else {
		ty.name = strings.ToLower(toks[j].Text)
		j++
	words:
		for _, mw := range multiWordTypes {
			if mw[0] != ty.name {
				continue
			}
			k := j
			for _, w := range mw[1:] {
				k = sigIdx(k)
				if k >= len(toks) || !strings.EqualFold(toks[k].Text, w) || toks[k].Kind != TokIdent {
					continue words
				}
				k++
			}
			ty.name = strings.Join(mw, " ")
			j = k
			break
		}
	}
	// (args)
	if k := sigIdx(j); k < len(toks) && isPunct(toks[k], "(") {
		depth := 0
		for ; k < len(toks); k++ {
			if isPunct(toks[k], "(") {
				depth++
			} else if isPunct(toks[k], ")") {
				depth--
				if depth == 0 {
					break
				}
			}
		}
		if k >= len(toks) {
			return ty, i, &SyntaxError{Offset: toks[j].Pos, Msg: "unbalanced parentheses in type"}
		}
		j = k + 1
	}
	// WITH[OUT] TIME ZONE
	if k := sigIdx(j); k < len(toks) && (toks[k].IsKeyword("WITH") || toks[k].IsKeyword("WITHOUT")) {
		k2 := sigIdx(k + 1)
		k3 := sigIdx(k2 + 1)
		if k3 < len(toks) && toks[k2].IsKeyword("TIME") && toks[k3].IsKeyword("ZONE") {
			if toks[k].IsKeyword("WITH") {
				ty.name += " with time zone"
			}
			j = k3 + 1
		}
	}
	// [] suffixes, ARRAY
	for {
		k := sigIdx(j)
		if k < len(toks) && isPunct(toks[k], "[") {
			e := sigIdx(k + 1)
			if e < len(toks) && toks[e].Kind == TokNumber {
				e = sigIdx(e + 1)
			}
			if e < len(toks) && isPunct(toks[e], "]") {
				ty.array = true
				j = e + 1
				continue
			}
		}
		if k < len(toks) && toks[k].IsKeyword("ARRAY") {
			ty.array = true
			j = k + 1
			continue
		}
		break
	}
	return ty, j, nil
}

func posOr(toks []Token, j int) int {
	if j < len(toks) {
		return toks[j].Pos
	}
	if len(toks) > 0 {
		return toks[len(toks)-1].End()
	}
	return 0
}

// castTarget maps a PostgreSQL type to the SQLite type of the CAST,
// "BOOLEAN" for the boolean CASE, "DATE" for the date prefix, or "" to
// drop the cast.
func castTarget(ty pgType) string {
	if ty.array {
		return ""
	}
	switch ty.name {
	case "int", "int2", "int4", "int8", "integer", "bigint", "smallint",
		"serial", "serial2", "serial4", "serial8", "bigserial", "smallserial":
		return "INTEGER"
	case "float", "float4", "float8", "real", "double precision":
		return "REAL"
	case "numeric", "decimal", "money":
		return "NUMERIC"
	case "text", "varchar", "character varying", "char varying", "char", "character", "bpchar",
		"national character", "national character varying", "national char", "national char varying",
		"name", "citext", "unknown", "time", "timetz", "time with time zone", "timestamp", "timestamptz",
		"timestamp with time zone", "interval", "uuid", "json", "jsonb", "xml",
		"inet", "cidr", "macaddr", "macaddr8", "bit", "bit varying", "varbit", "tsvector", "tsquery":
		return "TEXT"
	case "bytea":
		return "BLOB"
	case "bool", "boolean":
		return "BOOLEAN"
	case "date":
		return "DATE"
	}
	return "" // reg* types, oid, xid, cid, tid, pg_lsn, user types…
}

// byteaHex returns the hex digits of a PostgreSQL bytea hex literal
// '\x…' (a plain SQL string token), or "".
func byteaHex(lit string) string {
	v := strings.ReplaceAll(lit[1:len(lit)-1], "''", "'")
	if !strings.HasPrefix(v, `\x`) {
		return ""
	}
	h := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\t' || r == '\r' {
			return -1
		}
		return r
	}, v[2:])
	if len(h)%2 != 0 {
		return ""
	}
	if _, err := hex.DecodeString(h); err != nil {
		return ""
	}
	return strings.ToUpper(h)
}

// sqliteString spells s as a SQLite string literal. SQLite strings cannot
// hold NUL; such text becomes CAST(X'…' AS TEXT).
func sqliteString(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		return "CAST(X'" + hex.EncodeToString([]byte(s)) + "' AS TEXT)"
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// decodeEString decodes a PostgreSQL E'…' literal (prefix and quotes
// included): \b \f \n \r \t, \ooo octal, \xhh hex, \uXXXX, \UXXXXXXXX,
// ” and \' quotes, and \c for any other c.
func decodeEString(lit string) (string, error) {
	s := lit[2 : len(lit)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\'' { // ''
			b.WriteByte('\'')
			i++
			continue
		}
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		c = s[i]
		switch c {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v, n := 0, 0
			for n < 3 && i < len(s) && s[i] >= '0' && s[i] <= '7' {
				v = v*8 + int(s[i]-'0')
				i++
				n++
			}
			i--
			b.WriteByte(byte(v))
		case 'x':
			v, n := 0, 0
			for n < 2 && i+1 < len(s) && isHexDigit(s[i+1]) {
				x, _ := strconv.ParseUint(s[i+1:i+2], 16, 8)
				v = v*16 + int(x)
				i++
				n++
			}
			if n == 0 {
				b.WriteByte('x')
				continue
			}
			b.WriteByte(byte(v))
		case 'u', 'U':
			n := 4
			if c == 'U' {
				n = 8
			}
			if i+1+n > len(s) {
				return "", fmt.Errorf("invalid Unicode escape in %s", lit)
			}
			v, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32)
			if err != nil || !utf8.ValidRune(rune(v)) || v == 0 {
				return "", fmt.Errorf("invalid Unicode escape in %s", lit)
			}
			b.WriteRune(rune(v))
			i += n
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// translateTruncate turns TRUNCATE [TABLE] [ONLY] name [*] [RESTART
// IDENTITY | CONTINUE IDENTITY] [CASCADE | RESTRICT] into DELETE FROM name.
func translateTruncate(sig []Token) (string, error) {
	i := 1
	if kwAt(sig, i) == "TABLE" {
		i++
	}
	if kwAt(sig, i) == "ONLY" {
		i++
	}
	start := i
	if identName(sig, i) == "" {
		return "", &SyntaxError{Offset: posOr(sig, i), Msg: "expected a table name after TRUNCATE"}
	}
	i++
	for i+1 < len(sig) && isPunct(sig[i], ".") && identName(sig, i+1) != "" {
		i += 2
	}
	name := sig[start:i]
	if i < len(sig) && sig[i].Kind == TokOp && sig[i].Text == "*" {
		i++
	}
	if i < len(sig) && isPunct(sig[i], ",") {
		return "", fmt.Errorf("%w: TRUNCATE of several tables", ErrUnsupported)
	}
	for ; i < len(sig); i++ {
		switch kw(sig[i]) {
		case "RESTART", "CONTINUE", "IDENTITY", "CASCADE", "RESTRICT":
		default:
			if !isPunct(sig[i], ";") {
				return "", &SyntaxError{Offset: sig[i].Pos, Msg: fmt.Sprintf("unexpected %q in TRUNCATE", sig[i].Text)}
			}
		}
	}
	var b strings.Builder
	b.WriteString("DELETE FROM ")
	for _, t := range name {
		if t.Kind == TokIdent && (strings.EqualFold(t.Text, "public") || strings.EqualFold(t.Text, "pg_catalog")) && len(name) > 1 && t.Pos == name[0].Pos {
			continue
		}
		if isPunct(t, ".") && b.Len() == len("DELETE FROM ") {
			continue
		}
		b.WriteString(t.Text)
	}
	return b.String(), nil
}
