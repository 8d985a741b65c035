package sqltext

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// MaxRandomBlob is the largest randomblob(N) MakeDeterministic expands
// into a literal; a larger N is refused (the literal would be twice N
// bytes of SQL in the log).
const MaxRandomBlob = 1 << 20

// dateFuncs are SQLite's date and time functions: a 'now' argument, or no
// argument at all, means the current time.
var dateFuncs = map[string]bool{
	"DATE": true, "TIME": true, "DATETIME": true, "JULIANDAY": true,
	"UNIXEPOCH": true, "STRFTIME": true, "TIMEDIFF": true,
}

// nowDefault are the date functions that mean 'now' when called with no
// argument.
var nowDefault = map[string]bool{"DATE": true, "TIME": true, "DATETIME": true, "JULIANDAY": true, "UNIXEPOCH": true}

// MakeDeterministic replaces non-deterministic SQL with literals fixed by
// the proposer, so that every node applying the statement computes the
// same bytes:
//
//   - random() → an integer literal drawn from rnd;
//   - randomblob(N), N an integer literal (at most MaxRandomBlob) → an
//     X'…' blob literal of max(N,1) bytes from rnd;
//   - CURRENT_TIMESTAMP, CURRENT_DATE, CURRENT_TIME → now (UTC) as
//     'YYYY-MM-DD HH:MM:SS', 'YYYY-MM-DD', 'HH:MM:SS' (SQLite's formats);
//   - the string 'now' as an argument of date(), time(), datetime(),
//     julianday(), unixepoch(), strftime(), timediff() → now (UTC) as
//     'YYYY-MM-DD HH:MM:SS.SSS' (SQLite's 'now' has millisecond precision),
//     and date()/time()/datetime()/julianday()/unixepoch() with no argument
//     and strftime(format) with no time value get that literal as their
//     time value.
//
// changes() and last_insert_rowid() are left as they are: they depend on
// the statements applied before on the same connection, which is the same
// sequence on every node.
//
// It refuses, with an error wrapping ErrNonDeterministic that names the
// function: randomblob() of anything but an integer literal; the
// 'localtime' and 'utc' modifiers (they depend on each node's time zone);
// total_changes() (it counts since the node's connection opened, which
// differs between nodes that restarted); and any non-deterministic
// construct in CREATE TABLE (other than CREATE TABLE … AS), ALTER TABLE
// or CREATE TRIGGER, where it would be evaluated later on every node —
// random() in a trigger or a DEFAULT, the clock in a CHECK constraint —
// freezing it to a literal would silently change its meaning.
//
// The exception is the clock in a column DEFAULT of CREATE TABLE: the fsm
// evaluates CURRENT_TIMESTAMP, CURRENT_DATE and CURRENT_TIME with the
// clock of the entry that inserts the row (it overrides SQLite's
// current_timestamp() and friends on its writer), so they are kept, and
// the 'now' of date functions there (DEFAULT now() as Translate writes it,
// DEFAULT (datetime('now')), date() with no argument, strftime(format))
// becomes CURRENT_TIMESTAMP — at whole-second precision, SQLite's
// CURRENT_TIMESTAMP format: DEFAULT now() stores
// 'YYYY-MM-DD HH:MM:SS.000+00:00'. CREATE VIEW and CREATE
// INDEX are returned unchanged: a view is evaluated when read, and SQLite
// itself rejects non-deterministic functions in indexes, CHECK
// constraints and generated columns.
//
// Statements without anything to replace are returned unchanged.
func MakeDeterministic(stmt string, now time.Time, rnd *rand.Rand) (string, error) {
	toks, err := Lex(stmt)
	if err != nil {
		return "", err
	}
	sig := significantTokens(toks)
	if len(sig) == 0 {
		return stmt, nil
	}
	_, verb := classify(sig)
	freeze := true
	switch verb {
	case "CREATE VIEW", "CREATE MATERIALIZED VIEW", "CREATE INDEX":
		return stmt, nil
	case "CREATE TABLE", "ALTER TABLE", "CREATE TRIGGER":
		freeze = false
	}
	d := determinizer{toks: toks, now: now.UTC(), rnd: rnd, freeze: freeze, verb: verb, defaultEnd: -1}
	if err := d.run(); err != nil {
		return "", err
	}
	if !d.changed {
		return stmt, nil
	}
	return joinTokens(d.out), nil
}

type determinizer struct {
	toks    []Token
	i       int
	out     []Token
	now     time.Time
	rnd     *rand.Rand
	freeze  bool   // replace (DML) or refuse (DDL evaluated later)
	verb    string // for messages
	changed bool
	// calls is the stack of open parentheses: the upper-cased function
	// name before each "(", or "" for a plain group.
	calls []string
	// insertAt: text to emit before the token at that index (the 'now'
	// argument of a one-argument strftime).
	insertAt map[int]string
	// defaultEnd is the index of the last token of the current column
	// DEFAULT expression of a CREATE TABLE, -1 outside one.
	defaultEnd int
}

// inDefault reports whether the token just consumed (at d.i-1) is part of
// a column DEFAULT of CREATE TABLE: the clock there is evaluated by the
// fsm at INSERT time with the entry's own clock (its current_timestamp()
// override), so it is kept or rewritten to CURRENT_TIMESTAMP instead of
// being refused.
func (d *determinizer) inDefault() bool { return !d.freeze && d.i-1 <= d.defaultEnd }

func (d *determinizer) nonDet(what string) error {
	if d.freeze {
		return fmt.Errorf("%w: %s", ErrNonDeterministic, what)
	}
	return fmt.Errorf("%w: %s in %s would be evaluated separately on every node; write the value explicitly instead",
		ErrNonDeterministic, what, d.verb)
}

func (d *determinizer) next(j int) int {
	for j < len(d.toks) && !d.toks[j].significant() {
		j++
	}
	return j
}

func (d *determinizer) tokAt(j int) Token {
	if j < len(d.toks) {
		return d.toks[j]
	}
	return Token{}
}

// prevIsDot reports whether the last significant output token is ".".
func (d *determinizer) prevIsDot() bool {
	for j := len(d.out) - 1; j >= 0; j-- {
		if d.out[j].significant() {
			return isPunct(d.out[j], ".")
		}
	}
	return false
}

func (d *determinizer) emit(t Token) { d.out = append(d.out, t) }

func (d *determinizer) replace(pos int, text string) {
	d.changed = true
	d.out = append(d.out, Token{Kind: tokExpr, Pos: pos, Text: text})
}

// nowText is SQLite's 'now' at millisecond precision.
func (d *determinizer) nowText() string {
	return d.now.Truncate(time.Millisecond).Format("2006-01-02 15:04:05.000")
}

func (d *determinizer) run() error {
	for d.i < len(d.toks) {
		t := d.toks[d.i]
		if ins, ok := d.insertAt[d.i]; ok {
			d.emit(Token{Kind: tokExpr, Pos: t.Pos, Text: ins})
		}
		d.i++
		switch t.Kind {
		case TokPunct:
			switch t.Text {
			case "(":
				name := ""
				for j := len(d.out) - 1; j >= 0; j-- {
					if d.out[j].significant() {
						if d.out[j].Kind == TokIdent {
							name = strings.ToUpper(d.out[j].Text)
						}
						break
					}
				}
				d.calls = append(d.calls, name)
			case ")":
				if len(d.calls) > 0 {
					d.calls = d.calls[:len(d.calls)-1]
				}
			}
		case TokString:
			if err := d.dateArg(t); err != nil {
				return err
			}
			if d.changedLast(t) {
				continue
			}
		case TokIdent:
			done, err := d.word(t)
			if err != nil {
				return err
			}
			if done {
				continue
			}
		}
		d.emit(t)
	}
	return nil
}

// changedLast reports whether dateArg already emitted a replacement for t.
func (d *determinizer) changedLast(t Token) bool {
	return len(d.out) > 0 && d.out[len(d.out)-1].Kind == tokExpr && d.out[len(d.out)-1].Pos == t.Pos
}

// inDateFunc reports whether the innermost open parenthesis is the
// argument list of a date function.
func (d *determinizer) inDateFunc() (string, bool) {
	if len(d.calls) == 0 {
		return "", false
	}
	f := d.calls[len(d.calls)-1]
	return f, dateFuncs[f]
}

// dateArg handles a string literal: 'now', 'localtime', 'utc' directly
// inside a date function's arguments.
func (d *determinizer) dateArg(t Token) error {
	f, ok := d.inDateFunc()
	if !ok || t.Text[0] != '\'' {
		return nil
	}
	v := strings.ReplaceAll(t.Text[1:len(t.Text)-1], "''", "'")
	switch strings.ToLower(v) {
	case "now":
		if d.inDefault() {
			d.replace(t.Pos, "CURRENT_TIMESTAMP")
			return nil
		}
		if !d.freeze {
			return d.nonDet(fmt.Sprintf("%s('now')", strings.ToLower(f)))
		}
		d.replace(t.Pos, "'"+d.nowText()+"'")
	case "localtime", "utc":
		return fmt.Errorf("%w: the %q modifier of %s() depends on each node's time zone", ErrNonDeterministic, strings.ToLower(v), strings.ToLower(f))
	}
	return nil
}

// word handles a bare word; it reports whether it emitted the
// replacement itself.
func (d *determinizer) word(t Token) (bool, error) {
	if d.prevIsDot() {
		return false, nil
	}
	name := strings.ToUpper(t.Text)
	open := d.next(d.i)
	isCall := isPunct(d.tokAt(open), "(")
	switch name {
	case "DEFAULT":
		if d.verb == "CREATE TABLE" && !d.freeze {
			// The expression: a parenthesized one, a signed number, or
			// one term (a function call without the parentheses SQLite
			// wants is a term too here, so that the rewrite is stable).
			end := open
			tk := d.tokAt(open)
			switch {
			case tk.Kind == TokOp && (tk.Text == "-" || tk.Text == "+"):
				end = d.next(open + 1)
			case isCall:
				if c, _ := d.args(open); c >= 0 {
					end = c
				}
			case tk.Kind == TokIdent:
				if p := d.next(open + 1); isPunct(d.tokAt(p), "(") {
					if c, _ := d.args(p); c >= 0 {
						end = c
					}
				}
			}
			d.defaultEnd = end
		}
		return false, nil
	case "CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME":
		if isCall || d.inDefault() {
			return false, nil
		}
		if !d.freeze {
			return false, d.nonDet(name)
		}
		var lit string
		switch name {
		case "CURRENT_TIMESTAMP":
			lit = d.now.Format("2006-01-02 15:04:05")
		case "CURRENT_DATE":
			lit = d.now.Format("2006-01-02")
		default:
			lit = d.now.Format("15:04:05")
		}
		d.replace(t.Pos, "'"+lit+"'")
		return true, nil
	}
	if !isCall {
		return false, nil
	}
	closeIdx := d.next(open + 1)
	emptyArgs := isPunct(d.tokAt(closeIdx), ")")
	switch {
	case name == "RANDOM" && emptyArgs:
		if !d.freeze {
			return false, d.nonDet("random()")
		}
		if d.rnd == nil {
			return false, fmt.Errorf("%w: random() with no source of randomness", ErrNonDeterministic)
		}
		v := int64(d.rnd.Uint64())
		lit := "(" + strconv.FormatInt(v, 10) + ")"
		if v == math.MinInt64 {
			lit = "(-9223372036854775807-1)"
		}
		d.replace(t.Pos, lit)
		d.i = closeIdx + 1
		return true, nil
	case name == "RANDOMBLOB":
		return d.randomblob(t, open)
	case name == "TOTAL_CHANGES":
		return false, fmt.Errorf("%w: total_changes() counts changes since each node's connection opened", ErrNonDeterministic)
	case name == "STRFTIME" && !emptyArgs:
		// strftime(format) with no time value means now
		closeAt, commas := d.args(open)
		if closeAt >= 0 && commas == 0 {
			if d.inDefault() {
				if d.insertAt == nil {
					d.insertAt = map[int]string{}
				}
				d.insertAt[closeAt] = ", CURRENT_TIMESTAMP"
				d.changed = true
				break
			}
			if !d.freeze {
				return false, d.nonDet("strftime() without a time value")
			}
			if d.insertAt == nil {
				d.insertAt = map[int]string{}
			}
			d.insertAt[closeAt] = ", '" + d.nowText() + "'"
			d.changed = true
		}
	case nowDefault[name] && emptyArgs:
		if d.inDefault() {
			d.changed = true
			d.emit(t)
			d.emit(Token{Kind: TokPunct, Pos: d.toks[open].Pos, Text: "("})
			d.emit(Token{Kind: tokExpr, Pos: d.toks[open].Pos, Text: "CURRENT_TIMESTAMP"})
			d.emit(Token{Kind: TokPunct, Pos: d.toks[closeIdx].Pos, Text: ")"})
			d.i = closeIdx + 1
			return true, nil
		}
		if !d.freeze {
			return false, d.nonDet(strings.ToLower(name) + "()")
		}
		d.changed = true
		d.emit(t)
		d.emit(Token{Kind: TokPunct, Pos: d.toks[open].Pos, Text: "("})
		d.emit(Token{Kind: TokString, Pos: d.toks[open].Pos, Text: "'" + d.nowText() + "'"})
		d.emit(Token{Kind: TokPunct, Pos: d.toks[closeIdx].Pos, Text: ")"})
		d.i = closeIdx + 1
		return true, nil
	}
	return false, nil
}

// args returns the index of the ")" closing the "(" at open and the
// number of top-level commas between them (-1, 0 if unbalanced).
func (d *determinizer) args(open int) (int, int) {
	depth, commas := 0, 0
	for j := open; j < len(d.toks); j++ {
		t := d.toks[j]
		switch {
		case isPunct(t, "(") || isPunct(t, "["):
			depth++
		case isPunct(t, ")") || isPunct(t, "]"):
			depth--
			if depth == 0 {
				return j, commas
			}
		case depth == 1 && isPunct(t, ","):
			commas++
		}
	}
	return -1, 0
}

// randomblob handles randomblob(N) with t the name and open the "(".
func (d *determinizer) randomblob(t Token, open int) (bool, error) {
	j := d.next(open + 1)
	neg := false
	if tk := d.tokAt(j); tk.Kind == TokOp && (tk.Text == "-" || tk.Text == "+") {
		neg = tk.Text == "-"
		j = d.next(j + 1)
	}
	num := d.tokAt(j)
	end := d.next(j + 1)
	if num.Kind != TokNumber || !isPunct(d.tokAt(end), ")") {
		return false, fmt.Errorf("%w: randomblob() of an expression; only randomblob(<integer literal>) can be fixed by the leader", ErrNonDeterministic)
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(num.Text, "_", ""), 0, 64)
	if err != nil {
		return false, fmt.Errorf("%w: randomblob(%s): the length must be an integer literal", ErrNonDeterministic, num.Text)
	}
	if neg || n < 1 {
		n = 1 // SQLite: N < 1 gives one byte
	}
	if n > MaxRandomBlob {
		return false, fmt.Errorf("%w: randomblob(%d) is larger than %d bytes", ErrNonDeterministic, n, MaxRandomBlob)
	}
	if !d.freeze {
		return false, d.nonDet("randomblob()")
	}
	if d.rnd == nil {
		return false, fmt.Errorf("%w: randomblob() with no source of randomness", ErrNonDeterministic)
	}
	b := make([]byte, n)
	for k := 0; k < len(b); k += 8 {
		v := d.rnd.Uint64()
		for m := 0; m < 8 && k+m < len(b); m++ {
			b[k+m] = byte(v >> (8 * m))
		}
	}
	d.replace(t.Pos, "X'"+strings.ToUpper(hex.EncodeToString(b))+"'")
	d.i = end + 1
	return true, nil
}
