package netutils.inference;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Small checkpoints for the tests, written once per JVM. */
final class TestModels {
    /** 4 layers, 64 wide, 4 query heads over 2 KV heads of 16, 512 tokens: fast enough for many runs. */
    static final ModelConfig SMALL = new ModelConfig(64, 160, 4, 4, 2, 16, 512, 128, 1e-5f, 10000f, false);
    private static Path small;

    private TestModels() {
    }

    static synchronized Path small() {
        if (small == null) {
            try {
                small = Files.createTempDirectory("netutils-small-llama");
                Checkpoint.write(small, SMALL, 7, "BF16");
                small.toFile().deleteOnExit();
                small.resolve(LlamaModel.WEIGHTS_FILE).toFile().deleteOnExit();
                small.resolve(LlamaModel.CONFIG_FILE).toFile().deleteOnExit();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return small;
    }
}
