#!/usr/bin/env bash
# Packs what the Spark job needs on the GPU machine (which has no Java, no Maven and takes at most
# 64 MiB per upload): a jlinked JRE 17, the jobs module's runtime classpath (Spark included; the
# default model's 83 MB jar, RocksDB, lucene-test-framework and non-Linux natives left out) and
# SparkPrune's conf/ files, as one tar.xz split into numbered parts of at most PART_MB (default 40)
# MiB under DEST (default /work/main/.stage), with SHA256SUMS. Each part travels in its own device
# call (carry .stage/pNN); tools/device/spark-gpu.sh on the device collects the parts in
# /tmp/sparkprune-stage, checks them against SHA256SUMS and unpacks only when all have arrived.
#
# Usage: tools/device/stage-spark.sh [DEST]     Needs: JDK 17 (jlink), a `mvn -DskipTests package` build.
#        tools/device/stage-spark.sh --overlay  only SparkPrune's jars into .overlay (carry it with a run)
# DEFAULT_MODEL=1 keeps the default model's jar (two more parts; needed by the parity-default scenario).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if [ "${1:-}" = --overlay ]; then
  # only SparkPrune's own jars (after mvn -DskipTests package), into .overlay: carried with a run, they replace
  # the staged copies (spark-gpu.sh), so an already staged machine picks up a code change in one small upload
  rm -rf "$ROOT/.overlay" && mkdir -p "$ROOT/.overlay"
  for m in kernels calibration pipeline jobs; do cp "$ROOT/$m/target/sparkprune-$m-"*-SNAPSHOT.jar "$ROOT/.overlay/"; done
  rm -f "$ROOT/.overlay/"*-spark-submit.jar
  ls -la "$ROOT/.overlay"; exit 0
fi
DEST="${1:-$ROOT/.stage}"
PART_MB="${PART_MB:-40}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
S="$WORK/sparkprune-spark"
mkdir -p "$S/jars" "$S/conf"
cd "$ROOT"
for f in jobs/target/classpath.txt jobs/target/classpath-runtime.txt; do
  [ -f "$f" ] || { echo "missing $f: run mvn -DskipTests package first" >&2; exit 1; }
done
cp jobs/target/sparkprune-jobs-*-SNAPSHOT.jar "$S/jars/"
{ cat jobs/target/classpath.txt; echo; cat jobs/target/classpath-runtime.txt; } | tr ':' '\n' | grep -v '^$' | sort -u |
  { if [ "${DEFAULT_MODEL:-0}" = 1 ]; then cat; else grep -v -e langchain4j-embeddings; fi; } | grep -v -e rocksdbjni \
          -e 'osx-' -e 'aarch_64' -e 'windows' | while read -r jar; do
    case "$jar" in
      *jcuda-natives*)
        mkdir -p "$WORK/natives" && (cd "$WORK/natives" && unzip -q -o "$jar" 'lib/libJCudaDriver-*' 'META-INF/*')
        (cd "$WORK/natives" && zip -q -r "$S/jars/$(basename "$jar")" .) ;;
      *tokenizers-*.jar|*zstd-jni-*.jar|*snappy-java-*.jar|*lz4-java-*.jar)
        # native libraries for other platforms are dead weight on the x86-64 Linux GPU machine
        cp "$jar" "$S/jars/" && chmod u+w "$S/jars/$(basename "$jar")"
        zip -q -d "$S/jars/$(basename "$jar")" 'native/lib/linux-aarch64/*' 'native/lib/osx-*' 'native/lib/win-*' \
          'aix/*' 'win/*' 'darwin/*' 'freebsd/*' 'linux/aarch64/*' 'linux/arm*' 'linux/loongarch64/*' 'linux/mips64/*' \
          'linux/ppc64*' 'linux/riscv64/*' 'linux/s390x/*' 'linux/i386/*' 'org/xerial/snappy/native/Mac/*' \
          'org/xerial/snappy/native/Windows/*' 'org/xerial/snappy/native/AIX/*' 'org/xerial/snappy/native/FreeBSD/*' \
          'org/xerial/snappy/native/Linux/aarch64/*' 'org/xerial/snappy/native/Linux/arm*' 'org/xerial/snappy/native/Linux/ppc*' \
          'org/xerial/snappy/native/Linux/s390x/*' 'org/xerial/snappy/native/Linux/riscv64/*' 'org/xerial/snappy/native/Linux/x86/*' \
          'org/xerial/snappy/native/Linux/loongarch64/*' 'net/jpountz/util/darwin/*' 'net/jpountz/util/win32/*' \
          'net/jpountz/util/linux/aarch64/*' 'net/jpountz/util/linux/ppc64le/*' 'net/jpountz/util/linux/s390x/*' \
          'net/jpountz/util/linux/i386/*' >/dev/null 2>&1 || true ;;
      *.jar) cp "$jar" "$S/jars/" ;;
      *) [ -d "$jar" ] && (cd "$jar" && zip -q -r "$S/jars/$(echo "$jar" | tr '/' '_').jar" .) ;;
    esac
  done
cp conf/jvm-options conf/log4j2.properties conf/gpu-discovery.sh "$S/conf/"
cp -r conf/recipes "$S/conf/"
jlink --add-modules java.base,java.compiler,java.datatransfer,java.desktop,java.instrument,java.logging,java.management,java.management.rmi,java.naming,java.net.http,java.prefs,java.rmi,java.scripting,java.security.jgss,java.security.sasl,java.sql,java.sql.rowset,java.transaction.xa,java.xml,java.xml.crypto,jdk.unsupported,jdk.incubator.vector,jdk.crypto.ec,jdk.security.auth,jdk.jfr,jdk.management,jdk.zipfs,jdk.httpserver \
  --strip-debug --no-man-pages --no-header-files --compress=2 --output "$S/jre" 2>/dev/null
rm -rf "$DEST" && mkdir -p "$DEST"
tar -C "$WORK" -cf - sparkprune-spark | xz -T2 -6 > "$WORK/spark.tar.xz"
split -b "${PART_MB}M" -d -a 2 "$WORK/spark.tar.xz" "$WORK/part"
for p in "$WORK"/part*; do
  n="p${p##*part}"
  mkdir -p "$DEST/$n" && mv "$p" "$DEST/$n/spark.tar.xz.$n"
done
(cd "$DEST" && sha256sum p*/spark.tar.xz.* | sed 's| p[0-9]*/| |' > SHA256SUMS)
ls "$DEST"; du -sh "$DEST"/p*
