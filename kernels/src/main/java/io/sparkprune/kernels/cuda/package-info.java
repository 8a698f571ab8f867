/**
 * The CUDA compute backend: {@link io.sparkprune.kernels.cuda.CudaBackend}, our own kernels
 * ({@code src/main/cuda}, compiled by nvcc into fatbin resources at build time: {@code sparkprune.fatbin}
 * for sm_80/sm_90, and {@code sparkprune_sm90a.fatbin}, the Hopper {@code wgmma} kernels used on
 * compute capability 9.0, see {@link io.sparkprune.kernels.cuda.CudaBackend#hopperKernels()}) driven through
 * JCuda's driver API ({@code cuModuleLoadData}, {@code cuLaunchKernel}); only {@code libcuda.so.1} is
 * needed at run time. {@link io.sparkprune.kernels.cuda.DeviceBuffer} owns device memory;
 * {@link io.sparkprune.kernels.cuda.CudaBackend#kernelStatus()} says which operations run on the GPU
 * and which are still delegated to the CPU backend. Each backend queues its launches and copies on
 * one stream of its own and stages large host↔device copies through page-locked buffers
 * ({@code PinnedStaging}); Hessian sums can stay on the device across
 * batches ({@link io.sparkprune.kernels.ResidentHessian}). Device copies of host arrays are kept across
 * workspaces by identity-keyed caches ({@code DeviceArrayCache}): weights, and block outputs between the
 * prune job's passes ({@code ActivationCache}, see {@link io.sparkprune.kernels.ResidentForward}).
 */
package io.sparkprune.kernels.cuda;
