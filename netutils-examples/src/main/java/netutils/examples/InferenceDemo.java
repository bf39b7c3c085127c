package netutils.examples;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import netutils.api.DType;
import netutils.inference.Checkpoint;
import netutils.inference.Generation;
import netutils.inference.LlamaModel;
import netutils.inference.ModelConfig;
import netutils.inference.PipelineSession;
import netutils.inference.Sampling;
import netutils.transport.tcp.TcpOptions;

/**
 * A LLaMA-style model split across processes on this machine: starts the stage servers as child JVMs
 * ({@link InferenceStage}), runs the head (embedding and first layers) in this one, generates a sequence, moves
 * stage 1's KV cache to a spare server halfway, and prints per token the time, the compute of each process,
 * the overhead of each hop and the bytes of each message type on each hop. It then runs the same model in
 * this process and checks the tokens and the final logits are identical bit for bit (with {@code --wire F32}).
 *
 * <pre>
 * usage: InferenceDemo [--stages 3] [--tokens 32] [--serializer json] [--wire F32|BF16]
 *                      [--sampling greedy|seeded:SEED[:TEMPERATURE[:TOP_K]]] [--prompt 1,2,3,...]
 *                      [--migrate-at STEP|-1] [--checkpoint DIR]
 *                      [--stage-addresses HOST:PORT,...] [--spare HOST:PORT] [--warmup 3]
 *                      [--python-stage I] [--python /usr/bin/python3]
 * </pre>
 * {@code --stage-addresses} uses stage servers already running (for instance in other network namespaces;
 * see {@code netutils-examples/bin/pipeline-netns.sh}) instead of starting them. {@code --python-stage I}
 * starts stage {@code I} as the Python stage server ({@code netutils-inference/python/stage_server.py}, PyTorch
 * or numpy) instead of a JVM (and the spare too when {@code I} is 1); the run is then checked against the
 * single-process model for the same tokens and final logits within {@value #PYTHON_LOGITS_TOLERANCE}.
 */
public final class InferenceDemo {
    static final String USAGE = """
            usage: InferenceDemo [--stages 3] [--tokens 32] [--serializer json] [--wire F32|BF16]
                                 [--sampling greedy|seeded:SEED[:TEMPERATURE[:TOP_K]]] [--prompt 1,2,3,...]
                                 [--migrate-at STEP|-1] [--checkpoint DIR] [--stage-addresses HOST:PORT,...] [--spare HOST:PORT]
                                 [--warmup GENERATIONS] [--python-stage I] [--python /usr/bin/python3]""";
    /**
     * The largest difference allowed between the logits of a pipeline with a Python stage and the Java model's:
     * both compute in float32, but sum in another order (measured: a few 1e-6 on logits of magnitude up to 13).
     */
    static final float PYTHON_LOGITS_TOLERANCE = 1e-4f;

    private InferenceDemo() {
    }

    /** Runs the demo; exits with 1 if the pipeline and the single-process model disagree. */
    public static void main(String[] argv) throws Exception {
        Locale.setDefault(Locale.ROOT);
        Args args = Args.parse(argv, USAGE, "--stages", "--tokens", "--serializer", "--wire", "--sampling", "--prompt",
                "--migrate-at", "--checkpoint", "--stage-addresses", "--spare", "--warmup", "--python-stage", "--python");
        PrintStream out = System.out;
        int tokens = Integer.parseInt(args.get("--tokens", "32"));
        String serializer = args.get("--serializer", "json");
        DType wire = DType.valueOf(args.get("--wire", "F32").toUpperCase(Locale.ROOT));
        Sampling sampling = Sampling.parse(args.get("--sampling", "greedy"));
        int migrateAt = Integer.parseInt(args.get("--migrate-at", Integer.toString(tokens / 2)));
        int[] prompt = Arrays.stream(args.get("--prompt", "1,15,300,42,7,1999,64,128").split(","))
                .mapToInt(s -> Integer.parseInt(s.strip())).toArray();
        Path checkpoint = Path.of(args.get("--checkpoint", "target/tiny-llama")).toAbsolutePath();
        boolean written = Checkpoint.ensure(checkpoint, ModelConfig.demo(), Checkpoint.DEMO_SEED);
        ModelConfig config = ModelConfig.read(checkpoint.resolve(LlamaModel.CONFIG_FILE));
        out.printf("checkpoint %s (%s): %d layers, hidden %d, %d heads / %d KV heads, MLP %d, vocabulary %d%n",
                checkpoint, written ? "written now from seed " + Checkpoint.DEMO_SEED : "exists", config.layers(),
                config.hiddenSize(), config.heads(), config.kvHeads(), config.intermediateSize(), config.vocabSize());

        List<Process> children = new ArrayList<>();
        List<String> stages = new ArrayList<>();
        String spare = args.get("--spare", null);
        int pythonStage = Integer.parseInt(args.get("--python-stage", "0"));
        int processes;
        boolean agrees;
        try {
            String given = args.get("--stage-addresses", null);
            if (given != null) {
                stages.addAll(Arrays.asList(given.split(",")));
                processes = stages.size() + 1;
            } else {
                processes = Integer.parseInt(args.get("--stages", "3"));
                LlamaModel.Slice.ofStage(config, 0, processes); // refuses a split the model cannot take
                if (pythonStage != 0 && (pythonStage < 1 || pythonStage >= processes)) {
                    throw new IllegalArgumentException("--python-stage must be 1.." + (processes - 1) + " (0 is the head,"
                            + " which runs here), not " + pythonStage);
                }
                if (pythonStage != 0 && !serializer.equals("json") && !serializer.equals("msgpack")) {
                    throw new IllegalArgumentException("the Python stage reads json and msgpack envelopes, not "
                            + serializer);
                }
                List<String[]> launches = new ArrayList<>();
                for (int i = 1; i < processes; i++) {
                    launches.add(new String[] {i + "/" + processes});
                }
                if (migrateAt >= 0 && spare == null) {
                    launches.add(new String[] {1 + "/" + processes});
                }
                for (String[] launch : launches) {
                    boolean python = launch[0].equals(pythonStage + "/" + processes);
                    children.add(python ? startPythonStage(args.get("--python", "/usr/bin/python3"), checkpoint, launch[0],
                            serializer) : startStage(checkpoint, launch[0], serializer));
                }
                for (int i = 0; i < children.size(); i++) {
                    String address = awaitBanner(children.get(i), out);
                    if (i < processes - 1) {
                        stages.add(address);
                    } else {
                        spare = address;
                    }
                }
            }
            int warmup = Integer.parseInt(args.get("--warmup", "3"));
            agrees = run(out, checkpoint, config, processes, stages, spare, tokens, serializer, wire, sampling, migrateAt,
                    prompt, warmup, pythonStage != 0);
        } finally {
            for (Process child : children) {
                child.destroy();
            }
            for (Process child : children) {
                child.waitFor(10, TimeUnit.SECONDS);
            }
        }
        if (!agrees) {
            System.exit(1); // after the children are stopped: System.exit skips finally blocks
        }
    }

    /** Runs the generation and its check; false if the pipeline and the single-process model disagree. */
    private static boolean run(PrintStream out, Path checkpoint, ModelConfig config, int processes, List<String> stages,
            String spare, int tokens, String serializer, DType wire, Sampling sampling, int migrateAt, int[] prompt,
            int warmup, boolean python) throws IOException {
        LlamaModel head = LlamaModel.load(checkpoint, LlamaModel.Slice.ofStage(config, 0, processes));
        StringBuilder split = new StringBuilder("head " + head.slice().layers());
        for (int i = 1; i < processes; i++) {
            split.append(", stage ").append(i).append(' ').append(LlamaModel.Slice.ofStage(config, i, processes).layers())
                    .append(" at ").append(stages.get(i - 1));
        }
        out.printf("pipeline of %d processes: %s (+ final norm and head); serializer %s, hidden_state %s, sampling %s%n",
                processes, split, serializer, wire, sampling);
        TcpOptions options = TcpOptions.builder().serializer(serializer).build();
        if (warmup > 0) {
            // Fresh JVMs interpret before they compile: unmeasured generations first, through every server
            // (the spare too), so the figures below are the steady state a long-running pipeline has.
            long begin = System.nanoTime();
            for (int w = 0; w < warmup; w++) {
                try (PipelineSession session = PipelineSession.builder(head, stages).options(options).wire(wire)
                        .sampling(sampling).build()) {
                    PipelineSession.Step step = session.prefill(prompt);
                    for (int i = 1; i < tokens; i++) {
                        if (i == migrateAt && spare != null) {
                            session.migrate(1, spare);
                        }
                        step = session.next(step.token());
                    }
                }
            }
            out.printf("warm-up: %d unmeasured generations of %d tokens in %.1f s%n", warmup, tokens,
                    (System.nanoTime() - begin) / 1e9);
        }
        out.printf("prompt %s%n%n", Arrays.toString(prompt));
        String hops = "";
        for (int k = 0; k < processes - 1; k++) {
            hops += (k == 0 ? "h" : Integer.toString(k)) + ">" + (k + 1) + " ";
        }
        out.printf("%4s %6s %8s  %-24s %-18s %s%n", "step", "token", "ms/tok", "compute ms (head,s1,..)",
                "hop ms (" + hops.strip().replace(' ', ',') + ")", "bytes per hop: KV_index/CIS/mask/hidden_state/answer");
        int[] generated = new int[tokens];
        long[] wall = new long[tokens];
        long[][] compute = new long[tokens][];
        long[][] hopNanos = new long[tokens][];
        List<List<Map<String, Long>>> bytes = new ArrayList<>();
        float[] lastLogits;
        PipelineSession.Migration migration = null;
        try (PipelineSession session = PipelineSession.builder(head, stages).options(options).wire(wire)
                .sampling(sampling).returnLogits(tokens == 1).build()) {
            PipelineSession.Step step = session.prefill(prompt);
            for (int i = 0; ; i++) {
                generated[i] = step.token();
                wall[i] = step.wallNanos();
                compute[i] = step.computeNanos();
                hopNanos[i] = step.hopNanos();
                bytes.add(step.hopBytes());
                printStep(out, i, step);
                if (i + 1 == tokens) {
                    lastLogits = step.logits();
                    break;
                }
                if (i + 1 == migrateAt) {
                    if (spare == null) {
                        throw new IllegalArgumentException("--migrate-at needs a spare stage 1 server (--spare)");
                    }
                    migration = session.migrate(1, spare);
                    out.printf("     migrated stage 1's KV cache of session %s from %s to %s: %d positions, %,d bytes in"
                            + " %d KV_cache message(s), %.2f ms; decoding goes on there%n", session.id(), migration.from(),
                            migration.to(), migration.positions(), migration.bytes(), migration.messages(),
                            migration.nanos() / 1e6);
                }
                session.returnLogits(i + 2 == tokens); // the last answer carries the logits, to check them
                step = session.next(step.token());
            }
        }
        summarize(out, tokens, wall, compute, hopNanos, bytes, hops.strip().split(" "));
        if (python) {
            // Another language sums in another order: the same tokens, logits within a tolerance.
            LlamaModel whole = LlamaModel.load(checkpoint);
            Generation reference = whole.generate(prompt, tokens, sampling, processes, wire.name());
            boolean sameTokens = Arrays.equals(reference.tokens(), generated);
            float[] expected = reference.logits()[tokens - 1];
            float worst = 0;
            for (int i = 0; i < expected.length; i++) {
                worst = Math.max(worst, Math.abs(expected[i] - lastLogits[i]));
            }
            out.printf("single-process Java run of the same model: tokens %s, final logits %s the tolerance of %.0e"
                    + " (largest difference %.2e)%n", sameTokens ? "identical" : "DIFFERENT "
                    + Arrays.toString(reference.tokens()), worst <= PYTHON_LOGITS_TOLERANCE ? "within" : "NOT within",
                    PYTHON_LOGITS_TOLERANCE, worst);
            if (!sameTokens || !(worst <= PYTHON_LOGITS_TOLERANCE)) {
                return false;
            }
        } else if (wire == DType.F32) {
            LlamaModel whole = LlamaModel.load(checkpoint);
            Generation reference = whole.generate(prompt, tokens, sampling, processes, "F32");
            boolean sameTokens = Arrays.equals(reference.tokens(), generated);
            boolean sameLogits = Arrays.equals(reference.logits()[tokens - 1], lastLogits);
            out.printf("single-process run of the same model: tokens %s, final logits %s%n",
                    sameTokens ? "identical" : "DIFFERENT " + Arrays.toString(reference.tokens()),
                    sameLogits ? "identical bit for bit" : "DIFFERENT");
            if (!sameTokens || !sameLogits) {
                return false;
            }
        } else {
            LlamaModel whole = LlamaModel.load(checkpoint);
            Generation reference = whole.generate(prompt, tokens, sampling, processes, wire.name());
            boolean same = Arrays.equals(reference.tokens(), generated);
            out.printf("single-process run rounding the hidden state to %s at the same %d boundaries: tokens %s%n", wire,
                    processes - 1, same ? "identical" : "DIFFERENT");
            return same;
        }
        return true;
    }

    private static void printStep(PrintStream out, int i, PipelineSession.Step step) {
        StringBuilder computeText = new StringBuilder();
        for (long c : step.computeNanos()) {
            computeText.append(String.format("%.2f ", c / 1e6));
        }
        StringBuilder hopText = new StringBuilder();
        for (long h : step.hopNanos()) {
            hopText.append(String.format("%.3f ", h / 1e6));
        }
        StringBuilder bytesText = new StringBuilder();
        for (int k = 0; k < step.hopBytes().size(); k++) {
            Map<String, Long> b = step.hopBytes().get(k);
            bytesText.append(String.format("%s/%s/%s/%s/%s  ", b.get("KV_index"), b.get("CIS"), b.get("mask"),
                    b.get("hidden_state"), b.get("answer")));
        }
        out.printf("%4s %6d %8.2f  %-24s %-18s %s%n", i == 0 ? "pre" : Integer.toString(i), step.token(),
                step.wallNanos() / 1e6, computeText.toString().strip(), hopText.toString().strip(),
                bytesText.toString().strip());
    }

    private static void summarize(PrintStream out, int tokens, long[] wall, long[][] compute, long[][] hopNanos,
            List<List<Map<String, Long>>> bytes, String[] hopNames) {
        int decoded = tokens - 1; // step 0 is the prefill
        if (decoded < 1) {
            return;
        }
        long total = 0;
        long[] sorted = new long[decoded];
        int processes = compute[0].length;
        double[] meanCompute = new double[processes];
        double[] meanHop = new double[processes - 1];
        double[] meanBytes = new double[processes - 1];
        for (int i = 1; i < tokens; i++) {
            total += wall[i];
            sorted[i - 1] = wall[i];
            for (int p = 0; p < processes; p++) {
                meanCompute[p] += compute[i][p] / 1e6 / decoded;
            }
            for (int k = 0; k < processes - 1; k++) {
                meanHop[k] += hopNanos[i][k] / 1e6 / decoded;
                for (long b : bytes.get(i).get(k).values()) {
                    meanBytes[k] += (double) b / decoded;
                }
            }
        }
        Arrays.sort(sorted);
        double computeSum = Arrays.stream(meanCompute).sum();
        double hopSum = Arrays.stream(meanHop).sum();
        double meanWall = total / 1e6 / decoded;
        out.printf("%ndecode: %d tokens in %.3f s = %.1f tokens/s; per token mean %.2f ms, median %.2f ms%n", decoded,
                total / 1e9, decoded / (total / 1e9), meanWall, sorted[decoded / 2] / 1e6);
        StringBuilder computeText = new StringBuilder();
        for (int p = 0; p < processes; p++) {
            computeText.append(p == 0 ? "head " : ", s" + p + " ").append(String.format("%.2f", meanCompute[p]));
        }
        StringBuilder hopText = new StringBuilder();
        StringBuilder bytesText = new StringBuilder();
        for (int k = 0; k < processes - 1; k++) {
            hopText.append(k == 0 ? "" : ", ").append(hopNames[k]).append(String.format(" %.3f", meanHop[k]));
            bytesText.append(k == 0 ? "" : ", ").append(hopNames[k]).append(String.format(" %,.0f", meanBytes[k]));
        }
        out.printf("per decoded token: compute %.2f ms (%s); per-hop overhead %s ms (all hops %.3f ms = %.1f%% of the"
                + " token time); bytes per hop %s%n", computeSum, computeText, hopText, hopSum, 100 * hopSum / meanWall,
                bytesText);
        try {
            // Timings on a shared machine mean little without its load: say what it was.
            String load = java.nio.file.Files.readString(Path.of("/proc/loadavg")).split(" ")[0];
            out.printf("machine: %d cores, load average %s during the run%n", Runtime.getRuntime().availableProcessors(), load);
        } catch (IOException | RuntimeException notLinux) {
            out.printf("machine: %d cores%n", Runtime.getRuntime().availableProcessors());
        }
    }

    private static Process startStage(Path checkpoint, String stage, String serializer) throws IOException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(java, "-XX:+UseSerialGC", "-Xss1m"));
        String modulePath = System.getProperty("jdk.module.path");
        if (modulePath != null && !modulePath.isEmpty()) {
            command.addAll(List.of("-p", modulePath, "-m", "netutils.examples/" + InferenceStage.class.getName()));
        } else {
            command.addAll(List.of("-cp", System.getProperty("java.class.path"), InferenceStage.class.getName()));
        }
        command.addAll(List.of("--checkpoint", checkpoint.toString(), "--stage", stage, "--port", "0",
                "--serializer", serializer));
        return new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
    }

    /**
     * Starts {@code netutils-inference/python/stage_server.py} (found above the working directory) with the
     * repository's {@code python/} package on its path.
     */
    static Process startPythonStage(String python, Path checkpoint, String stage, String serializer) throws IOException {
        Path root = Path.of("").toAbsolutePath();
        while (root != null && !java.nio.file.Files.isRegularFile(root.resolve(PYTHON_STAGE))) {
            root = root.getParent();
        }
        if (root == null) {
            throw new IOException("cannot find " + PYTHON_STAGE + " in " + Path.of("").toAbsolutePath()
                    + " or a directory above it; run from the repository");
        }
        ProcessBuilder builder = new ProcessBuilder(python, root.resolve(PYTHON_STAGE).toString(), "--checkpoint",
                checkpoint.toString(), "--stage", stage, "--port", "0", "--serializer", serializer)
                .redirectError(ProcessBuilder.Redirect.INHERIT);
        builder.environment().put("PYTHONPATH", root.resolve("python").toString());
        builder.environment().put("PYTHONDONTWRITEBYTECODE", "1");
        try {
            return builder.start();
        } catch (IOException e) {
            throw new IOException("cannot start the Python stage with " + python + " (--python): " + e.getMessage(), e);
        }
    }

    /** The Python stage server, relative to the repository root. */
    static final String PYTHON_STAGE = "netutils-inference/python/stage_server.py";

    /** Reads the child's "listening on HOST:PORT" line; the rest of its output is drained in the background. */
    static String awaitBanner(Process child, PrintStream out) throws IOException {
        BufferedReader reader = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
        String line = reader.readLine();
        if (line == null || !line.contains(" listening on ")) {
            throw new IOException("stage server did not start (exit " + (child.isAlive() ? "none yet" : child.exitValue())
                    + "), said: " + line);
        }
        out.println(line);
        Thread.ofVirtual().start(() -> reader.lines().forEach(l -> { }));
        return line.substring(line.lastIndexOf(' ') + 1);
    }
}
