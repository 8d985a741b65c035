package pgwire

import (
	"errors"
	"testing"
	"time"
)

func TestParseTimeSetting(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ms   int64
		show string
	}{
		{"0", 0, "0"},
		{"5000", 5000, "5s"},
		{" 1500 ", 1500, "1500ms"},
		{"1.5s", 1500, "1500ms"},
		{"1.5", 2, "2ms"}, // rounded to whole milliseconds, half to even
		{"2.5", 2, "2ms"},
		{"2500us", 2, "2ms"},
		{"90 s", 90000, "90s"},
		{"120s", 120000, "2min"},
		{"60min", 3600000, "1h"},
		{"1d", 86400000, "1d"},
		{"36h", 129600000, "36h"},
		{"1e3", 1000, "1s"},
		{"+7ms", 7, "7ms"},
		{"2147483647", 2147483647, "2147483647ms"},
	} {
		ms, err := parseTimeSetting("statement_timeout", tc.in)
		if err != nil || ms != tc.ms {
			t.Errorf("%q: %d %v, want %d", tc.in, ms, err, tc.ms)
			continue
		}
		if got := formatTimeSetting(ms); got != tc.show {
			t.Errorf("%q: shown as %q, want %q", tc.in, got, tc.show)
		}
	}
	for _, in := range []string{"", "abc", "5 sec", "5S", "-1", "2147483648", "1e400", "1.2.3", "5e", "s", "."} {
		_, err := parseTimeSetting("statement_timeout", in)
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != codeInvalidParameterValue {
			t.Errorf("%q: %v, want 22023", in, err)
		}
	}
	if got := durationSetting(300 * time.Microsecond); got != "1ms" {
		t.Errorf("a sub-millisecond default shows as %q, want 1ms (never 0: off)", got)
	}
}

// FuzzTimeSetting: SET statement_timeout takes any client string.
func FuzzTimeSetting(f *testing.F) {
	for _, s := range []string{"0", "1.5s", "2min", "1e3", "-1", "5 sec", "99999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := parseTimeSetting("statement_timeout", s)
		if err != nil {
			return
		}
		if ms < 0 || time.Duration(ms)*time.Millisecond > maxTimeoutSetting {
			t.Fatalf("%q: %d ms out of range", s, ms)
		}
		back, err := parseTimeSetting("statement_timeout", formatTimeSetting(ms))
		if err != nil || back != ms {
			t.Fatalf("%q: %d ms -> %q -> %d %v", s, ms, formatTimeSetting(ms), back, err)
		}
	})
}
