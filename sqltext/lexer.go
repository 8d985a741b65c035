package sqltext

import (
	"fmt"
	"strings"
)

// TokenKind is the lexical class of a Token.
type TokenKind uint8

const (
	TokSpace        TokenKind = iota // white space
	TokComment                       // -- to end of line, or /* … */ (nested)
	TokIdent                         // bare word: keyword or unquoted identifier
	TokQuotedIdent                   // "identifier" with "" escapes (also `identifier`)
	TokString                        // 'text' with '' escapes (also N'…')
	TokEString                       // E'text' with backslash escapes
	TokDollarString                  // $tag$ text $tag$
	TokBitString                     // B'0101' or X'ff' (a blob literal in SQLite)
	TokNumber                        // 12, 1.5, .5e-3, 0xff, 1_000
	TokParam                         // $1, ?, ?3, and SQLite's $name
	TokOp                            // operators, including ::
	TokPunct                         // ( ) [ ] , ; . :
)

var tokenKindNames = [...]string{"space", "comment", "ident", "quoted-ident", "string", "e-string", "dollar-string", "bit-string", "number", "param", "op", "punct"}

func (k TokenKind) String() string {
	if int(k) < len(tokenKindNames) {
		return tokenKindNames[k]
	}
	return fmt.Sprintf("TokenKind(%d)", int(k))
}

// Token is one lexical token of a statement. Text is the exact source text
// (including quotes, prefixes and comment markers) and Pos its byte offset,
// so concatenating the Text of all tokens gives back the input.
type Token struct {
	Kind TokenKind
	Pos  int
	Text string
}

// End is the byte offset just past the token.
func (t Token) End() int { return t.Pos + len(t.Text) }

// IsKeyword reports whether t is the bare word kw (case-insensitive; kw
// must be upper case).
func (t Token) IsKeyword(kw string) bool {
	return t.Kind == TokIdent && len(t.Text) == len(kw) && strings.EqualFold(t.Text, kw)
}

// significant reports whether the token is neither space nor comment.
func (t Token) significant() bool { return t.Kind != TokSpace && t.Kind != TokComment }

// SyntaxError is the error Lex, Split and the helpers return for text that
// cannot be tokenized or parsed. It wraps ErrSyntax; Offset is the byte
// offset of the problem in the text given to the function.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("sqltext: syntax error at offset %d: %s", e.Offset, e.Msg)
}

// Unwrap makes errors.Is(err, ErrSyntax) true.
func (e *SyntaxError) Unwrap() error { return ErrSyntax }

func syntaxErr(off int, format string, args ...any) error {
	return &SyntaxError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isHexDigit(c byte) bool   { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }
func isIdentStart(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' || c == '_' || c >= 0x80 }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) || c == '$' }

// isOpChar reports the characters PostgreSQL builds operators from ('?'
// and '`' excluded: they are a parameter and a quote here).
func isOpChar(c byte) bool { return strings.IndexByte("+-*/<>=~!@#%^&|", c) >= 0 }

// Lex splits s into tokens. The concatenation of the tokens' Text is s.
// Unterminated quotes, quoted identifiers, dollar quotes and block comments
// give a *SyntaxError (wrapping ErrSyntax) with the offset where the
// unterminated construct starts.
func Lex(s string) ([]Token, error) {
	toks := make([]Token, 0, len(s)/3+1)
	i := 0
	for i < len(s) {
		start := i
		kind, end, err := lexOne(s, i)
		if err != nil {
			return nil, err
		}
		if end <= start { // cannot happen; guards against an endless loop
			end = start + 1
		}
		toks = append(toks, Token{Kind: kind, Pos: start, Text: s[start:end]})
		i = end
	}
	return toks, nil
}

func lexOne(s string, i int) (TokenKind, int, error) {
	c := s[i]
	var next byte
	if i+1 < len(s) {
		next = s[i+1]
	}
	switch {
	case isSpace(c):
		j := i + 1
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		return TokSpace, j, nil
	case c == '-' && next == '-':
		j := strings.IndexByte(s[i:], '\n')
		if j < 0 {
			return TokComment, len(s), nil
		}
		return TokComment, i + j, nil
	case c == '/' && next == '*':
		end, err := scanBlockComment(s, i)
		return TokComment, end, err
	case c == '\'':
		end, err := scanQuoted(s, i, '\'', false)
		return TokString, end, err
	case (c == 'e' || c == 'E') && next == '\'':
		end, err := scanQuoted(s, i+1, '\'', true)
		return TokEString, end, err
	case (c == 'n' || c == 'N') && next == '\'':
		end, err := scanQuoted(s, i+1, '\'', false)
		return TokString, end, err
	case (c == 'b' || c == 'B' || c == 'x' || c == 'X') && next == '\'':
		end, err := scanQuoted(s, i+1, '\'', false)
		return TokBitString, end, err
	case c == '"':
		end, err := scanQuoted(s, i, '"', false)
		return TokQuotedIdent, end, err
	case c == '`':
		end, err := scanQuoted(s, i, '`', false)
		return TokQuotedIdent, end, err
	case c == '$':
		return scanDollar(s, i)
	case isDigit(c) || (c == '.' && isDigit(next)):
		return TokNumber, scanNumber(s, i), nil
	case isIdentStart(c):
		j := i + 1
		for j < len(s) && isIdentChar(s[j]) {
			j++
		}
		return TokIdent, j, nil
	case c == '?':
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		return TokParam, j, nil
	case c == ':' && next == ':':
		return TokOp, i + 2, nil
	case strings.IndexByte("(),;[].:", c) >= 0:
		return TokPunct, i + 1, nil
	case isOpChar(c):
		return TokOp, scanOp(s, i), nil
	}
	// Anything else (a stray backslash, brace, control byte) is a one-byte
	// operator token; SQLite reports it if it reaches SQLite.
	return TokOp, i + 1, nil
}

func scanBlockComment(s string, i int) (int, error) {
	depth := 0
	j := i
	for j < len(s) {
		switch {
		case s[j] == '/' && j+1 < len(s) && s[j+1] == '*':
			depth++
			j += 2
		case s[j] == '*' && j+1 < len(s) && s[j+1] == '/':
			depth--
			j += 2
			if depth == 0 {
				return j, nil
			}
		default:
			j++
		}
	}
	return 0, syntaxErr(i, "unterminated /* comment")
}

// scanQuoted scans a quoted token whose opening quote is at s[i]; a doubled
// quote is an escaped quote, and with backslash a backslash escapes the next
// byte (E'…' strings).
func scanQuoted(s string, i int, q byte, backslash bool) (int, error) {
	j := i + 1
	for j < len(s) {
		c := s[j]
		switch {
		case backslash && c == '\\':
			j += 2
		case c == q:
			if j+1 < len(s) && s[j+1] == q {
				j += 2
				continue
			}
			return j + 1, nil
		default:
			j++
		}
	}
	what := "quoted string"
	switch q {
	case '"', '`':
		what = "quoted identifier"
	}
	return 0, syntaxErr(i, "unterminated %s", what)
}

// scanDollar scans what starts with '$': a $n parameter, a $tag$ dollar
// quote, or SQLite's $name parameter.
func scanDollar(s string, i int) (TokenKind, int, error) {
	j := i + 1
	if j < len(s) && isDigit(s[j]) {
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		return TokParam, j, nil
	}
	for j < len(s) && (isIdentStart(s[j]) || (j > i+1 && isDigit(s[j]))) {
		j++
	}
	if j < len(s) && s[j] == '$' {
		delim := s[i : j+1]
		k := strings.Index(s[j+1:], delim)
		if k < 0 {
			return 0, 0, syntaxErr(i, "unterminated dollar-quoted string")
		}
		return TokDollarString, j + 1 + k + len(delim), nil
	}
	if j > i+1 {
		return TokParam, j, nil // SQLite $name
	}
	return TokOp, i + 1, nil
}

func scanNumber(s string, i int) int {
	j := i
	if s[j] == '0' && j+2 < len(s) && strings.IndexByte("xXoObB", s[j+1]) >= 0 && isHexDigit(s[j+2]) {
		j += 2
		for j < len(s) && (isHexDigit(s[j]) || s[j] == '_') {
			j++
		}
		return j
	}
	for j < len(s) && (isDigit(s[j]) || s[j] == '_') {
		j++
	}
	if j < len(s) && s[j] == '.' && !(j+1 < len(s) && s[j+1] == '.') {
		j++
		for j < len(s) && (isDigit(s[j]) || s[j] == '_') {
			j++
		}
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && isDigit(s[k]) {
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			j = k
		}
	}
	return j
}

// scanOp scans a run of operator characters the way PostgreSQL does: it
// stops before "--" or "/*", and a multi-character operator may not end in
// '+' or '-' unless it contains one of ~ ! @ # % ^ & | (so "=-1" is "=",
// "-", "1").
func scanOp(s string, i int) int {
	j := i
	for j < len(s) && isOpChar(s[j]) {
		if j > i && (strings.HasPrefix(s[j:], "--") || strings.HasPrefix(s[j:], "/*")) {
			break
		}
		j++
	}
	if j-i > 1 && !strings.ContainsAny(s[i:j], "~!@#%^&|") {
		for j-i > 1 && (s[j-1] == '+' || s[j-1] == '-') {
			j--
		}
	}
	return j
}
