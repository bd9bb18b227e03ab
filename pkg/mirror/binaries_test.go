package mirror

import (
	"reflect"
	"strings"
	"testing"
)

const kubeletURL = "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet"

func TestBinarySourcesKeepDLK8sPaths(t *testing.T) {
	ms, err := ParseBinaryList("kubekey-china, kubekey-china-v4,daocloud-files,http://10.0.0.5:8080/k8s/,upstream")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range BinarySources(ms, kubeletURL) {
		got = append(got, s.Mirror.Name+" "+s.URL)
	}
	want := []string{
		"kubekey-china https://kubernetes-release.pek3b.qingstor.com/release/v1.37.2/bin/linux/amd64/kubelet",
		"kubekey-china-v4 https://kubekey.pek3b.qingstor.com/dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet",
		"daocloud-files https://files.m.daocloud.io/dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet",
		"http://10.0.0.5:8080/k8s http://10.0.0.5:8080/k8s/release/v1.37.2/bin/linux/amd64/kubelet",
		"upstream https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sources:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestBinarySourcesOfALockURLElsewhere(t *testing.T) {
	ms, _ := ParseBinaryList("daocloud-files,upstream")
	got := BinarySources(ms, "http://127.0.0.1:8080/release/v1.37.2/bin/linux/amd64/kubelet")
	if len(got) != 1 || got[0].Mirror.Name != "127.0.0.1:8080" || got[0].URL != "http://127.0.0.1:8080/release/v1.37.2/bin/linux/amd64/kubelet" {
		t.Errorf("a lock's own server is the one source: %+v", got)
	}
}

func TestParseBinaryRefuses(t *testing.T) {
	for _, word := range []string{"daocloud", "files.m.daocloud.io/dl.k8s.io", "ftp://example.com", "https://", "https://x.example/?a=b"} {
		_, err := ParseBinary(word)
		if err == nil || !strings.Contains(err.Error(), "kubekey-china, kubekey-china-v4, daocloud-files, upstream") || !strings.Contains(err.Error(), "base URL") {
			t.Errorf("%q: want an error naming the catalogue and base URLs, got %v", word, err)
		}
	}
	if _, err := ParseBinaryList(" , "); err == nil || !strings.Contains(err.Error(), "no binary mirror given") {
		t.Errorf("an empty list: %v", err)
	}
}

func TestImpliedBinary(t *testing.T) {
	cases := []struct{ mirrors, want string }{
		{"aliyun", "kubekey-china daocloud-files upstream"},
		{"aliyun-hangzhou", "kubekey-china daocloud-files upstream"},
		{"daocloud", "daocloud-files upstream"},
		{"aliyun,daocloud", "kubekey-china daocloud-files upstream"},
		{"daocloud,aliyun", "daocloud-files upstream kubekey-china"},
		{"upstream", "upstream"},
		{"harbor.local/k8s", "upstream"},
		{"harbor.local/k8s,daocloud", "daocloud-files upstream"},
	}
	for _, c := range cases {
		ms, err := ParseList(c.mirrors)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, b := range ImpliedBinary(ms) {
			got = append(got, b.Name)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("--mirror %s implies %v, want %s", c.mirrors, got, c.want)
		}
	}
	for _, m := range Catalogue() {
		if _, ok := impliedBinary[m.Name]; !ok {
			t.Errorf("image mirror %s implies no binary mirrors: say which", m.Name)
		}
	}
	for _, names := range impliedBinary {
		for _, n := range names {
			if _, err := ParseBinary(n); err != nil {
				t.Errorf("implied %s is not in the binary catalogue", n)
			}
		}
	}
}
