#!/bin/sh
# Builds the release artifact (README "Release file"): the service, the launcher's flag step
# and the healthcheck each bundled into one JavaScript file, next to a copy of the launcher.
#
#   dist/lk-jwt-service                   launcher (runs the bundles beside it)
#   dist/lk-jwt-service.js                the service (main.ts)
#   dist/lk-jwt-service-flags.js          permission flag computation (lib/cli/flags.ts)
#   dist/lk-jwt-service-healthcheck.js    healthcheck (lib/cli/healthcheck.ts)
#   dist/lk-jwt-service-<version>.tar.gz  the four files in lk-jwt-service-<version>/
#
# The target host needs Deno 2.9 (LK_JWT_DENO or `deno` on PATH); npm dependencies are inside
# the bundle, so no cache or network is needed there.
set -eu

root=$(cd -P -- "$(dirname -- "$0")/.." && pwd)
cd "$root"

deno=${LK_JWT_DENO:-}
if [ -z "$deno" ]; then
  for candidate in "$root"/tools/deno/node_modules/@deno/linux-*-glibc/deno; do
    [ -x "$candidate" ] && deno=$candidate && break
  done
fi
[ -n "$deno" ] || deno=deno
export DENO_DIR="${DENO_DIR:-$root/.cache/deno}"
export DENO_NO_UPDATE_CHECK=1

version=$(sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' deno.json | head -n 1)
[ -n "$version" ] || {
  echo "bundle: no version in deno.json" >&2
  exit 1
}

mkdir -p dist
"$deno" bundle --quiet --frozen -o dist/lk-jwt-service.js main.ts
"$deno" bundle --quiet --frozen -o dist/lk-jwt-service-flags.js lib/cli/flags.ts
"$deno" bundle --quiet --frozen -o dist/lk-jwt-service-healthcheck.js lib/cli/healthcheck.ts
cp bin/lk-jwt-service dist/lk-jwt-service
chmod 0755 dist/lk-jwt-service

stage=dist/lk-jwt-service-$version
rm -rf "$stage"
mkdir "$stage"
for file in lk-jwt-service lk-jwt-service.js lk-jwt-service-flags.js lk-jwt-service-healthcheck.js; do
  cp -p "dist/$file" "$stage/$file"
done
tar -czf "$stage.tar.gz" -C dist "lk-jwt-service-$version"
rm -rf "$stage"
echo "bundle: dist/lk-jwt-service-$version.tar.gz" >&2
