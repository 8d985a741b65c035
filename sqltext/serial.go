package sqltext

import (
	"fmt"
	"sort"
	"strings"
)

var serialTypes = map[string]bool{
	"SERIAL": true, "SERIAL4": true, "BIGSERIAL": true, "SERIAL8": true, "SMALLSERIAL": true, "SERIAL2": true,
}

// columnConstraintStart are the words that end a column's type.
var columnConstraintStart = map[string]bool{
	"CONSTRAINT": true, "NOT": true, "NULL": true, "PRIMARY": true, "UNIQUE": true,
	"CHECK": true, "DEFAULT": true, "REFERENCES": true, "GENERATED": true, "COLLATE": true, "AS": true,
}

type edit struct {
	from, to int // token index range replaced (to exclusive; from == to inserts)
	text     string
}

// rewriteSerial rewrites the SERIAL-family and GENERATED … AS IDENTITY
// columns of a CREATE TABLE into SQLite's INTEGER PRIMARY KEY
// AUTOINCREMENT and returns the tokens of the new text.
func rewriteSerial(toks []Token) ([]Token, error) {
	var si []int // indexes of significant tokens in toks
	for i, t := range toks {
		if t.significant() {
			si = append(si, i)
		}
	}
	at := func(k int) Token {
		if k < 0 || k >= len(si) {
			return Token{}
		}
		return toks[si[k]]
	}
	// CREATE … TABLE [IF NOT EXISTS] name (
	k := 0
	for k < len(si) && !at(k).IsKeyword("TABLE") {
		k++
	}
	k++
	if at(k).IsKeyword("IF") {
		k += 3
	}
	for k+1 < len(si) && isPunct(at(k+1), ".") {
		k += 2
	}
	k++
	if !isPunct(at(k), "(") {
		return toks, nil
	}
	// items of the definition list, as ranges of significant indexes
	type item struct{ from, to, comma int } // comma: index of the ',' before it, or -1
	var items []item
	depth, start, comma := 0, k+1, -1
	end := -1
	for j := k; j < len(si); j++ {
		t := at(j)
		switch {
		case isPunct(t, "(") || isPunct(t, "["):
			depth++
		case isPunct(t, ")") || isPunct(t, "]"):
			depth--
			if depth == 0 {
				items = append(items, item{start, j, comma})
				end = j
			}
		case depth == 1 && isPunct(t, ","):
			items = append(items, item{start, j, comma})
			start, comma = j+1, j
		}
		if end >= 0 {
			break
		}
	}
	if end < 0 {
		return toks, nil // unbalanced: let SQLite report it
	}
	// hasKW finds word(s) at the item's top level.
	hasKW := func(it item, ws ...string) int {
		d := 0
		for j := it.from; j < it.to; j++ {
			t := at(j)
			switch {
			case isPunct(t, "("):
				d++
			case isPunct(t, ")"):
				d--
			case d == 0 && t.IsKeyword(ws[0]):
				ok := true
				for n, w := range ws[1:] {
					if !at(j + 1 + n).IsKeyword(w) {
						ok = false
						break
					}
				}
				if ok {
					return j
				}
			}
		}
		return -1
	}
	type serialCol struct {
		it       item
		name     string
		typeFrom int // significant index range of the type
		typeTo   int
		ownPK    int // index of PRIMARY in the column, or -1
		identity [2]int
	}
	var serials []serialCol
	pkCols := map[int][]string{} // item index → table PRIMARY KEY columns
	anyPK := false
	for n, it := range items {
		if it.from >= it.to {
			continue
		}
		first := kw(at(it.from))
		switch first {
		case "CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "EXCLUDE", "LIKE":
			if p := hasKW(it, "PRIMARY", "KEY"); p >= 0 {
				anyPK = true
				var cols []string
				for j := p + 2; j < it.to; j++ {
					if name := identName([]Token{at(j)}, 0); name != "" {
						cols = append(cols, strings.ToLower(name))
					}
					if isPunct(at(j), ")") {
						break
					}
				}
				pkCols[n] = cols
			}
			continue
		}
		col := serialCol{it: it, name: strings.ToLower(identName([]Token{at(it.from)}, 0)), typeFrom: it.from + 1, ownPK: hasKW(it, "PRIMARY", "KEY"), identity: [2]int{-1, -1}}
		if col.ownPK >= 0 {
			anyPK = true
		}
		col.typeTo = col.typeFrom
		for col.typeTo < it.to && !columnConstraintStart[kw(at(col.typeTo))] {
			col.typeTo++
		}
		isSerial := col.typeTo == col.typeFrom+1 && serialTypes[kw(at(col.typeFrom))]
		if g := hasKW(it, "GENERATED"); g >= 0 {
			e := g + 1
			if at(e).IsKeyword("ALWAYS") {
				e++
			} else if at(e).IsKeyword("BY") && at(e+1).IsKeyword("DEFAULT") {
				e += 2
			}
			if at(e).IsKeyword("AS") && at(e+1).IsKeyword("IDENTITY") {
				e += 2
				if isPunct(at(e), "(") { // sequence options
					d := 0
					for ; e < it.to; e++ {
						if isPunct(at(e), "(") {
							d++
						} else if isPunct(at(e), ")") {
							d--
							if d == 0 {
								e++
								break
							}
						}
					}
				}
				col.identity = [2]int{g, e}
				isSerial = true
			}
		}
		if isSerial {
			serials = append(serials, col)
		}
	}
	if len(serials) == 0 {
		return toks, nil
	}
	var edits []edit
	tokEnd := func(k int) int { return si[k] + 1 } // token index just past significant k
	madePK := false
	for _, c := range serials {
		typeText := "INTEGER"
		switch {
		case c.ownPK >= 0 && !madePK:
			// PRIMARY KEY [ASC|DESC] [ON CONFLICT x] [AUTOINCREMENT]
			e := c.ownPK + 2
			if at(e).IsKeyword("ASC") || at(e).IsKeyword("DESC") {
				e++
			}
			if at(e).IsKeyword("ON") && at(e+1).IsKeyword("CONFLICT") {
				e += 3
			}
			if !at(e).IsKeyword("AUTOINCREMENT") {
				edits = append(edits, edit{tokEnd(e - 1), tokEnd(e - 1), " AUTOINCREMENT"})
			}
		case !madePK && !anyPK:
			typeText = "INTEGER PRIMARY KEY AUTOINCREMENT"
		case !madePK && c.ownPK < 0 && len(pkCols) == 1:
			var pkItem int
			for n := range pkCols {
				pkItem = n
			}
			if cols := pkCols[pkItem]; len(cols) == 1 && cols[0] == c.name {
				typeText = "INTEGER PRIMARY KEY AUTOINCREMENT"
				it := items[pkItem]
				if it.comma >= 0 {
					edits = append(edits, edit{si[it.comma], tokEnd(it.to - 1), ""})
				} else if pkItem+1 < len(items) {
					edits = append(edits, edit{si[it.from], si[items[pkItem+1].from], ""})
				}
				break
			}
			fallthrough
		default:
			return nil, fmt.Errorf("%w: column %q is SERIAL/IDENTITY but not the table's only PRIMARY KEY column; SQLite auto-increments only an INTEGER PRIMARY KEY (offset %d)",
				ErrUnsupported, c.name, at(c.it.from).Pos)
		}
		madePK = true
		edits = append(edits, edit{si[c.typeFrom], tokEnd(c.typeTo - 1), typeText})
		if c.identity[0] >= 0 {
			edits = append(edits, edit{si[c.identity[0]], tokEnd(c.identity[1] - 1), ""})
		}
	}
	sort.Slice(edits, func(a, b int) bool { return edits[a].from < edits[b].from })
	var b strings.Builder
	pos := 0
	for _, e := range edits {
		if e.from < pos {
			continue // overlapping edits cannot happen; be safe
		}
		for ; pos < e.from; pos++ {
			b.WriteString(toks[pos].Text)
		}
		b.WriteString(e.text)
		if e.to > pos {
			pos = e.to
		}
	}
	for ; pos < len(toks); pos++ {
		b.WriteString(toks[pos].Text)
	}
	return Lex(b.String())
}
