#!/usr/bin/env bash
# Builds the real Vault server (v1.21.4) from source once into
# $FERRY_CACHE/vault-1.21.4/vault (default $HOME/.cache/ferry) for the
# secrets tests, which start it in dev mode on loopback. No release binary
# can be downloaded here and `go install` of vault is refused (its go.mod has
# replace directives), so this builds a throw-away main module around
# github.com/hashicorp/vault/command, as ../shared/REAL-PARTS.md describes:
# vault's non-local replaces copied in, and the published sdk v0.21.0 patched
# in the two places where it differs from vault 1.21.4's in-tree sdk.
# Vault is BUSL-licensed: it is a test peer only; no code of it is copied
# into Ferry. Cold build: 25-35 minutes on 2 cores, 4.8 GB of memory.
# Idempotent: an existing binary is reused.
set -euo pipefail

version=1.21.4
cache="${FERRY_CACHE:-$HOME/.cache/ferry}"
out="$cache/vault-$version/vault"
if [ -x "$out" ]; then
  echo "vault: $out" >&2
  exit 0
fi
echo "vault: building Vault $version into $out (once; 25-35 minutes cold)" >&2
work="$cache/vault-build"
rm -rf "$work"
mkdir -p "$work" "$(dirname "$out")"
export GOTOOLCHAIN=local GOFLAGS= CGO_ENABLED=0

# The published sdk, patched.
sdkdir=$(cd "$work" && go mod download -json github.com/hashicorp/vault/sdk@v0.21.0 |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
cp -r "$sdkdir" "$work/sdk"
chmod -R u+w "$work/sdk"
python3 - "$work/sdk" <<'PY'
import re, sys
root = sys.argv[1]
p = root + "/framework/backend.go"
s = open(p).read()
old = "ActivationFunc func(context.Context, *logical.Request, string) error"
assert old in s, "framework/backend.go: ActivationFunc not found"
open(p, "w").write(s.replace(old, "ActivationFunc func(context.Context, *logical.Request) error"))

p = root + "/helper/keysutil/lock_manager.go"
s = open(p).read()
head = "func (lm *LockManager) RestorePolicy(ctx context.Context, storage logical.Storage, name, backup string, force bool) error {"
start = s.index(head)
end = s.index("\n}\n", start) + 3
body = s[start:end]
body = body.replace(head, head.replace(" error {", " (string, error) {"))
body = re.sub(r"\n(\t+)return nil\n", r"\n\1return name, nil\n", body)
body = re.sub(r"\n(\t+)return (?!name, nil)(?!\"\", )", r'\n\1return "", ', body)
open(p, "w").write(s[:start] + body + s[end:])
PY

cat > "$work/main.go" <<'GO'
// Command vault is the Vault server, built for Ferry's tests.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() { os.Exit(command.Run(os.Args[1:])) }
GO
cat > "$work/go.mod" <<MOD
module ferry.test/vault

go 1.25

require github.com/hashicorp/vault v$version

replace (
	github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3
	github.com/hashicorp/vault/sdk => ./sdk
	github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1
)
MOD
(cd "$work" && go mod tidy && go build -trimpath -ldflags="-s -w" -o "$out" .)
rm -rf "$work"
echo "vault: $out" >&2
