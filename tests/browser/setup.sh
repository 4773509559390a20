#!/bin/sh
# setup.sh DIR: install the browser test's locked npm packages (just
# playwright-core, which never downloads a browser: the test drives
# Debian's chromium) into DIR/node_modules.  Skipped when DIR already holds
# exactly this lock file's packages.
set -eu
dir=$1
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
cp "$src/package.json" "$src/package-lock.json" "$dir/"
cd "$dir"
if [ -d node_modules/playwright-core ] && cmp -s package-lock.json node_modules/.installed-lock.json; then
  echo "playwright-core is installed in $dir"
  exit 0
fi
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
cp package-lock.json node_modules/.installed-lock.json
