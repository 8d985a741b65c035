package pgwire

import (
	"fmt"
	"testing"

	"github.com/raftsql/raftsql/fsm"
)

type stateErr struct {
	code string
	err  error
}

func (e stateErr) Error() string    { return e.code }
func (e stateErr) SQLState() string { return e.code }
func (e stateErr) Unwrap() error    { return e.err }

func TestFSMCodesMapToSQLSTATE(t *testing.T) {
	for code, want := range map[int]string{
		fsm.CodeConflict:           "40001",
		fsm.CodeStaleSequence:      "40001",
		fsm.CodeNotAllowed:         "0A000",
		fsm.CodeStepLimit:          "57014",
		fsm.CodeMultipleStatements: "42601",
		fsm.CodeBadParameter:       "22023",
		fsm.CodeReadOnly:           "25006",
		fsm.CodeCorruptCommand:     "XX001",
		2067:                       "23505", // SQLITE_CONSTRAINT_UNIQUE
	} {
		err := fmt.Errorf("wrapped: %w", &fsm.SQLError{Code: code, Message: "m"})
		if got := toErrorResponse(err, "", 0).Code; got != want {
			t.Errorf("code %d → %s, want %s", code, got, want)
		}
	}
	// An explicit SQLSTATE wins over the SQLite error it wraps.
	err := stateErr{code: "40001", err: &fsm.SQLError{Code: 5, Message: "busy"}}
	if got := toErrorResponse(err, "", 0).Code; got != "40001" {
		t.Errorf("SQLStater wrapping a SQLError → %s, want 40001", got)
	}
}
