package mirror

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// DLK8s is where the Kubernetes project publishes its release binaries
// (kubelet, kubectl, kubeadm): https://dl.k8s.io/release/vX/bin/OS/ARCH/NAME.
const DLK8s = "https://dl.k8s.io"

// BinaryMirror serves dl.k8s.io's files at the same paths below its own
// base URL: BASE/release/v1.37.2/bin/linux/amd64/kubelet. Every file is
// still checked against the sha256 images.lock pins, so a mirror is trusted
// with availability only, never with content.
type BinaryMirror struct {
	// Name is the catalogue name, or the base URL for a mirror given by
	// address.
	Name string
	// Base replaces https://dl.k8s.io in a file's URL.
	Base string
	// About is a line for humans: who runs it.
	About string
}

var binaryCatalogue = []BinaryMirror{
	// KubeKey (KubeSphere) fetches from these buckets when KKZONE=cn;
	// both are in Beijing. Version 3 keeps the release paths at the root,
	// version 4 whole upstream hosts below theirs.
	{Name: "kubekey-china", Base: "https://kubernetes-release.pek3b.qingstor.com", About: "KubeKey v3's China bucket (QingCloud, Beijing)"},
	{Name: "kubekey-china-v4", Base: "https://kubekey.pek3b.qingstor.com/dl.k8s.io", About: "KubeKey v4's China bucket (QingCloud, Beijing)"},
	{Name: "daocloud-files", Base: "https://files.m.daocloud.io/dl.k8s.io", About: "DaoCloud's file mirror"},
	{Name: "upstream", Base: DLK8s, About: "the Kubernetes project's own"},
}

// BinaryCatalogue returns the named binary mirrors dk8s knows.
func BinaryCatalogue() []BinaryMirror {
	return slices.Clone(binaryCatalogue)
}

func binaryNames() string {
	var names []string
	for _, m := range binaryCatalogue {
		names = append(names, m.Name)
	}
	return strings.Join(names, ", ")
}

// ParseBinary turns one --binary-mirror word into a BinaryMirror: a
// catalogue name, or the http(s) base URL of a server that keeps
// dl.k8s.io's paths below it.
func ParseBinary(word string) (BinaryMirror, error) {
	word = strings.TrimSpace(word)
	for _, m := range binaryCatalogue {
		if m.Name == word {
			return m, nil
		}
	}
	u, err := url.Parse(word)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return BinaryMirror{}, fmt.Errorf("unknown binary mirror %q: use one of %s, or a base URL that keeps dl.k8s.io's paths below it, such as https://files.example.com/dl.k8s.io", word, binaryNames())
	}
	base := strings.TrimSuffix(word, "/")
	return BinaryMirror{Name: base, Base: base}, nil
}

// ParseBinaryList parses a comma-separated, ordered list of binary mirrors.
func ParseBinaryList(list string) ([]BinaryMirror, error) {
	var ms []BinaryMirror
	for _, word := range strings.Split(list, ",") {
		if strings.TrimSpace(word) == "" {
			continue
		}
		m, err := ParseBinary(word)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no binary mirror given: use one or more of %s, or a base URL", binaryNames())
	}
	return ms, nil
}

// impliedBinary are the binary mirrors an image mirror of the catalogue
// implies: where its users are, which file mirrors answer. Aliyun's users
// are in mainland China, where KubeKey's bucket and DaoCloud's mirror are
// near and dl.k8s.io is often out of reach; DaoCloud's image mirror goes
// with its file mirror.
var impliedBinary = map[string][]string{
	"aliyun":          {"kubekey-china", "daocloud-files", "upstream"},
	"aliyun-hangzhou": {"kubekey-china", "daocloud-files", "upstream"},
	"daocloud":        {"daocloud-files", "upstream"},
	"upstream":        {"upstream"},
}

// ImpliedBinary is the binary mirrors to use when none are given: those
// the image mirrors imply, in their order, each once. Image mirrors given
// by address imply none; when nothing is implied, it is upstream.
func ImpliedBinary(images []Mirror) []BinaryMirror {
	var out []BinaryMirror
	for _, im := range images {
		for _, name := range impliedBinary[im.Name] {
			m, _ := ParseBinary(name)
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 {
		m, _ := ParseBinary("upstream")
		out = append(out, m)
	}
	return out
}

// ImpliedBinaryHelp lists what each image mirror of the catalogue implies,
// a line each, for --help.
func ImpliedBinaryHelp() string {
	var b strings.Builder
	for _, m := range catalogue {
		fmt.Fprintf(&b, "  --mirror %-16s %s\n", m.Name, strings.Join(impliedBinary[m.Name], ", "))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// BinarySource is one place to fetch a file from: a mirror and the file's
// URL there.
type BinarySource struct {
	Mirror BinaryMirror
	URL    string
}

// BinarySources maps a file's URL on dl.k8s.io onto each mirror, in order.
// A URL elsewhere (a lock that names its own server) is not dl.k8s.io's to
// mirror: it is its one source, named by its host.
func BinarySources(mirrors []BinaryMirror, fileURL string) []BinarySource {
	path, ok := strings.CutPrefix(fileURL, DLK8s+"/")
	if !ok {
		name := fileURL
		if u, err := url.Parse(fileURL); err == nil && u.Host != "" {
			name = u.Host
		}
		return []BinarySource{{Mirror: BinaryMirror{Name: name, About: "the URL images.lock names"}, URL: fileURL}}
	}
	var out []BinarySource
	for _, m := range mirrors {
		out = append(out, BinarySource{Mirror: m, URL: m.Base + "/" + path})
	}
	return out
}
