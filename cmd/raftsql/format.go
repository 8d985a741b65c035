package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// table is what the aligned printer draws: a header, rows of cells and
// which columns are right-aligned (numbers). A nil cell is SQL NULL and
// prints empty, as psql does by default.
type table struct {
	Title   string
	Columns []string
	Right   []bool
	Rows    [][]*string
	// NoFooter drops psql's "(N rows)" line.
	NoFooter bool
	// Footers are lines printed after the rows ("Indexes:" of \d).
	Footers []string
}

// numericOIDs are the PostgreSQL types psql right-aligns.
var numericOIDs = map[uint32]bool{
	20: true, 21: true, 23: true, 26: true, // int8, int2, int4, oid
	700: true, 701: true, 790: true, 1700: true, // float4, float8, money, numeric
	28: true, 5069: true, // xid, xid8
}

// rowsFooter is psql's "(1 row)" / "(N rows)".
func rowsFooter(n int) string {
	if n == 1 {
		return "(1 row)"
	}
	return fmt.Sprintf("(%d rows)", n)
}

// width is the display width of s. Every rune counts as one column; wide
// East Asian characters are rare in a database shell and psql's own
// tables differ per terminal there.
func width(s string) int { return utf8.RuneCountInString(s) }

// writeTable prints t in psql's "aligned" format with border 1:
//
//	 a | b
//	---+---
//	 1 | x
//	(1 row)
//
// Headers are centred, numeric columns right-aligned, a cell holding
// several lines continues on the next printed line with '+' where psql
// puts it, and left-aligned text in the last column is not padded.
func writeTable(w io.Writer, t table) error {
	ncol := len(t.Columns)
	var b strings.Builder
	if ncol == 0 {
		// psql draws a zero-column result as "--" and the row count.
		b.WriteString("--\n")
		if !t.NoFooter {
			b.WriteString(rowsFooter(len(t.Rows)) + "\n")
		}
		b.WriteString("\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	widths := make([]int, ncol)
	headLines := make([][]string, ncol)
	for i, c := range t.Columns {
		headLines[i] = strings.Split(c, "\n")
		for _, l := range headLines[i] {
			widths[i] = max(widths[i], width(l))
		}
	}
	cells := make([][][]string, len(t.Rows)) // row, column, line
	for r, row := range t.Rows {
		cells[r] = make([][]string, ncol)
		for i := 0; i < ncol; i++ {
			s := ""
			if i < len(row) && row[i] != nil {
				s = *row[i]
			}
			lines := strings.Split(s, "\n")
			cells[r][i] = lines
			for _, l := range lines {
				widths[i] = max(widths[i], width(l))
			}
		}
	}
	total := 0
	for _, wd := range widths {
		total += wd + 3
	}
	total--
	if t.Title != "" {
		if tw := width(t.Title); tw < total {
			b.WriteString(strings.Repeat(" ", (total-tw)/2))
		}
		b.WriteString(t.Title + "\n")
	}
	right := func(i int) bool { return i < len(t.Right) && t.Right[i] }

	// Header lines: centred, always padded (psql keeps the trailing space).
	writeLines(&b, headLines, widths, func(int) bool { return false }, true)
	for i, wd := range widths {
		if i > 0 {
			b.WriteString("+")
		}
		b.WriteString(strings.Repeat("-", wd+2))
	}
	b.WriteString("\n")
	for _, row := range cells {
		writeLines(&b, row, widths, right, false)
	}
	if !t.NoFooter {
		b.WriteString(rowsFooter(len(t.Rows)) + "\n")
	}
	for _, f := range t.Footers {
		b.WriteString(f + "\n")
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// writeLines prints one logical row, which may span several printed lines
// when a cell holds newlines.
func writeLines(b *strings.Builder, cols [][]string, widths []int, right func(int) bool, header bool) {
	height := 0
	for _, c := range cols {
		height = max(height, len(c))
	}
	last := len(cols) - 1
	for ln := 0; ln < height; ln++ {
		for i, c := range cols {
			if i > 0 {
				b.WriteString("|")
			}
			b.WriteString(" ")
			exists := ln < len(c)
			text := ""
			if exists {
				text = c[ln]
			}
			more := ln+1 < len(c)
			pad := widths[i] - width(text)
			switch {
			case header:
				b.WriteString(strings.Repeat(" ", pad/2) + text + strings.Repeat(" ", pad-pad/2))
			case right(i) && exists:
				b.WriteString(strings.Repeat(" ", pad) + text)
			case i == last && !more:
				b.WriteString(text)
			default:
				b.WriteString(text + strings.Repeat(" ", pad))
			}
			switch {
			case more:
				b.WriteString("+")
			case i < last || header:
				b.WriteString(" ")
			}
		}
		b.WriteString("\n")
	}
}

// writeExpanded prints t in psql's expanded format (\x), one block per
// row:
//
//	-[ RECORD 1 ]----
//	a   | 1
//	bbb | hello world
//
// A zero-row result prints "(0 rows)".
func writeExpanded(w io.Writer, t table) error {
	var b strings.Builder
	if len(t.Rows) == 0 {
		b.WriteString("(0 rows)\n\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	nameW, valW := 0, 0
	for _, c := range t.Columns {
		nameW = max(nameW, width(c))
	}
	for _, row := range t.Rows {
		for _, v := range row {
			if v != nil {
				for _, l := range strings.Split(*v, "\n") {
					valW = max(valW, width(l))
				}
			}
		}
	}
	for r, row := range t.Rows {
		label := []rune(fmt.Sprintf("-[ RECORD %d ]", r+1))
		line := []rune(strings.Repeat("-", nameW+3+valW))
		if len(label) <= nameW+1 {
			line[nameW+1] = '+'
		}
		if len(label) > len(line) {
			line = label
		} else {
			copy(line, label)
		}
		b.WriteString(string(line) + "\n")
		for i, c := range t.Columns {
			v := ""
			if i < len(row) && row[i] != nil {
				v = *row[i]
			}
			lines := strings.Split(v, "\n")
			for j, l := range lines {
				name := ""
				if j == 0 {
					name = c
				}
				b.WriteString(name + strings.Repeat(" ", nameW-width(name)) + " | " + l)
				if j < len(lines)-1 {
					b.WriteString(strings.Repeat(" ", valW-width(l)) + "+")
				}
				b.WriteString("\n")
			}
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
