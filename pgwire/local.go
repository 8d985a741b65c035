package pgwire

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/raftsql/raftsql/sqltext"
)

// Settings: what SET stores and SHOW prints. Keys are lower-case.

// reportedSettings are sent as ParameterStatus at startup (PostgreSQL 15's
// GUC_REPORT set, in its order) and again when SET changes them.
var reportedSettings = []string{
	"application_name", "client_encoding", "DateStyle", "default_transaction_read_only",
	"in_hot_standby", "integer_datetimes", "IntervalStyle", "is_superuser", "server_encoding",
	"server_version", "session_authorization", "standard_conforming_strings", "TimeZone",
}

func isReported(name string) (string, bool) {
	for _, r := range reportedSettings {
		if strings.EqualFold(r, name) {
			return r, true
		}
	}
	return "", false
}

const settingConsistency = "raftsql.read_consistency"

// defaultSettings are a new session's settings, and what RESET returns
// to.
func (s *Server) defaultSettings() map[string]string {
	serverVersion := s.cfg.ServerVersion
	return map[string]string{
		"application_name":                    "",
		"client_encoding":                     "UTF8",
		"datestyle":                           "ISO, MDY",
		"integer_datetimes":                   "on",
		"intervalstyle":                       "postgres",
		"is_superuser":                        "on",
		"server_encoding":                     "UTF8",
		"server_version":                      serverVersion,
		"server_version_num":                  serverVersionNum(serverVersion),
		"session_authorization":               "",
		"standard_conforming_strings":         "on",
		"timezone":                            "UTC",
		"extra_float_digits":                  "1",
		"search_path":                         `"$user", public`,
		"statement_timeout":                   durationSetting(s.cfg.StatementTimeout),
		"lock_timeout":                        "0",
		"idle_in_transaction_session_timeout": durationSetting(s.cfg.IdleInTxTimeout),
		"transaction_isolation":               "serializable",
		"default_transaction_isolation":       "serializable",
		"max_identifier_length":               "63",
		"bytea_output":                        "hex",
		"escape_string_warning":               "on",
		"max_connections":                     maxConnectionsSetting(s.cfg.MaxConns),
		"block_size":                          "8192",
		"lc_collate":                          "C",
		"lc_ctype":                            "C",
		"lc_messages":                         "C",
		"synchronous_commit":                  "on",
		"role":                                "none",
		settingConsistency:                    "linearizable",
	}
}

// maxConnectionsSetting is what SHOW max_connections prints:
// Config.MaxConns, or PostgreSQL's default when there is no bound.
func maxConnectionsSetting(n int) string {
	if n <= 0 {
		return "100"
	}
	return strconv.Itoa(n)
}

func serverVersionNum(v string) string {
	major, rest, _ := strings.Cut(v, ".")
	minor := strings.TrimLeftFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = rest[:i]
	}
	ma, _ := strconv.Atoi(major)
	mi, _ := strconv.Atoi(minor)
	return strconv.Itoa(ma*10000 + mi)
}

func parseConsistency(v string) (Consistency, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "linearizable":
		return Linearizable, nil
	case "lease":
		return Lease, nil
	case "stale":
		return Stale, nil
	}
	return 0, &Error{Code: codeInvalidParameterValue,
		Message: fmt.Sprintf("invalid value for parameter %q: %q", settingConsistency, v),
		Hint:    "Available values: linearizable, lease, stale."}
}

// setSetting validates and stores one setting; it returns the
// ParameterStatus to send, if PostgreSQL would send one.
func (c *conn) setSetting(name, value string) (*pgproto3.ParameterStatus, error) {
	key := strings.ToLower(name)
	switch key {
	case settingConsistency:
		cons, err := parseConsistency(value)
		if err != nil {
			return nil, err
		}
		c.consistency = cons
		value = strings.ToLower(strings.TrimSpace(value))
	case "client_encoding", "names":
		key = "client_encoding"
		switch strings.ToUpper(strings.ReplaceAll(value, "-", "")) {
		case "UTF8", "UNICODE":
			value = "UTF8"
		default:
			return nil, &Error{Code: codeFeatureNotSupported, Message: fmt.Sprintf("client encoding %q is not supported: raftsql speaks UTF8 only", value)}
		}
	case "standard_conforming_strings":
		if b, ok := parseBool(value); !ok || !b {
			return nil, &Error{Code: codeFeatureNotSupported, Message: "standard_conforming_strings can only be on"}
		}
		value = "on"
	case "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout":
		ms, err := parseTimeSetting(key, value)
		if err != nil {
			return nil, err
		}
		value = formatTimeSetting(ms)
	case "server_version", "server_encoding", "server_version_num", "integer_datetimes", "is_superuser",
		"in_hot_standby", "max_connections", "block_size", "lc_collate", "lc_ctype":
		return nil, &Error{Code: "55P02", Message: fmt.Sprintf("parameter %q cannot be changed", key)}
	case "transaction_read_only":
		if b, ok := parseBool(value); ok {
			if c.txn == txnOpen {
				c.txnReadOnly = b
			}
			return nil, nil
		}
		return nil, &Error{Code: codeInvalidParameterValue, Message: fmt.Sprintf("invalid value for parameter %q: %q", key, value)}
	case "default_transaction_read_only":
		b, ok := parseBool(value)
		if !ok {
			return nil, &Error{Code: codeInvalidParameterValue, Message: fmt.Sprintf("invalid value for parameter %q: %q", key, value)}
		}
		value = onOff(b)
	case "timezone":
		if _, err := time.LoadLocation(value); err != nil && !strings.EqualFold(value, "utc") {
			if _, nerr := strconv.Atoi(value); nerr != nil {
				return nil, &Error{Code: codeInvalidParameterValue, Message: fmt.Sprintf("invalid value for parameter \"TimeZone\": %q", value)}
			}
		}
	}
	c.settings[key] = value
	if r, ok := isReported(key); ok {
		return &pgproto3.ParameterStatus{Name: r, Value: c.showSetting(key)}, nil
	}
	return nil, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// showSetting is the value SHOW prints for name ("" if unknown).
func (c *conn) showSetting(name string) string {
	key := strings.ToLower(name)
	leader := c.srv.cfg.Engine.IsLeader()
	switch key {
	case "transaction_read_only":
		if c.txnReadOnly || !leader {
			return "on"
		}
		return onOff(c.settings["default_transaction_read_only"] == "on")
	case "default_transaction_read_only":
		if !leader {
			return "on"
		}
		return onOff(c.settings[key] == "on")
	case "in_hot_standby":
		return onOff(!leader)
	}
	return c.settings[key]
}

func (c *conn) knownSetting(name string) bool {
	key := strings.ToLower(name)
	switch key {
	case "transaction_read_only", "default_transaction_read_only", "in_hot_standby":
		return true
	}
	_, ok := c.settings[key]
	return ok
}

func (c *conn) statementTimeout() time.Duration {
	ms, _ := parseTimeSetting("statement_timeout", c.settings["statement_timeout"])
	return time.Duration(ms) * time.Millisecond
}

func (c *conn) idleInTxTimeout() time.Duration {
	ms, _ := parseTimeSetting("idle_in_transaction_session_timeout", c.settings["idle_in_transaction_session_timeout"])
	return time.Duration(ms) * time.Millisecond
}

// maxTimeoutSetting is the largest value of PostgreSQL's millisecond
// settings (INT_MAX ms, about 24.9 days).
const maxTimeoutSetting = math.MaxInt32 * time.Millisecond

// timeUnits are PostgreSQL's units of time settings, largest first, in
// milliseconds ("us" only on input).
var timeUnits = []struct {
	name string
	ms   float64
}{{"d", 86400000}, {"h", 3600000}, {"min", 60000}, {"s", 1000}, {"ms", 1}, {"us", 0.001}}

// parseTimeSetting parses the value of a millisecond setting
// (statement_timeout, lock_timeout, idle_in_transaction_session_timeout)
// as PostgreSQL does: a number, optionally with a unit (us, ms, s, min,
// h, d; none means ms), rounded to whole milliseconds, within
// 0 .. 2147483647 ms.
func parseTimeSetting(name, value string) (int64, error) {
	bad := &Error{Code: codeInvalidParameterValue, Message: fmt.Sprintf("invalid value for parameter %q: %q", name, value)}
	v := strings.TrimLeft(value, " \t\n\r")
	i := 0
	if i < len(v) && (v[i] == '+' || v[i] == '-') {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
			n++
		}
		return n
	}
	n := digits()
	if i < len(v) && v[i] == '.' {
		i++
		n += digits()
	}
	if n == 0 {
		return 0, bad
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		j := i
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		if digits() == 0 {
			i = j // "5e" is a number followed by junk
		}
	}
	num, err := strconv.ParseFloat(v[:i], 64)
	if err != nil {
		return 0, bad
	}
	unit := strings.TrimRight(strings.TrimLeft(v[i:], " \t\n\r"), " \t\n\r")
	if unit != "" {
		known := false
		for _, u := range timeUnits {
			if u.name == unit {
				num *= u.ms
				known = true
			}
		}
		if !known {
			bad.Hint = `Valid units for this parameter are "us", "ms", "s", "min", "h", and "d".`
			return 0, bad
		}
	}
	num = math.RoundToEven(num)
	if math.IsNaN(num) || num < 0 || num > math.MaxInt32 {
		shown := strconv.FormatFloat(num, 'g', -1, 64)
		return 0, &Error{Code: codeInvalidParameterValue,
			Message: fmt.Sprintf("%s ms is outside the valid range for parameter %q (0 .. %d)", shown, name, math.MaxInt32)}
	}
	return int64(num), nil
}

// formatTimeSetting is how SHOW prints a millisecond setting: in the
// largest unit that divides it ("0", "250ms", "5s", "2min", "1h", "1d").
func formatTimeSetting(ms int64) string {
	if ms <= 0 {
		return strconv.FormatInt(ms, 10)
	}
	for _, u := range timeUnits[:5] {
		if ms%int64(u.ms) == 0 {
			return strconv.FormatInt(ms/int64(u.ms), 10) + u.name
		}
	}
	return strconv.FormatInt(ms, 10) + "ms"
}

// durationSetting is the setting value of a configured default.
func durationSetting(d time.Duration) string {
	ms := d.Milliseconds()
	if d > 0 && ms == 0 {
		ms = 1 // a positive limit never turns into "no limit"
	}
	return formatTimeSetting(ms)
}

// parseStartupOptions reads the startup "options" parameter: -c name=value
// and --name=value, separated by spaces (backslash escapes a space).
func parseStartupOptions(s string) (map[string]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case ch == ' ' || ch == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	opts := make(map[string]string)
	for i := 0; i < len(words); i++ {
		w := words[i]
		var kv string
		switch {
		case w == "-c" && i+1 < len(words):
			i++
			kv = words[i]
		case strings.HasPrefix(w, "-c"):
			kv = w[2:]
		case strings.HasPrefix(w, "--"):
			kv = w[2:]
		default:
			return nil, &Error{Code: codeProtocolViolation, Message: fmt.Sprintf("invalid command-line argument for server process: %s", w)}
		}
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, &Error{Code: "42601", Message: fmt.Sprintf("-c %s requires a value", kv)}
		}
		opts[strings.ReplaceAll(name, "-", "_")] = val
	}
	return opts, nil
}

// ---------------------------------------------------------------------------
// Statements the front end answers.

// runLocal executes a statement answered by the front end.
func (c *conn) runLocal(ctx context.Context, ps *prepared, args []any) (*resultSet, error) {
	st := ps.st
	switch st.Kind {
	case sqltext.KindBegin:
		return c.begin(st)
	case sqltext.KindCommit:
		return c.commit(ctx)
	case sqltext.KindRollback:
		return c.rollback(), nil
	case sqltext.KindSet:
		return c.set(st)
	case sqltext.KindShow:
		return c.show(st)
	case sqltext.KindOther:
		return c.other(st)
	case sqltext.KindRead:
		return c.localQuery(ctx, st.Text)
	}
	return nil, newError(codeFeatureNotSupported, ErrNotSupported, "statement not supported: %s", st.Verb)
}

// localFields describes a local statement before it runs.
func (c *conn) localFields(ctx context.Context, ps *prepared) ([]field, error) {
	switch ps.st.Kind {
	case sqltext.KindShow:
		name := sqltext.ParseShow(ps.st.Text)
		if name == "all" {
			return []field{{"name", oidText}, {"setting", oidText}, {"description", oidText}}, nil
		}
		return []field{{showColumnName(name), oidText}}, nil
	case sqltext.KindRead:
		rs, err := c.localQuery(ctx, ps.st.Text)
		if err != nil {
			return nil, err
		}
		return rs.fields, nil
	}
	return nil, nil
}

func showColumnName(name string) string {
	if r, ok := isReported(name); ok {
		return r
	}
	return name
}

func (c *conn) begin(st sqltext.Statement) (*resultSet, error) {
	tag := st.Verb
	if tag != "START TRANSACTION" {
		tag = "BEGIN"
	}
	rs := &resultSet{tag: tag}
	if c.txn != txnIdle {
		rs.pre = append(rs.pre, notice("WARNING", codeActiveTxn, "there is already a transaction in progress"))
		return rs, nil
	}
	c.txn = txnOpen
	c.txnWrites = nil
	c.txnNoticed = false
	up := strings.ToUpper(st.Text)
	c.txnReadOnly = c.settings["default_transaction_read_only"] == "on"
	if containsWord(up, "READ") {
		switch {
		case strings.Contains(strings.Join(strings.Fields(up), " "), "READ ONLY"):
			c.txnReadOnly = true
		case strings.Contains(strings.Join(strings.Fields(up), " "), "READ WRITE"):
			c.txnReadOnly = false
		}
	}
	return rs, nil
}

func (c *conn) endTxn() {
	if c.tx != nil {
		c.tx.Rollback()
		c.tx = nil
	}
	c.txn = txnIdle
	c.txnWrites = nil
	c.txnReadOnly = false
	c.txnNoticed = false
}

func (c *conn) commit(ctx context.Context) (*resultSet, error) {
	switch c.txn {
	case txnIdle:
		return &resultSet{tag: "COMMIT", pre: []pgproto3.BackendMessage{
			notice("WARNING", codeNoActiveTxn, "there is no transaction in progress")}}, nil
	case txnFailed:
		c.endTxn()
		return &resultSet{tag: "ROLLBACK"}, nil
	}
	if tx := c.tx; tx != nil {
		c.tx = nil
		c.endTxn()
		qctx, done := c.startQuery(ctx)
		err := c.queryErr(qctx, tx.Commit(qctx))
		done()
		if err != nil {
			return nil, fmt.Errorf("COMMIT failed, the transaction was rolled back: %w", err)
		}
		return &resultSet{tag: "COMMIT"}, nil
	}
	writes := c.txnWrites
	c.endTxn()
	if len(writes) == 0 {
		return &resultSet{tag: "COMMIT"}, nil
	}
	qctx, done := c.startQuery(ctx)
	res, err := c.sess.Write(qctx, writes)
	err = c.queryErr(qctx, err)
	done()
	if err != nil {
		return nil, fmt.Errorf("COMMIT failed, the transaction was rolled back: %w", err)
	}
	for i, r := range res {
		if r.Err != nil {
			return nil, &Error{Code: sqliteState(r.Err), Message: r.Err.Message,
				Detail: fmt.Sprintf("statement %d of the transaction failed at COMMIT; the transaction was rolled back", i+1), Err: r.Err}
		}
	}
	return &resultSet{tag: "COMMIT"}, nil
}

func (c *conn) rollback() *resultSet {
	if c.txn == txnIdle {
		return &resultSet{tag: "ROLLBACK", pre: []pgproto3.BackendMessage{
			notice("WARNING", codeNoActiveTxn, "there is no transaction in progress")}}
	}
	c.endTxn()
	return &resultSet{tag: "ROLLBACK"}
}

func (c *conn) set(st sqltext.Statement) (*resultSet, error) {
	s, err := sqltext.ParseSetStmt(st.Text)
	if err != nil {
		return nil, err
	}
	rs := &resultSet{tag: "SET"}
	switch s.Name {
	case "transaction_isolation", "default_transaction_isolation", "transaction_deferrable", "default_transaction_deferrable":
		return rs, nil // every transaction is serializable
	case "role", "session_authorization":
		return rs, nil
	}
	value := s.Value
	if s.Default {
		value = c.srv.defaultSettings()[s.Name]
		if s.Name == "session_authorization" {
			value = c.user
		}
	}
	ps, err := c.setSetting(s.Name, value)
	if err != nil {
		return nil, err
	}
	if ps != nil {
		rs.pre = append(rs.pre, ps)
	}
	return rs, nil
}

func (c *conn) show(st sqltext.Statement) (*resultSet, error) {
	name := sqltext.ParseShow(st.Text)
	if name == "" {
		return nil, &Error{Code: codeSyntaxError, Message: "syntax error in SHOW"}
	}
	if name == "all" {
		names := make([]string, 0, len(c.settings)+3)
		for k := range c.settings {
			names = append(names, k)
		}
		names = append(names, "transaction_read_only", "in_hot_standby")
		sort.Strings(names)
		rs := &resultSet{fields: []field{{"name", oidText}, {"setting", oidText}, {"description", oidText}}, tag: "SHOW"}
		for _, n := range names {
			if n == "default_transaction_read_only" && len(rs.rows) > 0 && rs.rows[len(rs.rows)-1][0] == n {
				continue
			}
			rs.rows = append(rs.rows, []any{n, c.showSetting(n), ""})
		}
		return rs, nil
	}
	if !c.knownSetting(name) {
		return nil, &Error{Code: codeUndefinedObject, Message: fmt.Sprintf("unrecognized configuration parameter %q", name)}
	}
	return &resultSet{fields: []field{{showColumnName(name), oidText}}, rows: [][]any{{c.showSetting(name)}}, tag: "SHOW"}, nil
}

func (c *conn) other(st sqltext.Statement) (*resultSet, error) {
	words := strings.Fields(strings.ToUpper(st.Text))
	first := ""
	if len(words) > 0 {
		first = strings.Trim(words[0], ";")
	}
	switch first {
	case "RESET":
		if len(words) < 2 {
			return nil, &Error{Code: codeSyntaxError, Message: "syntax error at end of input"}
		}
		name := strings.ToLower(strings.Trim(strings.Fields(st.Text)[1], `";`))
		rs := &resultSet{tag: "RESET"}
		if name == "all" {
			c.resetAll(rs)
			return rs, nil
		}
		def, ok := c.srv.defaultSettings()[name]
		if !ok {
			return rs, nil
		}
		ps, err := c.setSetting(name, def)
		if err != nil {
			return nil, err
		}
		if ps != nil {
			rs.pre = append(rs.pre, ps)
		}
		return rs, nil
	case "DISCARD":
		if c.txn != txnIdle {
			return nil, &Error{Code: codeActiveTxn, Message: "DISCARD ALL cannot run inside a transaction block"}
		}
		rs := &resultSet{tag: st.Verb}
		if st.Verb == "DISCARD ALL" {
			c.resetAll(rs)
			clear(c.stmts)
			clear(c.portals)
		}
		return rs, nil
	case "DEALLOCATE":
		if st.Verb == "DEALLOCATE ALL" {
			clear(c.stmts)
			return &resultSet{tag: "DEALLOCATE ALL"}, nil
		}
		f := strings.Fields(st.Text)
		name := strings.Trim(f[len(f)-1], `";`)
		if _, ok := c.stmts[name]; !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownStatement, name)
		}
		delete(c.stmts, name)
		return &resultSet{tag: "DEALLOCATE"}, nil
	case "UNLISTEN":
		return &resultSet{tag: "UNLISTEN"}, nil // nothing is ever listened to
	case "SAVEPOINT", "RELEASE":
		// Trivial savepoints are accepted: as long as nothing is rolled
		// back to one, SAVEPOINT and RELEASE change nothing. ROLLBACK TO
		// is refused, failing the whole transaction (never a partial one).
		if c.txn == txnIdle {
			return nil, &Error{Code: codeNoActiveTxn, Message: first + " can only be used in transaction blocks"}
		}
		return &resultSet{tag: first}, nil
	case "ROLLBACK":
		return nil, newError(codeFeatureNotSupported, ErrNotSupported, "ROLLBACK TO SAVEPOINT is not supported; the transaction is aborted")
	case "LISTEN", "NOTIFY":
		return nil, newError(codeFeatureNotSupported, ErrNotSupported, "%s is not supported", first)
	case "COPY":
		return nil, newError(codeFeatureNotSupported, ErrNotSupported, "COPY is not supported; use INSERT")
	}
	return nil, newError(codeFeatureNotSupported, ErrNotSupported, "statement not supported: %s", st.Verb)
}

func (c *conn) resetAll(rs *resultSet) {
	defs := c.srv.defaultSettings()
	defs["session_authorization"] = c.user
	for k, v := range defs {
		if c.settings[k] != v {
			c.settings[k] = v
			if r, ok := isReported(k); ok {
				rs.pre = append(rs.pre, &pgproto3.ParameterStatus{Name: r, Value: c.showSetting(k)})
			}
		}
	}
	c.consistency = Linearizable
}

// containsWord reports whether s contains word (case-insensitive) as a
// whole word.
func containsWord(s, word string) bool {
	ls, lw := strings.ToLower(s), strings.ToLower(word)
	for i := 0; ; {
		j := strings.Index(ls[i:], lw)
		if j < 0 {
			return false
		}
		j += i
		before := j == 0 || !isWordChar(ls[j-1])
		after := j+len(lw) == len(ls) || !isWordChar(ls[j+len(lw)])
		if before && after {
			return true
		}
		i = j + 1
	}
}

func isWordChar(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// otherCommands are statements of KindOther that PostgreSQL knows; the
// front end runs some and refuses the rest with 0A000. Any other first
// word is a syntax error, as in PostgreSQL.
var otherCommands = map[string]bool{
	"RESET": true, "DISCARD": true, "DEALLOCATE": true, "UNLISTEN": true, "LISTEN": true, "NOTIFY": true,
	"SAVEPOINT": true, "RELEASE": true, "ROLLBACK": true, "COPY": true, "PREPARE": true, "EXECUTE": true,
	"GRANT": true, "REVOKE": true, "VACUUM": true, "CHECKPOINT": true, "CLUSTER": true, "LOCK": true,
	"CALL": true, "DO": true, "COMMENT": true, "SECURITY": true, "REFRESH": true, "IMPORT": true,
	"LOAD": true, "FETCH": true, "MOVE": true, "CLOSE": true, "DECLARE": true, "SET": true, "COMMIT": true,
	"ABORT": true, "REASSIGN": true, "ATTACH": true, "DETACH": true,
}

// checkOther refuses a KindOther statement whose first word is no SQL
// command with 42601 and a position, as PostgreSQL's parser does.
func checkOther(st sqltext.Statement) error {
	f := strings.Fields(st.Text)
	if len(f) == 0 {
		return nil
	}
	w := strings.TrimRight(f[0], ";(")
	if otherCommands[strings.ToUpper(w)] {
		return nil
	}
	return &Error{Code: codeSyntaxError, Message: fmt.Sprintf("syntax error at or near %q", w), Position: int32(st.Offset) + 1}
}
