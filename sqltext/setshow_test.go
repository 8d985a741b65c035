package sqltext

import (
	"errors"
	"testing"
)

func TestParseSet(t *testing.T) {
	tests := []struct {
		in   string
		want SetStmt
	}{
		{"SET raftsql.read_consistency = stale", SetStmt{Name: "raftsql.read_consistency", Value: "stale"}},
		{"set raftsql.read_consistency to 'lease';", SetStmt{Name: "raftsql.read_consistency", Value: "lease"}},
		{"SET SESSION DateStyle TO ISO, MDY", SetStmt{Name: "datestyle", Value: "iso, mdy"}},
		{"SET LOCAL statement_timeout = 0", SetStmt{Name: "statement_timeout", Value: "0", Local: true}},
		{"set extra_float_digits = 3", SetStmt{Name: "extra_float_digits", Value: "3"}},
		{"set extra_float_digits = -3", SetStmt{Name: "extra_float_digits", Value: "-3"}},
		{`set search_path to "$user", public`, SetStmt{Name: "search_path", Value: "$user, public"}},
		{"set application_name = 'it''s'", SetStmt{Name: "application_name", Value: "it's"}},
		{"set application_name = E'a\\'b'", SetStmt{Name: "application_name", Value: "a'b"}},
		{`set "MixedCase" = on`, SetStmt{Name: "MixedCase", Value: "on"}},
		{"set client_min_messages to warning", SetStmt{Name: "client_min_messages", Value: "warning"}},
		{"set x = default", SetStmt{Name: "x", Default: true}},
		{"set x to DEFAULT", SetStmt{Name: "x", Default: true}},
		{"SET TIME ZONE 'UTC'", SetStmt{Name: "timezone", Value: "UTC"}},
		{"SET TIME ZONE LOCAL", SetStmt{Name: "timezone", Default: true}},
		{"SET TIME ZONE -7", SetStmt{Name: "timezone", Value: "-7"}},
		{"set time zone interval '+02:00' hour to minute", SetStmt{Name: "timezone", Value: "+02:00"}},
		{"SET NAMES 'UTF8'", SetStmt{Name: "client_encoding", Value: "UTF8"}},
		{"SET SCHEMA 'public'", SetStmt{Name: "search_path", Value: "public"}},
		{"SET ROLE admin", SetStmt{Name: "role", Value: "admin"}},
		{"SET SESSION AUTHORIZATION 'bob'", SetStmt{Name: "session_authorization", Value: "bob"}},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", SetStmt{Name: "transaction_isolation", Value: "serializable"}},
		{"SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY", SetStmt{Name: "transaction_isolation", Value: "read committed"}},
		{"SET TRANSACTION READ ONLY", SetStmt{Name: "transaction_read_only", Value: "on"}},
		{"SET LOCAL TRANSACTION READ WRITE", SetStmt{Name: "transaction_read_only", Value: "off", Local: true}},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ", SetStmt{Name: "default_transaction_isolation", Value: "repeatable read"}},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION NOT DEFERRABLE", SetStmt{Name: "default_transaction_deferrable", Value: "off"}},
		{"set x = a.b", SetStmt{Name: "x", Value: "a.b"}},
		{"set x = 1.5", SetStmt{Name: "x", Value: "1.5"}},
	}
	for _, tt := range tests {
		got, err := ParseSetStmt(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSetStmt(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	if n, v, err := ParseSet("set x to default"); n != "x" || v != "DEFAULT" || err != nil {
		t.Errorf("ParseSet(default) = %q, %q, %v", n, v, err)
	}
	if n, v, err := ParseSet("set x = 'y'"); n != "x" || v != "y" || err != nil {
		t.Errorf("ParseSet = %q, %q, %v", n, v, err)
	}
}

func TestParseSetErrors(t *testing.T) {
	for _, in := range []string{
		"select 1", "set", "set x", "set x =", "set x = 1,", "set x = 1 2", "set x from current",
		"set = 1", "set x = (1)", "set transaction isolation level bogus", "set transaction", "set x = 'y",
		"set time zone interval 5",
	} {
		if _, err := ParseSetStmt(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseSetStmt(%q) err = %v, want ErrSyntax", in, err)
		}
	}
}

func TestParseShow(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SHOW transaction_read_only", "transaction_read_only"},
		{"show Server_Version;", "server_version"},
		{"show raftsql.read_consistency", "raftsql.read_consistency"},
		{`show "MixedCase"`, "MixedCase"},
		{"SHOW ALL", "all"},
		{"show time zone", "timezone"},
		{"show transaction isolation level", "transaction_isolation"},
		{"show session authorization", "session_authorization"},
		{"show", ""},
		{"show a b", ""},
		{"show a.", ""},
		{"select 1", ""},
		{"show 'x", ""},
	}
	for _, tt := range tests {
		if got := ParseShow(tt.in); got != tt.want {
			t.Errorf("ParseShow(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
