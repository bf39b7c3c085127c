package netutils.api;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The API module's packages depend on each other one way only. Reads the sources (imports and fully qualified
 * names in code, comments and strings left out) and fails naming the cycle if one comes back.
 */
class PackageCycleTest {
    private static final Path SOURCES = Path.of("src/main/java");
    private static final Pattern REFERENCE = Pattern.compile("\\b(netutils\\.api(?:\\.[a-z]\\w*)*)\\.[A-Z]");

    @Test
    void packagesFormNoCycle() throws IOException {
        Map<String, Set<String>> edges = dependencies();
        assertThat(edges).containsKeys("netutils.api", "netutils.api.spi", "netutils.api.wire", "netutils.api.testing");
        List<String> cycle = findCycle(edges);
        assertThat(cycle).as("package cycle in netutils-api: " + String.join(" -> ", cycle)).isEmpty();
    }

    @Test
    void modelAuthorPackageDependsOnNoOtherApiPackageButInternal() throws IOException {
        assertThat(dependencies().get("netutils.api")).isSubsetOf("netutils.api.internal");
    }

    static Map<String, Set<String>> dependencies() throws IOException {
        Map<String, Set<String>> edges = new TreeMap<>();
        List<Path> files;
        try (Stream<Path> walk = Files.walk(SOURCES)) {
            files = walk.filter(p -> p.toString().endsWith(".java") && !p.endsWith("module-info.java")).toList();
        }
        for (Path file : files) {
            String from = SOURCES.relativize(file.getParent()).toString().replace('/', '.');
            Set<String> targets = edges.computeIfAbsent(from, k -> new TreeSet<>());
            String code = Files.readString(file)
                    .replaceAll("(?s)/\\*.*?\\*/", "")
                    .replaceAll("//[^\\n]*", "")
                    .replaceAll("\"(\\\\.|[^\"\\\\])*\"", "\"\"")
                    .replaceAll("(?m)^package [^;]*;", "");
            Matcher matcher = REFERENCE.matcher(code);
            while (matcher.find()) {
                if (!matcher.group(1).equals(from)) {
                    targets.add(matcher.group(1));
                }
            }
        }
        return edges;
    }

    private static List<String> findCycle(Map<String, Set<String>> edges) {
        for (String start : edges.keySet()) {
            List<String> path = new ArrayList<>();
            if (walk(start, start, edges, path, new TreeSet<>())) {
                return path;
            }
        }
        return List.of();
    }

    private static boolean walk(String start, String at, Map<String, Set<String>> edges, List<String> path,
            Set<String> seen) {
        path.add(at);
        for (String next : edges.getOrDefault(at, Set.of())) {
            if (next.equals(start)) {
                path.add(next);
                return true;
            }
            if (seen.add(next) && walk(start, next, edges, path, seen)) {
                return true;
            }
        }
        path.removeLast();
        return false;
    }
}
