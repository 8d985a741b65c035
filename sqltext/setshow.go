package sqltext

import (
	"strings"
)

// SetStmt is a parsed SET statement.
type SetStmt struct {
	// Name is the setting's name, lower-cased unless it was quoted, with
	// dots kept ("raftsql.read_consistency"). The special forms map to the
	// settings PostgreSQL changes: SET TIME ZONE → "timezone", SET NAMES →
	// "client_encoding", SET SCHEMA → "search_path", SET ROLE → "role",
	// SET SESSION AUTHORIZATION → "session_authorization", SET TRANSACTION
	// → "transaction_isolation" / "transaction_read_only" /
	// "transaction_deferrable" and SET SESSION CHARACTERISTICS AS
	// TRANSACTION → the same names with a "default_" prefix.
	Name string
	// Value is the value as PostgreSQL's SHOW would print it for a plain
	// setting: strings unquoted, unquoted words lower-cased, numbers as
	// written, a list joined with ", ". Empty when Default is set.
	Value string
	// Local is SET LOCAL (for the current transaction only).
	Local bool
	// Default is SET x TO DEFAULT (or SET TIME ZONE LOCAL): reset to the
	// default value.
	Default bool
}

// ParseSet parses a SET statement and returns the setting's name and value
// (see SetStmt; the DEFAULT value is returned as "DEFAULT"). Use
// ParseSetStmt to tell SET LOCAL and DEFAULT apart.
func ParseSet(text string) (name, value string, err error) {
	s, err := ParseSetStmt(text)
	if err != nil {
		return "", "", err
	}
	if s.Default {
		return s.Name, "DEFAULT", nil
	}
	return s.Name, s.Value, nil
}

// ParseSetStmt parses SET [SESSION|LOCAL] name {TO|=} value[, …] and the
// special forms listed at SetStmt. For SET TRANSACTION with several modes
// only the first is returned. Malformed text gives a *SyntaxError.
func ParseSetStmt(text string) (SetStmt, error) {
	toks, err := Lex(text)
	if err != nil {
		return SetStmt{}, err
	}
	sig := significantTokens(toks)
	if len(sig) > 0 && isPunct(sig[len(sig)-1], ";") {
		sig = sig[:len(sig)-1]
	}
	if kwAt(sig, 0) != "SET" {
		return SetStmt{}, syntaxErr(posAt(sig, 0, text), "not a SET statement")
	}
	var st SetStmt
	i := 1
	switch kwAt(sig, i) {
	case "SESSION":
		if kwAt(sig, i+1) == "CHARACTERISTICS" {
			if kwAt(sig, i+2) != "AS" || kwAt(sig, i+3) != "TRANSACTION" {
				return st, syntaxErr(posAt(sig, i+2, text), "expected AS TRANSACTION")
			}
			return parseTxnModes(sig, i+4, text, "default_")
		}
		if kwAt(sig, i+1) == "AUTHORIZATION" {
			st.Name = "session_authorization"
			return parseSetValue(st, sig, i+2, text)
		}
		i++
	case "LOCAL":
		st.Local = true
		i++
	}
	switch kwAt(sig, i) {
	case "TIME":
		if kwAt(sig, i+1) == "ZONE" {
			st.Name = "timezone"
			if kwAt(sig, i+2) == "LOCAL" && i+3 == len(sig) {
				st.Default = true
				return st, nil
			}
			if kwAt(sig, i+2) == "INTERVAL" {
				// SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE: the string.
				t, ok := tokAt(sig, i+3)
				if !ok || t.Kind != TokString {
					return st, syntaxErr(posAt(sig, i+3, text), "expected an interval string")
				}
				st.Value = valueText(t)
				return st, nil
			}
			return parseSetValue(st, sig, i+2, text)
		}
	case "NAMES":
		st.Name = "client_encoding"
		return parseSetValue(st, sig, i+1, text)
	case "SCHEMA":
		st.Name = "search_path"
		return parseSetValue(st, sig, i+1, text)
	case "ROLE":
		st.Name = "role"
		return parseSetValue(st, sig, i+1, text)
	case "SESSION":
		if kwAt(sig, i+1) == "AUTHORIZATION" {
			st.Name = "session_authorization"
			return parseSetValue(st, sig, i+2, text)
		}
	case "TRANSACTION":
		if kwAt(sig, i+1) == "SNAPSHOT" {
			st.Name = "transaction_snapshot"
			return parseSetValue(st, sig, i+2, text)
		}
		s, err := parseTxnModes(sig, i+1, text, "")
		s.Local = st.Local
		return s, err
	}
	// name[.name…]
	var name strings.Builder
	for {
		t, ok := tokAt(sig, i)
		if !ok || (t.Kind != TokIdent && t.Kind != TokQuotedIdent) {
			return st, syntaxErr(posAt(sig, i, text), "expected a setting name")
		}
		if t.Kind == TokIdent {
			name.WriteString(strings.ToLower(t.Text))
		} else {
			name.WriteString(unquoteIdent(t.Text))
		}
		i++
		if t, ok := tokAt(sig, i); ok && isPunct(t, ".") {
			name.WriteByte('.')
			i++
			continue
		}
		break
	}
	st.Name = name.String()
	t, ok := tokAt(sig, i)
	if !ok || !(t.IsKeyword("TO") || (t.Kind == TokOp && t.Text == "=")) {
		if ok && t.IsKeyword("FROM") {
			return st, syntaxErr(t.Pos, "SET … FROM CURRENT is not supported")
		}
		return st, syntaxErr(posAt(sig, i, text), "expected TO or = after %s", st.Name)
	}
	return parseSetValue(st, sig, i+1, text)
}

// parseSetValue parses DEFAULT or a comma-separated list of values
// starting at sig[i] to the end.
func parseSetValue(st SetStmt, sig []Token, i int, text string) (SetStmt, error) {
	if i >= len(sig) {
		return st, syntaxErr(len(text), "expected a value for %s", st.Name)
	}
	if kwAt(sig, i) == "DEFAULT" && i+1 == len(sig) {
		st.Default = true
		return st, nil
	}
	var vals []string
	for i < len(sig) {
		t := sig[i]
		var v string
		switch t.Kind {
		case TokOp:
			if t.Text != "-" && t.Text != "+" {
				return st, syntaxErr(t.Pos, "unexpected %q in value", t.Text)
			}
			n, ok := tokAt(sig, i+1)
			if !ok || n.Kind != TokNumber {
				return st, syntaxErr(t.Pos, "unexpected %q in value", t.Text)
			}
			if t.Text == "-" {
				v = "-"
			}
			v += n.Text
			i++
		case TokString, TokEString, TokDollarString, TokNumber, TokQuotedIdent:
			v = valueText(t)
		case TokIdent:
			v = strings.ToLower(t.Text)
			// a qualified name as a value: a.b
			for i+2 < len(sig) && isPunct(sig[i+1], ".") && (sig[i+2].Kind == TokIdent || sig[i+2].Kind == TokQuotedIdent) {
				v += "." + valueText(sig[i+2])
				i += 2
			}
		default:
			return st, syntaxErr(t.Pos, "unexpected %q in value", t.Text)
		}
		vals = append(vals, v)
		i++
		if i < len(sig) {
			if !isPunct(sig[i], ",") || i+1 == len(sig) {
				return st, syntaxErr(sig[i].Pos, "unexpected %q after value", sig[i].Text)
			}
			i++
		}
	}
	st.Value = strings.Join(vals, ", ")
	return st, nil
}

// parseTxnModes parses the first transaction mode at sig[i]:
// ISOLATION LEVEL …, READ ONLY|WRITE, [NOT] DEFERRABLE.
func parseTxnModes(sig []Token, i int, text, prefix string) (SetStmt, error) {
	var st SetStmt
	switch kwAt(sig, i) {
	case "ISOLATION":
		if kwAt(sig, i+1) != "LEVEL" {
			return st, syntaxErr(posAt(sig, i+1, text), "expected LEVEL")
		}
		st.Name = prefix + "transaction_isolation"
		switch a, b := kwAt(sig, i+2), kwAt(sig, i+3); {
		case a == "SERIALIZABLE":
			st.Value = "serializable"
		case a == "REPEATABLE" && b == "READ":
			st.Value = "repeatable read"
		case a == "READ" && (b == "COMMITTED" || b == "UNCOMMITTED"):
			st.Value = "read " + strings.ToLower(b)
		default:
			return st, syntaxErr(posAt(sig, i+2, text), "unknown isolation level")
		}
	case "READ":
		st.Name = prefix + "transaction_read_only"
		switch kwAt(sig, i+1) {
		case "ONLY":
			st.Value = "on"
		case "WRITE":
			st.Value = "off"
		default:
			return st, syntaxErr(posAt(sig, i+1, text), "expected ONLY or WRITE")
		}
	case "DEFERRABLE":
		st.Name, st.Value = prefix+"transaction_deferrable", "on"
	case "NOT":
		if kwAt(sig, i+1) != "DEFERRABLE" {
			return st, syntaxErr(posAt(sig, i+1, text), "expected DEFERRABLE")
		}
		st.Name, st.Value = prefix+"transaction_deferrable", "off"
	default:
		return st, syntaxErr(posAt(sig, i, text), "expected a transaction mode")
	}
	return st, nil
}

// ParseShow returns the name of the setting a SHOW statement asks for,
// lower-cased unless quoted ("all" for SHOW ALL; SHOW TIME ZONE →
// "timezone", SHOW TRANSACTION ISOLATION LEVEL → "transaction_isolation",
// SHOW SESSION AUTHORIZATION → "session_authorization"). It returns "" for
// text that is not a well-formed SHOW.
func ParseShow(text string) string {
	toks, err := Lex(text)
	if err != nil {
		return ""
	}
	sig := significantTokens(toks)
	if len(sig) > 0 && isPunct(sig[len(sig)-1], ";") {
		sig = sig[:len(sig)-1]
	}
	if kwAt(sig, 0) != "SHOW" || len(sig) < 2 {
		return ""
	}
	switch {
	case kwAt(sig, 1) == "TIME" && kwAt(sig, 2) == "ZONE" && len(sig) == 3:
		return "timezone"
	case kwAt(sig, 1) == "TRANSACTION" && kwAt(sig, 2) == "ISOLATION" && kwAt(sig, 3) == "LEVEL" && len(sig) == 4:
		return "transaction_isolation"
	case kwAt(sig, 1) == "SESSION" && kwAt(sig, 2) == "AUTHORIZATION" && len(sig) == 3:
		return "session_authorization"
	}
	var name strings.Builder
	for i := 1; i < len(sig); i++ {
		t := sig[i]
		want := (i-1)%2 == 0 // name parts at odd indexes, dots between
		switch {
		case want && t.Kind == TokIdent:
			name.WriteString(strings.ToLower(t.Text))
		case want && t.Kind == TokQuotedIdent:
			name.WriteString(unquoteIdent(t.Text))
		case !want && isPunct(t, ".") && i+1 < len(sig):
			name.WriteByte('.')
		default:
			return ""
		}
	}
	return name.String()
}

func tokAt(sig []Token, i int) (Token, bool) {
	if i < 0 || i >= len(sig) {
		return Token{}, false
	}
	return sig[i], true
}

// posAt is the offset of sig[i], or the end of text past the last token.
func posAt(sig []Token, i int, text string) int {
	if i >= 0 && i < len(sig) {
		return sig[i].Pos
	}
	return len(text)
}

// valueText returns the content of a literal or identifier token: strings
// unquoted and unescaped, identifiers unquoted, anything else as written.
func valueText(t Token) string {
	switch t.Kind {
	case TokString:
		s := t.Text
		if s[0] != '\'' { // N'…'
			s = s[1:]
		}
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'")
	case TokEString:
		v, err := decodeEString(t.Text)
		if err != nil {
			return t.Text
		}
		return v
	case TokDollarString:
		return dollarBody(t.Text)
	case TokQuotedIdent:
		return unquoteIdent(t.Text)
	}
	return t.Text
}

// dollarBody returns the text between the delimiters of $tag$…$tag$.
func dollarBody(s string) string {
	j := strings.IndexByte(s[1:], '$') + 1
	delim := s[:j+1]
	return s[len(delim) : len(s)-len(delim)]
}
