#!/bin/sh
# SENSClient's public API against the baseline commit: a change that would break a program compiled against
# the library fails here. Run by `make api-check` (in `make check`).
#
# Two halves, because the library's event types live in SENSCore (sensd builds on them too) and reach
# SENSClient as typealiases: `swift package diagnose-api-breaking-changes` compares SENSClient's own
# declarations but sees SENSEvent, EventKind, LogonType and EventTime only as names. So their public
# declarations are compared too, with the same tool underneath (swift-api-digester), from the two builds
# the first half made: SENSCore's declarations of `package` access (sensd's own parts) are left out, since
# nothing outside the package can use them.
set -eu
cd "$(dirname "$0")/.."
baseline=$1
swift=${SWIFT:-swift}

"$swift" package diagnose-api-breaking-changes "$baseline" --products SENSClient

"$swift" build --target SENSClient >/dev/null
now=$("$swift" build --show-bin-path)/Modules
then=$(dirname "$("$swift" build --show-bin-path)")/apidiff/$baseline-checkout/.build/debug/Modules
if [ ! -e "$then/SENSCore.swiftmodule" ]; then
    echo "api-check: the baseline's SENSCore module is not where diagnose-api-breaking-changes builds it ($then)" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
digester=$(dirname "$(command -v "$swift")")/swift-api-digester
"$digester" -dump-sdk -module SENSCore -I "$then" -o "$work/then.json"
"$digester" -dump-sdk -module SENSCore -I "$now" -o "$work/now.json"
python3 - "$work/then.json" "$work/now.json" <<'PY'
import json, sys
# `isInternal` marks what is not public: in SENSCore, the declarations of `package` access.
def public(node):
    node["children"] = [public(c) for c in node.get("children", []) if not c.get("isInternal")]
    return node
for path in sys.argv[1:]:
    with open(path) as f:
        dump = json.load(f)
    public(dump["ABIRoot"])
    with open(path, "w") as f:
        json.dump(dump, f)
PY
"$digester" -diagnose-sdk -input-paths "$work/then.json" -input-paths "$work/now.json" -o "$work/diff.txt" 2>/dev/null || true
# The report is section headers; anything else is a change that breaks a program.
if grep -v -e '^/\*' -e '^$' "$work/diff.txt" > "$work/breaks.txt"; then
    echo "api-check: SENSClient's event types (SENSCore's public declarations) break against $baseline:"
    cat "$work/breaks.txt"
    exit 1
fi
echo "No breaking changes detected in SENSClient's event types (SENSCore's public declarations)"
