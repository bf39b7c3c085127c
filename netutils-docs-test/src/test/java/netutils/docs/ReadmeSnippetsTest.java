package netutils.docs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every {@code ```java} block of README.md compiles as written against the current API, as a user of the
 * README would compile it: on the module path of netutils-transport-tcp and netutils-serde-json (this module's
 * dependencies, the ones the README lists), in a module that {@code requires netutils.transport.tcp;}.
 *
 * <p>How a block becomes a source file, mechanically, so that what the README shows is what is compiled:
 * <ol>
 * <li>its leading {@code import} lines go to the top of the file (so snippets show their imports);</li>
 * <li>a block that declares a top-level type ({@code class}, {@code record}, ...) is compiled as written;</li>
 * <li>any other block is the body of {@code void snippet() throws Exception} in a class of its own;</li>
 * <li>what a fragment assumes (a variable such as {@code values}, a helper such as {@code runMyLayers}) is
 *     declared in an HTML comment right before the block, invisible on the rendered page:
 *     <pre>
 *     &lt;!-- snippet-context:
 *     float[] values = new float[16 * 4096];
 *     --&gt;
 *     </pre>
 *     Its text becomes members of that class, written in the block's imports; nothing else is added.</li>
 * </ol>
 */
class ReadmeSnippetsTest {
    private static final Path README = Path.of("..", "README.md").toAbsolutePath().normalize();

    @Test
    void everyJavaBlockOfTheReadmeCompiles(@TempDir Path work) throws Exception {
        String readme = Files.readString(README);
        List<ReadmeSnippets.Block> blocks = ReadmeSnippets.blocks(readme);
        // Every fence that opens a Java block was found (the parser missing one would hide it from the check).
        long javaFences = readme.lines().filter(l -> l.strip().equals("```java")).count();
        assertThat(blocks).as("Java blocks in " + README).hasSize((int) javaFences).isNotEmpty();

        List<String> failures = ReadmeSnippets.compile(blocks, modulePath(), work);

        assertThat(failures).as("README snippets that do not compile against the current API").isEmpty();
    }

    @Test
    void aBlockThatDoesNotCompileIsNamedWithItsLine(@TempDir Path work) throws Exception {
        String page = """
                # A page

                ```java
                import netutils.api.Message;
                import netutils.api.MessageType;

                Message m = Message.of(MessageType.KV_INDEX);
                ```

                <!-- snippet-context:
                netutils.api.Message message;
                -->
                ```java
                String text = message.toJson(); // no longer on Message: Frames.toJson(message)
                ```
                """;
        List<ReadmeSnippets.Block> blocks = ReadmeSnippets.blocks(page);

        List<String> failures = ReadmeSnippets.compile(blocks, modulePath(), work);

        assertThat(blocks).hasSize(2);
        assertThat(failures).singleElement().asString()
                .startsWith("README block 2 (line 13) does not compile")
                .contains("toJson");
    }

    @Test
    void aContextCommentAwayFromItsBlockIsRefused() {
        String page = """
                <!-- snippet-context:
                int x;
                -->
                Some prose in between.

                ```java
                x++;
                ```
                """;

        assertThatThrownBy(() -> ReadmeSnippets.blocks(page))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("line 1");
    }

    private static String modulePath() throws Exception {
        Path file = Path.of("target", "snippet-module-path.txt");
        assertThat(file).as("written by maven-dependency-plugin; run the tests through Maven").exists();
        return Files.readString(file).strip();
    }
}
