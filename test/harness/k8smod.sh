# k8smod.sh: sourced by build-k8s.sh and build-e2e.sh, which build from the
# Kubernetes module at a version.
#
# k8s_module VERSION OUT NAME: writes, in OUT/.mod, where it changes to,
# the go.mod of a scratch module NAME that requires k8s.io/kubernetes at VERSION and
# points every staging module (k8s.io/api, ...) at its published v0.Y.Z
# twin, as the monorepo's own go.mod points them at ./staging. Sets k8s_src to the module's
# source directory and k8s_gomod to its go.mod.
k8s_module() {
  local version=$1 name=$3
  mkdir -p "$2/.mod"
  cd "$2/.mod"
  local staging="v0.${version#v1.}"
  k8s_gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  k8s_src=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  {
    echo "module $name"
    echo "go 1.26"
    echo "require k8s.io/kubernetes $version"
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$k8s_gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
  } >go.mod
}

# k8s_ldflags VERSION: the linker flags that stamp a binary with VERSION,
# as Kubernetes' own build does.
k8s_ldflags() {
  local version=$1 minor p flags="-s -w"
  minor=$(echo "$version" | cut -d. -f2)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags="$flags -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=2000-01-01T00:00:00Z"
  done
  echo "$flags"
}
