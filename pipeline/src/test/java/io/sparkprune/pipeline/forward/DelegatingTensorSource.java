package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.HostTensor;

/** A tensor source that passes everything to another; tests override {@link #read} to count, slow or fail reads. */
class DelegatingTensorSource implements TensorSource {
    final TensorSource inner;

    DelegatingTensorSource(TensorSource inner) {
        this.inner = inner;
    }

    @Override
    public String source() {
        return inner.source();
    }

    @Override
    public boolean contains(String name) {
        return inner.contains(name);
    }

    @Override
    public long[] shape(String name) {
        return inner.shape(name);
    }

    @Override
    public HostTensor read(String name) {
        return inner.read(name);
    }
}
