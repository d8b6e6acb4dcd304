#!/usr/bin/env bash
# Offline validation of the deployment files: no Docker engine and no cluster needed.
#
#   deploy/validate.sh [REPO_ROOT]        (default: the repository this script is in)
#
# 1. docker-compose.yml: `docker-compose config` (Debian's docker-compose 1.29 parses the file,
#    interpolates variables and checks it against the Compose Specification schema without an
#    engine). A warning (e.g. a variable without a default) is an error too. The credentials the
#    file requires (`${VAR:?...}`: nothing usable is committed) get placeholder values here.
# 2. Kubernetes: deploy/k8s/base and every deploy/k8s/overlays/* are rendered with
#    `kubectl kustomize` (or `kustomize build`) and the output checked by
#    `kubernetes-validate --strict` against each version in K8S_VERSIONS.
#    Without kubectl or kustomize (or with EB_KUSTOMIZE=none), every manifest file the
#    kustomizations list is validated directly instead, and every path a kustomization.yaml
#    refers to must exist; inline and file patches are then not applied (said in the output).
#
# Exits 0 when everything is valid, 1 on any problem, 2 when a required tool is missing.
# Tools: `apt-get install -y --no-install-recommends docker-compose`; kubernetes-validate is in
# requirements.txt (the project's .venv is used if it is not on PATH).
set -uo pipefail

ROOT="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
K8S_VERSIONS="${K8S_VERSIONS:-1.30.0 1.37.0}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
failed=0

say() { printf '%s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; failed=1; }

HERE_VENV="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin"
PATH="$PATH:$ROOT/.venv/bin:$HERE_VENV"
PY=python3  # the fallback below needs PyYAML: the project's venv has it
for candidate in "$ROOT/.venv/bin/python" "$HERE_VENV/python"; do
  [ -x "$candidate" ] && PY="$candidate" && break
done

# --- docker-compose ------------------------------------------------------------------------------
if ! command -v docker-compose >/dev/null 2>&1; then
  say "docker-compose is not installed: apt-get install -y --no-install-recommends docker-compose" >&2
  exit 2
fi
say "== docker-compose config ($(docker-compose version --short 2>/dev/null))"
# Only placeholders for the required credentials: the result must not depend on a developer's
# local .env.
grep -o '\${[A-Z0-9_]*:?' "$ROOT/docker-compose.yml" | sed 's/^\${\(.*\):?$/\1=validate-only/' \
  | sort -u >"$WORK/placeholders.env"
if (cd "$ROOT" && docker-compose --env-file "$WORK/placeholders.env" -f docker-compose.yml config -q) \
    2>"$WORK/compose.err"; then
  if grep -qi "warn" "$WORK/compose.err"; then
    cat "$WORK/compose.err" >&2
    fail "docker-compose.yml: warnings"
  else
    say "ok   docker-compose.yml"
  fi
else
  cat "$WORK/compose.err" >&2
  fail "docker-compose.yml does not validate"
fi

# --- Kubernetes ----------------------------------------------------------------------------------
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  say "kubernetes-validate is not installed: pip install -r requirements.txt" >&2
  exit 2
fi

render=""
if [ "${EB_KUSTOMIZE:-auto}" != "none" ]; then
  if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    render="kubectl kustomize"
  elif command -v kustomize >/dev/null 2>&1; then
    render="kustomize build"
  fi
fi

validate() { # file label
  local version
  for version in $K8S_VERSIONS; do
    if kubernetes-validate --strict --quiet -k "$version" "$1" >"$WORK/kv.out" 2>&1; then
      :
    else
      cat "$WORK/kv.out" >&2
      fail "$2 does not validate against Kubernetes $version"
      return
    fi
  done
  say "ok   $2 (Kubernetes $K8S_VERSIONS)"
}

K8S="$ROOT/deploy/k8s"
targets=("$K8S/base")
for overlay in "$K8S"/overlays/*/; do
  [ -f "$overlay/kustomization.yaml" ] && targets+=("${overlay%/}")
done

if [ -n "$render" ]; then
  say "== kubernetes: rendered with '$render', checked with kubernetes-validate --strict"
  for target in "${targets[@]}"; do
    label="${target#"$ROOT"/}"
    out="$WORK/$(echo "$label" | tr '/' '_').yaml"
    if $render "$target" >"$out" 2>"$WORK/render.err"; then
      if [ ! -s "$out" ]; then
        fail "$label renders nothing"
      else
        validate "$out" "$label"
      fi
    else
      cat "$WORK/render.err" >&2
      fail "$label does not render"
    fi
  done
else
  say "== kubernetes: no kubectl/kustomize (or EB_KUSTOMIZE=none): each manifest file validated" \
      "directly and kustomization references checked; patches are NOT applied"
  "$PY" - "$K8S" "${targets[@]}" >"$WORK/files.txt" <<'PY' || fail "kustomization references"
import sys
from pathlib import Path

import yaml

k8s, targets = Path(sys.argv[1]), [Path(t) for t in sys.argv[2:]]
bad, manifests, seen = False, [], set()


def walk(kdir: Path) -> None:
    global bad
    if kdir in seen:
        return
    seen.add(kdir)
    kfile = kdir / "kustomization.yaml"
    if not kfile.is_file():
        print(f"missing {kfile}", file=sys.stderr)
        bad = True
        return
    kust = yaml.safe_load(kfile.read_text()) or {}
    for ref in kust.get("resources", []):
        path = (kdir / ref).resolve()
        if path.is_dir():
            walk(path)
        elif path.is_file():
            manifests.append(path)
        else:
            print(f"{kfile}: resource {ref} does not exist", file=sys.stderr)
            bad = True
    refs = [p["path"] for p in kust.get("patches", []) if "path" in p]
    refs += kust.get("patchesStrategicMerge", [])
    for gen in kust.get("configMapGenerator", []) + kust.get("secretGenerator", []):
        refs += gen.get("envs", []) + [f.split("=", 1)[-1] for f in gen.get("files", [])]
    for ref in refs:
        if not (kdir / ref).is_file():
            print(f"{kfile}: {ref} does not exist", file=sys.stderr)
            bad = True


for target in targets:
    walk(target.resolve())
for path in dict.fromkeys(manifests):
    print(path)
sys.exit(1 if bad else 0)
PY
  while read -r manifest; do
    validate "$manifest" "${manifest#"$ROOT"/}"
  done <"$WORK/files.txt"
fi

if [ "$failed" -ne 0 ]; then
  say "deploy/validate.sh: FAILED" >&2
  exit 1
fi
say "deploy/validate.sh: all deployment files are valid"
