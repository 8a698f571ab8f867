#!/usr/bin/env bash
# Runs ON the GPU machine (or, with GPUS=0, on any Linux host to check the mechanics): the real Spark
# job on a standalone Master and Worker started here, with the Worker offering the host's GPUs
# (spark.worker.resource.gpu.* and conf/gpu-discovery.sh) and executors binding them (GpuBinding).
#
#   bash tools/device/spark-gpu.sh collect        copy this call's .stage/pNN parts to /tmp/sparkprune-stage
#   bash tools/device/spark-gpu.sh run SCENARIO   collect, check every part against SHA256SUMS, unpack once,
#                                                 start the cluster, run SCENARIO (below), stop the cluster
# Scenarios: parity  — a generated Llama (bf16) pruned 2:4 twice on the cluster, backend cpu and cuda, compared
#            parity-default — the default job (all-MiniLM-L6-v2, 2:4) twice on the cluster, backend cpu and cuda,
#                     compared (needs a stage made with DEFAULT_MODEL=1; PRUNE_ARGS adds prune flags)
#            llama7b — a Llama-2-7B-shaped model with LAYERS layers (default 2), bf16, pruned 2:4 on the GPU, once per
#                     forward precision in FORWARDS (default fp32; e.g. "fp32 tf32"); PRUNE_ARGS adds prune flags
# Results in OUT: each run's log and report, the cluster's logs, executors.log.gz (every executor's stderr) and
# events/ (Spark's event logs, uncompressed JSON lines).
# Environment: GPUS (GPUs the Worker offers, default: nvidia-smi's count; the 7B scenario runs one executor
#              per GPU), OUT (results, default /tmp/out), SAMPLES, SEQ (calibration), EVAL (held-out samples of
#              llama7b, default the recipe's 128), LAYERS, SUBMIT_CONF (extra spark-submit arguments, e.g.
#              --conf spark.executor.defaultJavaOptions=-XX:StartFlightRecording=filename=/tmp/e.jfr), DRIVER_JAVA_OPTS
#              (JVM flags of the client-mode driver, which is the spark-submit JVM itself), WORKER_MEM
#              (default 100g), EXEC_MEM (default 96g; two executors need WORKER_MEM >= 2 x EXEC_MEM).
set -uo pipefail
STAGE=/tmp/sparkprune-stage
SH=/tmp/sparkprune-spark
mkdir -p "$STAGE"
for f in .stage/p*/spark.tar.xz.p* .stage/SHA256SUMS; do [ -f "$f" ] && cp "$f" "$STAGE/"; done
echo "staged parts: $(cd "$STAGE" && ls spark.tar.xz.p* 2>/dev/null | tr '\n' ' ')"
[ "${1:-collect}" = collect ] && exit 0
SCENARIO="${2:-parity}"
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
if ! (cd "$STAGE" && sha256sum -c --quiet SHA256SUMS); then
  echo "not every part arrived intact (see above): upload the missing ones with 'collect' first" >&2; exit 3
fi
[ -d "$SH" ] || (cat "$STAGE"/spark.tar.xz.p* | xz -d | tar -C /tmp -xf -) || exit 3
# .overlay/*.jar (tools/device/stage-spark.sh --overlay): SparkPrune's own jars rebuilt since the stage was
# made, a few MB that replace the staged ones, so a code change does not need the whole stage again
for j in .overlay/sparkprune-*.jar; do [ -f "$j" ] && cp "$j" "$SH/jars/" && echo "overlay: $(basename "$j")"; done
export SPARK_HOME="$SH" SPARK_SCALA_VERSION=2.13 JAVA_HOME="$SH/jre"
JAVA="$JAVA_HOME/bin/java"
CP="$SH/conf:$SH/jars/*"
mapfile -t OPENS < <(grep -v '^#' "$SH/conf/jvm-options" | grep -v '^$')
GPUS="${GPUS:-$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | wc -l)}"
CORES="$(nproc)"
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader 2>/dev/null
echo "host: $CORES cores, $GPUS GPU(s) offered"

WORK=/tmp/sparkprune-cluster; rm -rf "$WORK"; mkdir -p "$WORK"
cleanup() { # stop the cluster and wait until its processes are gone, so a next run's Master gets the ports
  kill $(jobs -p) 2>/dev/null; sleep 1; pkill -f org.apache.spark.deploy 2>/dev/null; pkill -f CoarseGrainedExecutorBackend 2>/dev/null
  for _ in $(seq 30); do pgrep -f "org.apache.spark.deploy|CoarseGrainedExecutorBackend" >/dev/null || break; sleep 1; done; }
trap cleanup EXIT
"$JAVA" -Xmx2g "${OPENS[@]}" -cp "$CP" org.apache.spark.deploy.master.Master --host 127.0.0.1 --port 7077 \
  --webui-port 8080 > "$WORK/master.log" 2>&1 &
alive() { python3 -c "import json,urllib.request;print(json.load(urllib.request.urlopen('http://127.0.0.1:8080/json/')).get('aliveworkers',0))" 2>/dev/null || echo -1; }
for i in $(seq 60); do [ "$(alive)" -ge 0 ] && break; sleep 1; done
start_worker() { # $1 = name, $2 = GPU addresses visible to it (CUDA_VISIBLE_DEVICES-style list or empty)
  local res=()
  if [ "$GPUS" -gt 0 ]; then
    res=(-Dspark.worker.resource.gpu.amount="$3" -Dspark.worker.resource.gpu.discoveryScript="$SH/conf/gpu-discovery.sh")
  fi
  "$JAVA" -Xmx2g "${OPENS[@]}" "${res[@]}" -cp "$CP" org.apache.spark.deploy.worker.Worker spark://127.0.0.1:7077 \
    --host 127.0.0.1 --cores "$4" --memory "$5" --work-dir "$WORK/$1" > "$WORK/$1.log" 2>&1 &
}
start_worker worker1 "" "$GPUS" "$CORES" "${WORKER_MEM:-100g}"
for i in $(seq 90); do [ "$(alive)" -ge 1 ] && break; sleep 1; done
[ "$(alive)" -ge 1 ] || { echo "the Worker did not register"; tail -40 "$WORK/worker1.log"; exit 4; }
python3 -c "import json,urllib.request;w=json.load(urllib.request.urlopen('http://127.0.0.1:8080/json/'))['workers'][0];print('worker:', w.get('cores'), 'cores,', w.get('memory'), 'MB, resources', w.get('resources'))"

read -r -a SUBMIT_EXTRA <<< "${SUBMIT_CONF:-}"   # extra spark-submit arguments (no spaces inside one)
# Spark's event log (task metrics: run, GC, serialization and shuffle times) comes back in $OUT/events
mkdir -p "$OUT/events"
EVENTS=(--conf spark.eventLog.enabled=true --conf spark.eventLog.dir="file://$OUT/events" --conf spark.eventLog.compress=false)
submit() { # $1 = backend, $2 = executor cores, rest = sparkprune arguments
  local backend="$1" cores="$2"; shift 2
  local gpu=()
  if [ "$GPUS" -gt 0 ]; then
    gpu=(--conf spark.executor.resource.gpu.amount=1 --conf spark.task.resource.gpu.amount=0.25
         --conf spark.executor.resource.gpu.discoveryScript="$SH/conf/gpu-discovery.sh")
  fi
  read -r -a DRIVER_OPTS <<< "${DRIVER_JAVA_OPTS:-}"   # the client-mode driver is this JVM (e.g. a JFR recording)
  "$JAVA" -Xmx24g "${OPENS[@]}" "${DRIVER_OPTS[@]}" -Dlog4j2.configurationFile="$SH/conf/log4j2.properties" -cp "$CP" \
    org.apache.spark.deploy.SparkSubmit --master spark://127.0.0.1:7077 --deploy-mode client \
    --class io.sparkprune.jobs.cli.SparkPruneCli --properties-file conf/spark-defaults.conf.template \
    --conf spark.executor.cores="$cores" --conf spark.executor.memory="${EXEC_MEM:-96g}" --conf spark.driver.memory=24g \
    --conf spark.sparkprune.backend="$backend" "${gpu[@]}" "${EVENTS[@]}" "${SUBMIT_EXTRA[@]}" \
    "$(ls "$SH"/jars/sparkprune-jobs-*-SNAPSHOT.jar | head -1)" "$@"
}
cli() { "$JAVA" -Xmx24g "${OPENS[@]}" -cp "$CP" io.sparkprune.jobs.cli.SparkPruneCli "$@"; }

case "$SCENARIO" in
  parity|parity-default)
    if [ "$SCENARIO" = parity ]; then
      M="$WORK/llama-parity"
      # shellcheck disable=SC2086
      cli generate llama -o "$M" ${GEN:---hidden 1024 --layers 4 --heads 16 --intermediate 2816 --vocab 4096} --dtype bf16 --seed 7 || exit 5
      ARGS=(--samples "${SAMPLES:-64}" --seq-len "${SEQ:-512}")
    else
      M=default; read -r -a ARGS <<< "${PRUNE_ARGS:-}"
    fi
    for be in ${BACKENDS:-cpu cuda}; do   # cuda-tf32: the CUDA backend with TF32 Hessians
      t0=$(date +%s)
      EXTRA=(); [ "$be" = cuda-tf32 ] && EXTRA=(--hessian-precision tf32)
      submit "${be%-tf32}" "$CORES" prune "$M" -o "$WORK/pruned-$be" "${ARGS[@]}" "${EXTRA[@]}" > "$OUT/prune-$be.log" 2>&1
      rc=$?; echo "backend $be: exit $rc in $(( $(date +%s) - t0 )) s"; tail -3 "$OUT/prune-$be.log"
      # a failed submit: its first error lines (the tail is only the stack trace's end)
      [ "$rc" -ne 0 ] && grep -m 5 -E "Exception|Error|error:" "$OUT/prune-$be.log"
      cp "$WORK/pruned-$be/report.json" "$OUT/report-$be.json" 2>/dev/null
    done
    [ -d "$WORK/pruned-cuda-tf32" ] && cp "$WORK/pruned-cuda-tf32/report.json" "$OUT/report-cuda-tf32.json"
    python3 - "$WORK/pruned-cpu" "$WORK/pruned-cuda" <<'PY' | tee "$OUT/parity.txt"
import json, sys, glob
from safetensors.torch import load_file
a, b = sys.argv[1], sys.argv[2]
ta = {}; tb = {}
for f in sorted(glob.glob(a + "/*.safetensors")): ta.update(load_file(f))
for f in sorted(glob.glob(b + "/*.safetensors")): tb.update(load_file(f))
same = total = 0; worst = 0.0; per_layer = {}; per_tensor = {}
for k, x in ta.items():
    y = tb[k]
    sep = ".layers." if ".layers." in k else ".layer."
    if x.dim() == 2 and sep in k:
        mx, my = (x == 0), (y == 0)
        s1, n1 = int((mx == my).sum()), mx.numel()
        same += s1; total += n1; per_tensor[k] = s1 / n1
        layer = int(k.split(sep)[1].split(".")[0])
        a0, b0 = per_layer.get(layer, (0, 0)); per_layer[layer] = (a0 + s1, b0 + n1)
        d = (x.float() - y.float()).norm() / max(x.float().norm(), 1e-30)
        worst = max(worst, float(d))
ra = json.load(open(a + "/report.json")); rb = json.load(open(b + "/report.json"))
print(f"mask agreement over pruned tensors: {same / total:.6f} ({total} entries); worst relative weight difference {worst:.3e}")
print("mask agreement per layer (sequential mode: later layers see inputs that already differ):",
      {l: round(a / b, 6) for l, (a, b) in sorted(per_layer.items())})
print("the 12 tensors with the lowest mask agreement:",
      {k: round(v, 6) for k, v in sorted(per_tensor.items(), key=lambda kv: kv[1])[:12]})
for name, r in (("cpu", ra), ("cuda", rb)):
    q = r["quality"]
    print(f"{name}: quality {json.dumps({k: v for k, v in q.items() if not isinstance(v, (list, dict))})};"
          f" tensor backends {sorted({t.get('backend') for t in r['tensors']})}; run {r['run'].get('seconds'):.1f} s;"
          f" stages {json.dumps({k: round(v, 2) for k, v in r['run'].get('stage_seconds', {}).items()})}")
PY
    ;;
  llama7b)
    M="$WORK/llama7b"
    t0=$(date +%s)
    cli generate llama -o "$M" --hidden 4096 --layers "${LAYERS:-2}" --heads 32 --intermediate 11008 --vocab 32000 \
      --dtype bf16 --seed 7 || exit 5
    echo "generated in $(( $(date +%s) - t0 )) s: $(du -sh "$M" | cut -f1)"
    # Calibration text with documents longer than 2048 byte-level tokens (Europarl's lines are shorter):
    # the Python standard library's sources on that machine, one JSONL document per file.
    python3 - <<'PY'
import json, pathlib, sysconfig
root = pathlib.Path(sysconfig.get_paths()["stdlib"])
with open("/tmp/calib.jsonl", "w") as out:
    for f in sorted(root.rglob("*.py")):
        try:
            t = f.read_text(encoding="utf-8")
        except Exception:
            continue
        if 4096 <= len(t.encode()) <= 200000 and t.isascii():
            out.write(json.dumps({"text": t}) + "\n")
PY
    echo "calibration: $(wc -l < /tmp/calib.jsonl) documents, $(du -h /tmp/calib.jsonl | cut -f1)"
    # one executor per GPU: each takes CORES / GPUS cores and one GPU; one run per forward precision in FORWARDS
    EV=(); [ -n "${EVAL:-}" ] && EV=(--eval-samples "$EVAL")
    read -r -a PA <<< "${PRUNE_ARGS:-}"
    for fp in ${FORWARDS:-fp32}; do
      t0=$(date +%s)
      submit cuda "$(( CORES / (GPUS > 0 ? GPUS : 1) ))" prune "$M" -o "$WORK/llama7b-2of4-$fp" --calib /tmp/calib.jsonl \
        --samples "${SAMPLES:-128}" --seq-len "${SEQ:-2048}" --forward-precision "$fp" "${EV[@]}" "${PA[@]}" \
        > "$OUT/prune-7b-$fp.log" 2>&1
      echo "forward $fp: prune exit $? in $(( $(date +%s) - t0 )) s"; tail -5 "$OUT/prune-7b-$fp.log"
      cp "$WORK/llama7b-2of4-$fp/report.json" "$OUT/report-7b-$fp.json" 2>/dev/null
      python3 -c "import json,sys;r=json.load(open(sys.argv[1]));print('stages', json.dumps({k: round(v, 1) for k, v in r['run']['stage_seconds'].items()}), 'quality', json.dumps({k: v for k, v in r['quality'].items() if not isinstance(v, (list, dict))}))" "$OUT/report-7b-$fp.json" 2>/dev/null
      rm -rf "$WORK/llama7b-2of4-$fp"
    done
    ;;
esac
cp "$WORK"/*.log "$OUT/" 2>/dev/null
# executors' logs (stderr of each, one file), compressed
find "$WORK" -path '*/app-*/*/stderr' 2>/dev/null | sort | while read -r f; do echo "=== $f"; cat "$f"; done | gzip > "$OUT/executors.log.gz"
