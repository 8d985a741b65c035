package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/chzyer/readline"
	"github.com/jackc/pgx/v5/pgconn"
)

// shell runs SQL and backslash commands on one connection and prints the
// results as psql does. It is driven line by line (interactive or a
// script) or with whole commands (-c).
type shell struct {
	conn   sqlConn
	out    io.Writer
	errOut io.Writer
	// status fetches the cluster view for \status; nil when unavailable.
	status func(ctx context.Context) ([]statusRow, error)
	now    func() time.Time

	// reconnect dials a new connection; the interactive shell uses it
	// after the connection is lost, as psql does. Nil: no reset.
	reconnect func(ctx context.Context) (sqlConn, error)

	timing   bool
	expanded bool // \x
	// vars are \set variables; VERBOSITY (default, verbose, terse) and
	// ON_ERROR_STOP (on unless set off) change the shell's behaviour.
	vars    map[string]string
	lastErr error
	sp      splitter
	quit    bool
	// isInteractive is set by the prompt loop.
	isInteractive bool
}

// ErrStatementFailed wraps a SQL or backslash-command error that the shell
// has already printed.
var ErrStatementFailed = errors.New("statement failed")

// failed wraps err so callers know it was printed.
func failed(err error) error { return fmt.Errorf("%w: %w", ErrStatementFailed, err) }

// runSQL sends sql as one simple Query and prints every result, then the
// error if one came, then the time when \timing is on.
func (s *shell) runSQL(ctx context.Context, sql string) error {
	start := s.now()
	results, err := s.conn.Exec(ctx, sql)
	elapsed := s.now().Sub(start)
	for _, r := range results {
		s.printResult(r)
	}
	if err != nil {
		s.lastErr = err
		if _, ok := pgErrorOf(err); ok {
			fmt.Fprint(s.errOut, formatPgError(err, sql, s.vars["VERBOSITY"]))
		} else if ctx.Err() != nil {
			fmt.Fprintln(s.errOut, "Cancel request sent; query cancelled.")
		} else {
			fmt.Fprintf(s.errOut, "error: %v\n", err)
		}
	}
	if s.timing {
		fmt.Fprintf(s.out, "Time: %.3f ms\n", float64(elapsed)/float64(time.Millisecond))
	}
	if err != nil {
		return failed(err)
	}
	return nil
}

// printResult prints a result set as a table, or the command tag.
func (s *shell) printResult(r result) {
	if !r.HasRows {
		if r.Tag != "" {
			fmt.Fprintln(s.out, r.Tag)
		}
		return
	}
	t := table{}
	for _, c := range r.Columns {
		t.Columns = append(t.Columns, c.Name)
		t.Right = append(t.Right, numericOIDs[c.OID])
	}
	for _, row := range r.Rows {
		t.Rows = append(t.Rows, cellsOf(row))
	}
	s.print(t)
}

// print draws t aligned, or expanded after \x.
func (s *shell) print(t table) {
	if s.expanded {
		writeExpanded(s.out, t)
		return
	}
	writeTable(s.out, t)
}

// feedLine handles one typed or scripted line: a backslash command, or
// SQL that runs each time a ';' completes a statement. It returns the
// first error, after printing it.
func (s *shell) feedLine(ctx context.Context, line string) error {
	if s.sp.InString() == 0 {
		if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, `\`) {
			return s.meta(ctx, trimmed)
		}
	}
	var first error
	for _, stmt := range s.sp.Feed(line) {
		if first != nil && s.stopOnError() {
			break // the rest of the line is skipped, as psql's ON_ERROR_STOP does
		}
		if err := s.runSQL(ctx, stmt); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// runScript feeds r line by line and sends what is left at the end. It
// stops at the first failing statement, as psql does with ON_ERROR_STOP
// (so a script never runs on after a failure), unless ON_ERROR_STOP is
// set off; then it runs everything and returns the first error.
func (s *shell) runScript(ctx context.Context, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var first error
	for sc.Scan() && !s.quit {
		if err := s.feedLine(ctx, sc.Text()); err != nil {
			if s.stopOnError() {
				return err
			}
			if first == nil {
				first = err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading input: %w", err)
	}
	if rest := s.sp.Rest(); rest != "" && !s.quit {
		if err := s.runSQL(ctx, rest); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// runCommand runs one -c argument: a backslash command, or SQL sent as a
// single Query (several statements separated by ';' allowed).
func (s *shell) runCommand(ctx context.Context, cmd string) error {
	if t := strings.TrimSpace(cmd); strings.HasPrefix(t, `\`) {
		return s.meta(ctx, t)
	}
	return s.runSQL(ctx, cmd)
}

const shellHelp = `General
  \q                     quit raftsql
  \?                     show this help
  \timing [on|off]       toggle (or set) timing of commands
  \errverbose            show the most recent error with its SQLSTATE
  \set [NAME [VALUE]]    set or list variables: VERBOSITY default|verbose|terse,
                         ON_ERROR_STOP on|off (scripts and -c stop at an error unless off)
  \unset NAME            unset a variable
  \r                     reset (clear) the query buffer
  \g                     send the query buffer (also ';')
  \i FILE                run the statements of FILE (stops at the first error)
  \x [on|off]            toggle (or set) expanded output, one line per column

Informational
  \d [NAME]              describe table NAME, or list tables, views and sequences
  \dt [PATTERN]          list tables
  \l                     list databases
  \dn                    list schemas
  \status                cluster status from the HTTP API (--http)

SQL ends with ';' and may span lines; several statements may share a line.
`

// meta runs a backslash command.
func (s *shell) meta(ctx context.Context, line string) error {
	fields := strings.Fields(line)
	cmd, args := fields[0], fields[1:]
	switch cmd {
	case `\q`, `\quit`:
		s.quit = true
		return nil
	case `\?`, `\h`, `\help`:
		fmt.Fprint(s.out, shellHelp)
		return nil
	case `\r`, `\reset`:
		s.sp.Reset()
		fmt.Fprintln(s.out, "Query buffer reset (cleared).")
		return nil
	case `\timing`:
		if err := toggle(&s.timing, cmd, args); err != nil {
			return s.metaError(err)
		}
		fmt.Fprintf(s.out, "Timing is %s.\n", onOff(s.timing))
		return nil
	case `\x`:
		if err := toggle(&s.expanded, cmd, args); err != nil {
			return s.metaError(err)
		}
		fmt.Fprintf(s.out, "Expanded display is %s.\n", onOff(s.expanded))
		return nil
	case `\g`:
		if rest := s.sp.Rest(); rest != "" {
			return s.runSQL(ctx, rest)
		}
		return nil
	case `\i`, `\include`:
		if len(args) != 1 {
			return s.metaError(shellError(cmd + ": missing required argument"))
		}
		return s.include(ctx, args[0])
	case `\set`:
		return s.set(args)
	case `\unset`:
		if len(args) != 1 {
			return s.metaError(shellError(`\unset: missing required argument`))
		}
		delete(s.vars, args[0])
		return nil
	case `\l`, `\list`:
		return s.listQuery(ctx, "List of databases", listDatabasesSQL)
	case `\dn`:
		return s.listQuery(ctx, "List of schemas", listSchemasSQL)
	case `\errverbose`:
		if s.lastErr == nil {
			fmt.Fprintln(s.out, "There is no previous error.")
			return nil
		}
		fmt.Fprint(s.out, formatPgError(s.lastErr, "", "verbose"))
		return nil
	case `\dt`:
		return s.listRelations(ctx, kindsTables, strings.Join(args, " "))
	case `\d`:
		if len(args) == 0 {
			return s.listRelations(ctx, kindsRelations, "")
		}
		return s.describe(ctx, strings.Join(args, " "))
	case `\status`:
		return s.clusterStatus(ctx)
	}
	return s.metaError(shellError(`invalid command ` + cmd + `. Try \? for help.`))
}

func (s *shell) metaError(err error) error {
	fmt.Fprintf(s.errOut, "%v\n", err)
	s.lastErr = err
	return failed(err)
}

// shellError is a message of the shell itself, printed as psql words it.
type shellError string

func (e shellError) Error() string { return string(e) }

// set runs \set: no argument lists the variables, NAME sets it to "",
// NAME VALUE… sets it to the values joined.
func (s *shell) set(args []string) error {
	if len(args) == 0 {
		names := make([]string, 0, len(s.vars))
		for k := range s.vars {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(s.out, "%s = '%s'\n", k, s.vars[k])
		}
		return nil
	}
	name, value := args[0], strings.Join(args[1:], "")
	switch name {
	case "VERBOSITY":
		value = strings.ToLower(value)
		if value != "default" && value != "verbose" && value != "terse" {
			return s.metaError(shellError(`unrecognized value "` + value + `" for "VERBOSITY"` + "\n" + `Available values are: default, verbose, terse.`))
		}
	case "ON_ERROR_STOP":
		if _, ok := parseBool(value); !ok {
			return s.metaError(shellError(`unrecognized value "` + value + `" for "ON_ERROR_STOP": Boolean expected`))
		}
	}
	if s.vars == nil {
		s.vars = map[string]string{}
	}
	s.vars[name] = value
	return nil
}

// stopOnError is ON_ERROR_STOP: unless set, on for scripts and -c (so
// they never run on after a failure) and off at the interactive prompt.
func (s *shell) stopOnError() bool {
	v, ok := s.vars["ON_ERROR_STOP"]
	if !ok {
		return !s.isInteractive
	}
	b, _ := parseBool(v)
	return b
}

// parseBool reads psql's boolean spellings.
func parseBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "on", "true", "yes", "1", "t", "y":
		return true, true
	case "off", "false", "no", "0", "f", "n":
		return false, true
	}
	return false, false
}

// toggle sets *b from an on/off argument, or flips it without one.
func toggle(b *bool, cmd string, args []string) error {
	switch {
	case len(args) == 0:
		*b = !*b
	default:
		v, ok := parseBool(args[0])
		if ok {
			*b = v
			return nil
		}
		return shellError(fmt.Sprintf(`unrecognized value "%s" for "%s": Boolean expected`, args[0], cmd))
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// include runs a file's statements (\i) with a splitter of its own, so a
// statement left open in the file does not swallow what follows.
func (s *shell) include(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return s.metaError(fmt.Errorf("%s: %w", path, err))
	}
	defer f.Close()
	saved := s.sp
	s.sp = splitter{}
	defer func() { s.sp = saved }()
	return s.runScript(ctx, f)
}

// listQuery runs a catalog listing (\l, \dn) and prints it with a title.
func (s *shell) listQuery(ctx context.Context, title, sql string) error {
	results, err := s.conn.Exec(ctx, sql)
	if err != nil {
		s.lastErr = err
		fmt.Fprint(s.errOut, formatPgError(err, "", s.vars["VERBOSITY"]))
		return failed(err)
	}
	for _, r := range results {
		t := table{Title: title}
		for _, c := range r.Columns {
			t.Columns = append(t.Columns, c.Name)
		}
		for _, row := range r.Rows {
			t.Rows = append(t.Rows, cellsOf(row))
		}
		s.print(t)
	}
	return nil
}

// query runs a catalog query and returns its rows, printing any error.
func (s *shell) query(ctx context.Context, sql string) ([][][]byte, error) {
	results, err := s.conn.Exec(ctx, sql)
	if err != nil {
		s.lastErr = err
		fmt.Fprint(s.errOut, formatPgError(err, "", s.vars["VERBOSITY"]))
		return nil, failed(err)
	}
	var rows [][][]byte
	for _, r := range results {
		rows = append(rows, r.Rows...)
	}
	return rows, nil
}

func (s *shell) listRelations(ctx context.Context, kinds, pattern string) error {
	start := s.now()
	results, err := s.conn.Exec(ctx, listRelationsQuery(kinds, pattern))
	if err != nil {
		s.lastErr = err
		fmt.Fprint(s.errOut, formatPgError(err, "", s.vars["VERBOSITY"]))
		return failed(err)
	}
	var r result
	if len(results) > 0 {
		r = results[len(results)-1]
	}
	switch {
	case len(r.Rows) == 0 && pattern != "":
		fmt.Fprintf(s.errOut, "Did not find any relation named \"%s\".\n", pattern)
	case len(r.Rows) == 0:
		fmt.Fprintln(s.errOut, "Did not find any relations.")
	default:
		t := table{Title: "List of relations"}
		for _, c := range r.Columns {
			t.Columns = append(t.Columns, c.Name)
		}
		for _, row := range r.Rows {
			t.Rows = append(t.Rows, cellsOf(row))
		}
		s.print(t)
	}
	if s.timing {
		fmt.Fprintf(s.out, "Time: %.3f ms\n", float64(s.now().Sub(start))/float64(time.Millisecond))
	}
	return nil
}

// cellsOf converts raw text values to printable cells.
func cellsOf(row [][]byte) []*string {
	out := make([]*string, len(row))
	for i, v := range row {
		if v != nil {
			str := string(v)
			out[i] = &str
		}
	}
	return out
}

// text returns column i of row as a string ("" for NULL or missing).
func text(row [][]byte, i int) string {
	if i < len(row) {
		return string(row[i])
	}
	return ""
}

// isTrue reads a boolean in PostgreSQL's or SQLite's text form.
func isTrue(v string) bool {
	switch strings.ToLower(v) {
	case "t", "true", "1", "on", "yes":
		return true
	}
	return false
}

// describe prints \d NAME: each matching relation's columns and indexes.
func (s *shell) describe(ctx context.Context, pattern string) error {
	rels, err := s.query(ctx, findRelationQuery(pattern))
	if err != nil {
		return err
	}
	if len(rels) == 0 {
		return s.metaError(shellError(`Did not find any relation named "` + pattern + `".`))
	}
	for _, rel := range rels {
		oid, schema, name := text(rel, 0), text(rel, 1), text(rel, 2)
		cols, err := s.query(ctx, describeColumnsQuery(oid))
		if err != nil {
			return err
		}
		str := func(v string) *string { return &v }
		t := table{
			Title:    fmt.Sprintf("Table \"%s.%s\"", schema, name),
			Columns:  []string{"Column", "Type", "Collation", "Nullable", "Default"},
			NoFooter: true,
		}
		for _, c := range cols {
			nullable := ""
			if isTrue(text(c, 3)) {
				nullable = "not null"
			}
			def := text(c, 2)
			switch text(c, 5) {
			case "a":
				def = "generated always as identity"
			case "d":
				def = "generated by default as identity"
			}
			if text(c, 6) == "s" {
				def = "generated always as (" + def + ") stored"
			}
			t.Rows = append(t.Rows, []*string{str(text(c, 0)), str(text(c, 1)), str(text(c, 4)), str(nullable), str(def)})
		}
		idx, err := s.query(ctx, describeIndexesQuery(oid))
		if err != nil {
			return err
		}
		if len(idx) > 0 {
			t.Footers = append(t.Footers, "Indexes:")
			for _, ix := range idx {
				t.Footers = append(t.Footers, "    "+indexLine(ix))
			}
		}
		writeTable(s.out, t) // psql keeps \d aligned under \x too
	}
	return nil
}

// indexLine renders one row of the index query as psql does:
// `"t_pkey" PRIMARY KEY, btree (id)`.
func indexLine(ix [][]byte) string {
	name, primary, unique, valid := text(ix, 0), isTrue(text(ix, 1)), isTrue(text(ix, 2)), text(ix, 4)
	def, contype := text(ix, 5), text(ix, 7)
	var b strings.Builder
	b.WriteString(`"` + name + `"`)
	switch {
	case primary:
		b.WriteString(" PRIMARY KEY,")
	case unique && contype == "u":
		b.WriteString(" UNIQUE CONSTRAINT,")
	case unique:
		b.WriteString(" UNIQUE,")
	}
	if i := strings.Index(def, " USING "); i >= 0 {
		def = def[i+len(" USING "):]
	}
	b.WriteString(" " + def)
	if valid != "" && !isTrue(valid) {
		b.WriteString(" INVALID")
	}
	return b.String()
}

func (s *shell) clusterStatus(ctx context.Context) error {
	if s.status == nil {
		return s.metaError(errors.New(`\status needs the HTTP API address (--http)`))
	}
	rows, err := s.status(ctx)
	if err != nil {
		return s.metaError(fmt.Errorf("cluster status: %w", err))
	}
	t := statusTable(rows)
	t.Title = "Cluster status"
	return writeTable(s.out, t)
}

// interactive runs the prompt loop on a terminal with line editing and
// history until \q or end of input. Ctrl-C clears the current statement
// at the prompt and cancels a running query.
func (s *shell) interactive(ctx context.Context, stdin io.ReadCloser, stdout io.Writer) error {
	db := s.conn.Database()
	if db == "" {
		db = "raftsql"
	}
	rl, err := readline.NewEx(&readline.Config{
		Prompt:            db + "=> ",
		HistoryFile:       historyFile(),
		HistorySearchFold: true,
		InterruptPrompt:   "^C",
		EOFPrompt:         `\q`,
		Stdin:             stdin,
		Stdout:            stdout,
	})
	if err != nil {
		return fmt.Errorf("line editor: %w", err)
	}
	defer rl.Close()
	s.isInteractive = true
	if v := s.conn.Param("server_version"); v != "" {
		fmt.Fprintf(s.out, "raftsql (server %s)\nType \"\\?\" for help.\n\n", v)
	}
	for !s.quit && ctx.Err() == nil {
		prompt := db + "=> "
		if s.sp.Pending() || s.sp.InString() != 0 {
			mark := "-"
			if q := s.sp.InString(); q != 0 {
				mark = string(q)
			}
			prompt = db + mark + "> "
		}
		rl.SetPrompt(prompt)
		line, err := rl.Readline()
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			s.sp.Reset()
			continue
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("reading input: %w", err)
		}
		qctx, stop := signal.NotifyContext(ctx, os.Interrupt)
		err = s.feedLine(qctx, line) // errors are printed; the session goes on
		stop()
		if errors.Is(err, ErrConnLost) {
			if rerr := s.reset(ctx); rerr != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// reset replaces a lost connection, printing psql's words.
func (s *shell) reset(ctx context.Context) error {
	if s.reconnect == nil {
		return ErrConnLost
	}
	fmt.Fprint(s.errOut, "The connection to the server was lost. Attempting reset: ")
	c, err := s.reconnect(ctx)
	if err != nil {
		fmt.Fprintln(s.errOut, "Failed.")
		fmt.Fprintf(s.errOut, "%v\n", err)
		return err
	}
	fmt.Fprintln(s.errOut, "Succeeded.")
	s.conn.Close(context.WithoutCancel(ctx))
	s.conn = c
	s.sp.Reset()
	return nil
}

// historyFile is $RAFTSQL_HISTORY or ~/.raftsql_history ("" disables
// history when there is no home directory).
func historyFile() string {
	if f := os.Getenv("RAFTSQL_HISTORY"); f != "" {
		return f
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".raftsql_history")
}

// printNotice prints a server NOTICE/WARNING as psql does.
func printNotice(w io.Writer, n *pgconn.Notice) {
	sev := n.Severity
	if sev == "" {
		sev = "NOTICE"
	}
	fmt.Fprintf(w, "%s:  %s\n", sev, n.Message)
}
