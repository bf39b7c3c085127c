package netutils.transport.tcp;

import java.time.Duration;

/**
 * How a reconnecting connection tries again after losing its peer: waits that grow exponentially from
 * {@code initialBackoff} to {@code maxBackoff}, each varied by up to {@code jitter} (a fraction) so that many
 * clients do not come back in step, going to the next address of the list on each failed attempt.
 *
 * @param initialBackoff the wait before the first attempt
 * @param maxBackoff the longest wait between attempts
 * @param jitter how much each wait varies, from 0 (never) to 1 (by up to its whole length)
 * @param maxAttempts attempts before giving up (the connection then closes); 0 for no limit
 */
public record ReconnectPolicy(Duration initialBackoff, Duration maxBackoff, double jitter, int maxAttempts) {

    /** Checks the values. */
    public ReconnectPolicy {
        if (initialBackoff.isNegative() || initialBackoff.isZero() || maxBackoff.compareTo(initialBackoff) < 0) {
            throw new IllegalArgumentException("backoff must be positive and maxBackoff at least initialBackoff, got "
                    + initialBackoff + " and " + maxBackoff);
        }
        if (!(jitter >= 0 && jitter <= 1)) {
            throw new IllegalArgumentException("jitter must be in 0..1, got " + jitter);
        }
        if (maxAttempts < 0) {
            throw new IllegalArgumentException("maxAttempts must not be negative, got " + maxAttempts);
        }
    }

    /** {@return the default policy: 100 ms doubling up to 10 s, 20 % jitter, no limit on attempts} */
    public static ReconnectPolicy defaults() {
        return new ReconnectPolicy(Duration.ofMillis(100), Duration.ofSeconds(10), 0.2, 0);
    }

    /** The wait before attempt {@code attempt} (0 for the first), jitter applied with {@code random} in [0, 1). */
    Duration backoff(int attempt, double random) {
        double base = Math.min(maxBackoff.toNanos(), initialBackoff.toNanos() * Math.pow(2, Math.min(attempt, 62)));
        double varied = base * (1 - jitter + 2 * jitter * random);
        return Duration.ofNanos((long) Math.max(1, varied));
    }
}
