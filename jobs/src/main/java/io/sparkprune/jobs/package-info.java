/** Spark side of SparkPrune: the distributed plan, executor GPU binding and the command line. */
package io.sparkprune.jobs;
