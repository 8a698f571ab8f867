/**
 * Pruning baselines for comparison in reports: magnitude pruning and Wanda (Sun et al. 2023,
 * arXiv 2306.11695). Neither updates the remaining weights.
 */
package io.sparkprune.calibration.baseline;
