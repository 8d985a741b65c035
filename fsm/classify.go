package fsm

import "strings"

// This file decides which statements may run where. SQLite's own checks
// (sqlite3_stmt_readonly, the query_only pragma of the read pool) catch
// writes in reads; what they cannot catch is a statement that would change
// the connection instead of the database, or break the applier's
// transaction, so that replicas diverge or a restart changes behaviour:
//
//   - transaction control (BEGIN, COMMIT, END, ROLLBACK, SAVEPOINT,
//     RELEASE): the applier owns the transaction of every batch;
//   - ROLLBACK as a conflict resolution (INSERT OR ROLLBACK, ON CONFLICT
//     ROLLBACK, RAISE(ROLLBACK, …)): it would end the batch's transaction;
//   - ATTACH, DETACH, VACUUM and PRAGMA: connection state or files outside
//     the replicated database (read-only introspection pragmas are allowed
//     in reads);
//   - TEMP objects: they live in the writer connection, not the database,
//     and vanish on restart;
//   - the fsm's own tables (_raftsql_*) and raw page access
//     (sqlite_dbpage).
//
// The check is lexical (comments and string literals skipped, quoted
// identifiers understood), so it is deterministic and identical on every
// node.

const internalPrefix = "_raftsql_"

type token struct {
	text   string // upper-cased for bare words; unquoted for quoted identifiers
	word   bool   // a bare word (keyword or identifier)
	quoted bool   // a quoted identifier
}

// lex splits sql into words, quoted identifiers and punctuation, skipping
// spaces, comments and string/blob literals.
func lex(sql string) []token {
	var toks []token
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				i = len(sql)
			} else {
				i += j + 1
			}
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			j := strings.Index(sql[i+2:], "*/")
			if j < 0 {
				i = len(sql)
			} else {
				i += j + 4
			}
		case c == '\'':
			i = skipQuoted(sql, i, '\'')
		case c == '"' || c == '`':
			j := skipQuoted(sql, i, c)
			end := j
			if j-1 > i && sql[j-1] == c {
				end = j - 1
			}
			body := sql[i+1 : end]
			body = strings.ReplaceAll(body, string([]byte{c, c}), string(c))
			toks = append(toks, token{text: body, quoted: true})
			i = j
		case c == '[':
			j := strings.IndexByte(sql[i:], ']')
			if j < 0 {
				toks = append(toks, token{text: sql[i+1:], quoted: true})
				i = len(sql)
			} else {
				toks = append(toks, token{text: sql[i+1 : i+j], quoted: true})
				i += j + 1
			}
		case isWordByte(c):
			j := i + 1
			for j < len(sql) && isWordByte(sql[j]) {
				j++
			}
			if (c == 'x' || c == 'X') && j == i+1 && j < len(sql) && sql[j] == '\'' {
				i = skipQuoted(sql, j, '\'') // blob literal X'..'
				continue
			}
			toks = append(toks, token{text: strings.ToUpper(sql[i:j]), word: true})
			i = j
		default:
			toks = append(toks, token{text: string(c)})
			i++
		}
	}
	return toks
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// skipQuoted returns the index after the literal that starts at sql[i]
// with quote q (a doubled quote is part of the literal).
func skipQuoted(sql string, i int, q byte) int {
	for j := i + 1; j < len(sql); j++ {
		if sql[j] == q {
			if j+1 < len(sql) && sql[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(sql)
}

// readPragmas are the pragmas a read may run (introspection only; the
// ones marked true can also set a value, so only their bare form is
// allowed).
var readPragmas = map[string]bool{
	"TABLE_INFO": false, "TABLE_XINFO": false, "TABLE_LIST": false,
	"INDEX_LIST": false, "INDEX_INFO": false, "INDEX_XINFO": false,
	"FOREIGN_KEY_LIST": false, "FOREIGN_KEY_CHECK": false,
	"INTEGRITY_CHECK": false, "QUICK_CHECK": false, "DATABASE_LIST": false,
	"COLLATION_LIST": false, "FUNCTION_LIST": false, "MODULE_LIST": false,
	"PRAGMA_LIST": false, "COMPILE_OPTIONS": false, "DATA_VERSION": false,
	"PAGE_COUNT": false, "FREELIST_COUNT": false,
	"USER_VERSION": true, "APPLICATION_ID": true, "SCHEMA_VERSION": true,
	"PAGE_SIZE": true, "ENCODING": true,
}

func notAllowed(msg string) *SQLError { return &SQLError{Code: CodeNotAllowed, Message: msg} }

// checkStatement returns an error result if sql may not run in the log
// (inLog) or in a read (!inLog).
func checkStatement(sql string, inLog bool) *SQLError {
	toks := lex(sql)
	if len(toks) == 0 {
		return nil
	}
	first := ""
	if toks[0].word {
		first = toks[0].text
	}
	switch first {
	case "BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE":
		return notAllowed(first + " cannot be used here: each unit of work already runs in its own transaction")
	case "ATTACH", "DETACH", "VACUUM":
		return notAllowed(first + " is not allowed in raftsql")
	case "PRAGMA":
		if inLog {
			return notAllowed("PRAGMA statements are not allowed in writes: they change the connection, not the replicated database")
		}
		name := ""
		rest := toks[1:]
		if len(rest) >= 3 && rest[1].text == "." {
			rest = rest[2:]
		}
		if len(rest) > 0 {
			name = strings.ToUpper(rest[0].text)
		}
		setter, ok := readPragmas[name]
		if !ok {
			return notAllowed("PRAGMA " + strings.ToLower(name) + " is not allowed")
		}
		for _, t := range rest[1:] {
			if t.text == "=" || (setter && t.text == "(") {
				return notAllowed("PRAGMA " + strings.ToLower(name) + " may not set a value")
			}
		}
	}
	for i, t := range toks {
		if inLog && t.word && (t.text == "ROLLBACK") {
			return notAllowed("ROLLBACK conflict resolution is not supported: it would abort the whole replicated batch")
		}
		if inLog && t.word && (t.text == "TEMP" || t.text == "TEMPORARY") {
			return notAllowed("TEMP tables, views and triggers are not supported: they would not be replicated")
		}
		if inLog && (t.word || t.quoted) && strings.EqualFold(t.text, "TEMP") && i+1 < len(toks) && toks[i+1].text == "." {
			return notAllowed("the temp schema is not supported in writes")
		}
		if inLog && (t.word || t.quoted) && strings.EqualFold(t.text, "SQLITE_DBPAGE") {
			return notAllowed("sqlite_dbpage may not be used in writes")
		}
		if inLog && (t.word || t.quoted) && len(t.text) >= len(internalPrefix) && strings.EqualFold(t.text[:len(internalPrefix)], internalPrefix) {
			return notAllowed("tables named " + internalPrefix + "* are reserved by raftsql")
		}
	}
	return nil
}

// isDML reports whether sql is an INSERT, UPDATE, DELETE or REPLACE
// (possibly after a WITH clause): a statement that changes the database
// only through the rows it counts in sqlite3_changes.
func isDML(sql string) bool {
	toks := lex(sql)
	if len(toks) == 0 || !toks[0].word {
		return false
	}
	switch toks[0].text {
	case "INSERT", "UPDATE", "DELETE", "REPLACE":
		return true
	case "WITH":
		// WITH … SELECT is read-only and never asked; WITH … INSERT/
		// UPDATE/DELETE/REPLACE is DML.
		return true
	}
	return false
}
