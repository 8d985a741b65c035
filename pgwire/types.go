package pgwire

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// PostgreSQL type OIDs the front end speaks.
const (
	oidUnknown     uint32 = 0
	oidBool        uint32 = 16
	oidBytea       uint32 = 17
	oidName        uint32 = 19
	oidInt8        uint32 = 20
	oidInt2        uint32 = 21
	oidInt4        uint32 = 23
	oidText        uint32 = 25
	oidOID         uint32 = 26
	oidJSON        uint32 = 114
	oidFloat4      uint32 = 700
	oidFloat8      uint32 = 701
	oidBPChar      uint32 = 1042
	oidVarchar     uint32 = 1043
	oidDate        uint32 = 1082
	oidTime        uint32 = 1083
	oidTimestamp   uint32 = 1114
	oidTimestamptz uint32 = 1184
	oidNumeric     uint32 = 1700
	oidUUID        uint32 = 2950
	oidJSONB       uint32 = 3802
	oidChar        uint32 = 18
)

// typeSize is the RowDescription DataTypeSize of an OID.
func typeSize(oid uint32) int16 {
	switch oid {
	case oidBool, oidChar:
		return 1
	case oidInt2:
		return 2
	case oidInt4, oidFloat4, oidDate, oidOID:
		return 4
	case oidInt8, oidFloat8, oidTime, oidTimestamp, oidTimestamptz:
		return 8
	case oidUUID:
		return 16
	case oidName:
		return 64
	}
	return -1
}

// typeName is the PostgreSQL name of an OID (format_type, column names of
// casts).
func typeName(oid uint32) string {
	switch oid {
	case oidBool:
		return "boolean"
	case oidBytea:
		return "bytea"
	case oidInt8:
		return "bigint"
	case oidInt2:
		return "smallint"
	case oidInt4:
		return "integer"
	case oidText:
		return "text"
	case oidJSON:
		return "json"
	case oidFloat4:
		return "real"
	case oidFloat8:
		return "double precision"
	case oidVarchar:
		return "character varying"
	case oidBPChar:
		return "character"
	case oidDate:
		return "date"
	case oidTime:
		return "time without time zone"
	case oidTimestamp:
		return "timestamp without time zone"
	case oidTimestamptz:
		return "timestamp with time zone"
	case oidNumeric:
		return "numeric"
	case oidUUID:
		return "uuid"
	case oidJSONB:
		return "jsonb"
	case oidName:
		return "name"
	case oidOID:
		return "oid"
	case oidChar:
		return "\"char\""
	}
	return "unknown"
}

// declTypeOID maps an SQLite declared column type (as written in CREATE
// TABLE, any case, with or without a size) to a PostgreSQL OID; ok is
// false when the declared type says nothing (empty).
func declTypeOID(decl string) (uint32, bool) {
	d := strings.ToLower(strings.TrimSpace(decl))
	if i := strings.IndexByte(d, '('); i >= 0 {
		d = strings.TrimSpace(d[:i])
	}
	d = strings.Join(strings.Fields(d), " ")
	if d == "" {
		return oidUnknown, false
	}
	switch d {
	case "bool", "boolean":
		return oidBool, true
	case "bytea", "blob":
		return oidBytea, true
	case "int8", "bigint", "bigserial", "serial8":
		return oidInt8, true
	case "int2", "smallint", "smallserial", "serial2":
		return oidInt2, true
	case "int", "integer", "int4", "serial", "serial4", "mediumint":
		return oidInt4, true
	case "text", "clob", "string":
		return oidText, true
	case "json":
		return oidJSON, true
	case "jsonb":
		return oidJSONB, true
	case "float4":
		return oidFloat4, true
	case "real", "double", "double precision", "float8", "float":
		return oidFloat8, true
	case "varchar", "character varying", "char", "character", "bpchar", "nvarchar", "nchar", "varying character", "native character":
		return oidVarchar, true
	case "date":
		return oidDate, true
	case "time", "time without time zone":
		return oidTime, true
	case "timestamp", "timestamp without time zone", "datetime":
		return oidTimestamp, true
	case "timestamptz", "timestamp with time zone":
		return oidTimestamptz, true
	case "numeric", "decimal":
		return oidNumeric, true
	case "uuid":
		return oidUUID, true
	case "name":
		return oidName, true
	case "oid", "regclass", "regproc", "regtype":
		return oidOID, true
	}
	// SQLite's affinity rules (https://sqlite.org/datatype3.html §3.1).
	switch {
	case strings.Contains(d, "int"):
		return oidInt8, true
	case strings.Contains(d, "char"), strings.Contains(d, "clob"), strings.Contains(d, "text"):
		return oidText, true
	case strings.Contains(d, "blob"):
		return oidBytea, true
	case strings.Contains(d, "real"), strings.Contains(d, "floa"), strings.Contains(d, "doub"):
		return oidFloat8, true
	}
	return oidNumeric, true
}

// valueOID picks an OID for a value of an undeclared column.
func valueOID(v any) uint32 {
	switch v.(type) {
	case int64, int, int32, bool:
		return oidInt8
	case float64:
		return oidFloat8
	case []byte:
		return oidBytea
	case string:
		return oidText
	}
	return oidUnknown
}

// ---------------------------------------------------------------------------
// Results: SQLite value → wire bytes.

// encodeValue encodes v (nil, int64, float64, string, []byte, bool) as
// type oid in format (0 text, 1 binary). nil encodes as SQL NULL (nil).
func encodeValue(v any, oid uint32, format int16) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	if format == 0 {
		return encodeText(v, oid), nil
	}
	return encodeBinary(v, oid)
}

func encodeText(v any, oid uint32) []byte {
	switch oid {
	case oidDate, oidTimestamp, oidTimestamptz:
		if t, ok := parseTimeValue(v); ok {
			switch oid {
			case oidDate:
				return []byte(t.Format("2006-01-02"))
			case oidTimestamp:
				return []byte(t.Format("2006-01-02 15:04:05.999999"))
			}
			return []byte(t.UTC().Format("2006-01-02 15:04:05.999999") + "+00")
		}
	}
	switch x := v.(type) {
	case int64:
		if oid == oidBool {
			return boolText(x != 0)
		}
		return strconv.AppendInt(nil, x, 10)
	case int:
		return encodeText(int64(x), oid)
	case bool:
		return boolText(x)
	case float64:
		if oid == oidBool {
			return boolText(x != 0)
		}
		return []byte(formatFloat(x, 64))
	case string:
		if oid == oidBool {
			if b, ok := parseBool(x); ok {
				return boolText(b)
			}
		}
		if oid == oidBytea && !isHexBytea(x) {
			return []byte(`\x` + hex.EncodeToString([]byte(x)))
		}
		return []byte(x)
	case []byte:
		switch oid {
		case oidText, oidVarchar, oidBPChar, oidJSON, oidJSONB, oidName, oidUnknown:
			if oid != oidUnknown {
				return x
			}
		}
		return []byte(`\x` + hex.EncodeToString(x))
	}
	return []byte(fmt.Sprint(v))
}

// isHexBytea reports whether s is bytea's hex text form (\x...), which a
// client that inlines bytea literals (simple protocol) leaves in a
// bytea column as text.
func isHexBytea(s string) bool {
	if len(s) < 2 || s[0] != '\\' || s[1] != 'x' || len(s)%2 != 0 {
		return false
	}
	_, err := hex.DecodeString(s[2:])
	return err == nil
}

func boolText(b bool) []byte {
	if b {
		return []byte("t")
	}
	return []byte("f")
}

func formatFloat(f float64, bits int) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "t", "true", "1", "on", "yes", "y":
		return true, true
	case "f", "false", "0", "off", "no", "n":
		return false, true
	}
	return false, false
}

func errEncode(v any, oid uint32) error {
	return &Error{Code: codeInvalidText, Message: fmt.Sprintf("cannot send value %q as type %s", fmt.Sprint(v), typeName(oid))}
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case float64:
		if x == math.Trunc(x) && x >= math.MinInt64 && x <= math.MaxInt64 {
			return int64(x), true
		}
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	case []byte:
		return toInt64(string(x))
	}
	return 0, false
}

func toFloat64(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	case []byte:
		return toFloat64(string(x))
	}
	return 0, false
}

func toText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return string(encodeText(v, oidText))
}

func encodeBinary(v any, oid uint32) ([]byte, error) {
	switch oid {
	case oidBool:
		var b bool
		switch x := v.(type) {
		case string:
			var ok bool
			if b, ok = parseBool(x); !ok {
				return nil, errEncode(v, oid)
			}
		default:
			n, ok := toInt64(v)
			if !ok {
				f, fok := toFloat64(v)
				if !fok {
					return nil, errEncode(v, oid)
				}
				n = int64(f)
				if f != 0 {
					n = 1
				}
			}
			b = n != 0
		}
		if b {
			return []byte{1}, nil
		}
		return []byte{0}, nil
	case oidInt2, oidInt4, oidInt8, oidOID:
		n, ok := toInt64(v)
		if !ok {
			return nil, errEncode(v, oid)
		}
		switch oid {
		case oidInt2:
			if n < math.MinInt16 || n > math.MaxInt16 {
				return nil, &Error{Code: codeNumericOutOfRange, Message: "smallint out of range"}
			}
			return binary.BigEndian.AppendUint16(nil, uint16(n)), nil
		case oidInt4:
			if n < math.MinInt32 || n > math.MaxInt32 {
				return nil, &Error{Code: codeNumericOutOfRange, Message: "integer out of range"}
			}
			return binary.BigEndian.AppendUint32(nil, uint32(n)), nil
		case oidOID:
			return binary.BigEndian.AppendUint32(nil, uint32(n)), nil
		}
		return binary.BigEndian.AppendUint64(nil, uint64(n)), nil
	case oidFloat4:
		f, ok := toFloat64(v)
		if !ok {
			return nil, errEncode(v, oid)
		}
		return binary.BigEndian.AppendUint32(nil, math.Float32bits(float32(f))), nil
	case oidFloat8:
		f, ok := toFloat64(v)
		if !ok {
			return nil, errEncode(v, oid)
		}
		return binary.BigEndian.AppendUint64(nil, math.Float64bits(f)), nil
	case oidBytea:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			if isHexBytea(x) {
				return hex.DecodeString(x[2:])
			}
			return []byte(x), nil
		}
		return encodeText(v, oidText), nil
	case oidNumeric:
		return encodeNumericBinary(v)
	case oidTimestamp, oidTimestamptz:
		t, ok := parseTimeValue(v)
		if !ok {
			return nil, errEncode(v, oid)
		}
		return binary.BigEndian.AppendUint64(nil, uint64(t.Sub(pgEpoch).Microseconds())), nil
	case oidDate:
		t, ok := parseTimeValue(v)
		if !ok {
			return nil, errEncode(v, oid)
		}
		days := int32(math.Floor(float64(t.Sub(pgEpoch)) / float64(24*time.Hour)))
		return binary.BigEndian.AppendUint32(nil, uint32(days)), nil
	case oidTime:
		s := toText(v)
		t, err := time.Parse("15:04:05.999999999", s)
		if err != nil {
			return nil, errEncode(v, oid)
		}
		us := int64(t.Hour())*3600e6 + int64(t.Minute())*60e6 + int64(t.Second())*1e6 + int64(t.Nanosecond()/1000)
		return binary.BigEndian.AppendUint64(nil, uint64(us)), nil
	case oidUUID:
		s := strings.ReplaceAll(strings.Trim(toText(v), "{}"), "-", "")
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 16 {
			if x, ok := v.([]byte); ok && len(x) == 16 {
				return x, nil
			}
			return nil, errEncode(v, oid)
		}
		return b, nil
	case oidJSONB:
		return append([]byte{1}, toText(v)...), nil
	}
	// text-like types (text, varchar, json, name, unknown): text bytes.
	return []byte(toText(v)), nil
}

var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// parseTimeValue reads a date/time value stored by SQLite as text
// (ISO-8601), or as a Unix time in seconds.
func parseTimeValue(v any) (time.Time, bool) {
	switch x := v.(type) {
	case int64:
		return time.Unix(x, 0).UTC(), true
	case float64:
		sec, frac := math.Modf(x)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
	}
	s := strings.TrimSpace(toText(v))
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// encodeNumericBinary encodes a number as PostgreSQL's binary numeric:
// ndigits, weight, sign, dscale, then base-10000 digits.
func encodeNumericBinary(v any) ([]byte, error) {
	var s string
	switch x := v.(type) {
	case int64:
		s = strconv.FormatInt(x, 10)
	case float64:
		if math.IsNaN(x) {
			return []byte{0, 0, 0, 0, 0xC0, 0, 0, 0}, nil
		}
		if math.IsInf(x, 0) {
			return nil, errEncode(v, oidNumeric)
		}
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		s = strings.TrimSpace(toText(v))
	}
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	} else {
		s = strings.TrimPrefix(s, "+")
	}
	if strings.ContainsAny(s, "eE") {
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			return nil, errEncode(v, oidNumeric)
		}
		s = r.FloatString(20)
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	intPart, frac, _ := strings.Cut(s, ".")
	for _, c := range intPart + frac {
		if c < '0' || c > '9' {
			return nil, errEncode(v, oidNumeric)
		}
	}
	if intPart == "" && frac == "" {
		return nil, errEncode(v, oidNumeric)
	}
	dscale := len(frac)
	intPart = strings.TrimLeft(intPart, "0")
	// Pad the integer part on the left and the fraction on the right to
	// multiples of 4 digits.
	if r := len(intPart) % 4; r != 0 {
		intPart = strings.Repeat("0", 4-r) + intPart
	}
	if r := len(frac) % 4; r != 0 {
		frac += strings.Repeat("0", 4-r)
	}
	all := intPart + frac
	digits := make([]int16, 0, len(all)/4)
	for i := 0; i < len(all); i += 4 {
		d, _ := strconv.Atoi(all[i : i+4])
		digits = append(digits, int16(d))
	}
	weight := len(intPart)/4 - 1
	// Strip leading zero groups (adjusting weight) and trailing zeros.
	for len(digits) > 0 && digits[0] == 0 {
		digits = digits[1:]
		weight--
	}
	for len(digits) > 0 && digits[len(digits)-1] == 0 {
		digits = digits[:len(digits)-1]
	}
	sign := uint16(0)
	if neg && len(digits) > 0 {
		sign = 0x4000
	}
	if len(digits) == 0 {
		weight = 0
	}
	b := binary.BigEndian.AppendUint16(nil, uint16(len(digits)))
	b = binary.BigEndian.AppendUint16(b, uint16(int16(weight)))
	b = binary.BigEndian.AppendUint16(b, sign)
	b = binary.BigEndian.AppendUint16(b, uint16(dscale))
	for _, d := range digits {
		b = binary.BigEndian.AppendUint16(b, uint16(d))
	}
	return b, nil
}

// decodeNumericBinary is the inverse of encodeNumericBinary, to text.
func decodeNumericBinary(b []byte) (string, error) {
	if len(b) < 8 {
		return "", errBinaryParam("numeric")
	}
	n := int(binary.BigEndian.Uint16(b))
	weight := int(int16(binary.BigEndian.Uint16(b[2:])))
	sign := binary.BigEndian.Uint16(b[4:])
	dscale := int(binary.BigEndian.Uint16(b[6:]))
	if len(b) != 8+2*n || dscale > 1000 || weight > 1000 || weight < -1000 {
		return "", errBinaryParam("numeric")
	}
	switch sign {
	case 0xC000:
		return "NaN", nil
	case 0xD000:
		return "Infinity", nil
	case 0xF000:
		return "-Infinity", nil
	case 0, 0x4000:
	default:
		return "", errBinaryParam("numeric")
	}
	var ip, fp strings.Builder
	for i := 0; i <= weight; i++ {
		d := 0
		if i < n {
			d = int(binary.BigEndian.Uint16(b[8+2*i:]))
		}
		if d > 9999 {
			return "", errBinaryParam("numeric")
		}
		if ip.Len() == 0 {
			if d != 0 {
				ip.WriteString(strconv.Itoa(d))
			}
		} else {
			fmt.Fprintf(&ip, "%04d", d)
		}
	}
	for i := weight + 1; i < n; i++ {
		if i < 0 {
			continue
		}
		d := int(binary.BigEndian.Uint16(b[8+2*i:]))
		if d > 9999 {
			return "", errBinaryParam("numeric")
		}
		fmt.Fprintf(&fp, "%04d", d)
	}
	// Leading zero groups of a number below 1 (weight < -1).
	frac := fp.String()
	if weight < -1 {
		frac = strings.Repeat("0000", -weight-1) + frac
	}
	if len(frac) < dscale {
		frac += strings.Repeat("0", dscale-len(frac))
	}
	frac = frac[:dscale]
	s := ip.String()
	if s == "" {
		s = "0"
	}
	if dscale > 0 {
		s += "." + frac
	}
	if sign == 0x4000 {
		s = "-" + s
	}
	return s, nil
}

// ---------------------------------------------------------------------------
// Parameters: wire bytes → SQLite value.

func errBinaryParam(typ string) error {
	return &Error{Code: codeBinaryRepresentation, Message: "incorrect binary data format in bind parameter of type " + typ}
}

// decodeParam converts one Bind parameter to an SQLite value.
func decodeParam(b []byte, oid uint32, format int16) (any, error) {
	if b == nil {
		return nil, nil
	}
	if format == 0 {
		s := string(b)
		switch oid {
		case oidInt2, oidInt4, oidInt8, oidOID:
			n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return nil, &Error{Code: codeInvalidText, Message: fmt.Sprintf("invalid input syntax for type %s: %q", typeName(oid), s)}
			}
			return n, nil
		case oidFloat4, oidFloat8:
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return nil, &Error{Code: codeInvalidText, Message: fmt.Sprintf("invalid input syntax for type %s: %q", typeName(oid), s)}
			}
			return f, nil
		case oidBool:
			v, ok := parseBool(s)
			if !ok {
				return nil, &Error{Code: codeInvalidText, Message: fmt.Sprintf("invalid input syntax for type boolean: %q", s)}
			}
			if v {
				return int64(1), nil
			}
			return int64(0), nil
		case oidBytea:
			return decodeByteaText(s)
		}
		return s, nil
	}
	switch oid {
	case oidInt2:
		if len(b) != 2 {
			return nil, errBinaryParam("smallint")
		}
		return int64(int16(binary.BigEndian.Uint16(b))), nil
	case oidInt4:
		if len(b) != 4 {
			return nil, errBinaryParam("integer")
		}
		return int64(int32(binary.BigEndian.Uint32(b))), nil
	case oidOID:
		if len(b) != 4 {
			return nil, errBinaryParam("oid")
		}
		return int64(binary.BigEndian.Uint32(b)), nil
	case oidInt8:
		if len(b) != 8 {
			return nil, errBinaryParam("bigint")
		}
		return int64(binary.BigEndian.Uint64(b)), nil
	case oidFloat4:
		if len(b) != 4 {
			return nil, errBinaryParam("real")
		}
		return float64(math.Float32frombits(binary.BigEndian.Uint32(b))), nil
	case oidFloat8:
		if len(b) != 8 {
			return nil, errBinaryParam("double precision")
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
	case oidBool:
		if len(b) != 1 {
			return nil, errBinaryParam("boolean")
		}
		if b[0] != 0 {
			return int64(1), nil
		}
		return int64(0), nil
	case oidBytea:
		return append([]byte(nil), b...), nil
	case oidText, oidVarchar, oidBPChar, oidName, oidJSON, oidUnknown:
		return string(b), nil
	case oidJSONB:
		if len(b) < 1 || b[0] != 1 {
			return nil, errBinaryParam("jsonb")
		}
		return string(b[1:]), nil
	case oidUUID:
		if len(b) != 16 {
			return nil, errBinaryParam("uuid")
		}
		h := hex.EncodeToString(b)
		return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
	case oidTimestamp, oidTimestamptz:
		if len(b) != 8 {
			return nil, errBinaryParam("timestamp")
		}
		us := int64(binary.BigEndian.Uint64(b))
		switch us {
		case math.MaxInt64:
			return "infinity", nil
		case math.MinInt64:
			return "-infinity", nil
		}
		t := pgEpoch.Add(time.Duration(us) * time.Microsecond)
		if oid == oidTimestamptz {
			return t.Format("2006-01-02 15:04:05.999999Z07:00"), nil
		}
		return t.Format("2006-01-02 15:04:05.999999"), nil
	case oidDate:
		if len(b) != 4 {
			return nil, errBinaryParam("date")
		}
		d := int32(binary.BigEndian.Uint32(b))
		return pgEpoch.AddDate(0, 0, int(d)).Format("2006-01-02"), nil
	case oidTime:
		if len(b) != 8 {
			return nil, errBinaryParam("time")
		}
		us := int64(binary.BigEndian.Uint64(b))
		t := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(us) * time.Microsecond)
		return t.Format("15:04:05.999999"), nil
	case oidNumeric:
		return decodeNumericBinary(b)
	}
	return nil, &Error{Code: codeFeatureNotSupported, Message: fmt.Sprintf("binary format for parameters of type OID %d is not supported", oid)}
}

// decodeByteaText reads bytea input: hex (\x...) or the escape format.
func decodeByteaText(s string) ([]byte, error) {
	if strings.HasPrefix(s, `\x`) {
		b, err := hex.DecodeString(s[2:])
		if err != nil {
			return nil, &Error{Code: codeInvalidText, Message: "invalid hexadecimal data for type bytea"}
		}
		return b, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 < len(s) && s[i+1] == '\\' {
			out = append(out, '\\')
			i++
			continue
		}
		if i+3 < len(s) {
			n, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
			if err == nil {
				out = append(out, byte(n))
				i += 3
				continue
			}
		}
		return nil, &Error{Code: codeInvalidText, Message: "invalid input syntax for type bytea"}
	}
	return out, nil
}
