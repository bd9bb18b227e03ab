package bootstrap

import (
	"strings"
	"testing"
)

func TestSplitRule(t *testing.T) {
	got := splitRule(`-A POSTROUTING -s 10.244.0.10/32 -m comment --comment "name: \"dk8s\" id: \"3dfd\"" -j CNI-abbb`)
	want := []string{"-A", "POSTROUTING", "-s", "10.244.0.10/32", "-m", "comment", "--comment", `name: "dk8s" id: "3dfd"`, "-j", "CNI-abbb"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q", got)
	}
}
