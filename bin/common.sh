# Sourced by the bin/netutils-example-* launchers (POSIX sh): finds a JDK 25 or newer the way .ci/run does and
# the built example jars, then sets $java and $module_path. Not meant to be run by itself.

project=$(cd "$(dirname "$0")/.." && pwd)

java_major() { # prints the feature version of the JDK at $1, or 0
    if [ -f "$1/release" ]; then
        sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$1/release" | head -n 1
    else
        echo 0
    fi
}

java_home=""
if [ -n "${JAVA_HOME:-}" ] && [ "$(java_major "$JAVA_HOME")" -ge 25 ] 2>/dev/null; then
    java_home=$JAVA_HOME
else
    # The java on the PATH, then the usual install places.
    on_path=$(command -v java 2>/dev/null || true)
    if [ -n "$on_path" ]; then
        on_path=$(dirname "$(dirname "$(readlink -f "$on_path")")")
    fi
    for candidate in "$on_path" /usr/lib/jvm/* /opt/java/* /opt/jdk*; do
        [ -n "$candidate" ] && [ -d "$candidate" ] || continue
        if [ "$(java_major "$candidate")" -ge 25 ] 2>/dev/null; then
            java_home=$candidate
            break
        fi
    done
fi
if [ -z "$java_home" ]; then
    echo "error: no JDK 25 or newer found (set JAVA_HOME to one)" >&2
    exit 1
fi
java="$java_home/bin/java"

# The examples' classes and their runtime dependencies, as Maven leaves them: the compiled classes (the same
# as the jar after `package`, and already there when the tests run, before the jar is made), else the jar.
examples="$project/netutils-examples/target/classes"
if [ ! -f "$examples/module-info.class" ]; then
    examples=$(ls "$project"/netutils-examples/target/netutils-examples-*.jar 2>/dev/null | head -n 1)
fi
dependencies="$project/netutils-examples/target/runtime-module-path.txt"
if [ -z "$examples" ] || [ ! -f "$dependencies" ]; then
    echo "error: the examples are not built; run first: ./mvnw -q -DskipTests package -pl netutils-examples -am" >&2
    exit 1
fi
module_path="$examples:$(cat "$dependencies")"
