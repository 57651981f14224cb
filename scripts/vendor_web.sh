#!/usr/bin/env bash
# Regenerate the committed front-end files from web/package-lock.json (pinned versions):
#   web/static/vendor/govuk-frontend/   GOV.UK Frontend's precompiled CSS (+ licence, version)
#   tests/web/vendor/axe-core/          axe-core, injected by the browser tests (+ licence)
# Run after changing a version in web/package.json (`cd web && npm install <pkg>@<version>`).
# Needs node and npm; nothing here runs at serve or test time.
set -euo pipefail
cd "$(dirname "$0")/.."

(cd web && npm ci --no-audit --no-fund --loglevel=error)

gf=web/node_modules/govuk-frontend
out=web/static/vendor/govuk-frontend
rm -rf "$out" && mkdir -p "$out"
cp "$gf/dist/govuk/govuk-frontend.min.css" "$out/"
node -e 'process.stdout.write(require("./web/node_modules/govuk-frontend/package.json").version + "\n")' >"$out/VERSION"
cat >"$out/LICENSE.txt" <<'LICENCE'
GOV.UK Frontend (https://github.com/alphagov/govuk-frontend), npm package "govuk-frontend".

The MIT License (MIT)

Copyright (c) 2018 Crown Copyright (Government Digital Service)

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of
the Software, and to permit persons to whom the Software is furnished to do so,
subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS
FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.

Not included here: GOV.UK's fonts (GDS Transport) and crown images, which only government
services may use. With GOVCHAT_BRAND_GOVUK=true the app serves them from
web/node_modules/govuk-frontend/dist/govuk/assets (run `npm ci` in web/).
LICENCE

axe=web/node_modules/axe-core
aout=tests/web/vendor/axe-core
rm -rf "$aout" && mkdir -p "$aout"
cp "$axe/axe.min.js" "$axe/LICENSE" "$aout/"
node -e 'process.stdout.write(require("./web/node_modules/axe-core/package.json").version + "\n")' >"$aout/VERSION"

echo "vendored govuk-frontend $(cat "$out/VERSION") and axe-core $(cat "$aout/VERSION")"
