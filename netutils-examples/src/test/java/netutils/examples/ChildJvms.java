package netutils.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Starting the examples' programs in JVMs of their own, as a user's launcher would: one place for the tests. */
final class ChildJvms {
    /** The java launcher of the JDK running the tests. */
    static final String JAVA = Path.of(System.getProperty("java.home"), "bin", "java").toString();

    private ChildJvms() {
    }

    /** The examples' classes plus every runtime dependency: the module path a user's launcher would build. */
    static String modulePath() {
        try {
            String dependencies = Files.readString(Path.of("target", "runtime-module-path.txt")).strip();
            return Path.of("target", "classes").toAbsolutePath() + java.io.File.pathSeparator + dependencies;
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("run the tests through Maven, which writes the module path", e);
        }
    }

    /** The command that runs {@code mainClass} of the examples module with {@code jvmOptions} before it. */
    static List<String> command(List<String> jvmOptions, String mainClass, String... args) {
        List<String> command = new ArrayList<>(List.of(JAVA));
        command.addAll(jvmOptions);
        command.addAll(List.of("-p", modulePath(), "-m", "netutils.examples/" + mainClass));
        command.addAll(List.of(args));
        return command;
    }

    /** An inference stage server (msgpack) of {@code checkpoint}, its stderr in {@code errors}. */
    static Process startInferenceStage(Path checkpoint, String stage, Path errors) throws IOException {
        return new ProcessBuilder(command(List.of("-XX:+UseSerialGC"), "netutils.examples.InferenceStage",
                "--checkpoint", checkpoint.toString(), "--stage", stage, "--serializer", "msgpack"))
                .redirectError(errors.toFile()).start();
    }

    /** The first line a process prints: a server's banner. */
    static String firstLine(Process process) throws IOException {
        return new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8)).readLine();
    }

    /** The address in a banner that ends with " listening on HOST:PORT". */
    static String listeningAddress(String banner) {
        assertThat(banner).contains(" listening on 127.0.0.1:");
        return banner.substring(banner.lastIndexOf(' ') + 1);
    }
}
