import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.nio.file.FileSystem;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/**
 * Writes the classes of some of the running JDK's modules into a jar that ProGuard 6.2 (Debian's
 * {@code proguard-cli}) can read as its library: the same classes and members, with the class
 * file version lowered to 55 (Java 11), the newest ProGuard 6.2 accepts being 57. ProGuard reads
 * library classes only for the class hierarchy and member signatures, never writes them, so the
 * version label is the only thing that changes.
 *
 * <p>Usage: {@code java JdkLibraryJar.java OUT.jar MODULE...}, e.g. {@code java.base java.logging}
 */
public final class JdkLibraryJar {
    private static final int MAX_MAJOR = 55;

    private JdkLibraryJar() {}

    public static void main(String[] args) throws IOException {
        if (args.length < 2) {
            throw new IllegalArgumentException("usage: JdkLibraryJar OUT.jar MODULE...");
        }
        FileSystem jrt = FileSystems.getFileSystem(URI.create("jrt:/"));
        List<Path> classes = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            try (Stream<Path> walk = Files.walk(jrt.getPath("/modules", args[i]))) {
                walk.filter(p -> p.toString().endsWith(".class"))
                        .filter(p -> !p.getFileName().toString().equals("module-info.class"))
                        .sorted()
                        .forEach(classes::add);
            }
        }
        int lowered = 0;
        try (OutputStream file = Files.newOutputStream(Paths.get(args[0]));
                ZipOutputStream zip = new ZipOutputStream(file)) {
            zip.setLevel(1);
            for (Path p : classes) {
                byte[] b = Files.readAllBytes(p);
                int major = ((b[6] & 0xff) << 8) | (b[7] & 0xff);
                if (major > MAX_MAJOR) {
                    b[4] = 0; // minor version
                    b[5] = 0;
                    b[6] = (byte) (MAX_MAJOR >> 8);
                    b[7] = (byte) MAX_MAJOR;
                    lowered++;
                }
                // /modules/MODULE/java/lang/Object.class -> java/lang/Object.class
                zip.putNextEntry(new ZipEntry(p.subpath(2, p.getNameCount()).toString()));
                zip.write(b);
                zip.closeEntry();
            }
        }
        System.out.println("JDK library: " + classes.size() + " classes (" + lowered
                + " relabelled as version " + MAX_MAJOR + ")");
    }
}
