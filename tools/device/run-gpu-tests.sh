#!/usr/bin/env bash
# Runs ON the GPU machine (no Java, no Maven needed): unpacks the bundle made by build-bundle.sh to
# /tmp, runs the @Tag("gpu") tests with JUnit's console launcher, then the quick kernel timings.
# Usage (from the directory holding the bundle): bash .bundle/run-gpu-tests.sh [extra console args]
# SPARKPRUNE_TEST_JAVA_OPTS adds JVM flags to the test runs (e.g. -Dsparkprune.test.seed=N: repeat a seed).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
rm -rf /tmp/sparkprune-gpu && tar -C /tmp -xJf "$HERE/sparkprune-gpu.tar.xz"
B=/tmp/sparkprune-gpu
JAVA="$B/jre/bin/java"
CP="$(ls "$B"/lib/*.jar | tr '\n' ':')$B/classes/kernels-tests:$B/classes/calibration-tests"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
date -u +"run at %Y-%m-%dT%H:%M:%SZ"
read -r -a TEST_OPTS <<< "${SPARKPRUNE_TEST_JAVA_OPTS:-}"
"$JAVA" -Xmx24g --add-modules jdk.incubator.vector "${TEST_OPTS[@]}" -jar "$B/junit-console.jar" execute \
  --class-path "$CP" --scan-class-path "$B/classes/kernels-tests:$B/classes/calibration-tests" \
  --include-tag gpu --details=tree --disable-banner --disable-ansi-colors "$@"
rc=$?
# the pipeline's GPU tests, by class name (see build-bundle.sh)
SEL=()
while read -r c; do [ -n "$c" ] && SEL+=(--select-class "$c"); done < "$B/classes/pipeline-gpu-tests.txt"
if [ ${#SEL[@]} -gt 0 ]; then
  "$JAVA" -Xmx24g --add-modules jdk.incubator.vector "${TEST_OPTS[@]}" -jar "$B/junit-console.jar" execute \
    --class-path "$CP:$B/classes/pipeline-tests" "${SEL[@]}" \
    --include-tag gpu --details=tree --disable-banner --disable-ansi-colors "$@" || rc=1
fi
if [ "${SPARKPRUNE_BENCH:-1}" = 1 ]; then
  echo "== kernel timings"
  "$JAVA" -Xmx24g --add-modules jdk.incubator.vector -cp "$CP" io.sparkprune.kernels.cuda.CudaKernelBench 5 || rc=1
fi
if [ "${SPARKPRUNE_KERNEL_TABLE:-1}" = 1 ]; then
  TC=""
  if [ -f "$HERE/torch_ceilings.py" ] && command -v python3 >/dev/null; then
    echo "== PyTorch ceilings"
    python3 "$HERE/torch_ceilings.py" | tee /tmp/ceilings.txt
    TC=$(awk '/^torch matmul bf16/{print $(NF-1)}' /tmp/ceilings.txt | head -1)
  fi
  "$JAVA" -Xmx48g --add-modules jdk.incubator.vector -cp "$CP" io.sparkprune.calibration.bench.KernelBench \
    ${TC:+--tc-tflops $TC} ${SPARKPRUNE_KERNEL_ARGS:-} || rc=1
fi
exit $rc
