package io.sparkprune.jobs.commit;

/**
 * Two attempts of the same task produced different bytes for one shard. Shards must be a
 * deterministic function of the inputs (the whole resume and retry design rests on it), so this is a
 * bug, not bad input; the published shard is left untouched.
 */
public class NondeterministicShardException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message the shard, both sizes and digests
     */
    public NondeterministicShardException(String message) {
        super(message);
    }
}
