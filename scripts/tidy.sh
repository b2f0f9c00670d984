#!/usr/bin/env bash
# tidy.sh - the house style as a check (make tidy; make test runs it).
# Each rule prints what breaks it and the run ends "N passed, N failed":
#   1. layers: no #include "../..." outside tests/ (a program includes only
#      its own headers and common/'s);
#   2. no exported symbol defined twice across the programs' objects
#      (main excepted), so no two modules claim one name;
#   3. every *.md a comment or document names exists in the repository;
#   4. clang-format clean against the committed .clang-format;
#   5. no function body over 70 lines, except those listed in
#      scripts/long-functions.txt, a list that may only shrink: the check
#      fails when a listed function is short enough to leave it.
# Needs the objects of `make` in build/ (make tidy builds them first).
set -u
cd "$(dirname "$0")/.."
PASSED=0
FAILED=0
check() {
    local desc=$1 out=$2
    if [ -z "$out" ]; then
        PASSED=$((PASSED + 1))
        echo "ok - $desc"
    else
        FAILED=$((FAILED + 1))
        echo "not ok - $desc"
        printf '%s\n' "$out" | head -40 | sed 's/^/#   /'
    fi
}

SRC=$(git ls-files --cached --others --exclude-standard '*.c' '*.h' | grep -v '^tests/browser/node_modules/')
PROGRAM_SRC=$(printf '%s\n' "$SRC" | grep -v '^tests/')

# 1. layers
check "no #include \"../ outside tests/" \
    "$(printf '%s\n' "$PROGRAM_SRC" | xargs grep -n '#include "\.\./' 2>/dev/null)"

# 2. exported symbols defined once
objs=$(find build -name '*.o' -not -path 'build/tests/*' -not -path 'build/hooks/*' 2>/dev/null)
if [ -z "$objs" ]; then
    check "exported symbols defined once (build/ has objects)" "no objects in build/: run make first"
else
    dups=$(for o in $objs; do nm -g --defined-only "$o" | awk -v o="$o" 'NF == 3 && $2 ~ /[TDBR]/ {print $3, o}'; done |
        awk '$1 != "main" {n[$1]++; w[$1] = w[$1] " " $2} END {for (s in n) if (n[s] > 1) print s ":" w[s]}' | sort)
    check "every exported symbol is defined once across the tree" "$dups"
fi

# 3. every named .md exists
DOCS=$(git ls-files --cached --others --exclude-standard '*.c' '*.h' '*.sh' '*.md' '*.mjs' '*.js' Makefile '.ci/*' |
    grep -v node_modules)
MDS=$(git ls-files --cached --others --exclude-standard '*.md' | grep -v node_modules)
missing=""
while IFS=: read -r file ref; do
    [ -n "$ref" ] || continue
    base=${ref##*/}
    if [ -e "$ref" ] || [ -e "$(dirname "$file")/$ref" ] || printf '%s\n' "$MDS" | grep -q "/$base\$\|^$base\$"; then
        continue
    fi
    missing="$missing$file names $ref, which is not in the repository"$'\n'
done < <(for f in $DOCS; do grep -oE '[A-Za-z0-9_./-]*[A-Za-z0-9_]\.md\b' "$f" | sed "s|^|$f:|"; done | sort -u)
check "every .md a comment or document names exists" "${missing%$'\n'}"

# 4. clang-format
if command -v clang-format >/dev/null 2>&1; then
    # many files per run, two runs at once (one process per file took 24 s);
    # each complaint starts with its file's name
    bad=$(printf '%s\n' $SRC | xargs -P 2 -n 32 clang-format --dry-run --Werror 2>&1 >/dev/null |
        sed -n 's/^\([^: ]*\.[ch]\):[0-9]*:[0-9]*: error: .*/\1/p' | sort -u)
    check "clang-format clean (.clang-format; fix with: clang-format -i FILE)" "$bad"
else
    check "clang-format is installed (scripts/install-deps.sh test)" "clang-format not found"
fi

# 5. function length
LIST=scripts/long-functions.txt
lengths=$(awk '
    /^[A-Za-z_].*\(/ && !/;[ \t]*$/ { sig = $0; sigline = FNR }
    /^\{[ \t]*$/ { if (sig != "") { start = FNR; s = sig; sub(/\(.*/, "", s); n = split(s, w, /[ \t*]+/); name = w[n]; body = 1 } }
    /^\}/ { if (body) { print FILENAME, name, FNR - start - 1; body = 0; sig = "" } }
' $PROGRAM_SRC)
long=$(awk '$3 > 70 {print $1 " " $2}' <<<"$lengths" | sort)
listed=$(grep -v '^#' "$LIST" | awk 'NF >= 2 {print $1 " " $2}' | sort)
check "no function over 70 lines that is not in $LIST" "$(comm -23 <(echo "$long") <(echo "$listed") | sed 's/$/: over 70 lines/')"
check "every function in $LIST still needs its exception (the list only shrinks)" \
    "$(comm -13 <(echo "$long") <(echo "$listed") | sed 's/$/: 70 lines or fewer now, or gone: remove it from the list/')"

echo "tidy: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
