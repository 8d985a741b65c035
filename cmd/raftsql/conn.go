package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// result is one statement's outcome from a simple-protocol query.
type result struct {
	Columns []column
	Rows    [][][]byte // a nil value is SQL NULL
	Tag     string     // CommandComplete tag, "" for an empty query
	HasRows bool       // the statement returned a row description
}

type column struct {
	Name string
	OID  uint32
}

// sqlConn is the connection the shell needs. The real one is pgconn over
// the simple query protocol; tests use an in-process fake.
type sqlConn interface {
	// Exec sends sql as one simple Query (it may hold several statements)
	// and returns the results of the statements that completed. A SQL
	// error is returned as a *pgconn.PgError after those results.
	Exec(ctx context.Context, sql string) ([]result, error)
	// Params returns a server parameter (server_version, …) or "".
	Param(name string) string
	// Database returns the name of the connected database.
	Database() string
	Close(ctx context.Context) error
}

// connOptions are the shell's connection flags.
type connOptions struct {
	Host, Port, User, Database string
	// URL is a postgres:// URL or a "key=value …" string; flags override
	// its parts when set.
	URL string
}

// connString builds a libpq connection string from the options.
func (o connOptions) connString() string {
	if strings.HasPrefix(o.URL, "postgres://") || strings.HasPrefix(o.URL, "postgresql://") {
		u, err := url.Parse(o.URL)
		if err != nil {
			return o.URL // let pgconn report the bad URL
		}
		if o.Host != "" || o.Port != "" {
			host, port := u.Hostname(), u.Port()
			if o.Host != "" {
				host = o.Host
			}
			if o.Port != "" {
				port = o.Port
			}
			if port == "" {
				port = "5433"
			}
			u.Host = net.JoinHostPort(host, port)
		}
		if o.User != "" {
			if p, ok := u.User.Password(); ok {
				u.User = url.UserPassword(o.User, p)
			} else {
				u.User = url.User(o.User)
			}
		}
		if o.Database != "" {
			u.Path = "/" + o.Database
		}
		return u.String()
	}
	kv := []string{}
	if o.URL != "" {
		kv = append(kv, o.URL)
	}
	add := func(k, v string) {
		if v != "" {
			kv = append(kv, k+"="+quoteConnValue(v))
		}
	}
	host, port := o.Host, o.Port
	if o.URL == "" {
		if host == "" {
			host = "127.0.0.1"
		}
		if port == "" {
			port = "5433"
		}
	}
	add("host", host)
	add("port", port)
	add("user", o.User)
	add("dbname", o.Database)
	return strings.Join(kv, " ")
}

// quoteConnValue quotes a value for a key=value connection string.
func quoteConnValue(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`) {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// pgConn is sqlConn over a real pgconn.PgConn.
type pgConn struct {
	c  *pgconn.PgConn
	db string
}

// dialPG connects with the simple protocol in mind. A cancelled context
// sends a CancelRequest to the server (so Ctrl-C stops a query and keeps
// the session) instead of dropping the connection. Notices go to onNotice.
func dialPG(ctx context.Context, connString string, onNotice func(*pgconn.Notice)) (*pgConn, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnect, err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if onNotice != nil {
			onNotice(n)
		}
	}
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 5 * time.Second}
	}
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnect, err)
	}
	return &pgConn{c: c, db: cfg.Database}, nil
}

func (p *pgConn) Exec(ctx context.Context, sql string) ([]result, error) {
	mrr := p.c.Exec(ctx, sql)
	all, err := mrr.ReadAll()
	var out []result
	for _, r := range all {
		if r.Err != nil {
			return out, r.Err
		}
		res := result{Tag: r.CommandTag.String(), Rows: r.Rows}
		for _, fd := range r.FieldDescriptions {
			res.Columns = append(res.Columns, column{Name: fd.Name, OID: fd.DataTypeOID})
		}
		res.HasRows = len(res.Columns) > 0 || strings.HasPrefix(res.Tag, "SELECT ")
		out = append(out, res)
	}
	if err != nil && p.c.IsClosed() {
		return out, fmt.Errorf("%w: %w", ErrConnLost, err)
	}
	return out, err
}

func (p *pgConn) Param(name string) string        { return p.c.ParameterStatus(name) }
func (p *pgConn) Database() string                { return p.db }
func (p *pgConn) Close(ctx context.Context) error { return p.c.Close(ctx) }

// pgErrorOf returns the server error in err's chain, if any.
func pgErrorOf(err error) (*pgconn.PgError, bool) {
	var pe *pgconn.PgError
	ok := errors.As(err, &pe)
	return pe, ok
}

// formatPgError renders an error as psql does:
//
//	ERROR:  relation "nosuch" does not exist
//	LINE 1: select * from nosuch
//	                      ^
//
// verbosity is psql's VERBOSITY: "verbose" puts the SQLSTATE after the
// severity ("ERROR:  42P01: …"), "terse" prints only the first line.
func formatPgError(err error, query string, verbosity string) string {
	pe, ok := pgErrorOf(err)
	if !ok {
		return "error: " + err.Error() + "\n"
	}
	sev := pe.Severity
	if sev == "" {
		sev = "ERROR"
	}
	var b strings.Builder
	b.WriteString(sev + ":  ")
	if verbosity == "verbose" && pe.Code != "" {
		b.WriteString(pe.Code + ": ")
	}
	b.WriteString(pe.Message + "\n")
	if verbosity == "terse" {
		return b.String()
	}
	if pe.Position > 0 && query != "" {
		b.WriteString(positionMarker(query, int(pe.Position)))
	}
	if pe.Detail != "" {
		b.WriteString("DETAIL:  " + pe.Detail + "\n")
	}
	if pe.Hint != "" {
		b.WriteString("HINT:  " + pe.Hint + "\n")
	}
	return b.String()
}

// positionMarker draws "LINE n: text" and a caret under the character at
// the 1-based character position pos of query.
func positionMarker(query string, pos int) string {
	runes := []rune(query)
	if pos < 1 || pos > len(runes)+1 {
		return ""
	}
	lineNo, lineStart := 1, 0
	for i := 0; i < pos-1; i++ {
		if runes[i] == '\n' {
			lineNo++
			lineStart = i + 1
		}
	}
	lineEnd := lineStart
	for lineEnd < len(runes) && runes[lineEnd] != '\n' {
		lineEnd++
	}
	prefix := "LINE " + strconv.Itoa(lineNo) + ": "
	col := pos - 1 - lineStart
	return prefix + string(runes[lineStart:lineEnd]) + "\n" + strings.Repeat(" ", len(prefix)+col) + "^\n"
}
