package pgwire

import (
	"context"
	"strconv"
	"strings"

	"github.com/raftsql/raftsql/sqltext"
)

// Parameter type inference. PostgreSQL tells the client the type of each
// $n (ParameterDescription) and clients encode their arguments
// accordingly: pgx sends a Go bool as a boolean only to a bool parameter,
// a []byte as bytea only to a bytea parameter. SQLite knows no parameter
// types, so the front end infers them from the statement the way
// PostgreSQL does for the common shapes:
//
//	$1::type, CAST($1 AS type)           the cast type
//	col = $1, $1 < t.col, col LIKE $1    the column's declared type
//	INSERT INTO t (a, b) VALUES ($1, $2) the columns' declared types
//	UPDATE t SET a = $1                  the column's declared type
//	LIMIT $1, OFFSET $1                  bigint
//
// A parameter that matches none stays 0 (unspecified): clients then send
// text, which SQLite's type affinity converts on comparison and storage.

// columnLookup returns the declared column types of a table (lower-case
// column name → declared type), nil if the table is unknown.
type columnLookup func(table string) map[string]string

// columnTypes builds a cached columnLookup that asks the Engine to
// describe SELECT * FROM table.
func (c *conn) columnTypes(ctx context.Context) columnLookup {
	cache := map[string]map[string]string{}
	return func(table string) map[string]string {
		key := strings.ToLower(table)
		if m, ok := cache[key]; ok {
			return m
		}
		var m map[string]string
		d, err := c.srv.cfg.Engine.Describe(ctx, `SELECT * FROM "`+strings.ReplaceAll(table, `"`, `""`)+`"`)
		if err == nil {
			m = make(map[string]string, len(d.Columns))
			for _, col := range d.Columns {
				m[strings.ToLower(col.Name)] = col.DeclType
			}
		}
		cache[key] = m
		return m
	}
}

func significant(text string) []sqltext.Token {
	toks, err := sqltext.Lex(text)
	if err != nil {
		return nil
	}
	sig := toks[:0]
	for _, t := range toks {
		if t.Kind != sqltext.TokSpace && t.Kind != sqltext.TokComment {
			sig = append(sig, t)
		}
	}
	return sig
}

func identText(t sqltext.Token) (string, bool) {
	switch t.Kind {
	case sqltext.TokIdent:
		return strings.ToLower(t.Text), true
	case sqltext.TokQuotedIdent:
		if len(t.Text) >= 2 {
			return strings.ReplaceAll(t.Text[1:len(t.Text)-1], `""`, `"`), true
		}
	}
	return "", false
}

func paramIndex(t sqltext.Token) int {
	if t.Kind != sqltext.TokParam || !strings.HasPrefix(t.Text, "$") {
		return -1
	}
	n, err := strconv.Atoi(t.Text[1:])
	if err != nil || n < 1 {
		return -1
	}
	return n - 1
}

var comparisonOps = map[string]bool{"=": true, "<>": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true}

// inferParamTypes fills the unspecified entries of ps.params.
func inferParamTypes(ps *prepared, lookup columnLookup) {
	if len(ps.params) == 0 {
		return
	}
	sig := significant(ps.st.Text)
	if len(sig) == 0 {
		return
	}
	set := func(i int, oid uint32) {
		if i >= 0 && i < len(ps.params) && ps.params[i] == 0 && oid != 0 {
			ps.params[i] = oid
		}
	}
	// Tables named after FROM, JOIN, UPDATE, INTO.
	var tables []string
	for i := 0; i+1 < len(sig); i++ {
		if sig[i].IsKeyword("FROM") || sig[i].IsKeyword("JOIN") || sig[i].IsKeyword("UPDATE") || sig[i].IsKeyword("INTO") {
			j := i + 1
			if j+2 < len(sig) && sig[j+1].Text == "." {
				j += 2
			}
			if name, ok := identText(sig[j]); ok {
				tables = append(tables, name)
			}
		}
	}
	colType := func(at int) uint32 {
		// at is the last token of a column reference: col or t.col
		name, ok := identText(sig[at])
		if !ok {
			return 0
		}
		candidates := tables
		if at >= 2 && sig[at-1].Text == "." {
			if q, ok := identText(sig[at-2]); ok {
				candidates = append([]string{q}, tables...)
			}
		}
		for _, t := range candidates {
			if cols := lookup(t); cols != nil {
				if decl, ok := cols[strings.ToLower(name)]; ok {
					if oid, ok := declTypeOID(decl); ok {
						return oid
					}
					return 0
				}
			}
		}
		return 0
	}
	castType := func(j int) uint32 {
		var words []string
		for ; j < len(sig) && sig[j].Kind == sqltext.TokIdent; j++ {
			words = append(words, sig[j].Text)
			if len(words) == 2 {
				break
			}
		}
		for len(words) > 0 {
			if oid, ok := declTypeOID(strings.Join(words, " ")); ok {
				return oid
			}
			words = words[:len(words)-1]
		}
		return 0
	}
	for k, t := range sig {
		idx := paramIndex(t)
		if idx < 0 {
			continue
		}
		if k+2 < len(sig) && sig[k+1].Text == "::" {
			set(idx, castType(k+2))
		}
		if k >= 2 && k+2 < len(sig) && sig[k-1].Text == "(" && sig[k-2].IsKeyword("CAST") && sig[k+1].IsKeyword("AS") {
			set(idx, castType(k+2))
		}
		if k >= 1 && (sig[k-1].IsKeyword("LIKE") || sig[k-1].IsKeyword("ILIKE")) {
			set(idx, oidText)
		}
		if k >= 1 && (sig[k-1].IsKeyword("LIMIT") || sig[k-1].IsKeyword("OFFSET")) {
			set(idx, oidInt8)
		}
		if k >= 2 && comparisonOps[sig[k-1].Text] {
			set(idx, colType(k-2))
		}
		if k+2 < len(sig) && comparisonOps[sig[k+1].Text] {
			set(idx, colType(k+2))
		}
		if k >= 2 && sig[k-1].IsKeyword("BETWEEN") {
			set(idx, colType(k-2))
		}
		if k >= 4 && sig[k-1].IsKeyword("AND") && sig[k-3].IsKeyword("BETWEEN") {
			set(idx, colType(k-4))
		}
		// col IN ($1, $2, …)
		if open := enclosingParen(sig, k); open >= 2 && sig[open-1].IsKeyword("IN") {
			set(idx, colType(open-2))
		}
	}
	inferInsert(sig, lookup, set)
}

// inferInsert handles INSERT INTO t (a, b, …) VALUES ($1, $2, …), ….
func inferInsert(sig []sqltext.Token, lookup columnLookup, set func(int, uint32)) {
	i := 0
	for i < len(sig) && !sig[i].IsKeyword("INTO") {
		i++
	}
	i++
	if i+1 < len(sig) && sig[i+1].Text == "." {
		i += 2
	}
	if i >= len(sig) {
		return
	}
	table, ok := identText(sig[i])
	if !ok {
		return
	}
	i++
	cols := lookup(table)
	if cols == nil {
		return
	}
	var names []string
	if i < len(sig) && sig[i].Text == "(" {
		for i++; i < len(sig) && sig[i].Text != ")"; i++ {
			if n, ok := identText(sig[i]); ok {
				names = append(names, n)
			}
		}
		i++
	}
	if i >= len(sig) || !sig[i].IsKeyword("VALUES") {
		return
	}
	if names == nil {
		return // column order of the table is not known here
	}
	i++
	for i < len(sig) && sig[i].Text == "(" {
		pos := 0
		depth := 0
		start := true
		for i++; i < len(sig); i++ {
			t := sig[i]
			switch {
			case t.Text == "(":
				depth++
				start = false
			case t.Text == ")" && depth > 0:
				depth--
			case t.Text == ")":
				goto next
			case t.Text == "," && depth == 0:
				pos++
				start = true
				continue
			default:
				if depth == 0 && start && pos < len(names) {
					if idx := paramIndex(t); idx >= 0 && (i+1 >= len(sig) || sig[i+1].Text == "," || sig[i+1].Text == ")") {
						if oid, ok := declTypeOID(cols[strings.ToLower(names[pos])]); ok {
							set(idx, oid)
						}
					}
				}
				start = false
			}
		}
	next:
		i++
		if i < len(sig) && sig[i].Text == "," {
			i++
		}
	}
}

// insertValuesCount returns the number of rows a plain INSERT … VALUES
// (…), (…) inserts when it succeeds: every tuple, since without ON
// CONFLICT or OR IGNORE/REPLACE any failure fails the statement. known is
// false for any other statement.
func insertValuesCount(text string) (int64, bool) {
	sig := significant(text)
	if len(sig) == 0 || !sig[0].IsKeyword("INSERT") {
		return 0, false
	}
	i := 0
	for i < len(sig) && !sig[i].IsKeyword("VALUES") {
		if sig[i].IsKeyword("OR") || sig[i].IsKeyword("SELECT") {
			return 0, false
		}
		i++
	}
	if i == len(sig) {
		return 0, false
	}
	var n int64
	depth := 0
	for i++; i < len(sig); i++ {
		t := sig[i]
		switch {
		case t.Text == "(":
			if depth == 0 {
				n++
			}
			depth++
		case t.Text == ")":
			depth--
		case depth == 0 && t.Text == ",", depth == 0 && t.Text == ";":
		case depth == 0:
			return 0, false // ON CONFLICT, RETURNING, …
		}
	}
	return n, n > 0
}

// enclosingParen returns the index of the "(" that directly encloses
// sig[k] in a comma list, or -1.
func enclosingParen(sig []sqltext.Token, k int) int {
	for j := k - 1; j >= 0; j-- {
		switch sig[j].Text {
		case "(":
			return j
		case ",":
			continue
		}
		if sig[j].Kind != sqltext.TokParam && sig[j].Kind != sqltext.TokNumber && sig[j].Kind != sqltext.TokString {
			return -1
		}
	}
	return -1
}
