package netutils.docs;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import javax.tools.Diagnostic;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;

/**
 * Turns the {@code ```java} blocks of a Markdown page into Java sources and compiles them, the way
 * {@link ReadmeSnippetsTest} describes. Kept apart from the test so that the test can also feed it a page with
 * a broken block and see that block named.
 */
final class ReadmeSnippets {
    /** The module all blocks are compiled in; it requires what the README tells users to require. */
    static final String MODULE_INFO = "module readme.snippets {\n    requires netutils.transport.tcp;\n}\n";

    private static final Pattern FENCE = Pattern.compile("^```(\\S*)\\s*$");
    private static final Pattern CONTEXT = Pattern.compile("<!--\\s*snippet-context\\b(.*?)-->", Pattern.DOTALL);
    private static final Pattern TYPE_DECLARATION =
            Pattern.compile("^(public\\s+|final\\s+|abstract\\s+|sealed\\s+)*(class|record|interface|enum)\\s");

    private ReadmeSnippets() {
    }

    /**
     * One {@code ```java} block.
     *
     * @param number 1 for the page's first Java block
     * @param line the line of its opening fence, from 1
     * @param code the text between the fences
     * @param context the members of the wrapping class declared by a {@code snippet-context} comment before it
     */
    record Block(int number, int line, String code, String context) {
        String className() {
            return "Block" + number;
        }

        String describe() {
            return "README block " + number + " (line " + line + ")";
        }

        /** The block as a compilation unit of package {@code readme.snippets}. */
        String toSource() {
            List<String> imports = new ArrayList<>();
            List<String> rest = new ArrayList<>();
            for (String line : code.split("\n", -1)) {
                if (rest.isEmpty() && (line.startsWith("import ") || line.isBlank())) {
                    if (!line.isBlank()) {
                        imports.add(line);
                    }
                } else {
                    rest.add(line);
                }
            }
            String body = String.join("\n", rest);
            // A context may name imports too, for a block whose prose lists them instead of showing them.
            StringBuilder members = new StringBuilder();
            for (String line : context.split("\n", -1)) {
                if (line.strip().startsWith("import ")) {
                    imports.add(line.strip());
                } else {
                    members.append(line).append('\n');
                }
            }
            StringBuilder source = new StringBuilder("package readme.snippets;\n\n");
            imports.forEach(i -> source.append(i).append('\n'));
            source.append('\n');
            if (TYPE_DECLARATION.matcher(body.strip()).find()) {
                // A whole type: compiled as written (its context, if any, would have nowhere to go).
                return source.append(body).append('\n').toString();
            }
            return source.append("class ").append(className()).append(" {\n")
                    .append(members)
                    .append("    void snippet() throws Exception {\n")
                    .append(body).append('\n')
                    .append("    }\n}\n").toString();
        }
    }

    /**
     * The Java blocks of {@code markdown}, in order.
     *
     * @throws IllegalStateException if a {@code snippet-context} comment is not followed by a Java block
     */
    static List<Block> blocks(String markdown) {
        List<Block> blocks = new ArrayList<>();
        String[] lines = markdown.split("\n", -1);
        String pendingContext = null;
        int contextLine = 0;
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i];
            if (line.strip().startsWith("<!--") && line.contains("snippet-context")) {
                StringBuilder comment = new StringBuilder();
                int start = i;
                while (true) {
                    comment.append(lines[i]).append('\n');
                    if (lines[i].contains("-->")) {
                        break;
                    }
                    i++;
                }
                Matcher m = CONTEXT.matcher(comment);
                if (!m.find()) {
                    throw new IllegalStateException("line " + (start + 1) + ": unreadable snippet-context comment");
                }
                pendingContext = m.group(1).strip().replaceFirst("^:", "").strip();
                contextLine = start + 1;
                continue;
            }
            Matcher fence = FENCE.matcher(line);
            if (fence.matches()) {
                String language = fence.group(1).toLowerCase(Locale.ROOT);
                int open = i;
                StringBuilder code = new StringBuilder();
                for (i++; i < lines.length && !lines[i].startsWith("```"); i++) {
                    code.append(lines[i]).append('\n');
                }
                if (language.equals("java")) {
                    blocks.add(new Block(blocks.size() + 1, open + 1, code.toString(),
                            pendingContext == null ? "" : pendingContext));
                } else if (pendingContext != null) {
                    throw new IllegalStateException("line " + contextLine
                            + ": a snippet-context comment is followed by a ```" + language + " block, not ```java");
                }
                pendingContext = null;
                continue;
            }
            if (pendingContext != null && !line.isBlank()) {
                throw new IllegalStateException("line " + contextLine
                        + ": a snippet-context comment must come right before its ```java block");
            }
        }
        return blocks;
    }

    /**
     * Compiles every block as one module against {@code modulePath}.
     *
     * @return one entry per block that does not compile: its description and javac's errors; empty when all
     *     compile
     */
    static List<String> compile(List<Block> blocks, String modulePath, Path workDir) {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        if (javac == null) {
            throw new IllegalStateException("no system Java compiler: run the tests on a JDK");
        }
        try {
            Path src = Files.createDirectories(workDir.resolve("src"));
            Path pkg = Files.createDirectories(src.resolve("readme/snippets"));
            Path out = Files.createDirectories(workDir.resolve("classes"));
            List<Path> files = new ArrayList<>();
            files.add(Files.writeString(src.resolve("module-info.java"), MODULE_INFO));
            for (Block block : blocks) {
                files.add(Files.writeString(pkg.resolve(block.className() + ".java"), block.toSource()));
            }
            DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
            try (StandardJavaFileManager files0 = javac.getStandardFileManager(diagnostics, Locale.ROOT, null)) {
                List<String> options = List.of("--module-path", modulePath, "-d", out.toString(), "-proc:none",
                        "-Xmaxerrs", "1000");
                boolean ok = javac.getTask(null, files0, diagnostics, options, null,
                        files0.getJavaFileObjectsFromPaths(files)).call();
                List<String> failures = new ArrayList<>();
                for (Block block : blocks) {
                    String errors = diagnostics.getDiagnostics().stream()
                            .filter(d -> d.getKind() == Diagnostic.Kind.ERROR)
                            .filter(d -> d.getSource() != null
                                    && d.getSource().getName().endsWith(block.className() + ".java"))
                            .map(d -> "  " + d.getMessage(Locale.ROOT).lines().map(String::strip)
                                    .collect(Collectors.joining("; "))
                                    + "\n    at: " + sourceLine(block, d))
                            .collect(Collectors.joining("\n"));
                    if (!errors.isEmpty()) {
                        failures.add(block.describe() + " does not compile:\n" + errors);
                    }
                }
                if (!ok && failures.isEmpty()) { // an error outside any block (module-info, options)
                    failures.add("the snippets do not compile:\n" + diagnostics.getDiagnostics());
                }
                return failures;
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static String sourceLine(Block block, Diagnostic<? extends JavaFileObject> d) {
        String[] lines = block.toSource().split("\n", -1);
        long n = d.getLineNumber();
        return n >= 1 && n <= lines.length ? lines[(int) n - 1].strip() : "?";
    }
}
