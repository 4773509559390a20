#!/bin/sh
# setup.sh DIR: install the client test's locked npm packages (the real
# Segment and RudderStack Node clients) into DIR/node_modules with `npm ci`
# from the committed lock file.  Skipped when DIR already holds exactly this
# lock file's packages.
set -eu
dir=$1
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
cp "$src/package.json" "$src/package-lock.json" "$dir/"
cd "$dir"
if [ -d node_modules/@segment/analytics-node ] && cmp -s package-lock.json node_modules/.installed-lock.json; then
  echo "the clients are installed in $dir"
  exit 0
fi
npm ci --no-audit --no-fund --ignore-scripts
cp package-lock.json node_modules/.installed-lock.json
