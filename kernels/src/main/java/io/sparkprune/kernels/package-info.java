/** Numeric host types and compute backends; depends on nothing else in SparkPrune. */
package io.sparkprune.kernels;
