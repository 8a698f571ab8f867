#!/usr/bin/env bash
# Builds the GPU test bundle for a machine with an NVIDIA driver but no Java and no Maven:
# a jlinked JRE 17, the kernels, calibration and pipeline jars, their test classes and resources, the test
# dependency jars (JCuda's natives stripped to the driver binding) and JUnit's console launcher,
# as one tar.xz (<= 60 MiB), plus run-gpu-tests.sh that runs the @Tag("gpu") tests and the kernel
# timings there.
#
# Usage: tools/device/build-bundle.sh [DEST_DIR]   (default: /work/main/.bundle)
# Needs: JDK 17 (jlink), Maven with the dependencies in ~/.m2 (runs offline), nvcc (the kernels).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DEST="${1:-/work/main/.bundle}"
JUNIT_CONSOLE_VERSION="${JUNIT_CONSOLE_VERSION:-1.14.4}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/sparkprune-gpu"
mkdir -p "$STAGE/lib" "$STAGE/classes"

cd "$ROOT"
echo "== building kernels, calibration and pipeline (tests compiled, not run)"
mvn -B -o -q -pl kernels,calibration,pipeline -DskipTests package
for m in kernels calibration; do
  cp "$m"/target/sparkprune-"$m"-*.jar "$STAGE/lib/"
  cp -r "$m/target/test-classes" "$STAGE/classes/$m-tests"
  mvn -B -o -q -pl "$m" dependency:build-classpath -Dmdep.includeScope=test \
      -Dmdep.outputFile="$WORK/$m.cp" >/dev/null
done
# the pipeline jar and the few of its dependencies that its GPU benchmarks touch (LayerBench:
# sparkprune bench layer); not its Hadoop, Parquet, tokenizer or model jars
cp pipeline/target/sparkprune-pipeline-*.jar "$STAGE/lib/"
# the pipeline's @Tag("gpu") test classes (with the test resources they read), run by name: scanning
# all of the pipeline's test classes would load ones whose Hadoop/Parquet/tokenizer jars are left out
cp -r pipeline/target/test-classes "$STAGE/classes/pipeline-tests"
grep -rl 'Tag("gpu")' pipeline/src/test/java | sed 's#pipeline/src/test/java/##; s#\.java$##; s#/#.#g' \
  > "$STAGE/classes/pipeline-gpu-tests.txt"
mvn -B -o -q -pl pipeline dependency:build-classpath -Dmdep.includeScope=runtime \
    -Dmdep.outputFile="$WORK/pipeline.cp" >/dev/null
tr ':' '\n' < "$WORK/pipeline.cp" | grep -E '/(jackson-(core|databind|annotations)|slf4j-api)-[0-9]' \
  | while read -r jar; do cp "$jar" "$STAGE/lib/"; done
# dependency jars (sparkprune's own jars come from the build above)
tr ':' '\n' < <(cat "$WORK/kernels.cp"; echo; cat "$WORK/calibration.cp") | sort -u | grep -v '^$' \
  | grep -v '/io/sparkprune/' | while read -r jar; do
    case "$jar" in
      *jcuda-natives*)
        # keep only the driver binding (the jar also holds a 24 MB PTX compiler we do not use)
        mkdir -p "$WORK/natives" && (cd "$WORK/natives" && unzip -q -o "$jar" 'lib/libJCudaDriver-*' 'META-INF/*')
        (cd "$WORK/natives" && zip -q -r "$STAGE/lib/$(basename "$jar")" .) ;;
      *) cp "$jar" "$STAGE/lib/" ;;
    esac
  done
CONSOLE="$HOME/.m2/repository/org/junit/platform/junit-platform-console-standalone/$JUNIT_CONSOLE_VERSION/junit-platform-console-standalone-$JUNIT_CONSOLE_VERSION.jar"
if [ ! -f "$CONSOLE" ]; then
  mvn -B -q dependency:get -Dartifact="org.junit.platform:junit-platform-console-standalone:$JUNIT_CONSOLE_VERSION"
fi
cp "$CONSOLE" "$STAGE/junit-console.jar"
# the console launcher brings its own JUnit; drop the duplicates
# AssertJ needs Byte Buddy only for soft assertions, which no GPU test uses (9 MB the upload cannot spare)
rm -f "$STAGE"/lib/byte-buddy-*.jar
rm -f "$STAGE"/lib/junit-jupiter-*.jar "$STAGE"/lib/junit-platform-*.jar "$STAGE"/lib/opentest4j-*.jar \
      "$STAGE"/lib/apiguardian-*.jar

echo "== jlink JRE"
jlink --add-modules java.base,java.logging,java.management,java.xml,java.sql,jdk.unsupported,jdk.incubator.vector \
      --strip-debug --no-man-pages --no-header-files --compress=2 --output "$STAGE/jre"
cp "$ROOT/tools/device/run-gpu-tests.sh" "$STAGE/"

mkdir -p "$DEST"
echo "== compressing"
tar -C "$WORK" -cf - sparkprune-gpu | xz -T2 -6 > "$DEST/sparkprune-gpu.tar.xz"
cp "$ROOT/tools/device/run-gpu-tests.sh" "$ROOT/tools/device/torch_ceilings.py" "$DEST/"
size=$(stat -c %s "$DEST/sparkprune-gpu.tar.xz")
echo "bundle: $DEST/sparkprune-gpu.tar.xz ($((size / 1048576)) MiB)"
if [ "$size" -gt $((60 * 1048576)) ]; then
  echo "bundle is larger than 60 MiB: the device upload takes at most 64 MiB" >&2
  exit 1
fi
