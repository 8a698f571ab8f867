#!/usr/bin/env bash
# Opens a SparkPrune report.html in headless Chromium (Debian package `chromium`), checks that the
# browser rendered the charts, and takes a screenshot.
#
#   tools/report/check-html.sh <report.html> [min-charts (default 3)] [screenshot.png (default <report>.png)]
#
# Checks, on the DOM as Chromium built it (--dump-dom, after parsing the file):
#   - at least <min-charts> <figure data-chart=...> elements, each holding an <svg> element;
#   - every chart's SVG has <text> labels (the axis labels are text, not outlines);
#   - the quality-gate banner is present (data-gates=passed|failed|none).
# Network is off for the browser (no-first-run, no background networking, QUIC off): the file must
# render from itself. Exit 0 when all checks pass, 1 otherwise.
set -euo pipefail

html=${1:?usage: check-html.sh <report.html> [min-charts] [screenshot.png]}
min=${2:-3}
shot=${3:-${html%.html}.png}
[[ -f "$html" ]] || { echo "check-html: no such file: $html" >&2; exit 1; }
browser=$(command -v chromium || command -v chromium-browser || true)
[[ -n "$browser" ]] || { echo "check-html: chromium not found; install it: apt-get install -y chromium" >&2; exit 1; }

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --user-data-dir="$profile")
url="file://$(realpath "$html")"

dom=$(timeout 120 "$browser" "${flags[@]}" --dump-dom "$url" 2>/dev/null)
timeout 120 "$browser" "${flags[@]}" --hide-scrollbars --window-size=1200,2400 --screenshot="$(realpath -m "$shot")" "$url" \
    >/dev/null 2>&1

fail=0
charts=$(grep -o '<figure data-chart="[a-z_]*"' <<<"$dom" | sed 's/.*="\(.*\)"/\1/' || true)
n=$(grep -c . <<<"$charts" || true)
svgs=$(grep -o '<svg' <<<"$dom" | wc -l)
echo "check-html: $n charts ($(tr '\n' ' ' <<<"$charts")), $svgs <svg> elements in the rendered DOM"
if (( n < min )); then echo "check-html: FAIL: expected at least $min charts" >&2; fail=1; fi
if (( svgs < n )); then echo "check-html: FAIL: a chart has no <svg>" >&2; fail=1; fi
# each figure's markup up to its </figure> must contain <text> elements
for c in $charts; do
    body=$(awk -v c="data-chart=\"$c\"" 'index($0,c){on=1} on{print} on&&/<\/figure>/{exit}' <<<"$dom")
    t=$(grep -o '<text' <<<"$body" | wc -l)
    if (( t == 0 )); then echo "check-html: FAIL: chart $c has no text labels" >&2; fail=1; fi
done
if ! grep -q 'data-gates="\(passed\|failed\|none\)"' <<<"$dom"; then
    echo "check-html: FAIL: no quality-gate banner" >&2; fail=1
fi
if [[ -s "$shot" ]]; then echo "check-html: screenshot $shot"; else echo "check-html: FAIL: no screenshot" >&2; fail=1; fi
exit $fail
