package android.os;

import java.io.Closeable;

/**
 * Test stand-in for Android's {@code ParcelFileDescriptor}: what the README's example and
 * {@code io.tapemu.AndroidFds} use, with Android's ownership rules (one owner of the fd;
 * {@code detachFd()} hands it over and leaves this object closed).
 */
public class ParcelFileDescriptor implements Closeable {
    private int fd;
    private boolean closed;

    private ParcelFileDescriptor(int fd) {
        this.fd = fd;
    }

    /** {@code ParcelFileDescriptor.adoptFd(fd)}: takes ownership of the raw fd. */
    public static ParcelFileDescriptor adoptFd(int fd) {
        return new ParcelFileDescriptor(fd);
    }

    /** {@code ParcelFileDescriptor.getFd()}: the fd, still owned by this object. */
    public int getFd() {
        if (closed) {
            throw new IllegalStateException("Already closed");
        }
        return fd;
    }

    /** {@code ParcelFileDescriptor.detachFd()}: the raw fd, now the caller's to close. */
    public int detachFd() {
        if (closed) {
            throw new IllegalStateException("Already closed");
        }
        closed = true;
        int n = fd;
        fd = -1;
        return n;
    }

    /** Closing is not simulated: the tests only detach. */
    @Override
    public void close() {
        closed = true;
    }
}
