package sqltext

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// capturesDir holds the PostgreSQL 15 wire captures of real clients.
const capturesDir = "../../shared/pgwire-captures"

// captureQueries returns every query text the captured clients sent: the
// "String" of Query messages and the "Query" of Parse messages in the .log
// files, and the catalog queries psql -E printed. It skips the test when
// the captures are not present.
func captureQueries(t testing.TB) []string {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(capturesDir, "*.log"))
	if len(logs) == 0 {
		t.Skipf("no captures in %s", capturesDir)
	}
	var out []string
	for _, name := range logs {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, "C->S") {
				continue
			}
			i := strings.IndexByte(line, '{')
			if i < 0 {
				continue
			}
			var m struct {
				Type   string
				String *string
				Query  *string
			}
			if err := json.Unmarshal([]byte(line[i:]), &m); err != nil {
				t.Fatalf("%s: %v in %q", name, err, line)
			}
			switch {
			case m.Type == "Query" && m.String != nil:
				out = append(out, *m.String)
			case m.Type == "Parse" && m.Query != nil:
				out = append(out, *m.Query)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	psql, err := os.ReadFile(filepath.Join(capturesDir, "psql_E.txt"))
	if err != nil {
		t.Fatal(err)
	}
	const open, end = "********* QUERY **********\n", "\n**************************"
	rest := string(psql)
	n := 0
	for {
		i := strings.Index(rest, open)
		if i < 0 {
			break
		}
		rest = rest[i+len(open):]
		j := strings.Index(rest, end)
		if j < 0 {
			t.Fatal("psql_E.txt: unterminated query block")
		}
		out = append(out, rest[:j])
		rest = rest[j+len(end):]
		n++
	}
	if n < 10 || len(out) < 30 {
		t.Fatalf("found only %d psql and %d total queries in the captures", n, len(out))
	}
	return out
}

func TestCapturesSplit(t *testing.T) {
	for _, q := range captureQueries(t) {
		sts, err := Split(q)
		if err != nil {
			t.Errorf("Split(%q): %v", q, err)
			continue
		}
		for _, s := range sts {
			if s.Kind == KindEmpty && strings.TrimSpace(q) != "-- ping" {
				t.Errorf("Split(%q): unexpected empty statement", q)
			}
			if strings.HasPrefix(strings.ToLower(s.Text), "select") && s.Kind != KindRead {
				t.Errorf("Split(%q): select classified %v", q, s.Kind)
			}
		}
	}
}
