package netutils.examples;

import java.util.HashMap;
import java.util.Map;

/** The examples' few command-line options: {@code --name value} pairs with defaults. */
final class Args {
    private final Map<String, String> values = new HashMap<>();

    private Args() {
    }

    static Args parse(String[] args, String usage, String... known) {
        Args parsed = new Args();
        for (int i = 0; i < args.length; i++) {
            String name = args[i];
            if (name.equals("--help") || name.equals("-h")) {
                System.out.println(usage);
                System.exit(0);
            }
            boolean isKnown = java.util.Arrays.asList(known).contains(name);
            if (!isKnown || i + 1 >= args.length) {
                System.err.println((isKnown ? "missing value for " : "unknown option ") + name + "\n" + usage);
                System.exit(2);
            }
            parsed.values.put(name, args[++i]);
        }
        return parsed;
    }

    String get(String name, String fallback) {
        return values.getOrDefault(name, fallback);
    }

    int port(String fallback) {
        String text = get("--port", fallback);
        try {
            int port = Integer.parseInt(text);
            if (port < 0 || port > 65535) {
                throw new NumberFormatException();
            }
            return port;
        } catch (NumberFormatException e) {
            System.err.println("--port must be 0..65535, got " + text);
            System.exit(2);
            return -1;
        }
    }
}
