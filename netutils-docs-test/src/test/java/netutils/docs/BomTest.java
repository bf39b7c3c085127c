package netutils.docs;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.TreeSet;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;

/**
 * netutils-bom lists exactly the published modules of the build, at the build's version. A module is published
 * when it builds a jar and does not set {@code maven.deploy.skip} (the examples, the benchmark and this module
 * set it). So a new library module fails here until it is added to the BOM, or marked as not published.
 */
class BomTest {
    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();

    @Test
    void theBomListsEveryPublishedModuleAtTheBuildsVersion() throws Exception {
        Element parent = read(ROOT.resolve("pom.xml"));
        Element bom = read(ROOT.resolve("netutils-bom/pom.xml"));
        String version = text(parent, "version").orElseThrow();

        TreeSet<String> published = new TreeSet<>();
        for (Element module : children(child(parent, "modules").orElseThrow(), "module")) {
            Element pom = read(ROOT.resolve(module.getTextContent().strip()).resolve("pom.xml"));
            boolean jar = text(pom, "packaging").orElse("jar").equals("jar");
            boolean deploySkipped = child(pom, "properties")
                    .flatMap(p -> text(p, "maven.deploy.skip")).orElse("false").equals("true");
            if (jar && !deploySkipped) {
                published.add(text(pom, "artifactId").orElseThrow());
            }
        }
        TreeSet<String> listed = new TreeSet<>();
        Element managed = child(child(bom, "dependencyManagement").orElseThrow(), "dependencies").orElseThrow();
        for (Element dependency : children(managed, "dependency")) {
            assertThat(text(dependency, "groupId")).hasValue("io.netutils");
            assertThat(text(dependency, "version")).as(dependency.getTextContent().strip())
                    .hasValue("${project.version}");
            listed.add(text(dependency, "artifactId").orElseThrow());
        }

        assertThat(published).as("published modules (jar, no maven.deploy.skip)")
                .contains("netutils-api", "netutils-transport-tcp", "netutils-serde-json");
        assertThat(listed).as("netutils-bom/pom.xml lists every published module and nothing else")
                .isEqualTo(published);
        assertThat(text(bom, "version")).as("netutils-bom's version is netutils-parent's").hasValue(version);
        assertThat(child(bom, "parent")).as("the BOM has no parent: importing it must not pin Jackson or JUnit")
                .isEmpty();
        assertThat(children(child(parent, "modules").orElseThrow(), "module"))
                .extracting(m -> m.getTextContent().strip())
                .as("the BOM is built and installed with the rest").contains("netutils-bom");
    }

    private static Element read(Path pom) throws Exception {
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        Document document = factory.newDocumentBuilder().parse(pom.toFile());
        return document.getDocumentElement();
    }

    private static List<Element> children(Element element, String name) {
        List<Element> children = new ArrayList<>();
        for (Node n = element.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e && e.getTagName().equals(name)) {
                children.add(e);
            }
        }
        return children;
    }

    private static Optional<Element> child(Element element, String name) {
        return children(element, name).stream().findFirst();
    }

    private static Optional<String> text(Element element, String name) {
        return child(element, name).map(e -> e.getTextContent().strip());
    }
}
