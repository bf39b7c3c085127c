package netutils.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import netutils.inference.Checkpoint;
import netutils.inference.Generation;
import netutils.inference.LlamaModel;
import netutils.inference.ModelConfig;
import netutils.inference.PipelineSession;
import netutils.inference.Sampling;
import netutils.transport.tcp.TcpOptions;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A mixed JVM/Python pipeline: the Java head, the Python stage server ({@code netutils-inference/python/
 * stage_server.py}, PyTorch where installed) in the middle and a Java last stage, each its own process over
 * loopback, against the same model run in one JVM. Python sums in another order than Java, so the tokens must be
 * the same and the logits within {@link InferenceDemo#PYTHON_LOGITS_TOLERANCE}. The Python stage's cache also
 * moves to a Java server and back, so {@code KV_cache} crosses between the languages both ways.
 */
@Timeout(180)
class InferencePythonStageTest {
    private static final String PYTHON = "/usr/bin/python3";
    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
    private static boolean hasTorch;

    @BeforeAll
    static void findPython() {
        String missing = null;
        if (!probe("import numpy, msgpack")) {
            missing = PYTHON + " lacks numpy or msgpack (apt-get install python3-numpy python3-msgpack)";
        } else {
            hasTorch = probe("import torch");
            if (!hasTorch && System.getenv("CI") != null) {
                missing = PYTHON + " has no torch (apt-get install python3-torch): CI must run the PyTorch stage";
            }
        }
        if (missing != null && System.getenv("CI") != null) {
            throw new IllegalStateException(missing + ": CI must run the mixed JVM/Python pipeline");
        }
        String reason = missing;
        Assumptions.assumeTrue(reason == null, () -> reason + "; the Python stage test is skipped outside CI");
    }

    private static boolean probe(String code) {
        try {
            Process probe = new ProcessBuilder(PYTHON, "-c", code).redirectErrorStream(true).start();
            return probe.waitFor(60, TimeUnit.SECONDS) && probe.exitValue() == 0;
        } catch (IOException | InterruptedException notThere) {
            return false;
        }
    }

    private static Process startPythonStage(Path checkpoint, String stage, Path errors) throws IOException {
        ProcessBuilder builder = new ProcessBuilder(PYTHON, ROOT.resolve(InferenceDemo.PYTHON_STAGE).toString(),
                "--checkpoint", checkpoint.toString(), "--stage", stage, "--serializer", "msgpack")
                .redirectError(errors.toFile());
        builder.environment().put("PYTHONPATH", ROOT.resolve("python").toString());
        builder.environment().put("PYTHONDONTWRITEBYTECODE", "1");
        return builder.start();
    }

    @Test
    void aPythonMiddleStageGivesTheTokensOfTheJavaModelAndItsLogitsWithinTheTolerance(@TempDir Path dir)
            throws Exception {
        Path checkpoint = dir.resolve("model");
        Checkpoint.write(checkpoint, ModelConfig.demo(), Checkpoint.DEMO_SEED, "BF16");
        ModelConfig config = ModelConfig.demo();
        List<Process> stages = new ArrayList<>();
        try {
            stages.add(startPythonStage(checkpoint, "1/3", dir.resolve("stage0.err")));
            stages.add(ChildJvms.startInferenceStage(checkpoint, "2/3", dir.resolve("stage1.err")));
            stages.add(ChildJvms.startInferenceStage(checkpoint, "1/3", dir.resolve("stage2.err")));
            String pythonBanner = ChildJvms.firstLine(stages.get(0));
            String python = ChildJvms.listeningAddress(pythonBanner);
            String last = ChildJvms.listeningAddress(ChildJvms.firstLine(stages.get(1)));
            String javaSpare = ChildJvms.listeningAddress(ChildJvms.firstLine(stages.get(2)));
            assertThat(pythonBanner).startsWith("python stage 1/3 (layers 2:4, " + (hasTorch ? "torch " : "numpy "));

            int[] prompt = {1, 15, 300, 42, 7, 1999, 64, 128, 4095, 0};
            int decoded = 40;
            LlamaModel whole = LlamaModel.load(checkpoint);
            Generation expected = whole.generate(prompt, decoded + 1, Sampling.greedy(), 3, "F32");
            LlamaModel head = LlamaModel.load(checkpoint, LlamaModel.Slice.ofStage(config, 0, 3));
            int[] tokens = new int[decoded + 1];
            float worst = 0;
            float largest = 0;
            int stepsThroughPython = 0;
            boolean pythonDiffers = false;
            List<PipelineSession.Migration> migrations = new ArrayList<>();
            try (PipelineSession session = PipelineSession.builder(head, List.of(python, last))
                    .options(TcpOptions.builder().serializer("msgpack").build()).returnLogits(true).build()) {
                PipelineSession.Step step = session.prefill(prompt);
                for (int i = 0; ; i++) {
                    tokens[i] = step.token();
                    float[] want = expected.logits()[i];
                    assertThat(step.logits()).as("logits of token %d", i).hasSize(want.length);
                    float stepWorst = 0;
                    for (int v = 0; v < want.length; v++) {
                        stepWorst = Math.max(stepWorst, Math.abs(step.logits()[v] - want[v]));
                        largest = Math.max(largest, Math.abs(want[v]));
                    }
                    assertThat(stepWorst).as("largest logit difference at token %d", i)
                            .isLessThanOrEqualTo(InferenceDemo.PYTHON_LOGITS_TOLERANCE);
                    assertThat(step.token()).as("token %d", i).isEqualTo(expected.tokens()[i]);
                    if (session.route().getFirst().equals(python)) {
                        stepsThroughPython++;
                        pythonDiffers |= stepWorst > 0;
                        assertThat(step.computeNanos()[1]).as("the Python stage's compute time").isPositive();
                    }
                    worst = Math.max(worst, stepWorst);
                    if (i == decoded) {
                        break;
                    }
                    if (i == 14) { // the Python stage's cache goes to a Java server ...
                        migrations.add(session.migrate(1, javaSpare));
                        assertThat(session.route()).containsExactly(javaSpare, last);
                    }
                    if (i == 20) { // ... and comes back; decoding goes on without recomputing the prompt
                        migrations.add(session.migrate(1, python));
                        assertThat(session.route()).containsExactly(python, last);
                    }
                    step = session.next(step.token());
                }
                assertThat(session.position()).isEqualTo(prompt.length + decoded);
            }
            assertThat(tokens).containsExactly(expected.tokens());
            assertThat(Arrays.stream(tokens).distinct().count()).as("a non-degenerate sequence").isGreaterThan(5);
            assertThat(migrations).extracting(PipelineSession.Migration::positions)
                    .containsExactly(prompt.length + 14, prompt.length + 20);
            assertThat(stepsThroughPython).isEqualTo(decoded + 1 - 6);
            // Python's float32 sums are not Java's: bit-identical logits would mean the Python stage computed nothing
            assertThat(pythonDiffers).as("some logits differ in their last bits").isTrue();
            System.out.printf("mixed JVM/Python pipeline: %d tokens identical, largest logit difference %.2e"
                    + " (logits up to %.1f in magnitude, tolerance %.0e)%n", tokens.length, worst, largest,
                    InferenceDemo.PYTHON_LOGITS_TOLERANCE);
        } finally {
            for (Process p : stages) {
                p.destroy();
            }
            for (Process p : stages) {
                assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
            }
        }
        assertThat(Files.readString(dir.resolve("stage0.err"))).as("the Python stage's stderr")
                .doesNotContain("Traceback").doesNotContain("WARNING").doesNotContain("ERROR")
                .doesNotContain("terminate called");
        for (int i = 1; i < 3; i++) {
            assertThat(Files.readString(dir.resolve("stage" + i + ".err"))).doesNotContain("WARNING").doesNotContain("Exception");
        }
    }

    @Test
    void theDemoRunsAPythonStageAndSaysHowCloseItsLogitsAre(@TempDir Path dir) throws Exception {
        Process demo = new ProcessBuilder(ChildJvms.command(List.of(), "netutils.examples.InferenceDemo",
                "--tokens", "6", "--stages", "3", "--python-stage", "2", "--migrate-at", "3", "--warmup", "0",
                "--serializer", "msgpack", "--checkpoint", dir.resolve("model").toString()))
                .redirectError(dir.resolve("demo.err").toFile()).start();
        String out = new String(demo.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(demo.waitFor(120, TimeUnit.SECONDS)).isTrue();
        String err = Files.readString(dir.resolve("demo.err"));
        assertThat(demo.exitValue()).as(out + err).isZero();
        assertThat(out).contains("python stage 2/3 (layers 4:6, final norm + head, ")
                .contains("migrated stage 1's KV cache").contains("decode: 5 tokens")
                .containsPattern("tokens identical, final logits within the tolerance of 1e-04 \\(largest difference "
                        + "\\d\\.\\d\\de-0\\d\\)");
        assertThat(err).doesNotContain("WARNING").doesNotContain("Traceback");
    }
}
