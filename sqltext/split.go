package sqltext

import "strings"

// Split splits a query string into statements on top-level ';', honouring
// quotes, "identifiers", -- and /* */ comments, E'…' strings and $tag$
// dollar quoting. A ';' inside parentheses, or inside the BEGIN … END body
// of CREATE TRIGGER (SQLite) or BEGIN ATOMIC … END (PostgreSQL), does not
// split.
//
// Each Statement's Text runs from its first to its last token that is not
// white space or a comment (so leading and trailing comments are dropped)
// and Offset is where Text starts in query. Empty statements are dropped; a
// query of only white space and comments gives one KindEmpty statement with
// empty Text. An unterminated quote or comment gives a *SyntaxError.
func Split(query string) ([]Statement, error) {
	toks, err := Lex(query)
	if err != nil {
		return nil, err
	}
	var out []Statement
	emit := func(seg []Token) {
		sig := significantTokens(seg)
		if len(sig) == 0 {
			return
		}
		first, last := sig[0], sig[len(sig)-1]
		kind, verb := classify(sig)
		out = append(out, Statement{
			Text:   query[first.Pos:last.End()],
			Kind:   kind,
			Verb:   verb,
			Offset: first.Pos,
		})
	}
	var sp splitter
	start := 0
	for i, t := range toks {
		if sp.endsStatement(t) {
			emit(toks[start:i])
			start = i + 1
			sp = splitter{}
		}
	}
	emit(toks[start:])
	if len(out) == 0 {
		return []Statement{{Kind: KindEmpty}}, nil
	}
	return out, nil
}

// splitter tracks, token by token, whether a ';' ends the statement.
type splitter struct {
	n          int  // significant tokens seen
	parens     int  // ( and [ depth
	create     bool // the statement starts with CREATE
	trigger    bool // … and has said TRIGGER
	prevBegin  bool // the previous significant token was a block BEGIN
	blockDepth int  // open BEGIN/CASE blocks of a trigger or BEGIN ATOMIC body
	prevTok    Token
}

func (sp *splitter) endsStatement(t Token) bool {
	if !t.significant() {
		return false
	}
	defer func() { sp.n++; sp.prevTok = t }()
	if t.Kind == TokPunct {
		switch t.Text {
		case "(", "[":
			sp.parens++
		case ")", "]":
			if sp.parens > 0 {
				sp.parens--
			}
		case ";":
			return sp.parens == 0 && sp.blockDepth == 0
		}
		sp.prevBegin = false
		return false
	}
	if sp.n == 0 {
		sp.create = t.IsKeyword("CREATE")
	}
	wasBegin := sp.prevBegin
	sp.prevBegin = false
	if !sp.create || sp.parens > 0 || t.Kind != TokIdent {
		return false
	}
	switch {
	case t.IsKeyword("TRIGGER"):
		sp.trigger = true
	case t.IsKeyword("BEGIN"):
		if sp.trigger && sp.blockDepth == 0 && !sp.prevTok.IsKeyword("TRIGGER") {
			sp.blockDepth++
			sp.prevBegin = true
		} else if sp.blockDepth > 0 {
			sp.blockDepth++
		} else {
			sp.prevBegin = true // maybe BEGIN ATOMIC
		}
	case t.IsKeyword("ATOMIC"):
		if wasBegin && sp.blockDepth == 0 {
			sp.blockDepth++
		}
	case t.IsKeyword("CASE"):
		if sp.blockDepth > 0 {
			sp.blockDepth++
		}
	case t.IsKeyword("END"):
		if sp.blockDepth > 0 {
			sp.blockDepth--
		}
	}
	return false
}

func significantTokens(toks []Token) []Token {
	sig := make([]Token, 0, len(toks))
	for _, t := range toks {
		if t.significant() {
			sig = append(sig, t)
		}
	}
	return sig
}

// kw returns the upper-cased word of a bare-word token, or "".
func kw(t Token) string {
	if t.Kind != TokIdent {
		return ""
	}
	return strings.ToUpper(t.Text)
}

// kwAt returns kw(sig[i]) or "" past the end.
func kwAt(sig []Token, i int) string {
	if i < 0 || i >= len(sig) {
		return ""
	}
	return kw(sig[i])
}

func isPunct(t Token, p string) bool { return t.Kind == TokPunct && t.Text == p }

// Classify returns the Kind and Verb of one statement (as Split does for
// each statement it returns).
func Classify(stmt string) (Kind, string, error) {
	toks, err := Lex(stmt)
	if err != nil {
		return KindEmpty, "", err
	}
	sig := significantTokens(toks)
	if len(sig) == 0 {
		return KindEmpty, "", nil
	}
	k, v := classify(sig)
	return k, v, nil
}

// classify decides Kind and Verb from the significant tokens of one
// non-empty statement.
func classify(sig []Token) (Kind, string) {
	i := 0
	for i < len(sig) && isPunct(sig[i], "(") { // (SELECT …) UNION …
		i++
	}
	first := kwAt(sig, i)
	switch first {
	case "SELECT", "VALUES", "TABLE":
		return KindRead, "SELECT"
	case "WITH":
		return classifyWith(sig, i)
	case "EXPLAIN":
		return KindRead, "EXPLAIN"
	case "INSERT", "REPLACE":
		return KindWrite, "INSERT"
	case "UPDATE", "DELETE", "MERGE":
		return KindWrite, first
	case "TRUNCATE":
		return KindWrite, "TRUNCATE TABLE"
	case "CREATE":
		obj, j := objectKind(sig, i+1, true)
		if obj == "TABLE" && createTableAs(sig, j) {
			// PostgreSQL answers CREATE TABLE … AS with "SELECT n".
			return KindWrite, "SELECT"
		}
		return KindWrite, joinVerb("CREATE", obj)
	case "DROP", "ALTER":
		obj, _ := objectKind(sig, i+1, false)
		return KindWrite, joinVerb(first, obj)
	case "ANALYZE", "ANALYSE":
		return KindWrite, "ANALYZE"
	case "REINDEX":
		return KindWrite, "REINDEX"
	case "PRAGMA":
		return classifyPragma(sig, i)
	case "BEGIN":
		return KindBegin, "BEGIN"
	case "START":
		if kwAt(sig, i+1) == "TRANSACTION" {
			return KindBegin, "START TRANSACTION"
		}
	case "COMMIT", "END":
		if kwAt(sig, i+1) == "PREPARED" {
			return KindOther, "COMMIT PREPARED"
		}
		return KindCommit, "COMMIT"
	case "ROLLBACK", "ABORT":
		if kwAt(sig, i+1) == "PREPARED" {
			return KindOther, "ROLLBACK PREPARED"
		}
		for _, t := range sig[i+1:] {
			if t.IsKeyword("TO") {
				return KindOther, "ROLLBACK" // ROLLBACK TO SAVEPOINT
			}
		}
		return KindRollback, "ROLLBACK"
	case "SET":
		if kwAt(sig, i+1) == "CONSTRAINTS" {
			return KindOther, "SET CONSTRAINTS"
		}
		return KindSet, "SET"
	case "SHOW":
		return KindShow, "SHOW"
	case "DISCARD":
		return KindOther, joinVerb("DISCARD", kwAt(sig, i+1))
	case "DEALLOCATE":
		if kwAt(sig, i+1) == "ALL" || (kwAt(sig, i+1) == "PREPARE" && kwAt(sig, i+2) == "ALL") {
			return KindOther, "DEALLOCATE ALL"
		}
		return KindOther, "DEALLOCATE"
	case "PREPARE":
		if kwAt(sig, i+1) == "TRANSACTION" {
			return KindOther, "PREPARE TRANSACTION"
		}
		return KindOther, "PREPARE"
	case "":
		return KindOther, ""
	}
	return KindOther, first
}

func joinVerb(a, b string) string {
	if b == "" {
		return a
	}
	return a + " " + b
}

// objectKind reads the object type after CREATE/DROP/ALTER starting at
// sig[i], skipping modifiers (OR REPLACE, TEMP, UNIQUE, …) when create is
// set. It returns the object ("TABLE", "INDEX", "MATERIALIZED VIEW", …) and
// the index just past it.
func objectKind(sig []Token, i int, create bool) (string, int) {
	if create {
	skip:
		for {
			switch kwAt(sig, i) {
			case "OR":
				if kwAt(sig, i+1) == "REPLACE" {
					i += 2
					continue
				}
				break skip
			case "TEMP", "TEMPORARY", "UNLOGGED", "GLOBAL", "LOCAL", "UNIQUE", "VIRTUAL", "RECURSIVE", "TRUSTED", "PROCEDURAL", "DEFAULT", "CONSTRAINT":
				i++
			default:
				break skip
			}
		}
	}
	w := kwAt(sig, i)
	switch w {
	case "":
		return "", i
	case "MATERIALIZED", "FOREIGN", "EVENT", "ACCESS", "USER", "TEXT":
		w2 := kwAt(sig, i+1)
		if w2 == "" {
			return w, i + 1
		}
		obj := w + " " + w2
		i += 2
		switch obj {
		case "FOREIGN DATA", "TEXT SEARCH":
			if w3 := kwAt(sig, i); w3 != "" {
				obj += " " + w3
				i++
			}
		}
		return obj, i
	}
	return w, i + 1
}

// createTableAs reports whether a CREATE TABLE whose name starts at sig[i]
// is CREATE TABLE … AS query.
func createTableAs(sig []Token, i int) bool {
	depth := 0
	for ; i < len(sig); i++ {
		t := sig[i]
		switch {
		case isPunct(t, "("):
			depth++
		case isPunct(t, ")"):
			depth--
		case depth == 0 && t.IsKeyword("AS"):
			return true
		}
	}
	return false
}

// classifyWith classifies WITH [RECURSIVE] cte [, …] main-statement,
// where sig[i] is WITH. A data-modifying CTE makes the statement a write.
func classifyWith(sig []Token, i int) (Kind, string) {
	writes := false
	depth := 0
	afterAs := false
	for j := i + 1; j < len(sig); j++ {
		t := sig[j]
		switch {
		case isPunct(t, "(") || isPunct(t, "["):
			if depth == 0 && afterAs {
				switch kwAt(sig, j+1) {
				case "INSERT", "UPDATE", "DELETE", "MERGE", "REPLACE":
					writes = true
				}
			}
			depth++
			afterAs = false
		case isPunct(t, ")") || isPunct(t, "]"):
			if depth > 0 {
				depth--
			}
		case depth > 0:
		case t.IsKeyword("AS"):
			afterAs = true
		case t.IsKeyword("NOT") || t.IsKeyword("MATERIALIZED"):
			// AS [NOT] MATERIALIZED (…): keep afterAs
		default:
			afterAs = false
			switch kw(t) {
			case "SELECT", "VALUES", "TABLE":
				if writes {
					return KindWrite, "SELECT"
				}
				return KindRead, "SELECT"
			case "INSERT", "REPLACE":
				return KindWrite, "INSERT"
			case "UPDATE", "DELETE", "MERGE":
				return KindWrite, kw(t)
			}
		}
	}
	// WITH … ( SELECT … ): the main statement is parenthesised.
	if writes {
		return KindWrite, "SELECT"
	}
	return KindRead, "SELECT"
}

// readPragmasWithArg are PRAGMAs that only read even when given an
// argument.
var readPragmasWithArg = map[string]bool{
	"TABLE_INFO": true, "TABLE_XINFO": true, "TABLE_LIST": true, "INDEX_INFO": true,
	"INDEX_XINFO": true, "INDEX_LIST": true, "FOREIGN_KEY_LIST": true,
	"FOREIGN_KEY_CHECK": true, "INTEGRITY_CHECK": true, "QUICK_CHECK": true,
}

// actionPragmas change the database even without an argument.
var actionPragmas = map[string]bool{
	"OPTIMIZE": true, "INCREMENTAL_VACUUM": true, "WAL_CHECKPOINT": true, "SHRINK_MEMORY": true,
}

// classifyPragma: PRAGMA [schema.]name [= value | (value)].
func classifyPragma(sig []Token, i int) (Kind, string) {
	j := i + 1
	if j+1 < len(sig) && isPunct(sig[j+1], ".") {
		j += 2
	}
	name := strings.ToUpper(identName(sig, j))
	hasArg := j+1 < len(sig)
	switch {
	case actionPragmas[name]:
		return KindWrite, "PRAGMA"
	case !hasArg || readPragmasWithArg[name]:
		return KindRead, "PRAGMA"
	}
	return KindWrite, "PRAGMA"
}

// identName returns the name of an identifier token: bare words as
// written, quoted identifiers unquoted. It returns "" for anything else.
func identName(sig []Token, i int) string {
	if i < 0 || i >= len(sig) {
		return ""
	}
	t := sig[i]
	switch t.Kind {
	case TokIdent:
		return t.Text
	case TokQuotedIdent:
		return unquoteIdent(t.Text)
	}
	return ""
}

func unquoteIdent(s string) string {
	if len(s) < 2 {
		return s
	}
	q := s[0]
	return strings.ReplaceAll(s[1:len(s)-1], string([]byte{q, q}), string(q))
}
