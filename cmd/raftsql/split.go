package main

import (
	"strings"
)

// splitter collects the lines a user types and cuts them into statements
// at top-level semicolons, as psql does: a ';' inside '…', E'…', "…",
// $tag$…$tag$, -- comments or /* nested */ comments does not end a
// statement. State carries over from line to line, so a statement (or a
// string literal) may span many lines.
type splitter struct {
	buf    strings.Builder // text of the statement being collected
	quote  byte            // '\'', '"' or 0
	esc    bool            // inside an E'' string: backslash escapes
	tag    string          // inside $tag$ … $tag$ when dollar is true
	dollar bool
	depth  int // nesting depth of /* */ comments
}

// Feed adds one line (without its newline) and returns the statements it
// completed, each ending with its ';'. Statements that hold nothing but
// white space are dropped.
func (s *splitter) Feed(line string) []string {
	var out []string
	start := 0
	i := 0
	n := len(line)
	for i < n {
		c := line[i]
		switch {
		case s.depth > 0:
			if c == '*' && i+1 < n && line[i+1] == '/' {
				s.depth--
				i += 2
				continue
			}
			if c == '/' && i+1 < n && line[i+1] == '*' {
				s.depth++
				i += 2
				continue
			}
		case s.dollar:
			if c == '$' && strings.HasPrefix(line[i:], "$"+s.tag+"$") {
				i += len(s.tag) + 2
				s.dollar = false
				s.tag = ""
				continue
			}
		case s.quote != 0:
			if s.esc && c == '\\' {
				i += 2
				continue
			}
			if c == s.quote {
				s.quote = 0
				s.esc = false
			}
		default:
			switch c {
			case '\'', '"':
				s.quote = c
				s.esc = c == '\'' && i > 0 && (line[i-1] == 'E' || line[i-1] == 'e') && (i < 2 || !isIdent(line[i-2]))
			case '-':
				if i+1 < n && line[i+1] == '-' {
					i = n // the rest of the line is a comment
					continue
				}
			case '/':
				if i+1 < n && line[i+1] == '*' {
					s.depth++
					i += 2
					continue
				}
			case '$':
				if i == 0 || !isIdent(line[i-1]) {
					if tag, ok := dollarTag(line[i:]); ok {
						s.dollar = true
						s.tag = tag
						i += len(tag) + 2
						continue
					}
				}
			case ';':
				s.buf.WriteString(line[start : i+1])
				if stmt := strings.TrimSpace(s.buf.String()); stmt != ";" {
					out = append(out, stmt)
				}
				s.buf.Reset()
				start = i + 1
			}
		}
		i++
	}
	if i > n {
		i = n
	}
	s.buf.WriteString(line[start:])
	s.buf.WriteString("\n")
	return out
}

// Pending reports whether text of an unfinished statement is buffered.
func (s *splitter) Pending() bool { return strings.TrimSpace(s.buf.String()) != "" }

// Rest returns the unfinished text (psql sends it at end of input) and
// resets the splitter.
func (s *splitter) Rest() string {
	rest := strings.TrimSpace(s.buf.String())
	*s = splitter{}
	return rest
}

// Reset drops the unfinished statement (\r, Ctrl-C).
func (s *splitter) Reset() { *s = splitter{} }

// InString reports the open quote, if any, for the continuation prompt.
func (s *splitter) InString() byte {
	switch {
	case s.dollar:
		return '$'
	case s.depth > 0:
		return '*'
	}
	return s.quote
}

// isIdent reports whether c can be part of an identifier.
func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// dollarTag reads "$tag$" at the start of s. A tag is empty or an
// identifier that does not start with a digit ($1 is a parameter).
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		if c == '$' {
			return s[1:j], true
		}
		if !isIdent(c) || (j == 1 && c >= '0' && c <= '9') {
			return "", false
		}
	}
	return "", false
}
