package netutils.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import netutils.inference.Checkpoint;
import netutils.inference.Generation;
import netutils.inference.LlamaModel;
import netutils.inference.ModelConfig;
import netutils.inference.PipelineSession;
import netutils.inference.Sampling;
import netutils.transport.tcp.TcpOptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The split model for real: stage servers in their own JVMs, over loopback sockets, against the same model run
 * in one process.
 */
@Timeout(180)
class InferencePipelineTest {
    @Test
    void threeStagesInSeparateJvmsWithAMigrationEqualTheSingleProcessModelBitForBit(@TempDir Path dir) throws Exception {
        Path checkpoint = dir.resolve("model");
        Checkpoint.write(checkpoint, ModelConfig.demo(), Checkpoint.DEMO_SEED, "BF16");
        ModelConfig config = ModelConfig.demo();
        List<Process> stages = new ArrayList<>();
        try {
            for (String stage : new String[] {"1/3", "2/3", "1/3"}) {
                stages.add(ChildJvms.startInferenceStage(checkpoint, stage, dir.resolve("stage" + stages.size() + ".err")));
            }
            String first = ChildJvms.listeningAddress(ChildJvms.firstLine(stages.get(0)));
            String last = ChildJvms.listeningAddress(ChildJvms.firstLine(stages.get(1)));
            String spare = ChildJvms.listeningAddress(ChildJvms.firstLine(stages.get(2)));
            int[] prompt = {1, 15, 300, 42, 7, 1999, 64, 128, 4095, 0};
            int decoded = 40;
            LlamaModel whole = LlamaModel.load(checkpoint);
            Generation expected = whole.generate(prompt, decoded + 1, Sampling.greedy(), 3, "F32");
            LlamaModel head = LlamaModel.load(checkpoint, LlamaModel.Slice.ofStage(config, 0, 3));
            int[] tokens = new int[decoded + 1];
            float[] finalLogits;
            PipelineSession.Migration migration;
            try (PipelineSession session = PipelineSession.builder(head, List.of(first, last))
                    .options(TcpOptions.builder().serializer("msgpack").build()).returnLogits(true).build()) {
                PipelineSession.Step step = session.prefill(prompt);
                migration = null;
                for (int i = 0; ; i++) {
                    tokens[i] = step.token();
                    assertThat(step.logits()).as("logits of token %d", i).containsExactly(expected.logits()[i]);
                    if (i == decoded) {
                        finalLogits = step.logits();
                        break;
                    }
                    if (i == decoded / 2) {
                        migration = session.migrate(1, spare);
                        assertThat(session.route()).containsExactly(spare, last);
                    }
                    step = session.next(step.token());
                }
                assertThat(session.position()).isEqualTo(prompt.length + decoded);
            }
            assertThat(migration).isNotNull();
            assertThat(migration.positions()).isEqualTo(prompt.length + decoded / 2);
            assertThat(migration.bytes()).as("2 layers x k,v x 2 KV heads x 32 x 4 bytes per position")
                    .isGreaterThan(30L * 2 * 2 * 2 * 32 * 4);
            assertThat(tokens).containsExactly(expected.tokens());
            assertThat(finalLogits).containsExactly(expected.logits()[decoded]);
            // The prompt's tokens were computed once: the spare served the rest from the migrated cache.
            assertThat(java.util.Arrays.stream(expected.tokens()).distinct().count()).as("a non-degenerate sequence")
                    .isGreaterThan(5);
        } finally {
            for (Process p : stages) {
                p.destroy();
            }
            for (Process p : stages) {
                assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
            }
        }
        for (int i = 0; i < 3; i++) {
            assertThat(Files.readString(dir.resolve("stage" + i + ".err"))).doesNotContain("WARNING").doesNotContain("Exception");
        }
    }

    @Test
    void demoPrintsPerTokenLinesAndASummaryAndAgreesWithTheSingleProcessRun(@TempDir Path dir) throws Exception {
        Process demo = new ProcessBuilder(ChildJvms.command(List.of(), "netutils.examples.InferenceDemo",
                "--tokens", "6", "--stages", "4", "--migrate-at", "3", "--warmup", "0", "--serializer", "kryo",
                "--checkpoint", dir.resolve("model").toString())).redirectError(dir.resolve("demo.err").toFile()).start();
        String out = new String(demo.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(demo.waitFor(120, TimeUnit.SECONDS)).isTrue();
        String err = Files.readString(dir.resolve("demo.err"));
        assertThat(demo.exitValue()).as(out + err).isZero();
        assertThat(out).contains("written now from seed").contains("stage 3/4 (layers 4:6, final norm + head)")
                .contains("serializer kryo").contains("migrated stage 1's KV cache")
                .contains("decode: 5 tokens").contains("tokens/s").contains("per-hop overhead h>1")
                .contains("tokens identical, final logits identical bit for bit");
        assertThat(err).doesNotContain("WARNING");
    }
}
