package io.tapemu;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.reflect.Field;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/**
 * Raw file descriptors for the tests, as {@code ParcelFileDescriptor.detachFd()} gives them:
 * opened by Java, then detached (the Java object no longer closes them). Needs
 * {@code --add-opens java.base/java.io=ALL-UNNAMED}.
 */
final class Fds {
    private Fds() {}

    private static int detach(FileDescriptor fd) throws IOException {
        try {
            Field f = FileDescriptor.class.getDeclaredField("fd");
            f.setAccessible(true);
            int n = f.getInt(fd);
            f.setInt(fd, -1); // detached: no cleaner closes it later
            return n;
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IOException("cannot read the fd (run with --add-opens java.base/java.io=ALL-UNNAMED)", e);
        }
    }

    /**
     * @return a {@link FileDescriptor} owning the raw {@code fd} (closing a stream on it closes
     *     the fd), for reading and writing an fd native code handed out
     */
    static FileDescriptor attach(int fd) throws IOException {
        try {
            FileDescriptor d = new FileDescriptor();
            Field f = FileDescriptor.class.getDeclaredField("fd");
            f.setAccessible(true);
            f.setInt(d, fd);
            return d;
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IOException("cannot set the fd (run with --add-opens java.base/java.io=ALL-UNNAMED)", e);
        }
    }

    /** @return how many of this process's fds are sockets */
    static int countSockets() throws IOException {
        int n = 0;
        try (DirectoryStream<Path> fds = Files.newDirectoryStream(Paths.get("/proc/self/fd"))) {
            for (Path fd : fds) {
                try {
                    if (Files.readSymbolicLink(fd).toString().startsWith("socket:")) {
                        n++;
                    }
                } catch (IOException closedMeanwhile) {
                    // the directory's own fd, or one closed while listing
                }
            }
        }
        return n;
    }

    /** @return a detached fd on /dev/null: neither a TUN nor a socket (epoll refuses it) */
    static int openDevNull() throws IOException {
        try (FileInputStream in = new FileInputStream("/dev/null")) {
            return detach(in.getFD());
        }
    }

    /** @return a detached read-write fd on a new FIFO at {@code path}: pollable, like a TUN */
    static int openFifo(Path path) throws IOException, InterruptedException {
        Files.deleteIfExists(path);
        Process p = new ProcessBuilder("mkfifo", path.toString()).inheritIO().start();
        if (p.waitFor() != 0) {
            throw new IOException("mkfifo " + path + " failed");
        }
        try (RandomAccessFile f = new RandomAccessFile(path.toFile(), "rw")) {
            return detach(f.getFD());
        }
    }

    /** @return a detached read-only fd on the regular file {@code path} */
    static int openFile(Path path) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(path.toFile(), "r")) {
            return detach(f.getFD());
        }
    }

    /** @return how many of this process's fds point at {@code target} */
    static int countOpen(String target) throws IOException {
        int n = 0;
        try (DirectoryStream<Path> fds = Files.newDirectoryStream(Paths.get("/proc/self/fd"))) {
            for (Path fd : fds) {
                try {
                    if (Files.readSymbolicLink(fd).toString().equals(target)) {
                        n++;
                    }
                } catch (IOException closedMeanwhile) {
                    // the directory's own fd, or one closed while listing
                }
            }
        }
        return n;
    }
}
