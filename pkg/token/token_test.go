package token

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tok, err := Parse(" abcdef.0123456789abcdef\n")
	if err != nil || tok.ID != "abcdef" || tok.Secret != "0123456789abcdef" || tok.String() != "abcdef.0123456789abcdef" {
		t.Errorf("Parse of a good token (with the blanks of a paste): %+v, %v", tok, err)
	}
	for _, bad := range []string{"", "abcdef", "abcdef.0123456789abcde", "ABCDEF.0123456789abcdef", "abcdef:0123456789abcdef", "abcdef.0123456789abcdef0", "abcde.0123456789abcdefg"} {
		_, err := Parse(bad)
		if err == nil || !strings.Contains(err.Error(), "abcdef.0123456789abcdef") || !strings.Contains(err.Error(), "'dk8s token create' on a control plane") {
			t.Errorf("Parse(%q): error %v, want one showing the form and where to get a token", bad, err)
		}
	}
}

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		tok, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if back, err := Parse(tok.String()); err != nil || back.ID != tok.ID || back.Secret != tok.Secret {
			t.Fatalf("Generate made %q, which Parse reads as %+v, %v", tok, back, err)
		}
		if seen[tok.ID] {
			t.Fatalf("Generate repeated the ID %s in 200 draws", tok.ID)
		}
		seen[tok.ID] = true
	}
}

func TestParseID(t *testing.T) {
	for in, want := range map[string]string{"abcdef": "abcdef", "abcdef.0123456789abcdef": "abcdef", " abcdef ": "abcdef"} {
		if got, err := parseID(in); err != nil || got != want {
			t.Errorf("parseID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"abcde", "abcdef.", "bootstrap-token-abcdef", "ABCDEF"} {
		if _, err := parseID(bad); err == nil || !strings.Contains(err.Error(), "'dk8s token list'") {
			t.Errorf("parseID(%q): error %v, want one pointing to 'dk8s token list'", bad, err)
		}
	}
}
