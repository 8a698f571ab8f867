package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.model.BertConfig;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/** A small random BERT (hidden 32, 4 heads, intermediate 64, 2 layers) for block tests. */
final class TinyBert {
    static final BertConfig CONFIG = new BertConfig(32, 2, 4, 64, 50, 40, 2, 1e-12, "gelu", 0, "float32");

    private TinyBert() {
    }

    static Map<String, HostTensor> tensors(long seed) {
        return tensors(CONFIG, seed);
    }

    /** Random weights for another config (e.g. more layers). */
    static Map<String, HostTensor> tensors(BertConfig config, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        Map<String, HostTensor> m = new LinkedHashMap<>();
        BertAdapter a = new BertAdapter(config);
        for (ParameterSpec p : a.globalParameters(null)) {
            m.put(p.name(), random(r, p, p.name().endsWith("LayerNorm.weight")));
        }
        for (int l = 0; l < config.numHiddenLayers(); l++) {
            for (ParameterSpec p : a.blockParameters()) {
                m.put(a.layerPrefix(l) + p.name(), random(r, p, p.name().endsWith("LayerNorm.weight")));
            }
        }
        return m;
    }

    private static HostTensor random(SplittableRandom r, ParameterSpec p, boolean gain) {
        float[] v = new float[(int) p.numel()];
        for (int i = 0; i < v.length; i++) {
            v[i] = gain ? (float) (0.5 + r.nextDouble()) : (float) (r.nextGaussian() * 0.3);
        }
        return HostTensor.fromFloats(DType.F32, p.shape(), v);
    }
}
