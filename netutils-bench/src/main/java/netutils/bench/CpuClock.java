package netutils.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.management.ManagementFactory;

/**
 * The process's CPU time, user + system, all threads (JIT and GC included), in nanoseconds. On Linux it reads
 * {@code clock_gettime(CLOCK_PROCESS_CPUTIME_ID)} through the FFM API: the JDK's
 * {@code OperatingSystemMXBean.getProcessCpuTime()} counts in 10 ms clock ticks there, coarser than a round of
 * 8 KiB round trips. Elsewhere it falls back to that bean.
 */
final class CpuClock {
    private static final int CLOCK_PROCESS_CPUTIME_ID = 2;
    private static final MethodHandle CLOCK_GETTIME = clockGettime();
    private static final MemorySegment TIMESPEC = Arena.global().allocate(16, 8);

    private CpuClock() {
    }

    static String source() {
        return CLOCK_GETTIME != null ? "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)" : "OperatingSystemMXBean (coarse)";
    }

    /** Called from one thread at a time (the benchmark's), which is what lets it reuse one timespec. */
    static long processNanos() {
        if (CLOCK_GETTIME != null) {
            try {
                int status = (int) CLOCK_GETTIME.invokeExact(CLOCK_PROCESS_CPUTIME_ID, TIMESPEC);
                if (status == 0) {
                    return TIMESPEC.get(ValueLayout.JAVA_LONG, 0) * 1_000_000_000L + TIMESPEC.get(ValueLayout.JAVA_LONG, 8);
                }
            } catch (Throwable e) {
                throw new IllegalStateException(e);
            }
        }
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }

    private static MethodHandle clockGettime() {
        if (!System.getProperty("os.name").equals("Linux") || !System.getProperty("os.arch").matches("amd64|aarch64")) {
            return null; // timespec is two 64-bit longs on these
        }
        try {
            Linker linker = Linker.nativeLinker();
            return linker.defaultLookup().find("clock_gettime").map(address -> linker.downcallHandle(address,
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS))).orElse(null);
        } catch (RuntimeException | LinkageError unavailable) {
            return null;
        }
    }
}
