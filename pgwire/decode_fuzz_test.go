package pgwire

import (
	"testing"
)

var fuzzOIDs = []uint32{oidUnknown, oidBool, oidBytea, oidInt8, oidInt2, oidInt4, oidText, oidJSON, oidFloat4, oidFloat8,
	oidVarchar, oidDate, oidTime, oidTimestamp, oidTimestamptz, oidNumeric, oidUUID, oidJSONB, oidOID, 999}

// FuzzDecodeParam: Bind parameters are untrusted bytes; decoding never
// panics, and a decoded value encodes back in the same type and format.
func FuzzDecodeParam(f *testing.F) {
	f.Add([]byte{0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x0d, 0x48}, uint8(15), true)
	f.Add([]byte("12.5"), uint8(9), false)
	f.Add([]byte(`\x0102`), uint8(2), false)
	f.Add([]byte{0, 0, 0, 1}, uint8(11), true)
	f.Fuzz(func(t *testing.T, b []byte, oidIdx uint8, bin bool) {
		oid := fuzzOIDs[int(oidIdx)%len(fuzzOIDs)]
		format := int16(0)
		if bin {
			format = 1
		}
		v, err := decodeParam(b, oid, format)
		if err != nil {
			return
		}
		if _, err := encodeValue(v, oid, 0); err != nil {
			t.Fatalf("decoded %#v (oid %d) does not encode as text: %v", v, oid, err)
		}
		if oid == oidNumeric && bin {
			enc, err := encodeNumericBinary(v)
			if err != nil {
				t.Fatalf("numeric %q does not re-encode: %v", v, err)
			}
			back, err := decodeNumericBinary(enc)
			if err != nil || back != v {
				t.Fatalf("numeric %q -> %x -> %q, %v", v, enc, back, err)
			}
		}
	})
}

// FuzzStartupOptions: the startup "options" string is untrusted.
func FuzzStartupOptions(f *testing.F) {
	f.Add("-c raftsql.read_consistency=stale")
	f.Add(`--search_path=a\ b -c x=y`)
	f.Add("-c")
	f.Fuzz(func(t *testing.T, s string) {
		opts, err := parseStartupOptions(s)
		if err == nil && opts == nil {
			t.Fatal("nil options without error")
		}
	})
}

func TestNumericBinaryRoundTrip(t *testing.T) {
	for _, s := range []string{"0", "1", "-1", "12.34", "0.0001", "-0.5", "10000", "123456789.000001", "1e3", "0.00000012"} {
		enc, err := encodeNumericBinary(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		back, err := decodeNumericBinary(enc)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		want := map[string]string{"1e3": "1000"}[s]
		if want == "" {
			want = s
		}
		if back != want {
			t.Errorf("%s -> %x -> %s", s, enc, back)
		}
	}
}
