package pgwire

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/raftsql/raftsql/fsm"
	"github.com/raftsql/raftsql/sqltext"
)

// This file answers queries that SQLite cannot: built-in functions
// (version(), current_schema(), pg_is_in_recovery(), …) and the
// pg_catalog / information_schema queries of psql's \dt, \d, \l, \dn and
// \du. The catalog is not a full evaluator: it recognises the shapes of
// those queries and computes their rows from sqlite_master and the
// pragma_* table functions, read through the Engine at the session's
// consistency. Any other catalog query gets zero rows with the columns of
// its select list, which is what drivers' optional probes cope with best.

// tableOIDBase is added to sqlite_master's rowid to make table OIDs.
const tableOIDBase = 16384

var catalogWords = []string{
	"pg_class", "pg_namespace", "pg_attribute", "pg_type", "pg_database", "pg_index", "pg_roles",
	"pg_proc", "pg_constraint", "pg_am", "pg_attrdef", "pg_description", "pg_settings", "pg_user",
	"pg_tables", "pg_views", "pg_indexes", "pg_policy", "pg_statistic_ext", "pg_publication",
	"pg_inherits", "pg_collation", "pg_extension", "pg_authid", "pg_enum", "pg_range",
	"pg_trigger", "pg_sequence", "pg_stat_activity", "information_schema",
}

// builtin is a function call or keyword the front end evaluates.
type builtin struct {
	name string // PostgreSQL's column name
	oid  uint32
	eval func(c *conn, arg string) any
}

var builtins = map[string]builtin{
	"version": {"version", oidText, func(c *conn, _ string) any {
		return "PostgreSQL " + c.srv.cfg.ServerVersion + " on x86_64-pc-linux-gnu, raftsql (SQLite replicated with Raft), 64-bit"
	}},
	"current_schema":    {"current_schema", oidName, func(*conn, string) any { return "public" }},
	"current_database":  {"current_database", oidName, func(c *conn, _ string) any { return c.database }},
	"current_catalog":   {"current_catalog", oidName, func(c *conn, _ string) any { return c.database }},
	"current_user":      {"current_user", oidName, func(c *conn, _ string) any { return c.user }},
	"session_user":      {"session_user", oidName, func(c *conn, _ string) any { return c.user }},
	"user":              {"current_user", oidName, func(c *conn, _ string) any { return c.user }},
	"pg_is_in_recovery": {"pg_is_in_recovery", oidBool, func(c *conn, _ string) any { return !c.srv.cfg.Engine.IsLeader() }},
	"pg_backend_pid":    {"pg_backend_pid", oidInt4, func(c *conn, _ string) any { return int64(c.pid) }},
	"current_setting":   {"current_setting", oidText, func(c *conn, arg string) any { return c.showSetting(arg) }},
}

// keywordBuiltins may be written without parentheses.
var keywordBuiltins = map[string]bool{"current_user": true, "session_user": true, "user": true, "current_catalog": true, "current_schema": true}

type builtinCall struct {
	b     builtin
	arg   string
	alias string
}

// parseBuiltinSelect recognises SELECT f() [AS a], g … where every item
// is a builtin; ok is false otherwise.
func parseBuiltinSelect(text string) ([]builtinCall, bool) {
	toks, err := sqltext.Lex(text)
	if err != nil {
		return nil, false
	}
	var sig []sqltext.Token
	for _, t := range toks {
		if t.Kind != sqltext.TokSpace && t.Kind != sqltext.TokComment {
			sig = append(sig, t)
		}
	}
	if len(sig) > 0 && sig[len(sig)-1].Text == ";" {
		sig = sig[:len(sig)-1]
	}
	if len(sig) < 2 || !sig[0].IsKeyword("SELECT") {
		return nil, false
	}
	var calls []builtinCall
	i := 1
	for {
		// optional pg_catalog. prefix
		if i+1 < len(sig) && strings.EqualFold(sig[i].Text, "pg_catalog") && sig[i+1].Text == "." {
			i += 2
		}
		if i >= len(sig) || sig[i].Kind != sqltext.TokIdent {
			return nil, false
		}
		name := strings.ToLower(sig[i].Text)
		b, ok := builtins[name]
		if !ok {
			return nil, false
		}
		call := builtinCall{b: b}
		i++
		if i < len(sig) && sig[i].Text == "(" {
			i++
			if i < len(sig) && sig[i].Kind == sqltext.TokString {
				call.arg = strings.ReplaceAll(strings.Trim(sig[i].Text, "'"), "''", "'")
				i++
			}
			if i >= len(sig) || sig[i].Text != ")" {
				return nil, false
			}
			i++
		} else if !keywordBuiltins[name] {
			return nil, false
		}
		if name == "current_setting" && call.arg == "" {
			return nil, false
		}
		if i < len(sig) && sig[i].IsKeyword("AS") {
			i++
		}
		if i < len(sig) && (sig[i].Kind == sqltext.TokIdent || sig[i].Kind == sqltext.TokQuotedIdent) {
			if sig[i].Kind == sqltext.TokQuotedIdent {
				call.alias = strings.ReplaceAll(sig[i].Text[1:len(sig[i].Text)-1], `""`, `"`)
			} else {
				call.alias = strings.ToLower(sig[i].Text)
			}
			i++
		}
		calls = append(calls, call)
		if i == len(sig) {
			return calls, true
		}
		if sig[i].Text != "," {
			return nil, false
		}
		i++
	}
}

// isLocalQuery reports whether a read is answered by the front end.
func isLocalQuery(text string) bool {
	lower := strings.ToLower(text)
	if !strings.Contains(lower, "from") {
		if _, ok := parseBuiltinSelect(text); ok {
			return true
		}
	}
	// Every catalog word and relation contains one of these.
	if !strings.Contains(lower, "pg_") && !strings.Contains(lower, "information_schema") {
		return false
	}
	return isCatalogQuery(text)
}

func isCatalogQuery(text string) bool {
	lower := strings.ToLower(text)
	for _, w := range catalogWords {
		if containsWord(lower, w) {
			return true
		}
	}
	return len(catalogRelations(significant(text))) > 0
}

// catalogRelations returns the positions of identifiers used as catalog
// relations: pg_catalog.x, information_schema.x, and pg_x after FROM,
// JOIN or a comma of a FROM list.
func catalogRelations(sig []sqltext.Token) []int {
	var at []int
	for i, t := range sig {
		if t.Kind != sqltext.TokIdent {
			continue
		}
		name := strings.ToLower(t.Text)
		if (name == "pg_catalog" || name == "information_schema") && i+2 < len(sig) && sig[i+1].Text == "." {
			at = append(at, i)
			continue
		}
		if strings.HasPrefix(name, "pg_") && i > 0 && (sig[i-1].IsKeyword("FROM") || sig[i-1].IsKeyword("JOIN")) {
			at = append(at, i)
		}
	}
	return at
}

// localQuery runs a builtin select or a catalog query.
func (c *conn) localQuery(ctx context.Context, text string) (*resultSet, error) {
	if calls, ok := parseBuiltinSelect(text); ok {
		rs := &resultSet{fields: make([]field, len(calls)), rows: [][]any{make([]any, len(calls))}}
		for i, call := range calls {
			name := call.b.name
			if call.alias != "" {
				name = call.alias
			}
			if call.b.name == "current_setting" && !c.knownSetting(call.arg) {
				return nil, &Error{Code: codeUndefinedObject, Message: fmt.Sprintf("unrecognized configuration parameter %q", call.arg)}
			}
			rs.fields[i] = field{name: name, oid: call.b.oid}
			v := call.b.eval(c, call.arg)
			if b, ok := v.(bool); ok {
				v = boolInt(b)
			}
			rs.rows[0][i] = v
		}
		return rs, nil
	}
	return c.catalogQuery(ctx, text)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// ---------------------------------------------------------------------------
// Schema snapshot through the Engine.

type catTable struct {
	oid     int64
	kind    string // "table", "view", "index"
	name    string
	tblName string
	sql     string
}

type catColumn struct {
	name    string
	decl    string
	notNull bool
	dflt    any
	pk      int64
}

type catIndex struct {
	name    string
	unique  bool
	origin  string // c (CREATE INDEX), u (UNIQUE), pk
	columns []string
}

func (c *conn) catalogRead(ctx context.Context, stmts ...fsm.Statement) ([]fsm.Result, error) {
	qctx, done := c.startQuery(ctx)
	defer done()
	res, err := c.sess.Read(qctx, c.consistency, stmts)
	if err = c.queryErr(qctx, err); err != nil {
		return nil, err
	}
	for _, r := range res {
		if r.Err != nil {
			return nil, r.Err
		}
	}
	if len(res) != len(stmts) {
		return nil, fmt.Errorf("catalog: %d results for %d statements", len(res), len(stmts))
	}
	return res, nil
}

func (c *conn) catalogTables(ctx context.Context) ([]catTable, error) {
	res, err := c.catalogRead(ctx, fsm.Statement{SQL: `SELECT rowid, type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('table','view','index') AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY rowid`})
	if err != nil {
		return nil, err
	}
	var ts []catTable
	for _, r := range res[0].Rows {
		if len(r) < 5 {
			continue
		}
		id, _ := toInt64(r[0])
		t := catTable{oid: tableOIDBase + id, kind: toText(r[1]), name: toText(r[2]), tblName: toText(r[3])}
		if r[4] != nil {
			t.sql = toText(r[4])
		}
		if strings.HasPrefix(t.name, "_raftsql") || strings.HasPrefix(t.name, "raftsql_") {
			continue // the fsm's own bookkeeping
		}
		ts = append(ts, t)
	}
	return ts, nil
}

func (c *conn) catalogColumns(ctx context.Context, table string) ([]catColumn, error) {
	res, err := c.catalogRead(ctx, fsm.Statement{SQL: `SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?1)`, Args: []any{table}})
	if err != nil {
		return nil, err
	}
	var cols []catColumn
	for _, r := range res[0].Rows {
		if len(r) < 5 {
			continue
		}
		nn, _ := toInt64(r[2])
		pk, _ := toInt64(r[4])
		cols = append(cols, catColumn{name: toText(r[0]), decl: toText(r[1]), notNull: nn != 0 || pk > 0, dflt: r[3], pk: pk})
	}
	return cols, nil
}

func (c *conn) catalogIndexes(ctx context.Context, table string, cols []catColumn) ([]catIndex, error) {
	res, err := c.catalogRead(ctx, fsm.Statement{SQL: `SELECT il.name, il."unique", il.origin, ii.name FROM pragma_index_list(?1) AS il, pragma_index_info(il.name) AS ii ORDER BY il.name, ii.seqno`, Args: []any{table}})
	if err != nil {
		return nil, err
	}
	var idx []catIndex
	for _, r := range res[0].Rows {
		if len(r) < 4 {
			continue
		}
		name := toText(r[0])
		if len(idx) == 0 || idx[len(idx)-1].name != name {
			u, _ := toInt64(r[1])
			idx = append(idx, catIndex{name: name, unique: u != 0, origin: toText(r[2])})
		}
		idx[len(idx)-1].columns = append(idx[len(idx)-1].columns, toText(r[3]))
	}
	hasPK := false
	for i := range idx {
		switch {
		case idx[i].origin == "pk":
			hasPK = true
			idx[i].name = table + "_pkey"
		case strings.HasPrefix(idx[i].name, "sqlite_autoindex_"):
			// PostgreSQL's name for a UNIQUE constraint's index.
			idx[i].name = table + "_" + strings.Join(idx[i].columns, "_") + "_key"
		}
	}
	if !hasPK {
		// INTEGER PRIMARY KEY is the rowid: it has no index of its own.
		var pkCols []string
		for _, col := range cols {
			if col.pk > 0 {
				pkCols = append(pkCols, col.name)
			}
		}
		if len(pkCols) > 0 {
			idx = append(idx, catIndex{name: table + "_pkey", unique: true, origin: "pk", columns: pkCols})
		}
	}
	sort.SliceStable(idx, func(i, j int) bool {
		if (idx[i].origin == "pk") != (idx[j].origin == "pk") {
			return idx[i].origin == "pk"
		}
		return idx[i].name < idx[j].name
	})
	return idx, nil
}

// formatDeclType is format_type() of a declared SQLite column type.
func formatDeclType(decl string) string {
	oid, ok := declTypeOID(decl)
	if !ok {
		return "text"
	}
	name := typeName(oid)
	if i := strings.IndexByte(decl, '('); i >= 0 && (oid == oidVarchar || oid == oidNumeric || oid == oidBPChar) {
		name += strings.ReplaceAll(decl[i:], " ", "")
	}
	return name
}

// ---------------------------------------------------------------------------
// Recognised queries.

var (
	relkindListRE = regexp.MustCompile(`(?i)c\.relkind\s+IN\s*\(([^)]*)\)`)
	regexMatchRE  = regexp.MustCompile(`(?i)(\w+(?:\.\w+)?)\s+OPERATOR\(pg_catalog\.~\)\s+'((?:[^']|'')*)'`)
	oidEqRE       = regexp.MustCompile(`(?i)(?:c\.oid|a\.attrelid)\s*=\s*'?(\d+)'?`)
)

func (c *conn) catalogQuery(ctx context.Context, text string) (*resultSet, error) {
	norm := strings.Join(strings.Fields(text), " ")
	switch {
	case strings.Contains(norm, "FROM pg_catalog.pg_database d"):
		return c.catDatabases(), nil
	case strings.Contains(norm, "FROM pg_catalog.pg_namespace n") && !strings.Contains(norm, "pg_class"):
		return &resultSet{fields: []field{{"Name", oidName}, {"Owner", oidName}}, rows: [][]any{{"public", "pg_database_owner"}}}, nil
	case strings.Contains(norm, "FROM pg_catalog.pg_roles r") && strings.Contains(norm, "r.rolname"):
		return c.catRoles(), nil
	case strings.Contains(norm, "c.relchecks, c.relkind"):
		return c.catTableInfo(ctx, norm)
	case strings.HasPrefix(norm, "SELECT a.attname,") && strings.Contains(norm, "FROM pg_catalog.pg_attribute a"):
		return c.catAttributes(ctx, norm)
	case strings.Contains(norm, "SELECT c2.relname, i.indisprimary"):
		return c.catIndexes(ctx, norm)
	case strings.HasPrefix(norm, "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c"):
		return c.catLookup(ctx, norm)
	case strings.Contains(norm, "FROM pg_catalog.pg_class c") && relkindListRE.MatchString(norm):
		return c.catRelations(ctx, norm)
	}
	return emptyResultFor(norm), nil
}

// emptyResultFor returns zero rows with the columns of the first select
// list of the query (names from AS or the last identifier).
func emptyResultFor(norm string) *resultSet {
	rs := &resultSet{fields: []field{}}
	for _, item := range selectList(norm) {
		item = strings.TrimSpace(item)
		name := "?column?"
		lower := strings.ToLower(item)
		if i := strings.LastIndex(lower, " as "); i >= 0 {
			name = strings.Trim(strings.TrimSpace(item[i+4:]), `"`)
		} else if f := strings.FieldsFunc(item, func(r rune) bool {
			return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}); len(f) > 0 {
			name = f[len(f)-1]
		}
		rs.fields = append(rs.fields, field{name: name, oid: oidText})
	}
	return rs
}

// selectList returns the items of the outermost select list of a query
// (text between the leading SELECT and its FROM, split on top-level
// commas), nil if there is none.
func selectList(norm string) []string {
	lower := strings.ToLower(norm)
	rest := strings.TrimLeft(lower, " (")
	if !strings.HasPrefix(rest, "select ") {
		return nil
	}
	start := len(lower) - len(rest) + len("select ")
	end := len(norm)
	eachTopLevel(lower[start:], func(i int) bool {
		if strings.HasPrefix(lower[start+i:], " from ") {
			end = start + i
			return false
		}
		return true
	})
	return splitTopLevel(norm[start:end])
}

// splitTopLevel splits s on commas outside parentheses and quotes.
func splitTopLevel(s string) []string {
	var parts []string
	start := 0
	eachTopLevel(s, func(i int) bool {
		if s[i] == ',' {
			parts = append(parts, s[start:i])
			start = i + 1
		}
		return true
	})
	return append(parts, s[start:])
}

// eachTopLevel calls at with the index of every byte of s that is outside
// quotes and parentheses (and is not itself a quote or parenthesis), until
// at returns false.
func eachTopLevel(s string, at func(i int) bool) {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '\'' || ch == '"':
			quote = ch
		case ch == '(':
			depth++
		case ch == ')':
			depth--
		case depth == 0:
			if !at(i) {
				return
			}
		}
	}
}

func (c *conn) catDatabases() *resultSet {
	return &resultSet{
		fields: []field{{"Name", oidName}, {"Owner", oidName}, {"Encoding", oidName}, {"Collate", oidText}, {"Ctype", oidText},
			{"ICU Locale", oidText}, {"Locale Provider", oidText}, {"Access privileges", oidText}},
		rows: [][]any{{c.database, c.user, "UTF8", "C", "C", nil, "libc", nil}},
	}
}

func (c *conn) catRoles() *resultSet {
	return &resultSet{
		fields: []field{{"rolname", oidName}, {"rolsuper", oidBool}, {"rolinherit", oidBool}, {"rolcreaterole", oidBool},
			{"rolcreatedb", oidBool}, {"rolcanlogin", oidBool}, {"rolconnlimit", oidInt4}, {"rolvaliduntil", oidTimestamptz},
			{"memberof", oidText}, {"rolreplication", oidBool}, {"rolbypassrls", oidBool}},
		rows: [][]any{{c.user, int64(1), int64(1), int64(1), int64(1), int64(1), int64(-1), nil, "{}", int64(0), int64(0)}},
	}
}

// namePattern returns the regexp psql put on relname, if any.
func namePattern(norm string) (*regexp.Regexp, error) {
	for _, m := range regexMatchRE.FindAllStringSubmatch(norm, -1) {
		if strings.HasSuffix(strings.ToLower(m[1]), "relname") {
			re, err := regexp.Compile(strings.ReplaceAll(m[2], "''", "'"))
			if err != nil {
				return nil, &Error{Code: "2201B", Message: "invalid regular expression: " + err.Error()}
			}
			return re, nil
		}
	}
	return nil, nil
}

func relkindOf(kind string) string {
	switch kind {
	case "table":
		return "r"
	case "view":
		return "v"
	case "index":
		return "i"
	}
	return ""
}

func relkindName(k string) string {
	switch k {
	case "r":
		return "table"
	case "v":
		return "view"
	case "i":
		return "index"
	}
	return ""
}

// catRelations answers \dt, \d, \di, \dv (the relation list).
func (c *conn) catRelations(ctx context.Context, norm string) (*resultSet, error) {
	kinds := map[string]bool{}
	for _, k := range strings.Split(relkindListRE.FindStringSubmatch(norm)[1], ",") {
		kinds[strings.Trim(strings.TrimSpace(k), "'")] = true
	}
	re, err := namePattern(norm)
	if err != nil {
		return nil, err
	}
	withTable := strings.Contains(norm, `c2.relname as "Table"`)
	ts, err := c.catalogTables(ctx)
	if err != nil {
		return nil, err
	}
	rs := &resultSet{fields: []field{{"Schema", oidName}, {"Name", oidName}, {"Type", oidText}, {"Owner", oidName}}}
	if withTable {
		rs.fields = append(rs.fields, field{"Table", oidName})
	}
	for _, t := range ts {
		k := relkindOf(t.kind)
		if !kinds[k] || (re != nil && !re.MatchString(t.name)) {
			continue
		}
		row := []any{"public", t.name, relkindName(k), c.user}
		if withTable {
			row = append(row, t.tblName)
		}
		rs.rows = append(rs.rows, row)
	}
	sort.SliceStable(rs.rows, func(i, j int) bool { return toText(rs.rows[i][1]) < toText(rs.rows[j][1]) })
	return rs, nil
}

// catLookup answers the first query of \d NAME: oid, schema, name.
func (c *conn) catLookup(ctx context.Context, norm string) (*resultSet, error) {
	re, err := namePattern(norm)
	if err != nil {
		return nil, err
	}
	ts, err := c.catalogTables(ctx)
	if err != nil {
		return nil, err
	}
	rs := &resultSet{fields: []field{{"oid", oidOID}, {"nspname", oidName}, {"relname", oidName}}}
	for _, t := range ts {
		if re == nil || re.MatchString(t.name) {
			rs.rows = append(rs.rows, []any{t.oid, "public", t.name})
		}
	}
	sort.SliceStable(rs.rows, func(i, j int) bool { return toText(rs.rows[i][2]) < toText(rs.rows[j][2]) })
	return rs, nil
}

func (c *conn) tableByOID(ctx context.Context, norm string) (*catTable, error) {
	m := oidEqRE.FindStringSubmatch(norm)
	if m == nil {
		return nil, nil
	}
	oid, _ := strconv.ParseInt(m[1], 10, 64)
	ts, err := c.catalogTables(ctx)
	if err != nil {
		return nil, err
	}
	for i := range ts {
		if ts[i].oid == oid {
			return &ts[i], nil
		}
	}
	return nil, nil
}

// catTableInfo answers \d's relchecks/relkind/… query.
func (c *conn) catTableInfo(ctx context.Context, norm string) (*resultSet, error) {
	rs := &resultSet{fields: []field{{"relchecks", oidInt2}, {"relkind", oidChar}, {"relhasindex", oidBool}, {"relhasrules", oidBool},
		{"relhastriggers", oidBool}, {"relrowsecurity", oidBool}, {"relforcerowsecurity", oidBool}, {"relhasoids", oidBool},
		{"relispartition", oidBool}, {"?column?", oidText}, {"reltablespace", oidOID}, {"reloftype", oidText},
		{"relpersistence", oidChar}, {"relreplident", oidChar}, {"amname", oidName}}}
	t, err := c.tableByOID(ctx, norm)
	if err != nil || t == nil {
		return rs, err
	}
	hasIndex := int64(0)
	if t.kind == "table" {
		cols, err := c.catalogColumns(ctx, t.name)
		if err != nil {
			return nil, err
		}
		idx, err := c.catalogIndexes(ctx, t.name, cols)
		if err != nil {
			return nil, err
		}
		if len(idx) > 0 {
			hasIndex = 1
		}
	}
	am := any("heap")
	if t.kind != "table" {
		am = nil
	}
	rs.rows = [][]any{{int64(0), relkindOf(t.kind), hasIndex, int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), "", int64(0), "", "p", "d", am}}
	return rs, nil
}

// catAttributes answers \d's (and \d+'s) column query. Its select list
// varies with psql's options, so each item is answered by what it names.
func (c *conn) catAttributes(ctx context.Context, norm string) (*resultSet, error) {
	items := selectList(norm)
	if items == nil {
		return emptyResultFor(norm), nil
	}
	rs := &resultSet{fields: make([]field, len(items))}
	kinds := make([]string, len(items))
	for i, it := range items {
		l := strings.ToLower(it)
		f := field{name: "?column?", oid: oidText}
		switch {
		case strings.Contains(l, "attname"):
			f, kinds[i] = field{"attname", oidName}, "name"
		case strings.Contains(l, "format_type"):
			f, kinds[i] = field{"format_type", oidText}, "type"
		case strings.Contains(l, "pg_get_expr"):
			f, kinds[i] = field{"pg_get_expr", oidText}, "default"
		case strings.Contains(l, "attnotnull"):
			f, kinds[i] = field{"attnotnull", oidBool}, "notnull"
		case strings.Contains(l, "attidentity"), strings.Contains(l, "attgenerated"), strings.Contains(l, "attcompression"):
			f, kinds[i] = field{"attidentity", oidChar}, "empty"
		case strings.Contains(l, "attstorage"):
			f, kinds[i] = field{"attstorage", oidChar}, "storage"
		}
		rs.fields[i] = f
	}
	t, err := c.tableByOID(ctx, norm)
	if err != nil || t == nil {
		return rs, err
	}
	cols, err := c.catalogColumns(ctx, t.name)
	if err != nil {
		return nil, err
	}
	for _, col := range cols {
		row := make([]any, len(items))
		for i, k := range kinds {
			switch k {
			case "name":
				row[i] = col.name
			case "type":
				row[i] = formatDeclType(col.decl)
			case "default":
				if col.dflt != nil {
					row[i] = toText(col.dflt)
				}
			case "notnull":
				row[i] = boolInt(col.notNull)
			case "empty":
				row[i] = ""
			case "storage":
				row[i] = "p"
				if typeSize(declOIDOrText(col.decl)) < 0 {
					row[i] = "x"
				}
			}
		}
		rs.rows = append(rs.rows, row)
	}
	return rs, nil
}

func declOIDOrText(decl string) uint32 {
	if oid, ok := declTypeOID(decl); ok {
		return oid
	}
	return oidText
}

// catIndexes answers \d's index query.
func (c *conn) catIndexes(ctx context.Context, norm string) (*resultSet, error) {
	rs := &resultSet{fields: []field{{"relname", oidName}, {"indisprimary", oidBool}, {"indisunique", oidBool}, {"indisclustered", oidBool},
		{"indisvalid", oidBool}, {"pg_get_indexdef", oidText}, {"pg_get_constraintdef", oidText}, {"contype", oidChar},
		{"condeferrable", oidBool}, {"condeferred", oidBool}, {"indisreplident", oidBool}, {"reltablespace", oidOID}}}
	t, err := c.tableByOID(ctx, norm)
	if err != nil || t == nil || t.kind != "table" {
		return rs, err
	}
	cols, err := c.catalogColumns(ctx, t.name)
	if err != nil {
		return nil, err
	}
	idx, err := c.catalogIndexes(ctx, t.name, cols)
	if err != nil {
		return nil, err
	}
	for _, ix := range idx {
		colList := strings.Join(ix.columns, ", ")
		unique := ""
		if ix.unique {
			unique = "UNIQUE "
		}
		def := fmt.Sprintf("CREATE %sINDEX %s ON public.%s USING btree (%s)", unique, ix.name, t.name, colList)
		var condef, contype any
		switch ix.origin {
		case "pk":
			condef, contype = "PRIMARY KEY ("+colList+")", "p"
		case "u":
			condef, contype = "UNIQUE ("+colList+")", "u"
		}
		rs.rows = append(rs.rows, []any{ix.name, boolInt(ix.origin == "pk"), boolInt(ix.unique), int64(0), int64(1), def, condef, contype,
			int64(0), int64(0), int64(0), int64(0)})
	}
	return rs, nil
}

// ---------------------------------------------------------------------------
// Column names and types of expressions.

var (
	intLitRE   = regexp.MustCompile(`^-?\d+$`)
	floatLitRE = regexp.MustCompile(`^-?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?$|^-?\d+[eE][-+]?\d+$`)
	castRE     = regexp.MustCompile(`(?is)^cast\s*\(.*\s+as\s+([a-z0-9_ ()]+?)\s*\)$`)
	funcNameRE = regexp.MustCompile(`^(?i)([a-z_][a-z0-9_]*)\s*\(`)
	identRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)
)

// exprOID guesses the type of an undeclared result column from its
// expression text (SQLite names such a column after its expression).
func exprOID(expr string) uint32 {
	e := strings.TrimSpace(expr)
	switch {
	case strings.EqualFold(e, "true"), strings.EqualFold(e, "false"):
		return oidBool
	case intLitRE.MatchString(e):
		return oidInt8
	case floatLitRE.MatchString(e):
		return oidFloat8
	case strings.HasPrefix(e, "'"):
		return oidText
	}
	if m := castRE.FindStringSubmatch(e); m != nil {
		if oid, ok := declTypeOID(m[1]); ok {
			return oid
		}
	}
	if m := funcNameRE.FindStringSubmatch(e); m != nil {
		switch strings.ToLower(m[1]) {
		case "count", "length", "octet_length", "char_length", "instr", "unicode", "changes", "total_changes",
			"last_insert_rowid", "row_number", "rank", "dense_rank", "ntile", "random":
			return oidInt8
		case "avg", "total":
			return oidFloat8
		case "sum":
			return oidNumeric
		case "lower", "upper", "trim", "ltrim", "rtrim", "substr", "substring", "replace", "printf", "format",
			"group_concat", "string_agg", "hex", "quote", "typeof", "concat", "concat_ws", "datetime", "date",
			"time", "strftime", "json", "json_object", "json_array", "sqlite_version":
			return oidText
		}
	}
	return oidUnknown
}

// pgColumnName names a result column as PostgreSQL would: an undeclared
// expression column gets its function's name or "?column?".
func pgColumnName(col fsm.Column, stmtText string) string {
	n := col.Name
	if col.DeclType == "" && (strings.EqualFold(n, "true") || strings.EqualFold(n, "false")) {
		return "bool"
	}
	if col.DeclType != "" || identRE.MatchString(n) {
		return n
	}
	// A quoted alias appears verbatim in the statement: keep it.
	if strings.Contains(stmtText, `"`+n+`"`) {
		return n
	}
	if m := castRE.FindStringSubmatch(n); m != nil {
		if oid, ok := declTypeOID(m[1]); ok {
			switch oid {
			case oidInt4:
				return "int4"
			case oidInt8:
				return "int8"
			case oidInt2:
				return "int2"
			case oidFloat8:
				return "float8"
			case oidBool:
				return "bool"
			}
			return strings.ToLower(strings.Fields(m[1])[0])
		}
	}
	if m := funcNameRE.FindStringSubmatch(n); m != nil {
		return strings.ToLower(m[1])
	}
	return "?column?"
}

// ---------------------------------------------------------------------------
// Catalog views rewritten into SQLite subqueries.
//
// Drivers and ORMs ask information_schema.tables/columns/schemata and
// pg_catalog.pg_tables with their own WHERE and ORDER BY. Those views are
// replaced in the query text by subqueries over sqlite_master and
// pragma_table_info, and the query then runs through the Engine like any
// read, so its filters and joins are SQLite's.

func catalogTypeCase(expr string) string {
	key := "rtrim(lower(CASE WHEN instr(" + expr + ", '(') > 0 THEN substr(" + expr + ", 1, instr(" + expr + ", '(') - 1) ELSE " + expr + " END))"
	var b strings.Builder
	b.WriteString("CASE " + key)
	for _, d := range []string{"bool", "boolean", "bytea", "blob", "int8", "bigint", "bigserial", "int2", "smallint", "int", "integer",
		"int4", "serial", "text", "json", "jsonb", "float4", "real", "double", "double precision", "float8", "float", "varchar",
		"character varying", "char", "character", "date", "time", "timestamp", "datetime", "timestamptz",
		"timestamp with time zone", "numeric", "decimal", "uuid"} {
		oid, _ := declTypeOID(d)
		fmt.Fprintf(&b, " WHEN '%s' THEN '%s'", d, typeName(oid))
	}
	b.WriteString(" ELSE lower(" + expr + ") END")
	return b.String()
}

func (c *conn) catalogViews() map[string]string {
	db := strings.ReplaceAll(c.database, "'", "''")
	user := strings.ReplaceAll(c.user, "'", "''")
	userTables := `FROM sqlite_master m WHERE m.type IN ('table','view') AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\' AND m.name NOT LIKE '\_raftsql%' ESCAPE '\'`
	return map[string]string{
		"information_schema.tables": `(SELECT '` + db + `' AS table_catalog, 'public' AS table_schema, m.name AS table_name, ` +
			`CASE m.type WHEN 'view' THEN 'VIEW' ELSE 'BASE TABLE' END AS table_type, NULL AS self_referencing_column_name, ` +
			`NULL AS reference_generation, NULL AS user_defined_type_catalog, NULL AS user_defined_type_schema, NULL AS user_defined_type_name, ` +
			`'YES' AS is_insertable_into, 'NO' AS is_typed, NULL AS commit_action ` + userTables + `)`,
		"information_schema.columns": `(SELECT '` + db + `' AS table_catalog, 'public' AS table_schema, m.name AS table_name, p.name AS column_name, ` +
			`p.cid + 1 AS ordinal_position, p.dflt_value AS column_default, CASE WHEN p."notnull" OR p.pk > 0 THEN 'NO' ELSE 'YES' END AS is_nullable, ` +
			catalogTypeCase("p.type") + ` AS data_type, NULL AS character_maximum_length, NULL AS numeric_precision, NULL AS numeric_scale, ` +
			catalogTypeCase("p.type") + ` AS udt_name, 'NO' AS is_identity, 'NEVER' AS is_generated, 'YES' AS is_updatable ` +
			`FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type IN ('table','view') AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\' AND m.name NOT LIKE '\_raftsql%' ESCAPE '\')`,
		"information_schema.schemata": `(SELECT '` + db + `' AS catalog_name, 'public' AS schema_name, '` + user + `' AS schema_owner ` +
			`UNION ALL SELECT '` + db + `', 'information_schema', '` + user + `' UNION ALL SELECT '` + db + `', 'pg_catalog', '` + user + `')`,
		"pg_catalog.pg_tables": `(SELECT 'public' AS schemaname, m.name AS tablename, '` + user + `' AS tableowner, NULL AS tablespace, ` +
			`EXISTS (SELECT 1 FROM sqlite_master i WHERE i.type = 'index' AND i.tbl_name = m.name) AS hasindexes, 0 AS hasrules, 0 AS hastriggers, 0 AS rowsecurity ` +
			`FROM sqlite_master m WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\' AND m.name NOT LIKE '\_raftsql%' ESCAPE '\')`,
	}
}

// rewriteCatalogViews replaces the catalog views of text by subqueries;
// ok is false when text uses any catalog object it cannot replace.
func (c *conn) rewriteCatalogViews(text string) (string, bool) {
	toks, err := sqltext.Lex(text)
	if err != nil {
		return "", false
	}
	views := c.catalogViews()
	var out strings.Builder
	replaced := false
	var prevSig *sqltext.Token
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if i > 0 && toks[i-1].Kind != sqltext.TokSpace && toks[i-1].Kind != sqltext.TokComment {
			prevSig = &toks[i-1]
		}
		if t.Kind == sqltext.TokIdent {
			name := strings.ToLower(t.Text)
			schema := ""
			j := i
			if (name == "information_schema" || name == "pg_catalog") && i+2 < len(toks) && toks[i+1].Text == "." && toks[i+2].Kind == sqltext.TokIdent {
				schema, name, j = name, strings.ToLower(toks[i+2].Text), i+2
			}
			key := schema + "." + name
			if schema == "" && name == "pg_tables" {
				key = "pg_catalog.pg_tables"
			}
			if sub, ok := views[key]; ok {
				out.WriteString(sub)
				i = j
				replaced = true
				continue
			}
			if schema != "" {
				return "", false
			}
			for _, w := range catalogWords {
				if name == w {
					return "", false
				}
			}
			if strings.HasPrefix(name, "pg_") && prevSig != nil && (prevSig.IsKeyword("FROM") || prevSig.IsKeyword("JOIN")) {
				return "", false
			}
		}
		out.WriteString(t.Text)
	}
	return out.String(), replaced
}
