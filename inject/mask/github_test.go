package mask

import (
	"bytes"
	"testing"
)

func TestWriteAddMask(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   string
	}{
		{"one value", []string{"tok-123456"}, "::add-mask::tok-123456\n"},
		{"several", []string{"first-value", "second-value"},
			"::add-mask::first-value\n::add-mask::second-value\n"},
		{"multi-line, empty lines skipped", []string{"-----BEGIN KEY-----\nMIIEvQIBADANBg\n\nkqhkiG9w0BAQEF\n-----END KEY-----\n"},
			"::add-mask::-----BEGIN KEY-----\n::add-mask::MIIEvQIBADANBg\n::add-mask::kqhkiG9w0BAQEF\n::add-mask::-----END KEY-----\n"},
		{"CRLF lines", []string{"line-one\r\nline-two\r\n"}, "::add-mask::line-one\n::add-mask::line-two\n"},
		{"too short to mask", []string{"", "abc", "ab\nxyz\nlong-line"}, "::add-mask::long-line\n"},
		{"command escapes", []string{"50%0Aoff", "a\rb-cd"}, "::add-mask::50%250Aoff\n::add-mask::a%0Db-cd\n"},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := WriteAddMask(&out, tt.values); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestWriteAddMaskReportsWriteErrors(t *testing.T) {
	if err := WriteAddMask(&failingWriter{}, []string{"tok-123456"}); err == nil {
		t.Error("no error from a failing writer")
	}
}
