#!/usr/bin/env bash
# The dashboard test drives Debian's headless Chromium. Install it when missing
# and we may (root with apt); otherwise say what is missing: the browser tests
# then skip with that reason.
set -u
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "ensure-browser: installing Debian chromium for the dashboard test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "ensure-browser: could not install chromium; browser tests will be skipped" >&2
else
    echo "ensure-browser: /usr/bin/chromium missing (apt install chromium); browser tests will be skipped" >&2
fi
exit 0
