package netutils.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * Where threads run in the benchmark's placed passes (8 KiB with servers on the other CPU, and 256 MiB in own
 * JVMs). On two CPUs the scheduler puts each stack's server thread on the client's CPU or on the other one and keeps
 * that choice for a whole pass, differently for each stack; a placed pass decides instead: the child JVM pins
 * itself (every thread, and so every thread it starts later) to the client CPU, and each stack's server-side code
 * pins its own thread to the server CPU on its first message. Uses
 * {@code taskset} on Linux thread ids; does nothing unless {@code -Dbench.serverCpu} is set.
 */
final class Placement {
    /** The CPU of server-side threads, or -1: threads are left to the scheduler (every pass but the placed ones). */
    static final int SERVER_CPU = Integer.getInteger("bench.serverCpu", -1);
    private static final ThreadLocal<Boolean> PLACED = new ThreadLocal<>();

    private Placement() {
    }

    /**
     * Pins every thread of this process, and with them the threads they start later, to the CPU that
     * {@code -Dbench.clientCpu} names; does nothing without it. Call before any stack starts a thread.
     */
    static void pinClients() throws IOException, InterruptedException {
        Integer cpu = Integer.getInteger("bench.clientCpu");
        if (cpu != null) {
            taskset("-a", "-p", "-c", Integer.toString(cpu), Long.toString(ProcessHandle.current().pid()));
        }
    }

    /** Called by the server side of each stack for each message: the first call on a thread pins that thread. */
    static void serverThread() {
        if (SERVER_CPU < 0 || PLACED.get() != null) {
            return;
        }
        PLACED.set(Boolean.TRUE);
        try {
            // /proc/thread-self links to <pid>/task/<tid> of the calling thread (of the carrier, for a virtual one).
            String tid = Files.readSymbolicLink(Path.of("/proc/thread-self")).getFileName().toString();
            taskset("-p", "-c", Integer.toString(SERVER_CPU), tid);
        } catch (IOException | InterruptedException e) {
            throw new IllegalStateException("cannot pin a server thread to CPU " + SERVER_CPU, e);
        }
    }

    private static void taskset(String... arguments) throws IOException, InterruptedException {
        String[] command = new String[arguments.length + 1];
        command[0] = "taskset";
        System.arraycopy(arguments, 0, command, 1, arguments.length);
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String said = new String(process.getInputStream().readAllBytes());
        if (!process.waitFor(10, TimeUnit.SECONDS) || process.exitValue() != 0) {
            throw new IOException(String.join(" ", command) + " failed: " + said.trim());
        }
    }
}
