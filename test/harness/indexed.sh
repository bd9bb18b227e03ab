# indexed.sh: sourced by images.sh and older.sh, which push the harness's
# images as upstream's are held: each tag a multi-platform index, made by
# mkindex (which images.sh builds into $cache).

# has_index PORT REPO TAG: the registry on 127.0.0.1:PORT holds REPO:TAG,
# and as an index (a tag an older harness pushed as one image does not
# count).
has_index() {
  local index=application/vnd.oci.image.index.v1+json
  [ "$(curl -fs -o /dev/null -w '%{content_type}' -H "Accept: $index" "http://127.0.0.1:$1/v2/$2/manifests/$3")" = "$index" ]
}

# push_indexed IMAGE REGISTRY/REPO:TAG: IMAGE pushed under that name, then
# made the amd64 entry of an index under its tag.
push_indexed() {
  docker tag "$1" "$2" && docker push -q "$2" >/dev/null && docker rmi "$2" >/dev/null
  local reg=${2%%/*} path=${2#*/}
  "$cache/mkindex" "$reg" "${path%:*}" "${path##*:}"
}
