/**
 * The CUDA compute backend: {@link io.sparkprune.kernels.cuda.CudaBackend}, our own kernels
 * ({@code src/main/cuda}, compiled by nvcc into a fatbin resource at build time) driven through
 * JCuda's driver API ({@code cuModuleLoadData}, {@code cuLaunchKernel}); only {@code libcuda.so.1} is
 * needed at run time. {@link io.sparkprune.kernels.cuda.DeviceBuffer} owns device memory;
 * {@link io.sparkprune.kernels.cuda.CudaBackend#kernelStatus()} says which operations run on the GPU
 * and which are still delegated to the CPU backend.
 */
package io.sparkprune.kernels.cuda;
