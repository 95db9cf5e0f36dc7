#!/usr/bin/env bash
# Compile android_demo/core (main + test sources) with javac into a temporary folder and run its
# JUnit 4 tests against Android asset folders that edgepack wrote:
#
#   android_demo/core/run_tests.sh ASSETS_DIR [ASSETS_DIR2 ...]
#
# Each ASSETS_DIR is the output of `edgepack build ... --android-assets ASSETS_DIR`. Pass a
# 3-channel model's folder too: the layout-mismatch test needs one (tests/android/test_java_core.py
# builds the digits example and a tiny RGB CNN and passes both).
#
# Needs a JDK 17+, JUnit 4 and Android's org.json (Debian/Ubuntu packages):
#   apt-get install -y default-jdk-headless junit4 libandroid-json-java
# Jar locations can be overridden with JUNIT_JAR, HAMCREST_JAR and JSON_JAR.
#
# Prints JUnit's summary ("OK (N tests)" or the failures); exits non-zero on any failure.
set -euo pipefail

APT_LINE="apt-get install -y default-jdk-headless junit4 libandroid-json-java"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JUNIT_JAR="${JUNIT_JAR:-/usr/share/java/junit4.jar}"
HAMCREST_JAR="${HAMCREST_JAR:-/usr/share/java/hamcrest-core.jar}"
JSON_JAR="${JSON_JAR:-/usr/share/java/com.android.json.jar}"

if [ "$#" -eq 0 ]; then
    echo "usage: $0 ASSETS_DIR [ASSETS_DIR2 ...]  (folders written by edgepack build --android-assets)" >&2
    exit 2
fi

missing=()
for tool in javac java; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
for jar in "$JUNIT_JAR" "$HAMCREST_JAR" "$JSON_JAR"; do
    [ -f "$jar" ] || missing+=("$jar")
done
if [ "${#missing[@]}" -ne 0 ]; then
    echo "run_tests.sh: missing ${missing[*]}; install them with: $APT_LINE" >&2
    exit 3
fi

folders=()
for d in "$@"; do
    if [ ! -f "$d/manifest.json" ]; then
        echo "run_tests.sh: $d has no manifest.json; write it with: edgepack build MODEL -c DATA -t TARGET -o OUT --android-assets $d" >&2
        exit 2
    fi
    folders+=("$(cd "$d" && pwd)")
done
assets="$(IFS=:; echo "${folders[*]}")"

work="$(mktemp -d "${TMPDIR:-/tmp}/edgepack-core-tests.XXXXXX")"
trap 'rm -rf "$work"' EXIT

mapfile -t main_src < <(find "$HERE/src/main/java" -name '*.java' | sort)
mapfile -t test_src < <(find "$HERE/src/test/java" -name '*.java' | sort)
mkdir -p "$work/main" "$work/test"
javac --release 17 -Xlint:all -encoding UTF-8 -d "$work/main" -cp "$JSON_JAR" "${main_src[@]}"
javac --release 17 -Xlint:all,-serial -encoding UTF-8 -d "$work/test" -cp "$work/main:$JUNIT_JAR:$HAMCREST_JAR:$JSON_JAR" "${test_src[@]}"

# every public *Test class under src/test/java
classes=()
for f in "${test_src[@]}"; do
    case "$f" in
        *Test.java)
            rel="${f#"$HERE/src/test/java/"}"
            rel="${rel%.java}"
            classes+=("${rel//\//.}")
            ;;
    esac
done

status=0
java -Djava.awt.headless=true -Dedgepack.assets="$assets" \
    -cp "$work/main:$work/test:$JUNIT_JAR:$HAMCREST_JAR:$JSON_JAR" \
    org.junit.runner.JUnitCore "${classes[@]}" || status=$?
exit "$status"
